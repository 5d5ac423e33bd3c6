//! One module per command group; each parses its own arguments and presents results.

pub mod docs;
pub mod doctor;
pub mod export;
pub mod log;
pub mod pods;
pub mod profile;
pub mod provider;
pub mod run;
pub mod sandbox;
pub mod telemetry;
pub mod trace;
