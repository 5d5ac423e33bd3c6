//! The cassette format: recorded responses and the faults to inject while serving them, read
//! from a cassette JSON file, a response capture or a bare SSE body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::capture::parse_http_capture;
use crate::error::ReplayError;
use crate::scheme::WireScheme;

/// An ordered list of recorded responses, served one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    /// The cassette format version ([`CASSETTE_VERSION`]); cassettes written before it was
    /// introduced have none and read as version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    pub scheme: WireScheme,
    pub responses: Vec<CassetteResponse>,
}

/// The newest cassette format this build reads and the one it writes.
pub const CASSETTE_VERSION: u32 = 1;

/// One recorded response and the faults to inject while serving it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CassetteResponse {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body text (SSE for a stream, JSON for an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A file holding the body, relative to the cassette file: a bare SSE body or a full
    /// HTTP/1.1 response capture (its status and headers apply unless set here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_headers_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_events: Option<PauseAfterEvents>,
    /// Close the connection abruptly after this many body bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_after_bytes: Option<usize>,
    /// Close the connection abruptly after this many SSE events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_after_events: Option<usize>,
    /// After some events, send keep-alives (SSE comments by default) for a while before the
    /// rest of the body: a stream that is stalled but looks alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_after_events: Option<KeepaliveAfterEvents>,
    /// Body bytes that are not UTF-8 text (set in code; takes precedence over `body`).
    #[serde(skip)]
    pub raw_body: Option<Vec<u8>>,
    /// How a captured file was read when that differs from what it says (a body already
    /// de-chunked under `transfer-encoding: chunked`, a capture cut mid-body), for people.
    #[serde(skip)]
    pub notes: Vec<String>,
}

fn ok_status() -> u16 {
    200
}

/// Stop for `ms` milliseconds after `events` SSE events have been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseAfterEvents {
    pub events: usize,
    pub ms: u64,
}

/// After `events` SSE events, send `text` `count` times, `every_ms` milliseconds apart (the
/// first one `every_ms` after the event), then the rest of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveAfterEvents {
    pub events: usize,
    pub every_ms: u64,
    pub count: usize,
    /// What one keep-alive is; `": keepalive\n\n"` (an SSE comment) when unset. Any SSE text
    /// works, e.g. an Anthropic `ping` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl KeepaliveAfterEvents {
    /// `count` SSE comments `every_ms` apart after `events` events.
    pub fn comments(events: usize, every_ms: u64, count: usize) -> KeepaliveAfterEvents {
        KeepaliveAfterEvents {
            events,
            every_ms,
            count,
            text: None,
        }
    }
}

impl CassetteResponse {
    /// A `200` SSE response.
    pub fn sse(body: impl Into<String>) -> CassetteResponse {
        CassetteResponse {
            status: 200,
            body: Some(body.into()),
            ..CassetteResponse::default()
        }
    }

