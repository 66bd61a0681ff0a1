pub mod commands;
pub mod context;
pub mod passphrase;
pub mod secrets;
pub mod terminal;
