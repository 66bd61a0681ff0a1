pub mod commands;
pub mod context;
