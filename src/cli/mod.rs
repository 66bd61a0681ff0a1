pub mod commands;
pub mod context;
pub mod secrets;
