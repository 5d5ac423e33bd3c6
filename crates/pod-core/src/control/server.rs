//! The server side of the control socket: binding it, accepting connections, reading bounded
//! request lines, handing requests to the pod and writing replies and subscribed events back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::incoming::{Incoming, Verifier};
use super::location::{
    CONTROL_SOCKET, STALE_AFTER, locate_socket, record_location, remove_if_present, socket_dir,
    socket_name, sweep_stale,
};
use super::wire::{Call, ClientInfo, PodEvent, ReplyError, WireReply, WireRequest, bad_request};
use crate::approval::parent::{AskParent, PendingAsks};
use crate::children::ChildError;
use crate::record::PeerCred;

/// Longest request line the server accepts; longer lines are answered with an error.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// A bound control socket. Requests arrive on [`ControlServer::incoming`]; events sent with
/// [`ControlServer::publish`] go to every subscriber. The socket file and the pod directory's
/// link to it are removed on drop.
pub(crate) struct ControlServer {
    pub incoming: mpsc::Receiver<Incoming>,
    events: broadcast::Sender<PodEvent>,
    path: PathBuf,
    /// `control.sock` in the pod directory.
    link: PathBuf,
    accept_task: tokio::task::JoinHandle<()>,
    /// Replies owed to clients: requests read whose reply is not written yet.
    in_flight: InFlight,
    /// Asks this pod published to its parent, waiting for `approve`.
    asks: PendingAsks,
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
    pub(crate) async fn bind(pod_dir: &Path) -> Result<ControlServer, ChildError> {
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
        let asks = PendingAsks::default();
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
            asks.clone(),
        ));
        Ok(ControlServer {
            incoming,
            events,
            path,
            link,
            accept_task,
            in_flight,
            asks,
        })
    }

    /// Stop taking requests and give the replies already owed, and the events published but
    /// not yet written to every subscriber, up to `grace` to reach their clients, so that a pod
    /// ending right after answering (a `cancel` that ends `pods run`) still delivers the answer
    /// and its last events (`run_ended`, `exiting`). Requests not yet taken are answered
    /// `not_running`.
    pub(crate) async fn close(mut self, grace: std::time::Duration) {
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

    /// Where the socket was bound (tests check where that is).
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Send an event to every current subscriber (none is fine).
    pub(crate) fn publish(&self, event: PodEvent) {
        let _ = self.events.send(event);
    }

    /// A sender for publishing from other tasks.
    pub(crate) fn publisher(&self) -> broadcast::Sender<PodEvent> {
        self.events.clone()
    }

    /// An approver that asks the parent pod `parent_id` through this socket.
    pub(crate) fn ask_parent(&self, parent_id: &str) -> AskParent {
        AskParent {
            parent_id: parent_id.to_owned(),
            events: self.events.clone(),
            pending: self.asks.clone(),
        }
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

async fn accept_loop(
    listener: UnixListener,
    incoming: mpsc::Sender<Incoming>,
    events: broadcast::Sender<PodEvent>,
    in_flight: InFlight,
    verifier: Arc<Verifier>,
    asks: PendingAsks,
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
                    asks.clone(),
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
    asks: PendingAsks,
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
                    asks: &asks,
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
    asks: &'a PendingAsks,
}

async fn handle_line(line: &[u8], connection: &Connection<'_>, answers: Owed) {
    let Connection {
        incoming,
        events,
        out,
        verifier,
        peer,
        asks,
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
    if let Call::Approve(answer) = call {
        // Only the parent the pod asked may answer, so nobody else can approve its tool calls.
        let result = match (
            &client,
            verifier.check(&client, &Call::Approve(answer.clone()), peer),
        ) {
            (ClientInfo::ParentPod { .. }, None) => asks
                .resolve(answer)
                .map(|()| serde_json::json!({"answered": true}))
                .map_err(|why| ReplyError::new("not_waiting", why)),
            (ClientInfo::ParentPod { .. }, Some(doubt)) => Err(ReplyError::new(
                "forbidden",
                format!("only this pod's parent may answer its asks: {}", doubt.why),
            )),
            (other, _) => Err(ReplyError::new(
                "forbidden",
                format!(
                    "only this pod's parent may answer its asks, and the client is {}",
                    other.describe()
                ),
            )),
        };
        send_line(out, &WireReply::from_result(id, result), answers).await;
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

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
