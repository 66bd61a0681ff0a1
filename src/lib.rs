pub mod backend;
pub mod backup;
pub mod cache;
pub mod check;
pub mod config;
pub mod crypto;
pub mod error;
pub mod fsmeta;
pub mod id;
pub mod keys;
pub mod pack;
pub mod reader;
pub mod restore;
pub mod repo;
pub mod secrets;
pub mod tree;

pub use error::{Error, Result};
pub use id::Id;
