//! The per-pod control socket: a Unix socket (mode 0600) in a private per-user directory,
//! JSON Lines in both directions.
//!
//! Where it lives: `$XDG_RUNTIME_DIR/pods/` when that is usable, else `/tmp/pods-<uid>/` (each
//! `0700` and owned by the user, checked before use), named after the pod id and a digest of the
//! pod directory's path, so the socket path stays within the kernel's `sun_path` limit
//! ([`MAX_SOCKET_PATH`]) however long the pods home is. The pod directory records where it is:
//! `control.sock` there is a symbolic link to the socket ([`locate_socket`]). Pods written by
//! older versions have the socket itself as `control.sock`; clients connect to that as before.
//! Sockets in the directory that nobody serves any more are removed when a pod binds its own.
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
//! `caused_by`); `status`; `subscribe`. The idle watchdog is internal to a pod and has no method.
//! A malformed line gets an error reply; the connection and the server go on.
//!
//! **Claims are checked.** A client saying it is this pod's parent (`parent_pod`), and any
//! request carrying a `caused_by` link, is believed only when the peer's credentials
//! (`SO_PEERCRED`) show the process `pod.json`'s `parent_id` names: same uid, and the pid the
//! parent's own `pod.json` records. Otherwise the action's origin is recorded as
//! [`Origin::Unverified`] with the claim, the peer's pid and uid and what did not match, and a
//! run it starts gets a `control_request` trigger saying the claim is unverified.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use pod_provider::ProviderError;
use pod_provider::event::StopReason;

use crate::error::error_chain;
use crate::home::PodDir;
use crate::lifecycle::{new_action, new_id};
use crate::record::{
    CausedBy, LifecycleAction, LifecycleKind, Origin, PeerCred, RunTrigger, UnverifiedOrigin,
};
use crate::supervisor::ChildError;

/// Name in a pod directory that says where its control socket is: a symbolic link to it (or,
/// in pods of older versions, the socket itself).
pub const CONTROL_SOCKET: &str = "control.sock";

/// Longest socket path the kernel accepts: `sun_path` holds 108 bytes with the final NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Longest socket file name [`socket_name`] makes: 36 (pod id) + 1 + 12 (digest) + 5 (`.sock`).
pub const MAX_SOCKET_NAME: usize = 54;

/// A socket nobody serves is removed by the sweep only when it is at least this old, so that a
/// socket just bound (and not yet listening) is never taken for a stale one.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// The directory control sockets are bound in, created `0700` if missing:
/// `$XDG_RUNTIME_DIR/pods` when `XDG_RUNTIME_DIR` is set (and absolute), else
/// `/tmp/pods-<uid>`; also `/tmp/pods-<uid>` when the runtime directory's path is too long for
/// socket paths. The directory must be a real directory owned by this user (a wider mode is
/// narrowed to `0700`). A runtime directory that is set but unusable is an error, not a reason
/// to go elsewhere unannounced: the error names the directory, why, and what to do.
pub fn socket_dir() -> Result<PathBuf, ChildError> {
    let uid = rustix::process::getuid().as_raw();
    let fallback = PathBuf::from(format!("/tmp/pods-{uid}"));
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("pods"))
        .filter(|dir| dir.as_os_str().len() + 1 + MAX_SOCKET_NAME <= MAX_SOCKET_PATH);
    let (dir, fix) = match runtime {
        Some(dir) => (
            dir,
            "fix it, or unset XDG_RUNTIME_DIR to use /tmp/pods-<uid>",
        ),
        None => (
            fallback,
            "remove it, or set XDG_RUNTIME_DIR to a private directory",
        ),
    };
    match private_dir(&dir, uid) {
        Ok(()) => Ok(dir),
        Err(why) => Err(ChildError::SocketDir {
            detail: format!("{}: {why}; {fix}", dir.display()),
        }),
    }
}

/// Make sure `dir` is a directory of `uid`'s that nobody else can enter.
fn private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(format!("cannot create it: {error}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot inspect it: {e}"))?;
    if !meta.file_type().is_dir() {
        return Err("it is not a directory (a symlink or file is in the way)".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "it belongs to uid {}, not to this user (uid {uid})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            format!(
                "its mode is {:o} and cannot be narrowed to 700: {e}",
                meta.mode() & 0o777
            )
        })?;
    }
    Ok(())
}

