pub mod backend;
pub mod config;
pub mod error;
pub mod id;
pub mod secrets;

pub use error::{Error, Result};
pub use id::Id;
