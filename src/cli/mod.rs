#[macro_use]
pub mod output;
pub mod commands;
pub mod context;
pub mod diff;
pub mod docs;
pub mod dump;
pub mod find;
pub mod import_tar;
pub mod metrics;
pub mod mount;
pub mod progress;
pub mod repair;
pub mod secrets;
pub mod signals;
pub mod stats;
pub mod terminal;
pub mod unlock;
