pub mod commands;
pub mod context;
pub mod filter;
pub mod secrets;
pub mod terminal;
