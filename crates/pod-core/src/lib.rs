//! placeholder: pod-core's docs are written with its implementation.
pub mod record;
