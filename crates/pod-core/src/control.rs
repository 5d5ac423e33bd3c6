//! The per-pod control socket: `control.sock` in the pod directory, mode 0600, JSON Lines in
//! both directions.
//!
//! Wire format (one JSON object per line):
//! - request: `{"id": "…", "client": {"type": "cli", "command": "pods stop …"}, "method": "stop",
//!   "params": {"reason": "…"}}`; `client.type` is `cli`, `parent_pod` (`pod_id`, optional
//!   `tool_call_id`) or `other` (`name`);
//! - reply: `{"id": "…", "ok": true, "result": …}` or `{"id": "…", "ok": false, "error":
//!   {"code": "…", "message": "…"}}` (`id` is `null` when the request line had none);
//! - event (after a `subscribe`): `{"event": "run_started" | "turn_ended" | "run_ended" |
//!   "run_failed" | "exiting" | "lagged", …}`; `run_ended` carries the result (completed text,
//!   the structured provider error, or the interrupting action) and the `request_id` of the
//!   `run` request that started it.
//!
//! Methods: `run {input}`; the lifecycle actions `cancel`, `stop`, `stop_tree`, `shutdown`,
//! `parent_exit`, `reload` (each `{reason?, caused_by?}`; a parent cascading its own action sends
//! `caused_by`); `status`; `subscribe`. The idle watchdog is internal to a pod and has no method. A malformed line gets an error reply; the connection
//! and the server go on.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use pod_provider::ProviderError;

use crate::lifecycle::{new_action, new_id};
use crate::record::{CausedBy, LifecycleAction, LifecycleKind, Origin, RunTrigger};
use crate::supervisor::ChildError;

/// File name of the control socket inside a pod directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Longest request line the server accepts; longer lines are answered with an error.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientInfo {
    /// A `pods` command line.
    Cli { command: String },
    /// A parent pod, usually from one of its tool calls.
    ParentPod {
        pod_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_call_id: Option<String>,
    },
    /// Anything else, self-described.
    Other { name: String },
}

impl ClientInfo {
    /// Short text for records: `cli`, `parent_pod:<id>`, `other:<name>`.
    pub fn describe(&self) -> String {
        match self {
            ClientInfo::Cli { .. } => "cli".to_owned(),
            ClientInfo::ParentPod { pod_id, .. } => format!("parent_pod:{pod_id}"),
            ClientInfo::Other { name } => format!("other:{name}"),
        }
    }
}

/// Parameters of the methods that are lifecycle actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set by a parent cascading one of its own actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CausedBy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    pub input: String,
}

/// A request's method with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Run(RunParams),
    /// A lifecycle action of `kind` (cancel, stop, stop_tree, reload).
    Action(LifecycleKind, ActionParams),
    Status,
    Subscribe,
}

impl Call {
    pub const METHODS: &'static [&'static str] = &[
        "run",
        "cancel",
        "stop",
        "stop_tree",
        "shutdown",
        "parent_exit",
        "reload",
        "status",
        "subscribe",
    ];

    pub fn method(&self) -> &'static str {
        match self {
            Call::Run(_) => "run",
            Call::Action(LifecycleKind::Cancel, _) => "cancel",
            Call::Action(LifecycleKind::StopTree, _) => "stop_tree",
            Call::Action(LifecycleKind::Reload, _) => "reload",
            Call::Action(LifecycleKind::Shutdown, _) => "shutdown",
            Call::Action(LifecycleKind::ParentExit, _) => "parent_exit",
            Call::Action(LifecycleKind::Watchdog, _) => "watchdog",
            Call::Action(LifecycleKind::Stop, _) => "stop",
            Call::Status => "status",
            Call::Subscribe => "subscribe",
        }
    }

    fn params(&self) -> Value {
        match self {
            Call::Run(p) => serde_json::to_value(p).unwrap_or(Value::Null),
            Call::Action(_, p) => serde_json::to_value(p).unwrap_or(Value::Null),
            Call::Status | Call::Subscribe => Value::Object(Default::default()),
        }
    }

    /// Parse `method` + `params`; the error goes back to the client.
    pub fn parse(method: &str, params: Value) -> Result<Call, ReplyError> {
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        let action = |kind| {
            serde_json::from_value(params.clone())
                .map(|p| Call::Action(kind, p))
                .map_err(|e| bad_request(format!("invalid params for `{method}`: {e}")))
        };
        match method {
            "run" => serde_json::from_value(params.clone())
                .map(Call::Run)
                .map_err(|e| bad_request(format!("invalid params for `run`: {e}"))),
            "cancel" => action(LifecycleKind::Cancel),
            "stop" => action(LifecycleKind::Stop),
            "stop_tree" => action(LifecycleKind::StopTree),
            "shutdown" => action(LifecycleKind::Shutdown),
            "parent_exit" => action(LifecycleKind::ParentExit),
            "reload" => action(LifecycleKind::Reload),
            "status" => Ok(Call::Status),
            "subscribe" => Ok(Call::Subscribe),
            other => Err(ReplyError::new(
                "unknown_method",
                format!(
                    "unknown method `{other}`; expected one of: {}",
                    Call::METHODS.join(", ")
                ),
            )),
        }
    }
}

