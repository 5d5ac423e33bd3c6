//! The loopback HTTP server that serves a cassette, one response per request, injecting its
//! faults, and records what it received.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

use super::cassette::{Cassette, CassetteResponse};
use crate::error::ReplayError;
use crate::scheme::WireScheme;

/// Request headers whose values are never recorded.
const SECRET_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

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
