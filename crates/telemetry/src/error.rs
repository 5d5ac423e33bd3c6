//! The errors of building, rendering and sending spans.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// Finding or reading the pods.
    #[error(transparent)]
    Home(#[from] pod_home::HomeError),
    #[error("could not read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not render the OTLP JSON document")]
    Render(#[source] serde_json::Error),
    #[error("could not set up the OTLP/HTTP exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A header variable named with `headers_env` is unset or not `name=value,…`.
    #[error("header variable ${name} {problem}")]
    HeaderVariable { name: String, problem: String },
    #[error("exporting {spans} span(s) to {endpoint} failed")]
    Export {
        spans: usize,
        endpoint: String,
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },
    #[error("shutting down the exporter for {endpoint} failed")]
    Shutdown {
        endpoint: String,
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },
}