/// The socket file name of the pod in `pod_dir`: its id (the directory name, at most 36
/// characters of it) and the first 12 hex digits of the SHA-256 of the directory's absolute
/// path, so that pods of the same id in two homes never share a socket.
pub fn socket_name(pod_dir: &Path) -> String {
    use sha2::Digest;
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(pod_dir).unwrap_or_else(|_| pod_dir.to_owned());
    let digest = sha2::Sha256::digest(absolute.as_os_str().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let id: String = pod_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(36)
        .collect();
    format!("{id}-{hex}.sock")
}

/// The socket a client of the pod in `pod_dir` connects to: the target of its `control.sock`
/// link, or `control.sock` itself (a pod of an older version, or a pod not running).
pub fn locate_socket(pod_dir: &Path) -> PathBuf {
    let link = pod_dir.join(CONTROL_SOCKET);
    match std::fs::read_link(&link) {
        Ok(target) if target.is_absolute() => target,
        Ok(target) => pod_dir.join(target),
        Err(_) => link,
    }
}

/// Check that control sockets can be bound for pods in `home`: the socket directory is usable,
/// a socket path fits, and a probe socket binds there. Returns what was checked.
pub fn check_socket_dir(home: &Path) -> Result<String, ChildError> {
    let dir = socket_dir()?;
    // A pod id is 36 characters; the name does not depend on the home's length.
    let example = home.join("pods").join("0".repeat(36));
    let path = dir.join(socket_name(&example));
    let length = path.as_os_str().len();
    if length > MAX_SOCKET_PATH {
        return Err(ChildError::SocketDir {
            detail: format!(
                "{}: a socket path there is {length} bytes, over the limit of {MAX_SOCKET_PATH}",
                dir.display()
            ),
        });
    }
    let probe = dir.join(format!("doctor-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&probe);
    let bound = std::os::unix::net::UnixListener::bind(&probe);
    let _ = std::fs::remove_file(&probe);
    bound.map_err(|source| ChildError::Socket {
        path: probe.clone(),
        source,
    })?;
    Ok(format!(
        "{} is private to this user; socket paths are {length} bytes (limit {MAX_SOCKET_PATH})",
        dir.display()
    ))
}

/// Remove the sockets in `dir` that nobody serves any more (left by pods that were killed).
async fn sweep_stale(dir: &Path, min_age: std::time::Duration) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if !meta.file_type().is_socket() || !old {
            continue;
        }
        if let Err(error) = UnixStream::connect(&path).await
            && error.kind() == std::io::ErrorKind::ConnectionRefused
        {
            tracing::debug!(path = %path.display(), "removing a stale control socket");
            let _ = std::fs::remove_file(&path);
        }
    }
}

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
            Call::Action(kind, _) => crate::lifecycle::kind_name(*kind),
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
        /// Why the model stopped; a parent learns from it that its child's answer was cut
        /// (absent from pods that predate it: unknown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_reason: Option<StopReason>,
        /// Whether the answer is not a clean finish (see [`StopReason::is_truncated`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        truncated: Option<bool>,
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
    /// Who the client says it is.
    pub client: ClientInfo,
    pub call: Call,
    /// Set when the client claims to be this pod's parent (or sends a `caused_by` link) and the
    /// claim did not check out.
    pub unverified: Option<Unverified>,
    reply: oneshot::Sender<Result<Value, ReplyError>>,
}

/// A claim the server could not verify: who the peer is according to the kernel, and why the
/// claim does not fit the pod's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub peer: PeerCred,
    pub why: String,
}

impl Incoming {
    pub fn respond(self, result: Result<Value, ReplyError>) {
        // The client may have gone away; nothing to tell it then.
        let _ = self.reply.send(result);
    }

    /// Who started a lifecycle action requested by this call: what the client says, or, when
    /// that claim did not check out, [`Origin::Unverified`] holding it.
    pub fn origin(&self) -> Origin {
        let claimed = self.claimed_origin();
        match &self.unverified {
            None => claimed,
            Some(unverified) => Origin::Unverified(Box::new(UnverifiedOrigin {
                claimed,
                claimed_caused_by: self.claimed_caused_by(),
                peer: unverified.peer.clone(),
                why: unverified.why.clone(),
            })),
        }
    }

