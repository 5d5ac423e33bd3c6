//! placeholder: pod-core's docs are written with its implementation.
pub mod control;
pub mod lifecycle;
pub mod record;
pub mod supervisor;
