pub mod commands;
pub mod context;
pub mod passphrase;
pub mod repair;
pub mod secrets;
pub mod terminal;
pub mod unlock;
