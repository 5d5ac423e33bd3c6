//! placeholder: pod-profile's docs are written with its implementation.
pub mod manifest;

pub use manifest::{Manifest, Provenance, ProvenanceMap, ResolvedManifest, Scheme, SourceKind};