/// How a run ended, as told to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunResult {
    Completed {
        text: String,
    },
    Errored {
        error: ProviderError,
    },
    Interrupted {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<LifecycleAction>,
    },
}

/// Something a pod tells its subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PodEvent {
    RunStarted {
        run_id: String,
        /// The `run` request that started the run (none for a command-line run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    TurnEnded {
        run_id: String,
        turn: u32,
    },
    RunEnded {
        run_id: String,
        /// The `run` request that started the run (none for a command-line run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        result: RunResult,
    },
    /// The run could not be recorded (session log failure); the pod stops.
    RunFailed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        message: String,
    },
    /// The pod process is about to exit.
    Exiting {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<LifecycleAction>,
    },
    /// This subscriber fell behind and `missed` events were dropped for it.
    Lagged {
        missed: u64,
    },
}

fn bad_request(message: impl Into<String>) -> ReplyError {
    ReplyError::new("bad_request", message)
}

/// Error half of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// `bad_request`, `unknown_method`, `busy`, `not_running`, `failed`.
    pub code: String,
    pub message: String,
}

impl ReplyError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ReplyError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireRequest {
    id: Option<String>,
    client: Option<ClientInfo>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireReply {
    id: Option<String>,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ReplyError>,
}

impl WireReply {
    fn from_result(id: Option<String>, result: Result<Value, ReplyError>) -> Self {
        match result {
            Ok(value) => WireReply {
                id,
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(error) => WireReply {
                id,
                ok: false,
                result: None,
                error: Some(error),
            },
        }
    }
}

/// One request handed to the pod that owns the socket; answer it with [`Incoming::respond`].
#[derive(Debug)]
pub struct Incoming {
    pub request_id: String,
    pub client: ClientInfo,
    pub call: Call,
    reply: oneshot::Sender<Result<Value, ReplyError>>,
}

impl Incoming {
    pub fn respond(self, result: Result<Value, ReplyError>) {
        // The client may have gone away; nothing to tell it then.
        let _ = self.reply.send(result);
    }

    /// Who started a lifecycle action requested by this call.
    pub fn origin(&self) -> Origin {
        match &self.client {
            ClientInfo::Cli { command } => Origin::Cli {
                command: command.clone(),
                request_id: self.request_id.clone(),
            },
            ClientInfo::ParentPod {
                pod_id,
                tool_call_id: Some(call),
            } => Origin::ParentPod {
                parent_pod_id: pod_id.clone(),
                tool_call_id: call.clone(),
            },
            other => Origin::ControlRequest {
                request_id: self.request_id.clone(),
                client: other.describe(),
            },
        }
    }

    /// The lifecycle action this request asks for; `None` unless the call is an action.
    /// `affects` lists the pods it reaches: the addressed pod first, then (for an action that
    /// ends it) its live descendants. A `caused_by` in the params makes it a cascade of an
    /// ancestor's action.
    pub fn action(&self, affects: Vec<String>) -> Option<LifecycleAction> {
        let Call::Action(kind, params) = &self.call else {
            return None;
        };
        let mut action = new_action(*kind, affects, self.origin());
        action.reason = params.reason.clone();
        action.caused_by = params.caused_by.clone();
        Some(action)
    }

