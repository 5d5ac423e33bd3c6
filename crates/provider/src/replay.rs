//! The replay server: serves a cassette of recorded responses over loopback HTTP so the real
//! client path runs without network or API key.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::error::ReplayError;
use crate::scheme::WireScheme;

/// Request headers whose values are never recorded.
const SECRET_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

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

    fn body_bytes(&self) -> Bytes {
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

/// A parsed HTTP/1.x response capture.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCapture {
    pub status: u16,
    /// Lower-cased names; framing headers (`content-length`, `transfer-encoding`) removed.
    pub headers: BTreeMap<String, String>,
    /// The body, de-chunked when the capture was chunked.
    pub body: Vec<u8>,
    /// The capture ends in the middle of its body: a chunk cut short or no last chunk, fewer
    /// bytes than `content-length`, or an event stream whose last event is cut.
    pub cut_short: bool,
    /// How the capture was read where that differs from what its headers say, for people.
    pub notes: Vec<String>,
}

/// Parse `bytes` as an HTTP/1.x (or `curl -i` HTTP/2) response capture. `Ok(None)` when it
/// does not start with a status line (a bare body); `Err` when it does but is broken.
///
/// Read as people make captures: informational heads (`100 Continue`) before the real one are
/// skipped; a body under `transfer-encoding: chunked` that is not chunked (curl prints bodies
/// already de-chunked) is taken as it is, with a note; a capture cut mid-body is marked
/// `cut_short`.
pub fn parse_http_capture(bytes: &[u8]) -> Result<Option<HttpCapture>, String> {
    if !bytes.starts_with(b"HTTP/") {
        return Ok(None);
    }
    let mut bytes = bytes;
    loop {
        let head_end = memchr::memmem::find(bytes, b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| memchr::memmem::find(bytes, b"\n\n").map(|i| (i, i + 2)))
            .ok_or("no blank line after the headers")?;
        let head =
            std::str::from_utf8(&bytes[..head_end.0]).map_err(|_| "headers are not UTF-8")?;
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| format!("bad status line `{status_line}`"))?;
        let rest = &bytes[head_end.1..];
        if (100..200).contains(&status) && rest.starts_with(b"HTTP/") {
            bytes = rest;
            continue;
        }
        let mut headers = BTreeMap::new();
        let mut chunked = false;
        let mut length = None;
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line `{line}`"))?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            match name.as_str() {
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "content-length" => length = value.parse::<usize>().ok(),
                "connection" => {}
                _ => {
                    headers.insert(name, value);
                }
            }
        }
        return Ok(Some(capture_body(status, headers, rest, chunked, length)?));
    }
}

fn capture_body(
    status: u16,
    headers: BTreeMap<String, String>,
    raw: &[u8],
    chunked: bool,
    length: Option<usize>,
) -> Result<HttpCapture, String> {
    let mut notes = Vec::new();
    let mut cut_short = false;
    let body = if chunked && starts_like_chunk(raw) {
        let (body, complete) = dechunk(raw)?;
        if !complete {
            cut_short = true;
            notes.push(format!(
                "the chunked body ends before its last chunk; replayed as {} bytes and then a \
                 broken connection",
                body.len()
            ));
        }
        body
    } else {
        if chunked {
            notes.push(
                "the capture says `transfer-encoding: chunked` but its body is not chunked (curl \
                 -i prints bodies already de-chunked); read as it is"
                    .to_string(),
            );
        }
        raw.to_vec()
    };
    if !cut_short
        && let Some(n) = length
        && body.len() < n
    {
        cut_short = true;
        notes.push(format!(
            "the body has {} of the {n} bytes its content-length says; replayed as a broken \
             connection after them",
            body.len()
        ));
    }
    let is_stream = headers
        .get("content-type")
        .is_some_and(|ct| ct.contains("text/event-stream"));
    if !cut_short && is_stream && !body.is_empty() && !ends_at_event_boundary(&body) {
        cut_short = true;
        notes.push(format!(
            "the event stream stops in the middle of an event (the capture was cut); replayed \
             as {} bytes and then a broken connection",
            body.len()
        ));
    }
    Ok(HttpCapture {
        status,
        headers,
        body,
        cut_short,
        notes,
    })
}

