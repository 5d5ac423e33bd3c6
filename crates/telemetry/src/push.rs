//! Sending spans to an OTLP/HTTP endpoint with `opentelemetry-otlp`'s span exporter, always as
//! protobuf (`application/x-protobuf`, which every backend accepts), over the workspace's
//! reqwest.
//!
//! The endpoint is resolved once, here, by the OTLP rules: one given explicitly is used as
//! given, then `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, then `OTEL_EXPORTER_OTLP_ENDPOINT`
//! with `/v1/traces` appended, then `http://localhost:4318/v1/traces`. Headers come from the
//! variables named in [`PushTarget::headers_env`] and from `OTEL_EXPORTER_OTLP_HEADERS` (or
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS`), which the exporter reads itself.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use crate::error::TelemetryError;

/// The endpoint's default when nothing names one.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// At most this many spans go in one request.
pub const SPANS_PER_REQUEST: usize = 512;

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// The resolved endpoint (see [`resolve_endpoint`]).
    pub endpoint: String,
    /// Names of variables each holding headers as `name=value[,name=value…]`.
    pub headers_env: Vec<String>,
    pub resource: Resource,
    /// How long one request may take.
    pub timeout: Duration,
}

/// What a push sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub spans: usize,
    pub requests: usize,
    pub endpoint: String,
}

/// The traces endpoint: `explicit` as given, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given,
/// else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else [`DEFAULT_ENDPOINT`]. `env` looks a
/// variable up (empty values count as unset).
pub fn resolve_endpoint(explicit: Option<&str>, env: impl Fn(&str) -> Option<String>) -> String {
    let set = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    if let Some(endpoint) = explicit.filter(|e| !e.trim().is_empty()) {
        return endpoint.to_owned();
    }
    if let Some(endpoint) = set(env(opentelemetry_otlp::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)) {
        return endpoint;
    }
    if let Some(base) = set(env(opentelemetry_otlp::OTEL_EXPORTER_OTLP_ENDPOINT)) {
        return format!("{}/v1/traces", base.trim_end_matches('/'));
    }
    DEFAULT_ENDPOINT.to_owned()
}

/// The headers of the variables `names`, each `name=value[,name=value…]` (the
/// `OTEL_EXPORTER_OTLP_HEADERS` form). An unset variable or a malformed one is an error naming it.
pub fn headers_from_env(
    names: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>, TelemetryError> {
    let mut headers = HashMap::new();
    for name in names {
        let problem = |problem: &str| TelemetryError::HeaderVariable {
            name: name.clone(),
            problem: problem.to_owned(),
        };
        let value = env(name).ok_or_else(|| problem("is not set"))?;
        for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| problem("is not `name=value[,name=value…]`"))?;
            if key.trim().is_empty() {
                return Err(problem("has a header without a name"));
            }
            headers.insert(key.trim().to_owned(), value.trim().to_owned());
        }
    }
    Ok(headers)
}

/// An OTLP/HTTP span exporter for `target`, sending protobuf over the workspace's reqwest, with
/// the headers of `target.headers_env` (and `OTEL_EXPORTER_OTLP_HEADERS`, read by the exporter).
pub fn exporter(target: &PushTarget) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let headers = headers_from_env(&target.headers_env, |name| std::env::var(name).ok())?;
    let client = reqwest::Client::builder()
        .timeout(target.timeout)
        .build()
        .map_err(|error| TelemetryError::Exporter {
            endpoint: target.endpoint.clone(),
            source: opentelemetry_otlp::ExporterBuildError::InternalFailure(error.to_string()),
        })?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(target.endpoint.clone())
        .with_timeout(target.timeout)
        .with_http_client(Reqwest(client))
        .with_headers(headers)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: target.endpoint.clone(),
            source,
        })?;
    exporter.set_resource(&target.resource);
    Ok(exporter)
}

/// Send `spans` to `target` over OTLP/HTTP with protobuf, in requests of at most
/// [`SPANS_PER_REQUEST`] spans; the first failed request (or a failed shutdown) is the error.
pub async fn push(spans: Vec<SpanData>, target: &PushTarget) -> Result<PushReport, TelemetryError> {
    let exporter = exporter(target)?;
    let total = spans.len();
    let mut requests = 0;
    let mut spans = spans.into_iter().peekable();
    while spans.peek().is_some() {
        let chunk: Vec<SpanData> = spans.by_ref().take(SPANS_PER_REQUEST).collect();
        let count = chunk.len();
        exporter
            .export(chunk)
            .await
            .map_err(|source| TelemetryError::Export {
                spans: count,
                endpoint: target.endpoint.clone(),
                source,
            })?;
        requests += 1;
    }
    exporter
        .shutdown()
        .map_err(|source| TelemetryError::Shutdown {
            endpoint: target.endpoint.clone(),
            source,
        })?;
    Ok(PushReport {
        spans: total,
        requests,
        endpoint: target.endpoint.clone(),
    })
}

/// The workspace's reqwest as the exporter's HTTP client (the client feature of
/// `opentelemetry-otlp` would bring a second reqwest).
#[derive(Debug, Clone)]
pub(crate) struct Reqwest(pub(crate) reqwest::Client);

/// The largest response body read back from a collector.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

#[async_trait::async_trait]
impl HttpClient for Reqwest {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let mut response = self.0.execute(request).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err("the collector's response is larger than 4 MiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = Response::builder().status(status).body(Bytes::from(body))?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn only_the_generic_endpoint_variable_gets_the_traces_path() {
        let both = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9/custom",
            ),
        ]);
        assert_eq!(resolve_endpoint(Some("http://x/y"), &both), "http://x/y");
        assert_eq!(resolve_endpoint(None, &both), "http://traces:9/custom");
        let generic = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        assert_eq!(
            resolve_endpoint(None, &generic),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(resolve_endpoint(None, env(&[])), DEFAULT_ENDPOINT);
    }

    #[test]
    fn header_variables_are_parsed_and_a_bad_one_is_named() {
        let vars = env(&[
            ("AUTH", "authorization=Bearer abc, x-project = p1"),
            ("BAD", "nope"),
        ]);
        let headers = headers_from_env(&["AUTH".into()], &vars).unwrap_or_default();
        assert_eq!(
            headers.get("authorization").map(String::as_str),
            Some("Bearer abc")
        );
        assert_eq!(headers.get("x-project").map(String::as_str), Some("p1"));
        for name in ["BAD", "UNSET"] {
            let error = headers_from_env(&[name.into()], &vars)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(&format!("${name}")), "{error}");
        }
    }
}