    /// The run trigger for a `run` request.
    pub fn trigger(&self) -> RunTrigger {
        match &self.client {
            ClientInfo::Cli { .. } => RunTrigger::Cli,
            ClientInfo::ParentPod {
                pod_id,
                tool_call_id: Some(call),
            } => RunTrigger::ParentPod {
                parent_pod_id: pod_id.clone(),
                tool_call_id: call.clone(),
            },
            other => RunTrigger::ControlRequest {
                client: other.describe(),
            },
        }
    }
}

/// A bound control socket. Requests arrive on [`ControlServer::incoming`]; events sent with
/// [`ControlServer::publish`] go to every subscriber. The socket file is removed on drop.
pub struct ControlServer {
    pub incoming: mpsc::Receiver<Incoming>,
    events: broadcast::Sender<PodEvent>,
    path: PathBuf,
    accept_task: tokio::task::JoinHandle<()>,
    /// Replies owed to clients: requests read whose reply is not written yet.
    in_flight: InFlight,
}

/// Counts the replies owed across all connections.
#[derive(Clone, Default)]
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

/// One owed reply, from the moment its request line is read until the reply is written.
struct Owed(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn owe(&self) -> Owed {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Owed(self.0.clone())
    }

    fn outstanding(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A line for a connection's writer, with the reply it settles (none for events).
type Outgoing = (String, Option<Owed>);

impl ControlServer {
    /// Bind `control.sock` in `pod_dir` (mode 0600). A stale socket left by a dead process is
    /// replaced; a socket that still answers means another process serves this pod.
    pub async fn bind(pod_dir: &Path) -> Result<ControlServer, ChildError> {
        let path = pod_dir.join(CONTROL_SOCKET);
        if path.exists() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ChildError::SocketInUse { path });
            }
            std::fs::remove_file(&path).map_err(|source| ChildError::Socket {
                path: path.clone(),
                source,
            })?;
        }
        let listener = UnixListener::bind(&path).map_err(|source| ChildError::Socket {
            path: path.clone(),
            source,
        })?;
        if let Err(source) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        {
            let _ = std::fs::remove_file(&path);
            return Err(ChildError::Socket { path, source });
        }
        let (incoming_tx, incoming) = mpsc::channel(64);
        let (events, _) = broadcast::channel(1024);
        let in_flight = InFlight::default();
        let accept_task = tokio::spawn(accept_loop(
            listener,
            incoming_tx,
            events.clone(),
            in_flight.clone(),
        ));
        Ok(ControlServer {
            incoming,
            events,
            path,
            accept_task,
            in_flight,
        })
    }

