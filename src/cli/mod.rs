pub mod commands;
pub mod context;
pub mod drill;
pub mod hooks;
pub mod repair;
pub mod secrets;
pub mod terminal;
pub mod unlock;