    /// An error response with a JSON (or any text) body.
    pub fn error(status: u16, body: impl Into<String>) -> CassetteResponse {
        CassetteResponse {
            status,
            body: Some(body.into()),
            ..CassetteResponse::default()
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> CassetteResponse {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }

    /// Build a response from a fixture file: a full HTTP/1.x capture (status line, headers,
    /// blank line, body; `curl -i` output included) or a bare SSE body served as
    /// `200 text/event-stream`. A cassette file is refused with an error saying so (see
    /// [`load_replay_file`]).
    pub fn from_file(path: &Path) -> Result<CassetteResponse, ReplayError> {
        let bytes = std::fs::read(path).map_err(|source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if looks_like_cassette(&bytes) {
            return Err(ReplayError::InvalidCapture {
                path: path.to_path_buf(),
                message: "this is a replay cassette (JSON with `scheme` and `responses`), not a \
                          captured response; use it as `model.cassette` of a profile with \
                          `model.scheme = \"replay\"`"
                    .to_string(),
            });
        }
        CassetteResponse::from_bytes(&bytes).map_err(|message| ReplayError::InvalidCapture {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Like [`CassetteResponse::from_file`], from bytes. A capture cut mid-body is served as
    /// its bytes and then a broken connection (`disconnect_after_bytes`); `notes` says so.
    pub fn from_bytes(bytes: &[u8]) -> Result<CassetteResponse, String> {
        let mut r = CassetteResponse::default();
        match parse_http_capture(bytes)? {
            Some(capture) => {
                r.status = capture.status;
                r.headers = capture.headers;
                if capture.cut_short {
                    r.disconnect_after_bytes = Some(capture.body.len());
                }
                r.raw_body = Some(capture.body);
                r.notes = capture.notes;
            }
            None => {
                r.status = 200;
                r.raw_body = Some(bytes.to_vec());
            }
        }
        Ok(r)
    }

    pub(super) fn body_bytes(&self) -> Bytes {
        match (&self.raw_body, &self.body) {
            (Some(raw), _) => Bytes::from(raw.clone()),
            (None, Some(text)) => Bytes::from(text.clone()),
            (None, None) => Bytes::new(),
        }
    }
}

impl Cassette {
    pub fn new(scheme: WireScheme, responses: Vec<CassetteResponse>) -> Cassette {
        Cassette {
            version: None,
            scheme,
            responses,
        }
    }

    /// Read a cassette file; `body_file` paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Cassette, ReplayError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Cassette::parse(&text, base, path)
    }

    /// Parse cassette JSON; `body_file` paths are relative to `base_dir`.
    pub fn from_json(json: &str, base_dir: &Path) -> Result<Cassette, ReplayError> {
        Cassette::parse(json, base_dir, Path::new("<cassette json>"))
    }

    fn parse(json: &str, base_dir: &Path, origin: &Path) -> Result<Cassette, ReplayError> {
        let mut cassette: Cassette =
            serde_json::from_str(json).map_err(|e| ReplayError::InvalidCassette {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        if let Some(v) = cassette.version
            && v > CASSETTE_VERSION
        {
            return Err(ReplayError::InvalidCassette {
                path: origin.to_path_buf(),
                message: format!(
                    "`version` {v} is newer than this pods reads (up to {CASSETTE_VERSION}); \
                     replay it with a newer pods"
                ),
            });
        }
        for (i, r) in cassette.responses.iter_mut().enumerate() {
            let Some(file) = r.body_file.clone() else {
                continue;
            };
            if r.body.is_some() {
                return Err(ReplayError::InvalidCassette {
                    path: origin.to_path_buf(),
                    message: format!("responses[{i}] sets both `body` and `body_file`; keep one"),
                });
            }
            let loaded = CassetteResponse::from_file(&base_dir.join(&file))?;
            if r.headers.is_empty() {
                r.headers = loaded.headers;
            }
            if r.status == 200 {
                r.status = loaded.status;
            }
            if r.disconnect_after_bytes.is_none() {
                r.disconnect_after_bytes = loaded.disconnect_after_bytes;
            }
            r.raw_body = loaded.raw_body;
            r.notes = loaded.notes;
        }
        cassette
            .check()
            .map_err(|message| ReplayError::InvalidCassette {
                path: origin.to_path_buf(),
                message,
            })?;
        Ok(cassette)
    }

    /// Whether every response can be served as written: a status in `100..=599`, header names
    /// and values HTTP allows. The error names the response index and the field.
    pub fn check(&self) -> Result<(), String> {
        for (i, r) in self.responses.iter().enumerate() {
            if !(100..=599).contains(&r.status) {
                return Err(format!(
                    "responses[{i}].status is {}; an HTTP status is 100 to 599",
                    r.status
                ));
            }
            for (name, value) in &r.headers {
                if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(format!(
                        "responses[{i}].headers has `{name}`, which is not a valid header name"
                    ));
                }
                if hyper::header::HeaderValue::from_str(value).is_err() {
                    return Err(format!(
                        "responses[{i}].headers.{name} has characters not allowed in a header value"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `bytes` is a cassette: a JSON object with `scheme` and a `responses` list.
fn looks_like_cassette(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_none_or(|i| bytes[i] != b'{') {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| {
        v.get("responses").is_some_and(serde_json::Value::is_array) && v.get("scheme").is_some()
    })
}

/// What one file handed to the replay tool holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayFile {
    /// A cassette: it names its own scheme and may hold several responses and faults.
    Cassette(Cassette),
    /// One captured response or bare SSE body; its `notes` say how it was read.
    Response(Box<CassetteResponse>),
}

/// Read a file for replay as people make them: a cassette is recognised as one (by its JSON
/// shape) instead of being read as SSE; anything else is a capture or a bare body
/// ([`CassetteResponse::from_file`]).
pub fn load_replay_file(path: &Path) -> Result<ReplayFile, ReplayError> {
    let bytes = std::fs::read(path).map_err(|source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if looks_like_cassette(&bytes) {
        return Cassette::load(path).map(ReplayFile::Cassette);
    }
    CassetteResponse::from_bytes(&bytes)
        .map(|r| ReplayFile::Response(Box::new(r)))
        .map_err(|message| ReplayError::InvalidCapture {
            path: path.to_path_buf(),
            message,
        })
}

/// Build an SSE body: one `event:` line (omitted when the name is empty) and one `data:` line
/// per event, each followed by a blank line.
pub fn sse_body(events: &[(&str, serde_json::Value)]) -> String {
    let mut out = String::new();
    for (name, data) in events {
        if !name.is_empty() {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    }
    out
}
