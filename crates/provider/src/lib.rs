//! placeholder: the provider crate's docs are written with its implementation.
pub mod error;
pub mod event;

pub use error::{ErrorClass, ProviderError};
pub use event::StreamEvent;