/// Whether `raw` starts with a chunk-size line (hex digits, optional extensions, CRLF).
fn starts_like_chunk(raw: &[u8]) -> bool {
    let Some(eol) = memchr::memmem::find(raw, b"\r\n") else {
        return false;
    };
    let size = raw[..eol].split(|b| *b == b';').next().unwrap_or_default();
    let size = size.trim_ascii();
    !size.is_empty() && size.len() <= 16 && size.iter().all(u8::is_ascii_hexdigit)
}

fn ends_at_event_boundary(body: &[u8]) -> bool {
    body.ends_with(b"\n\n") || body.ends_with(b"\r\n\r\n") || body.ends_with(b"\r\r")
}

/// De-chunk `raw`: the body, and whether it ended with the last (zero-size) chunk.
fn dechunk(mut raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = memchr::memmem::find(raw, b"\r\n") else {
            return Ok((out, false));
        };
        let size_text = std::str::from_utf8(&raw[..eol]).map_err(|_| "chunked body: bad size")?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("chunked body: bad chunk size `{size_hex}`"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok((out, true));
        }
        if raw.len() < size {
            out.extend_from_slice(raw);
            return Ok((out, false));
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw[size..].strip_prefix(b"\r\n").unwrap_or(&raw[size..]);
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

/// A request the replay server received. Auth header values are replaced by `[redacted]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// The query string without `?`; empty when there is none.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

struct Shared {
    cassette: Cassette,
    /// Each response's body, built once so serving it copies nothing.
    bodies: Vec<Bytes>,
    next: AtomicUsize,
    received: Mutex<Vec<ReceivedRequest>>,
}

/// A loopback HTTP server replaying a cassette. Stops (with all its connections) when dropped.
pub struct ReplayServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ReplayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ReplayServer {
    /// Bind `127.0.0.1:0` and serve. Must be called inside a tokio runtime. A cassette that
    /// fails [`Cassette::check`] is refused rather than served differently than written.
    pub fn start(cassette: Cassette) -> Result<ReplayServer, ReplayError> {
        cassette
            .check()
            .map_err(|message| ReplayError::InvalidCassette {
                path: PathBuf::from("<cassette>"),
                message,
            })?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ReplayError::Bind(std::io::Error::other(
                "the replay server needs a tokio runtime",
            ))
        })?;
        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(ReplayError::Bind)?;
        std_listener
            .set_nonblocking(true)
            .map_err(ReplayError::Bind)?;
        let addr = std_listener.local_addr().map_err(ReplayError::Bind)?;
        let _guard = handle.enter();
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(ReplayError::Bind)?;
        let bodies = cassette
            .responses
            .iter()
            .map(CassetteResponse::body_bytes)
            .collect();
        let shared = Arc::new(Shared {
            cassette,
            bodies,
            next: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
        });
        let task = handle.spawn(accept_loop(listener, shared.clone()));
        Ok(ReplayServer { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`; use it as the client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn scheme(&self) -> WireScheme {
        self.shared.cassette.scheme
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        match self.shared.received.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many responses have been served (or refused once exhausted).
    pub fn requests_served(&self) -> usize {
        self.shared.next.load(Ordering::SeqCst)
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| serve(req, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

type ReplayBody = StreamBody<
    std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>,
    >,
>;

async fn serve(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ReplayBody>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            let name = n.as_str().to_string();
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                "[redacted]".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    if let Ok(mut r) = shared.received.lock() {
        r.push(ReceivedRequest {
            method,
            path,
            query,
            headers,
            body,
        });
    }
    let n = shared.next.fetch_add(1, Ordering::SeqCst);
    let Some(resp) = shared.cassette.responses.get(n) else {
        let msg = serde_json::json!({"error": {
            "type": "invalid_request_error",
            "code": "cassette_exhausted",
            "message": format!(
                "the replay cassette has no response {} left (it holds {})",
                n + 1,
                shared.cassette.responses.len()
            ),
        }});
        return Ok(respond(
            400,
            &BTreeMap::new(),
            plain_steps(Bytes::from(msg.to_string())),
        ));
    };
    if let Some(ms) = resp.delay_before_headers_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body = shared.bodies.get(n).cloned().unwrap_or_default();
    Ok(respond(resp.status, &resp.headers, steps(resp, body)))
}

enum Step {
    Data(Bytes),
    Sleep(u64),
    /// `left` more times: sleep `every_ms`, then send `text`. Expanded as it is served, so a
    /// large count costs no memory.
    Repeat {
        text: Bytes,
        every_ms: u64,
        left: usize,
    },
    Disconnect,
}

const SERVE_CHUNK: usize = 64 * 1024;

fn plain_steps(body: Bytes) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rest.len().min(SERVE_CHUNK);
        steps.push(Step::Data(rest.split_to(n)));
    }
    steps
}

/// Byte offsets just after each SSE event's blank line.
fn event_ends(body: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let at_blank = body[i..].starts_with(b"\n\n")
            || body[i..].starts_with(b"\r\n\r\n")
            || body[i..].starts_with(b"\r\r");
        if at_blank {
            let len = if body[i] == b'\n' || body[i..].starts_with(b"\r\r") {
                2
            } else {
                4
            };
            ends.push(i + len);
            i += len;
        } else {
            i += 1;
        }
    }
    ends
}

/// The byte offset just after event `n` (0 is the start; past the last event, the end).
fn after_events(ends: &[usize], n: usize, len: usize) -> usize {
    match n {
        0 => 0,
        n => ends.get(n - 1).copied().unwrap_or(len),
    }
}

fn steps(resp: &CassetteResponse, body: Bytes) -> Vec<Step> {
    let mut cut = body.len();
    let mut disconnect = false;
    if let Some(n) = resp.disconnect_after_bytes {
        cut = cut.min(n);
        disconnect = true;
    }
    let ends = if resp.disconnect_after_events.is_some()
        || resp.pause_after_events.is_some()
        || resp.keepalive_after_events.is_some()
    {
        event_ends(&body)
    } else {
        Vec::new()
    };
    if let Some(n) = resp.disconnect_after_events {
        cut = cut.min(after_events(&ends, n, body.len()));
        disconnect = true;
    }
    // Faults inserted between body bytes, by offset; at one offset, the pause comes first.
    let mut inserts: Vec<(usize, Vec<Step>)> = Vec::new();
    if let Some(p) = resp.pause_after_events {
        let at = after_events(&ends, p.events, body.len()).min(cut);
        inserts.push((at, vec![Step::Sleep(p.ms)]));
    }
    if let Some(k) = &resp.keepalive_after_events {
        let at = after_events(&ends, k.events, body.len()).min(cut);
        let text = Bytes::from(
            k.text
                .clone()
                .unwrap_or_else(|| ": keepalive\n\n".to_string()),
        );
        let ks = vec![Step::Repeat {
            text,
            every_ms: k.every_ms,
            left: k.count,
        }];
        inserts.push((at, ks));
    }
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = Vec::new();
    let mut sent = 0;
    for (at, ins) in inserts {
        out.extend(plain_steps(body.slice(sent..at)));
        out.extend(ins);
        sent = at;
    }
    out.extend(plain_steps(body.slice(sent..cut)));
    if disconnect {
        // Let the bytes before the cut reach the socket; hyper drops unflushed data on abort.
        out.push(Step::Sleep(20));
        out.push(Step::Disconnect);
    }
    out
}

fn respond(
    status: u16,
    headers: &BTreeMap<String, String>,
    steps: Vec<Step>,
) -> Response<ReplayBody> {
    let steps: std::collections::VecDeque<Step> = steps.into();
    let stream = futures_util::stream::unfold(steps, |mut it| async move {
        loop {
            match it.pop_front()? {
                Step::Data(b) => return Some((Ok(Frame::data(b)), it)),
                Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Repeat { left: 0, .. } => {}
                Step::Repeat {
                    text,
                    every_ms,
                    left,
                } => {
                    tokio::time::sleep(Duration::from_millis(every_ms)).await;
                    it.push_front(Step::Repeat {
                        text: text.clone(),
                        every_ms,
                        left: left - 1,
                    });
                    return Some((Ok(Frame::data(text)), it));
                }
                Step::Disconnect => {
                    return Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "replay: disconnect fault",
                        )),
                        it,
                    ));
                }
            }
        }
    });
    let body: ReplayBody = StreamBody::new(Box::pin(stream));
    let mut builder = Response::builder().status(status);
    let has_ct = headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if !has_ct {
        let ct = if (200..300).contains(&status) {
            "text/event-stream"
        } else {
            "application/json"
        };
        builder = builder.header("content-type", ct);
    }
    match builder.body(body) {
        Ok(r) => r,
        Err(_) => {
            let mut r = Response::new(StreamBody::new(Box::pin(futures_util::stream::empty())
                as std::pin::Pin<
                    Box<
                        dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>>
                            + Send,
                    >,
                >));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}