    fn claimed_caused_by(&self) -> Option<CausedBy> {
        match &self.call {
            Call::Action(_, params) => params.caused_by.clone(),
            _ => None,
        }
    }

    /// The origin the client claims.
    fn claimed_origin(&self) -> Origin {
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
        // An unverified link stays inside the unverified origin; it is not a cascade.
        action.caused_by = params
            .caused_by
            .clone()
            .filter(|_| self.unverified.is_none());
        Some(action)
    }

    /// The run trigger for a `run` request. A claim that did not check out is a control
    /// request whose client text says so.
    pub fn trigger(&self) -> RunTrigger {
        if let Some(unverified) = &self.unverified {
            let peer = match unverified.peer.pid {
                Some(pid) => format!("peer pid {pid}"),
                None => "peer pid unknown".to_owned(),
            };
            return RunTrigger::ControlRequest {
                client: format!(
                    "{} (unverified claim, {peer}: {})",
                    self.client.describe(),
                    unverified.why
                ),
            };
        }
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
/// [`ControlServer::publish`] go to every subscriber. The socket file and the pod directory's
/// link to it are removed on drop.
pub struct ControlServer {
    pub incoming: mpsc::Receiver<Incoming>,
    events: broadcast::Sender<PodEvent>,
    path: PathBuf,
    /// `control.sock` in the pod directory.
    link: PathBuf,
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
    /// Bind the socket of the pod in `pod_dir` in the socket directory (mode 0600) and point
    /// `control.sock` in `pod_dir` at it. A stale socket left by a dead process is replaced; a
    /// socket that still answers means another process serves this pod.
    pub async fn bind(pod_dir: &Path) -> Result<ControlServer, ChildError> {
        let link = pod_dir.join(CONTROL_SOCKET);
        let dir = socket_dir()?;
        sweep_stale(&dir, STALE_AFTER).await;
        let path = dir.join(socket_name(pod_dir));
        // What the pod directory names (this version's link, an older version's socket).
        if std::fs::symlink_metadata(&link).is_ok() {
            let current = locate_socket(pod_dir);
            if UnixStream::connect(&current).await.is_ok() {
                return Err(ChildError::SocketInUse { path: current });
            }
            remove_if_present(&link)?;
            if current != link && current.parent() == Some(dir.as_path()) {
                remove_if_present(&current)?;
            }
        }
        if std::fs::symlink_metadata(&path).is_ok() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ChildError::SocketInUse { path });
            }
            remove_if_present(&path)?;
        }
        let listener = UnixListener::bind(&path).map_err(|source| ChildError::Socket {
            path: path.clone(),
            source,
        })?;
        let recorded = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| ChildError::Socket {
                path: path.clone(),
                source,
            })
            .and_then(|()| record_location(&link, &path));
        if let Err(error) = recorded {
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        let (incoming_tx, incoming) = mpsc::channel(64);
        let (events, _) = broadcast::channel(1024);
        let in_flight = InFlight::default();
        let verifier = Arc::new(Verifier {
            pod_dir: pod_dir.to_owned(),
            uid: rustix::process::getuid().as_raw(),
        });
        let accept_task = tokio::spawn(accept_loop(
            listener,
            incoming_tx,
            events.clone(),
            in_flight.clone(),
            verifier,
        ));
        Ok(ControlServer {
            incoming,
            events,
            path,
            link,
            accept_task,
            in_flight,
        })
    }

    /// Stop taking requests and give the replies already owed, and the events published but
    /// not yet written to every subscriber, up to `grace` to reach their clients, so that a pod
    /// ending right after answering (a `cancel` that ends `pods run`) still delivers the answer
    /// and its last events (`run_ended`, `exiting`). Requests not yet taken are answered
    /// `not_running`.
    pub async fn close(mut self, grace: std::time::Duration) {
        self.accept_task.abort();
        self.incoming.close();
        while let Ok(request) = self.incoming.try_recv() {
            request.respond(Err(ReplyError::new("not_running", "the pod is ending")));
        }
        let deadline = tokio::time::Instant::now() + grace;
        // The broadcast keeps an event until every subscriber has taken it.
        while (self.in_flight.outstanding() > 0 || !self.events.is_empty())
            && tokio::time::Instant::now() < deadline
        {
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
        // Only our own link: another process may have bound the pod since.
        if std::fs::read_link(&self.link).is_ok_and(|target| target == self.path) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), ChildError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ChildError::Socket {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Point `link` (`control.sock` in the pod directory) at `socket`, replacing it atomically.
fn record_location(link: &Path, socket: &Path) -> Result<(), ChildError> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{CONTROL_SOCKET}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let made = std::os::unix::fs::symlink(socket, &tmp).and_then(|()| std::fs::rename(&tmp, link));
    if let Err(source) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(ChildError::Socket {
            path: link.to_owned(),
            source,
        });
    }
    Ok(())
}