    /// Stop taking requests and give the replies already owed up to `grace` to reach their
    /// clients, so that a pod ending right after answering (a `cancel` that ends `pods run`)
    /// still delivers the answer. Requests not yet taken are answered `not_running`.
    pub async fn close(mut self, grace: std::time::Duration) {
        self.accept_task.abort();
        self.incoming.close();
        while let Ok(request) = self.incoming.try_recv() {
            request.respond(Err(ReplyError::new("not_running", "the pod is ending")));
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight.outstanding() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send an event to every current subscriber (none is fine).
    pub fn publish(&self, event: PodEvent) {
        let _ = self.events.send(event);
    }

    /// A sender for publishing from other tasks.
    pub fn publisher(&self) -> broadcast::Sender<PodEvent> {
        self.events.clone()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(
    listener: UnixListener,
    incoming: mpsc::Sender<Incoming>,
    events: broadcast::Sender<PodEvent>,
    in_flight: InFlight,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(
                    stream,
                    incoming.clone(),
                    events.clone(),
                    in_flight.clone(),
                ));
            }
            Err(error) => {
                tracing::warn!(%error, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: UnixStream,
    incoming: mpsc::Sender<Incoming>,
    events: broadcast::Sender<PodEvent>,
    in_flight: InFlight,
) {
    let (read, mut write) = stream.into_split();
    // One writer per connection: replies and subscribed events interleave line by line.
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(256);
    let writer = tokio::spawn(async move {
        // An owed reply is settled only once it is written (or cannot be).
        while let Some((mut line, _answered)) = out_rx.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_bounded_line(&mut lines, &mut buf).await {
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(LineRead::TooLong) => {
                let reply = WireReply::from_result(
                    None,
                    Err(ReplyError::new(
                        "bad_request",
                        format!("request line longer than {MAX_LINE_BYTES} bytes"),
                    )),
                );
                send_line(&out_tx, &reply, in_flight.owe()).await;
            }
            Ok(LineRead::Line) => {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                handle_line(&buf, &incoming, &events, &out_tx, in_flight.owe()).await;
            }
        }
    }
    drop(out_tx);
    let _ = writer.await;
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<LineRead> {
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                LineRead::Eof
            } else if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

async fn send_line<T: Serialize>(out: &mpsc::Sender<Outgoing>, value: &T, answers: Owed) {
    match serde_json::to_string(value) {
        Ok(line) => {
            let _ = out.send((line, Some(answers))).await;
        }
        Err(error) => tracing::warn!(%error, "control reply not serializable"),
    }
}

async fn handle_line(
    line: &[u8],
    incoming: &mpsc::Sender<Incoming>,
    events: &broadcast::Sender<PodEvent>,
    out: &mpsc::Sender<Outgoing>,
    answers: Owed,
) {
    let request: WireRequest = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            let reply = WireReply::from_result(
                None,
                Err(ReplyError::new(
                    "bad_request",
                    format!("request is not a JSON object with id, client, method: {e}"),
                )),
            );
            send_line(out, &reply, answers).await;
            return;
        }
    };
    let id = request.id.clone();
    let parsed = (|| {
        let request_id = request
            .id
            .ok_or_else(|| bad_request("request has no `id`"))?;
        let client = request.client.ok_or_else(|| {
            bad_request("request has no `client` (e.g. {\"type\": \"cli\", \"command\": \"…\"})")
        })?;
        let method = request
            .method
            .ok_or_else(|| bad_request("request has no `method`"))?;
        let call = Call::parse(&method, request.params)?;
        Ok::<_, ReplyError>((request_id, client, call))
    })();
    let (request_id, client, call) = match parsed {
        Ok(p) => p,
        Err(error) => {
            send_line(out, &WireReply::from_result(id, Err(error)), answers).await;
            return;
        }
    };
    if call == Call::Subscribe {
        // Subscribe before replying so no event published after the reply is missed.
        let mut rx = events.subscribe();
        send_line(
            out,
            &WireReply::from_result(id, Ok(serde_json::json!({"subscribed": true}))),
            answers,
        )
        .await;
        let out = out.clone();
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => PodEvent::Lagged { missed },
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let Ok(line) = serde_json::to_string(&event) else {
                    continue;
                };
                if out.send((line, None)).await.is_err() {
                    break;
                }
            }
        });
        return;
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    let item = Incoming {
        request_id,
        client,
        call,
        reply: reply_tx,
    };
    let result = if incoming.send(item).await.is_err() {
        Err(ReplyError::new("not_running", "the pod is shutting down"))
    } else {
        reply_rx
            .await
            .unwrap_or_else(|_| Err(ReplyError::new("failed", "the pod dropped the request")))
    };
    send_line(out, &WireReply::from_result(id, result), answers).await;
}

/// A connection to a pod's control socket, for the CLI and for parent pods. Replies are matched
/// to requests by id; events (after [`ControlClient::subscribe`]) arrive on
/// [`ControlClient::events`].
pub struct ControlClient {
    client: ClientInfo,
    path: PathBuf,
    write: tokio::sync::Mutex<tokio::net::unix::OwnedWriteHalf>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<WireReply>>>>,
    events: tokio::sync::Mutex<mpsc::Receiver<PodEvent>>,
    reader: tokio::task::JoinHandle<()>,
}

impl ControlClient {
    /// Connect to the socket of the pod in `pod_dir`.
    pub async fn connect(pod_dir: &Path, client: ClientInfo) -> Result<ControlClient, ChildError> {
        let path = pod_dir.join(CONTROL_SOCKET);
        let stream = UnixStream::connect(&path)
            .await
            .map_err(|source| ChildError::NotRunning {
                path: path.clone(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let pending: Arc<Mutex<HashMap<String, oneshot::Sender<WireReply>>>> = Arc::default();
        let (events_tx, events) = mpsc::channel(1024);
        let reader = tokio::spawn(client_reader(read, pending.clone(), events_tx));
        Ok(ControlClient {
            client,
            path,
            write: tokio::sync::Mutex::new(write),
            pending,
            events: tokio::sync::Mutex::new(events),
            reader,
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Send `call` with a fresh request id and wait for its reply.
    pub async fn call(&self, call: &Call) -> Result<Value, ChildError> {
        self.call_with_id(&new_id(), call).await
    }

    /// Send `call` with the given request id (so the caller can record it) and wait.
    pub async fn call_with_id(&self, request_id: &str, call: &Call) -> Result<Value, ChildError> {
        self.call_as(request_id, &self.client.clone(), call).await
    }

    /// Send `call` on behalf of `client` (e.g. a parent pod naming the tool call behind this
    /// request) and wait for the reply.
    pub async fn call_as(
        &self,
        request_id: &str,
        client: &ClientInfo,
        call: &Call,
    ) -> Result<Value, ChildError> {
        let request = WireRequest {
            id: Some(request_id.to_owned()),
            client: Some(client.clone()),
            method: Some(call.method().to_owned()),
            params: call.params(),
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request_id.to_owned(), tx);
        let mut line = serde_json::to_string(&request).map_err(|e| ChildError::Protocol {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        let sent = self.write.lock().await.write_all(line.as_bytes()).await;
        if let Err(source) = sent {
            lock(&self.pending).remove(request_id);
            return Err(ChildError::Disconnected {
                path: self.path.clone(),
                source: Some(source),
            });
        }
        let reply = rx.await.map_err(|_| ChildError::Disconnected {
            path: self.path.clone(),
            source: None,
        })?;
        match (reply.ok, reply.result, reply.error) {
            (true, result, _) => Ok(result.unwrap_or(Value::Null)),
            (false, _, Some(error)) => Err(ChildError::Refused {
                method: call.method(),
                code: error.code,
                message: error.message,
            }),
            (false, _, None) => Err(ChildError::Protocol {
                path: self.path.clone(),
                message: "error reply without an error".to_owned(),
            }),
        }
    }

    /// Ask for events; they arrive on [`ControlClient::next_event`].
    pub async fn subscribe(&self) -> Result<(), ChildError> {
        self.call(&Call::Subscribe).await.map(|_| ())
    }

    /// The next event, or `None` once the pod closed the connection.
    pub async fn next_event(&self) -> Option<PodEvent> {
        self.events.lock().await.recv().await
    }
}

impl Drop for ControlClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What [`stop_pod`] achieved.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    /// The action the pod recorded.
    pub action: LifecycleAction,
    /// The pod process closed its socket (exited) within the wait.
    pub exited: bool,
}

/// Ask the pod in `pod_dir` to stop (or, with `tree`, to stop with its descendants) on behalf of
/// the command line `command`, then wait up to `wait` for it to exit.
pub async fn stop_pod(
    pod_dir: &Path,
    command: &str,
    tree: bool,
    reason: Option<String>,
    wait: std::time::Duration,
) -> Result<StopOutcome, ChildError> {
    let client = ControlClient::connect(
        pod_dir,
        ClientInfo::Cli {
            command: command.to_owned(),
        },
    )
    .await?;
    client.subscribe().await?;
    let kind = if tree {
        LifecycleKind::StopTree
    } else {
        LifecycleKind::Stop
    };
    let params = ActionParams {
        reason,
        caused_by: None,
    };
    let reply = client.call(&Call::Action(kind, params)).await?;
    let action: LifecycleAction =
        serde_json::from_value(reply).map_err(|e| ChildError::Protocol {
            path: client.socket_path().to_owned(),
            message: format!("stop reply is not a lifecycle action: {e}"),
        })?;
    let exited = tokio::time::timeout(wait, async { while client.next_event().await.is_some() {} })
        .await
        .is_ok();
    Ok(StopOutcome { action, exited })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn client_reader(
    read: tokio::net::unix::OwnedReadHalf,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<WireReply>>>>,
    events: mpsc::Sender<PodEvent>,
) {
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            tracing::warn!(line = %line, "unreadable line from control socket");
            continue;
        };
        if value.get("event").is_some() {
            match serde_json::from_value::<PodEvent>(value) {
                Ok(event) => {
                    if events.send(event).await.is_err() {
                        // Nobody reads events; replies still matter.
                    }
                }
                Err(error) => tracing::warn!(%error, "unknown control event"),
            }
            continue;
        }
        match serde_json::from_value::<WireReply>(value) {
            Ok(reply) => {
                let waiter = reply.id.as_ref().and_then(|id| lock(&pending).remove(id));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => tracing::warn!(?reply, "control reply matches no request"),
                }
            }
            Err(error) => tracing::warn!(%error, "unreadable control reply"),
        }
    }
    // Connection closed: dropping the pending senders fails every waiting call.
    lock(&pending).clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> ClientInfo {
        ClientInfo::Cli {
            command: "pods stop test".into(),
        }
    }

    #[tokio::test]
    async fn socket_is_private_and_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ControlServer::bind(dir.path()).await.expect("bind");
        let meta = std::fs::metadata(server.path()).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let path = server.path().to_owned();
        drop(server);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn live_socket_is_not_stolen_but_stale_one_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ControlServer::bind(dir.path()).await.expect("bind");
        let second = ControlServer::bind(dir.path()).await;
        assert!(matches!(second, Err(ChildError::SocketInUse { .. })));
        drop(server);
        // A socket file with no listener behind it (a crashed pod) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join(CONTROL_SOCKET))
            .expect("stale bind");
        drop(stale);
        assert!(dir.path().join(CONTROL_SOCKET).exists());
        let again = ControlServer::bind(dir.path()).await;
        assert!(again.is_ok(), "{:?}", again.err());
    }

    /// A pod that answers a request and ends at once still delivers the answer: `close` waits
    /// for it; the runtime is dropped right after, so nothing else could write it.
    #[test]
    fn a_reply_owed_when_the_server_closes_is_still_delivered() {
        use std::io::{BufRead, Write};
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut server = runtime
            .block_on(ControlServer::bind(dir.path()))
            .expect("bind");
        let path = server.path().to_owned();
        let client = std::thread::spawn(move || {
            let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            writeln!(
                stream,
                r#"{{"id": "r-last", "client": {{"type": "other", "name": "t"}}, "method": "cancel"}}"#
            )
            .expect("write");
            let mut line = String::new();
            let _ = std::io::BufReader::new(&stream).read_line(&mut line);
            line
        });
        runtime.block_on(async move {
            let request = server.incoming.recv().await.expect("request");
            request.respond(Ok(serde_json::json!({"accepted": true})));
            server.close(std::time::Duration::from_secs(5)).await;
        });
        drop(runtime);
        let line = client.join().expect("client");
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"));
        assert_eq!(reply["id"], "r-last");
        assert_eq!(reply["ok"], true, "{reply}");
    }

    #[tokio::test]
    async fn request_reaches_owner_with_origin_and_reply_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = ControlServer::bind(dir.path()).await.expect("bind");
        let owner = tokio::spawn(async move {
            let req = server.incoming.recv().await.expect("request");
            let action = req
                .action(vec!["pod-1".into(), "child-1".into()])
                .expect("action");
            let origin = req.origin();
            req.respond(Ok(serde_json::to_value(&action).expect("json")));
            (origin, action, server)
        });
        let client = ControlClient::connect(dir.path(), cli())
            .await
            .expect("connect");
        let params = ActionParams {
            reason: Some("enough".into()),
            caused_by: None,
        };
        let reply = client
            .call_with_id("req-7", &Call::Action(LifecycleKind::Stop, params))
            .await
            .expect("reply");
        let (origin, action, _server) = owner.await.expect("owner");
        assert_eq!(
            origin,
            Origin::Cli {
                command: "pods stop test".into(),
                request_id: "req-7".into()
            }
        );
        assert_eq!(action.kind, LifecycleKind::Stop);
        assert_eq!(action.reason.as_deref(), Some("enough"));
        assert_eq!(
            action.affects,
            vec!["pod-1".to_owned(), "child-1".to_owned()]
        );
        assert_eq!(reply["action_id"], Value::String(action.action_id));
    }

    async fn raw_exchange(dir: &Path, line: &str) -> Value {
        let mut stream = UnixStream::connect(dir.join(CONTROL_SOCKET))
            .await
            .expect("connect");
        stream.write_all(line.as_bytes()).await.expect("write");
        stream.write_all(b"\n").await.expect("write");
        let mut reader = BufReader::new(&mut stream);
        let mut out = String::new();
        reader.read_line(&mut out).await.expect("read");
        serde_json::from_str(&out).expect("reply is json")
    }

    #[tokio::test]
    async fn malformed_requests_get_error_replies_and_server_survives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = ControlServer::bind(dir.path()).await.expect("bind");
        let not_json = raw_exchange(dir.path(), "this is not json").await;
        assert_eq!(not_json["ok"], false);
        assert_eq!(not_json["error"]["code"], "bad_request");
        let no_client = raw_exchange(dir.path(), r#"{"id":"a","method":"status"}"#).await;
        assert_eq!(no_client["id"], "a");
        assert!(
            no_client["error"]["message"]
                .as_str()
                .expect("message")
                .contains("client")
        );
        let unknown = raw_exchange(
            dir.path(),
            r#"{"id":"b","client":{"type":"cli","command":"x"},"method":"explode"}"#,
        )
        .await;
        assert_eq!(unknown["error"]["code"], "unknown_method");
        assert!(
            unknown["error"]["message"]
                .as_str()
                .expect("message")
                .contains("stop_tree")
        );
        let bad_params = raw_exchange(
            dir.path(),
            r#"{"id":"c","client":{"type":"cli","command":"x"},"method":"run","params":{"inptu":"x"}}"#,
        )
        .await;
        assert_eq!(bad_params["error"]["code"], "bad_request");
        // Still serving: a good request reaches the owner.
        let owner = tokio::spawn(async move {
            let req = server.incoming.recv().await.expect("request");
            assert_eq!(req.call, Call::Status);
            req.respond(Ok(serde_json::json!({"state": "idle"})));
            server
        });
        let ok = raw_exchange(
            dir.path(),
            r#"{"id":"d","client":{"type":"other","name":"t"},"method":"status"}"#,
        )
        .await;
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["result"]["state"], "idle");
        drop(owner.await);
    }

    #[tokio::test]
    async fn oversized_line_is_refused_not_buffered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _server = ControlServer::bind(dir.path()).await.expect("bind");
        let huge = "x".repeat(MAX_LINE_BYTES + 10);
        let reply = raw_exchange(dir.path(), &huge).await;
        assert_eq!(reply["error"]["code"], "bad_request");
        assert!(
            reply["error"]["message"]
                .as_str()
                .expect("message")
                .contains("longer than")
        );
    }

    #[tokio::test]
    async fn subscribers_receive_events_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ControlServer::bind(dir.path()).await.expect("bind");
        let client = ControlClient::connect(
            dir.path(),
            ClientInfo::ParentPod {
                pod_id: "parent".into(),
                tool_call_id: None,
            },
        )
        .await
        .expect("connect");
        client.subscribe().await.expect("subscribe");
        server.publish(PodEvent::RunStarted {
            run_id: "r1".into(),
            request_id: None,
        });
        server.publish(PodEvent::RunEnded {
            run_id: "r1".into(),
            request_id: None,
            result: RunResult::Completed {
                text: "done".into(),
            },
        });
        assert_eq!(
            client.next_event().await,
            Some(PodEvent::RunStarted {
                run_id: "r1".into(),
                request_id: None,
            })
        );
        assert!(matches!(
            client.next_event().await,
            Some(PodEvent::RunEnded { result: RunResult::Completed { ref text }, .. }) if text == "done"
        ));
        drop(server);
        // Server gone: pending calls fail instead of hanging.
        let status = client.call(&Call::Status).await;
        assert!(status.is_err());
    }

    #[tokio::test]
    async fn connecting_to_a_pod_that_is_not_running_names_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ControlClient::connect(dir.path(), cli())
            .await
            .err()
            .expect("no socket");
        assert!(matches!(err, ChildError::NotRunning { .. }));
        assert!(err.to_string().contains("control.sock"), "{err}");
    }

    #[test]
    fn parent_pod_client_with_tool_call_yields_parent_origin_and_trigger() {
        let (tx, _rx) = oneshot::channel();
        let inc = Incoming {
            request_id: "r".into(),
            client: ClientInfo::ParentPod {
                pod_id: "p".into(),
                tool_call_id: Some("call_1".into()),
            },
            call: Call::Run(RunParams { input: "hi".into() }),
            reply: tx,
        };
        assert_eq!(
            inc.origin(),
            Origin::ParentPod {
                parent_pod_id: "p".into(),
                tool_call_id: "call_1".into()
            }
        );
        assert_eq!(
            inc.trigger(),
            RunTrigger::ParentPod {
                parent_pod_id: "p".into(),
                tool_call_id: "call_1".into()
            }
        );
        assert!(inc.action(vec!["x".into()]).is_none());
    }
}
