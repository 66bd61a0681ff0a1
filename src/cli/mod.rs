#[macro_use]
pub mod output;
pub mod commands;
pub mod context;
pub mod docs;
pub mod metrics;
pub mod progress;
pub mod repair;
pub mod secrets;
pub mod signals;
pub mod stats;
pub mod terminal;
pub mod unlock;
