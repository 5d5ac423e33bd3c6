//! A batch of spans as OTLP: the resource they are sent under, and the JSON form of an
//! `ExportTraceServiceRequest` (OTLP/HTTP's JSON encoding) rendered through the official
//! protobuf types.

use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::error::TelemetryError;

/// `service.name` when `OTEL_SERVICE_NAME` does not set one.
pub const DEFAULT_SERVICE_NAME: &str = "pods";

/// The resource spans are sent under: `service.name` from `service_name` (the caller passes
/// `OTEL_SERVICE_NAME`), else `pods`, and the pods version.
pub fn resource(service_name: Option<&str>) -> Resource {
    let name = service_name
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(DEFAULT_SERVICE_NAME)
        .to_owned();
    Resource::builder_empty()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The `ExportTraceServiceRequest` of `spans` under `resource`.
pub fn request(spans: Vec<SpanData>, resource: &Resource) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans,
            &ResourceAttributesWithSchema::from(resource),
        ),
    }
}

/// The OTLP JSON document of `spans` under `resource`.
pub fn render_json(spans: Vec<SpanData>, resource: &Resource) -> Result<Vec<u8>, TelemetryError> {
    let mut bytes =
        serde_json::to_vec_pretty(&request(spans, resource)).map_err(TelemetryError::Render)?;
    bytes.push(b'\n');
    Ok(bytes)
}