/// Checks what a client claims against the pod's records and the peer's credentials.
struct Verifier {
    pod_dir: PathBuf,
    uid: u32,
}

impl Verifier {
    /// `None` when there is nothing to doubt: the client names no other pod as its own
    /// identity and sends no `caused_by` link, or it is this pod's parent process.
    fn check(&self, client: &ClientInfo, call: &Call, peer: &PeerCred) -> Option<Unverified> {
        let caused_by = match call {
            Call::Action(_, params) => params.caused_by.as_ref(),
            _ => None,
        };
        if !matches!(client, ClientInfo::ParentPod { .. }) && caused_by.is_none() {
            return None;
        }
        self.parent(client, caused_by, peer)
            .err()
            .map(|why| Unverified {
                peer: peer.clone(),
                why,
            })
    }

    /// Whether the peer is the parent pod the client claims to be, and the `caused_by` link
    /// (if any) names that parent.
    fn parent(
        &self,
        client: &ClientInfo,
        caused_by: Option<&CausedBy>,
        peer: &PeerCred,
    ) -> Result<(), String> {
        let ClientInfo::ParentPod { pod_id, .. } = client else {
            return Err(format!(
                "a caused_by link is taken only from this pod's parent, and the client says it is {}",
                client.describe()
            ));
        };
        if let Some(link) = caused_by
            && &link.pod_id != pod_id
        {
            return Err(format!(
                "the caused_by link names pod {}, not the claimed parent {pod_id}",
                link.pod_id
            ));
        }
        match peer.uid {
            Some(uid) if uid == self.uid => {}
            Some(uid) => return Err(format!("peer uid {uid} is not this pod's uid {}", self.uid)),
            None => return Err("the kernel gave no credentials for the peer".to_owned()),
        }
        let own = PodDir::open(&self.pod_dir)
            .read_info()
            .map_err(|e| format!("cannot read this pod's record: {}", error_chain(&e)))?;
        match own.parent_id.as_deref() {
            Some(parent) if parent == pod_id => {}
            Some(parent) => return Err(format!("pod.json names parent {parent}, not {pod_id}")),
            None => {
                return Err(format!(
                    "pod.json names no parent, but the client claims {pod_id}"
                ));
            }
        }
        // `<home>/pods/<id>`: the parent's directory is next to this one.
        let parent_dir = self
            .pod_dir
            .parent()
            .map(|pods| pods.join(pod_id))
            .ok_or_else(|| "this pod's directory has no parent directory".to_owned())?;
        let parent = PodDir::open(&parent_dir)
            .read_info()
            .map_err(|e| format!("cannot read the parent's record: {}", error_chain(&e)))?;
        match (parent.pid, peer.pid) {
            (Some(recorded), Some(pid)) if recorded == pid => Ok(()),
            (Some(recorded), Some(pid)) => Err(format!(
                "peer pid {pid} is not the parent's recorded pid {recorded}"
            )),
            (None, _) => Err("the parent's pod.json records no live process".to_owned()),
            (_, None) => Err("the kernel gave no pid for the peer".to_owned()),
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    incoming: mpsc::Sender<Incoming>,
    events: broadcast::Sender<PodEvent>,
    in_flight: InFlight,
    verifier: Arc<Verifier>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(
                    stream,
                    incoming.clone(),
                    events.clone(),
                    in_flight.clone(),
                    verifier.clone(),
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
    verifier: Arc<Verifier>,
) {
    // The kernel's account of the peer, taken once: it cannot change on this connection.
    let peer = match stream.peer_cred() {
        Ok(cred) => PeerCred {
            pid: cred.pid().and_then(|pid| u32::try_from(pid).ok()),
            uid: Some(cred.uid()),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read the control peer's credentials");
            PeerCred::default()
        }
    };
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
                let connection = Connection {
                    incoming: &incoming,
                    events: &events,
                    out: &out_tx,
                    verifier: &verifier,
                    peer: &peer,
                };
                handle_line(&buf, &connection, in_flight.owe()).await;
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

/// What a request line is handled with: where it goes, and who sent it.
struct Connection<'a> {
    incoming: &'a mpsc::Sender<Incoming>,
    events: &'a broadcast::Sender<PodEvent>,
    out: &'a mpsc::Sender<Outgoing>,
    verifier: &'a Verifier,
    peer: &'a PeerCred,
}

async fn handle_line(line: &[u8], connection: &Connection<'_>, answers: Owed) {
    let Connection {
        incoming,
        events,
        out,
        verifier,
        peer,
    } = *connection;
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
        // Each event taken for this subscriber is owed until written, like a reply: an ending
        // pod's `close` waits for it (see `ControlServer::close`).
        let in_flight = InFlight(answers.0.clone());
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
                let owed = in_flight.owe();
                let Ok(line) = serde_json::to_string(&event) else {
                    continue;
                };
                if out.send((line, Some(owed))).await.is_err() {
                    break;
                }
            }
        });
        return;
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    let unverified = verifier.check(&client, &call, peer);
    if let Some(doubt) = &unverified {
        tracing::warn!(client = %client.describe(), why = %doubt.why, "unverified control client claim");
    }
    let item = Incoming {
        request_id,
        client,
        call,
        unverified,
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
/// [`ControlClient::next_event`].
pub struct ControlClient {
    client: ClientInfo,
    path: PathBuf,
    write: tokio::sync::Mutex<tokio::net::unix::OwnedWriteHalf>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<WireReply>>>>,
    events: tokio::sync::Mutex<mpsc::Receiver<PodEvent>>,
    reader: tokio::task::JoinHandle<()>,
}

impl ControlClient {
    /// Connect to the socket of the pod in `pod_dir` ([`locate_socket`]).
    pub async fn connect(pod_dir: &Path, client: ClientInfo) -> Result<ControlClient, ChildError> {
        let path = locate_socket(pod_dir);
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
/// the command line `command`, then wait up to `wait` for it to exit. A pod that does not even
/// answer within `wait` (its process stopped or hung) is an [`ChildError::Unanswered`] error.
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
    let kind = if tree {
        LifecycleKind::StopTree
    } else {
        LifecycleKind::Stop
    };
    let params = ActionParams {
        reason,
        caused_by: None,
    };
    let asked = async {
        client.subscribe().await?;
        client.call(&Call::Action(kind, params)).await
    };
    let reply = tokio::time::timeout(wait, asked)
        .await
        .map_err(|_| ChildError::Unanswered {
            path: client.socket_path().to_owned(),
            waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        })??;
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
        let link = dir.path().join(CONTROL_SOCKET);
        assert_eq!(std::fs::read_link(&link).expect("link"), path);
        drop(server);
        assert!(!path.exists());
        assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
    }

    /// A pods home so deep that `<home>/pods/<id>/control.sock` is far over `sun_path`.
    fn deep_pod_dir(root: &Path) -> PathBuf {
        let mut dir = root.to_owned();
        for i in 0..4 {
            dir.push(format!(
                "a-rather-long-directory-name-as-ci-workspaces-have-{i:04}"
            ));
        }
        let dir = dir.join("pods").join(new_id());
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[tokio::test]
    async fn socket_of_a_pod_in_a_deep_home_is_bound_where_its_path_is_short() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pod_dir = deep_pod_dir(tmp.path());
        assert!(pod_dir.join(CONTROL_SOCKET).as_os_str().len() > 250);
        let mut server = ControlServer::bind(&pod_dir).await.expect("bind");
        assert!(server.path().as_os_str().len() <= MAX_SOCKET_PATH);
        assert_eq!(
            server.path().parent(),
            Some(socket_dir().expect("dir").as_path())
        );
        assert_eq!(locate_socket(&pod_dir), server.path());
        let owner = tokio::spawn(async move {
            let req = server.incoming.recv().await.expect("request");
            req.respond(Ok(serde_json::json!({"state": "idle"})));
            server
        });
        let client = ControlClient::connect(&pod_dir, cli())
            .await
            .expect("connect");
        let reply = client.call(&Call::Status).await.expect("status");
        assert_eq!(reply["state"], "idle");
        let server = owner.await.expect("owner");
        let path = server.path().to_owned();
        drop(server);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn socket_names_differ_for_the_same_pod_id_in_two_homes() {
        let a = socket_name(Path::new("/one/pods/0190aaaa-0000-7000-8000-000000000000"));
        let b = socket_name(Path::new("/two/pods/0190aaaa-0000-7000-8000-000000000000"));
        assert_ne!(a, b);
        assert!(
            a.starts_with("0190aaaa-0000-7000-8000-000000000000-"),
            "{a}"
        );
        let odd = socket_name(Path::new(&format!("/x/{}", "é/../".repeat(80))));
        assert!(odd.len() <= MAX_SOCKET_NAME, "{odd}");
        assert!(a.len() <= MAX_SOCKET_NAME);
    }

    #[tokio::test]
    async fn a_pod_of_an_older_version_with_its_socket_in_the_directory_is_still_reached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = std::os::unix::net::UnixListener::bind(dir.path().join(CONTROL_SOCKET))
            .expect("old-style socket");
        assert_eq!(locate_socket(dir.path()), dir.path().join(CONTROL_SOCKET));
        let client = ControlClient::connect(dir.path(), cli()).await;
        assert!(client.is_ok(), "{:?}", client.err());
        assert!(old.accept().is_ok());
    }

    #[test]
    fn a_socket_directory_that_is_not_private_to_the_user_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let uid = rustix::process::getuid().as_raw();
        let dir = tmp.path().join("sockets");
        private_dir(&dir, uid).expect("created");
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Someone else's directory.
        let theirs = private_dir(&dir, uid.wrapping_add(1)).expect_err("not ours");
        assert!(theirs.contains("belongs to uid"), "{theirs}");
        // A symlink planted where the directory should be.
        let planted = tmp.path().join("planted");
        std::os::unix::fs::symlink(&dir, &planted).expect("symlink");
        let link = private_dir(&planted, uid).expect_err("symlink");
        assert!(link.contains("not a directory"), "{link}");
        // A directory of ours that others can enter is narrowed.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&dir, uid).expect("narrowed");
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn stale_sockets_in_the_socket_directory_are_swept_and_live_ones_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let stale = tmp.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        let live_path = tmp.path().join("live.sock");
        let _live = std::os::unix::net::UnixListener::bind(&live_path).expect("bind");
        let other = tmp.path().join("notes.txt");
        std::fs::write(&other, "x").expect("write");
        // Too young to be taken for stale: kept.
        sweep_stale(tmp.path(), std::time::Duration::from_secs(3600)).await;
        assert!(stale.exists());
        sweep_stale(tmp.path(), std::time::Duration::ZERO).await;
        assert!(!stale.exists(), "stale socket removed");
        assert!(live_path.exists(), "a served socket stays");
        assert!(other.exists(), "only sockets are swept");
    }

    #[test]
    fn the_socket_check_reports_the_directory_and_the_path_length() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let deep = deep_pod_dir(tmp.path());
        let detail = check_socket_dir(&deep).expect("usable");
        let dir = socket_dir().expect("dir");
        assert!(detail.contains(&dir.display().to_string()), "{detail}");
        assert!(
            detail.contains(&format!("limit {MAX_SOCKET_PATH}")),
            "{detail}"
        );
    }

