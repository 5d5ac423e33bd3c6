//! The GenAI client metrics of a running pod, `gen_ai.client.token.usage` and
//! `gen_ai.client.operation.duration`, recorded from the `chat` spans the builder completes (one
//! source for spans and metrics) and sent with `opentelemetry-otlp`'s metric exporter over the
//! same HTTP client, whenever live export sends spans and when it ends.

#![allow(deprecated)]

use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_semantic_conventions::{attribute as semconv, metric};

use crate::error::TelemetryError;
use crate::names;
use crate::push::{PushTarget, Reqwest, headers_from_env};

/// The metrics endpoint for spans going to `traces_endpoint`:
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as given, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
/// `/v1/metrics`, else the traces endpoint with its `/v1/traces` made `/v1/metrics`; `None`
/// when none of these applies (an endpoint of another shape says nothing about metrics).
pub fn metrics_endpoint(
    traces_endpoint: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(endpoint) = set(opentelemetry_otlp::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) {
        return Some(endpoint);
    }
    if let Some(base) = set(opentelemetry_otlp::OTEL_EXPORTER_OTLP_ENDPOINT) {
        return Some(format!("{}/v1/metrics", base.trim_end_matches('/')));
    }
    traces_endpoint
        .strip_suffix("/v1/traces")
        .map(|base| format!("{base}/v1/metrics"))
}

/// The two histograms, their reader and their exporter.
pub(crate) struct ChatMetrics {
    provider: SdkMeterProvider,
    reader: Arc<ManualReader>,
    exporter: opentelemetry_otlp::MetricExporter,
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    pub(crate) endpoint: String,
}

impl ChatMetrics {
    pub(crate) fn new(
        target: &PushTarget,
        endpoint: String,
    ) -> Result<ChatMetrics, TelemetryError> {
        let build_error = |error: String| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            source: opentelemetry_otlp::ExporterBuildError::InternalFailure(error),
        };
        let headers = headers_from_env(&target.headers_env, |name| std::env::var(name).ok())?;
        let client = reqwest::Client::builder()
            .timeout(target.timeout)
            .build()
            .map_err(|error| build_error(error.to_string()))?;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(target.timeout)
            .with_http_client(Reqwest(client))
            .with_headers(headers)
            .build()
            .map_err(|source| TelemetryError::Exporter {
                endpoint: endpoint.clone(),
                source,
            })?;
        let reader = Arc::new(ManualReader::builder().build());
        let provider = SdkMeterProvider::builder()
            .with_reader(SharedReader(reader.clone()))
            .with_resource(target.resource.clone())
            .build();
        let meter = provider.meter("pods");
        let token_usage = meter
            .u64_histogram(metric::GEN_AI_CLIENT_TOKEN_USAGE)
            .with_unit("{token}")
            .with_description("Tokens used per model request, by token type")
            .with_boundaries(vec![
                1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
                4194304.0, 16777216.0, 67108864.0,
            ])
            .build();
        let duration = meter
            .f64_histogram(metric::GEN_AI_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description("Duration of model requests")
            .with_boundaries(vec![
                0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                81.92,
            ])
            .build();
        Ok(ChatMetrics {
            provider,
            reader,
            exporter,
            token_usage,
            duration,
            endpoint,
        })
    }

    /// Record the `chat` spans among `spans`.
    pub(crate) fn observe(&self, spans: &[SpanData]) {
        for span in spans {
            let attr = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.clone())
            };
            let is_chat = attr(names::OPERATION_NAME).is_some_and(|v| v.as_str() == names::OP_CHAT);
            if !is_chat {
                continue;
            }
            let mut common = vec![KeyValue::new(names::OPERATION_NAME, names::OP_CHAT)];
            for key in [
                names::PROVIDER_NAME,
                names::REQUEST_MODEL,
                semconv::GEN_AI_RESPONSE_MODEL,
                names::ERROR_TYPE,
            ] {
                if let Some(value) = attr(key) {
                    common.push(KeyValue::new(key, value));
                }
            }
            if let Ok(elapsed) = span.end_time.duration_since(span.start_time) {
                self.duration.record(elapsed.as_secs_f64(), &common);
            }
            for (key, kind) in [
                (names::USAGE_INPUT_TOKENS, "input"),
                (names::USAGE_OUTPUT_TOKENS, "output"),
            ] {
                let tokens = match attr(key) {
                    Some(opentelemetry::Value::I64(n)) => u64::try_from(n).ok(),
                    _ => None,
                };
                if let Some(tokens) = tokens {
                    let mut attributes = common.clone();
                    attributes.push(KeyValue::new(semconv::GEN_AI_TOKEN_TYPE, kind));
                    self.token_usage.record(tokens, &attributes);
                }
            }
        }
    }

    /// Send the totals so far (cumulative).
    pub(crate) async fn export(&self) -> OTelSdkResult {
        let mut metrics = ResourceMetrics::default();
        self.reader.collect(&mut metrics)?;
        if metrics.scope_metrics().next().is_none() {
            return Ok(());
        }
        self.exporter.export(&metrics).await
    }

    pub(crate) fn shutdown(&self) {
        let _ = self
            .provider
            .shutdown_with_timeout(Duration::from_millis(100));
        let _ = self.exporter.shutdown();
    }
}

