pub mod commands;
pub mod context;
pub mod secrets;
pub mod terminal;