    /// A home with a parent pod and its child, the parent's `pod.json` recording `parent_pid`.
    fn parent_and_child(root: &Path, parent_pid: Option<u32>) -> (PodDir, PodDir) {
        let home = crate::home::PodHome::at(root);
        let parent = home.create_pod(None, "parent", None).expect("parent");
        parent
            .update_info(|info| {
                info.pid = parent_pid;
                info.state = crate::record::PodState::Running;
            })
            .expect("update");
        let child = home
            .create_pod(None, "child", Some(parent.id()))
            .expect("child");
        (parent, child)
    }

    /// Send a `cancel` from `client` (optionally with a `caused_by` link) to the pod in
    /// `child` and return the origin and the action the pod would record.
    async fn cancel_from(
        child: &PodDir,
        client: ClientInfo,
        caused_by: Option<CausedBy>,
    ) -> (Origin, LifecycleAction) {
        let mut server = ControlServer::bind(child.path()).await.expect("bind");
        let owner = tokio::spawn(async move {
            let req = server.incoming.recv().await.expect("request");
            let action = req.action(vec!["c".into()]).expect("action");
            let origin = req.origin();
            req.respond(Ok(serde_json::json!({})));
            (origin, action, server)
        });
        let client = ControlClient::connect(child.path(), client)
            .await
            .expect("connect");
        let params = ActionParams {
            reason: None,
            caused_by,
        };
        client
            .call(&Call::Action(LifecycleKind::Cancel, params))
            .await
            .expect("reply");
        let (origin, action, _server) = owner.await.expect("owner");
        (origin, action)
    }