/// The provider owns its reader; this lets the export thread collect from it too.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use serde_json::json;

    use crate::pod::{ModelFacts, PodContext};
    use crate::{Content, SpanBuilder};

    /// The spans of one run whose one request reported 120 input and 30 output tokens.
    fn spans_with_usage() -> Vec<SpanData> {
        let pod = "0193a1b2-0000-7000-8000-00000000000b";
        let info = pod_protocol::record::PodInfo {
            id: pod.into(),
            name: "m".into(),
            profile: "p".into(),
            parent_id: None,
            created: "2026-01-01T00:00:00.000Z".into(),
            pid: None,
            state: pod_protocol::record::PodState::Running,
            work_dir: None,
        };
        let mut builder = SpanBuilder::new(
            PodContext::new(&info, pod, ModelFacts::default()),
            Content::Off,
        );
        let bodies = [
            json!({"kind": "run_started", "run_id": "r", "trigger": {"type": "cli"}, "input": "x"}),
            json!({"kind": "provider_request_started", "run_id": "r", "turn": 1, "attempt": 1,
                   "scheme": "openai-responses", "model": "gpt-x"}),
            json!({"kind": "assistant_message", "run_id": "r", "turn": 1, "text": "y",
                   "reasoning": "", "tool_calls": []}),
            json!({"kind": "provider_request_finished", "run_id": "r", "turn": 1, "attempt": 1,
                   "end": "completed", "stop_reason": {"reason": "end_turn"},
                   "usage": {"input_tokens": 120, "output_tokens": 30}}),
            json!({"kind": "run_completed", "run_id": "r", "turns": 1, "text": "y",
                   "reason": "end_turn"}),
        ];
        let mut out = Vec::new();
        for (i, mut body) in bodies.into_iter().enumerate() {
            body["seq"] = json!(i + 1);
            body["ts"] = json!(format!("2026-01-01T00:00:0{i}.000Z"));
            let entry = serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"));
            builder.feed(&entry, &mut out);
        }
        out
    }

    #[test]
    fn chat_spans_become_token_usage_by_type_and_one_duration_per_request() {
        let target = PushTarget {
            endpoint: "http://127.0.0.1:9/v1/traces".into(),
            headers_env: Vec::new(),
            resource: crate::otlp::resource(None),
            timeout: Duration::from_secs(1),
        };
        let metrics = ChatMetrics::new(&target, "http://127.0.0.1:9/v1/metrics".into())
            .unwrap_or_else(|e| panic!("{e}"));
        metrics.observe(&spans_with_usage());
        let mut collected = ResourceMetrics::default();
        metrics
            .reader
            .collect(&mut collected)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tokens = Vec::new();
        let mut durations = 0;
        for scope in collected.scope_metrics() {
            for metric in scope.metrics() {
                match (metric.name(), metric.data()) {
                    (
                        metric::GEN_AI_CLIENT_TOKEN_USAGE,
                        AggregatedMetrics::U64(MetricData::Histogram(h)),
                    ) => {
                        for point in h.data_points() {
                            let kind = point
                                .attributes()
                                .find(|kv| kv.key.as_str() == semconv::GEN_AI_TOKEN_TYPE)
                                .map(|kv| kv.value.to_string())
                                .unwrap_or_default();
                            tokens.push((kind, point.sum()));
                        }
                    }
                    (
                        metric::GEN_AI_CLIENT_OPERATION_DURATION,
                        AggregatedMetrics::F64(MetricData::Histogram(h)),
                    ) => durations += h.data_points().map(|p| p.count()).sum::<u64>(),
                    _ => {}
                }
            }
        }
        tokens.sort();
        assert_eq!(
            tokens,
            [("input".to_owned(), 120), ("output".to_owned(), 30)]
        );
        assert_eq!(durations, 1);
    }

    #[test]
    fn the_metrics_endpoint_follows_the_otlp_rules() {
        let none = |_: &str| None;
        assert_eq!(
            metrics_endpoint("http://c:4318/v1/traces", none).as_deref(),
            Some("http://c:4318/v1/metrics")
        );
        assert_eq!(metrics_endpoint("http://c:4318/custom", none), None);
        let generic = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://base:4318/".to_owned())
        };
        assert_eq!(
            metrics_endpoint("http://c/custom", generic).as_deref(),
            Some("http://base:4318/v1/metrics")
        );
        let own = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").then(|| "http://m/x".to_owned())
        };
        assert_eq!(
            metrics_endpoint("http://c/v1/traces", own).as_deref(),
            Some("http://m/x")
        );
    }
}