    fn parent_client(pod_id: &str) -> ClientInfo {
        ClientInfo::ParentPod {
            pod_id: pod_id.to_owned(),
            tool_call_id: Some("call_1".into()),
        }
    }

    #[tokio::test]
    async fn a_parent_claim_from_the_parents_recorded_process_is_verified() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // This test process is the "parent": its pid is the one the parent's pod.json records.
        let (parent, child) = parent_and_child(tmp.path(), Some(std::process::id()));
        let link = CausedBy {
            pod_id: parent.id().to_owned(),
            action_id: "a-1".into(),
            kind: LifecycleKind::StopTree,
        };
        let (origin, action) =
            cancel_from(&child, parent_client(parent.id()), Some(link.clone())).await;
        assert_eq!(
            origin,
            Origin::ParentPod {
                parent_pod_id: parent.id().to_owned(),
                tool_call_id: "call_1".into()
            }
        );
        assert_eq!(action.caused_by, Some(link));
    }

    #[tokio::test]
    async fn a_forged_parent_claim_is_recorded_as_unverified() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // The parent's recorded process is another one than this client.
        let (parent, child) = parent_and_child(tmp.path(), Some(u32::MAX));
        let link = CausedBy {
            pod_id: parent.id().to_owned(),
            action_id: "a-1".into(),
            kind: LifecycleKind::StopTree,
        };
        let (origin, action) =
            cancel_from(&child, parent_client(parent.id()), Some(link.clone())).await;
        let Origin::Unverified(unverified) = &origin else {
            panic!("believed a forged claim: {origin:?}");
        };
        let UnverifiedOrigin {
            claimed,
            claimed_caused_by,
            peer,
            why,
        } = unverified.as_ref();
        assert!(
            matches!(claimed, Origin::ParentPod { parent_pod_id, .. } if parent_pod_id == parent.id())
        );
        assert_eq!(claimed_caused_by.as_ref(), Some(&link));
        assert_eq!(peer.pid, Some(std::process::id()));
        assert_eq!(peer.uid, Some(rustix::process::getuid().as_raw()));
        assert!(why.contains("is not the parent's recorded pid"), "{why}");
        assert!(
            action.caused_by.is_none(),
            "an unverified link is no cascade"
        );
        assert_eq!(action.origin, origin);
    }

    #[tokio::test]
    async fn a_claim_to_be_another_pods_parent_is_unverified_whatever_the_peer() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_parent, child) = parent_and_child(tmp.path(), Some(std::process::id()));
        let (origin, _) = cancel_from(&child, parent_client("someone-else"), None).await;
        match origin {
            Origin::Unverified(unverified) => {
                assert!(
                    unverified.why.contains("pod.json names parent"),
                    "{}",
                    unverified.why
                );
            }
            other => panic!("believed: {other:?}"),
        }
        // A top pod has no parent at all.
        let (top, _) = parent_and_child(&tmp.path().join("2"), Some(std::process::id()));
        let (origin, _) = cancel_from(&top, parent_client("anyone"), None).await;
        assert!(
            matches!(&origin, Origin::Unverified(u) if u.why.contains("names no parent")),
            "{origin:?}"
        );
    }

    #[tokio::test]
    async fn a_caused_by_link_from_a_client_that_is_not_the_parent_is_unverified() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (parent, child) = parent_and_child(tmp.path(), Some(std::process::id()));
        let link = CausedBy {
            pod_id: parent.id().to_owned(),
            action_id: "a-1".into(),
            kind: LifecycleKind::StopTree,
        };
        let (origin, action) = cancel_from(&child, cli(), Some(link)).await;
        assert!(
            matches!(&origin, Origin::Unverified(u)
                if matches!(u.claimed, Origin::Cli { .. }) && u.why.contains("caused_by")),
            "{origin:?}"
        );
        assert!(action.caused_by.is_none());
        // Without a link, a command-line client is recorded as it says, as before.
        let (origin, _) = cancel_from(&child, cli(), None).await;
        assert!(matches!(origin, Origin::Cli { .. }), "{origin:?}");
    }

    #[test]
    fn an_unverified_run_request_is_a_control_request_saying_so() {
        let (tx, _rx) = oneshot::channel();
        let inc = Incoming {
            request_id: "r".into(),
            client: ClientInfo::ParentPod {
                pod_id: "p".into(),
                tool_call_id: Some("call_1".into()),
            },
            call: Call::Run(RunParams { input: "hi".into() }),
            unverified: Some(Unverified {
                peer: PeerCred {
                    pid: Some(42),
                    uid: Some(1000),
                },
                why: "peer pid 42 is not the parent's recorded pid 7".into(),
            }),
            reply: tx,
        };
        match inc.trigger() {
            RunTrigger::ControlRequest { client } => {
                assert!(client.contains("unverified claim"), "{client}");
                assert!(client.contains("peer pid 42"), "{client}");
                assert!(client.contains("parent_pod:p"), "{client}");
            }
            other => panic!("believed: {other:?}"),
        }
        let json = serde_json::to_value(inc.origin()).expect("json");
        assert_eq!(json["type"], "unverified");
        assert_eq!(json["claimed"]["type"], "parent_pod");
        assert_eq!(json["peer"], serde_json::json!({"pid": 42, "uid": 1000}));
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

    #[test]
    fn events_published_just_before_the_server_closes_still_reach_a_subscriber() {
        use std::io::{BufRead, Write};
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(ControlServer::bind(dir.path()))
            .expect("bind");
        let path = server.path().to_owned();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let client = std::thread::spawn(move || {
            let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            writeln!(
                stream,
                r#"{{"id": "s", "client": {{"type": "other", "name": "t"}}, "method": "subscribe"}}"#
            )
            .expect("write");
            let mut lines = std::io::BufReader::new(&stream).lines();
            let reply = lines.next().expect("reply").expect("read");
            let _ = subscribed_tx.send(());
            let mut seen = vec![reply];
            seen.extend(lines.map_while(Result::ok));
            seen
        });
        runtime.block_on(async move {
            subscribed.await.expect("subscribed");
            for run_id in ["r1", "r2"] {
                server.publish(PodEvent::RunStarted {
                    run_id: run_id.into(),
                    request_id: None,
                });
            }
            // Nothing has run the subscriber's task yet: only close's wait lets it write.
            server.close(std::time::Duration::from_secs(5)).await;
        });
        drop(runtime);
        let seen = client.join().expect("client");
        let runs: Vec<Value> = seen[1..]
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).expect("json")["run_id"].clone())
            .collect();
        assert_eq!(
            runs,
            [serde_json::json!("r1"), serde_json::json!("r2")],
            "{seen:?}"
        );
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
                stop_reason: Some(StopReason::MaxTokens),
                truncated: Some(true),
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
            Some(PodEvent::RunEnded {
                result: RunResult::Completed { ref text, stop_reason: Some(StopReason::MaxTokens), truncated: Some(true) },
                ..
            }) if text == "done"
        ));
        drop(server);
        // Server gone: pending calls fail instead of hanging.
        let status = client.call(&Call::Status).await;
        assert!(status.is_err());
    }

    #[tokio::test]
    async fn stopping_a_pod_that_never_answers_is_an_error_after_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Accepts connections (the kernel does) but never reads or answers: a stopped process.
        let _frozen =
            std::os::unix::net::UnixListener::bind(dir.path().join(CONTROL_SOCKET)).expect("bind");
        let error = stop_pod(
            dir.path(),
            "pods stop frozen",
            false,
            None,
            std::time::Duration::from_millis(200),
        )
        .await
        .expect_err("no answer");
        assert!(
            matches!(error, ChildError::Unanswered { waited_ms: 200, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("did not answer"), "{error}");
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
            unverified: None,
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
