//! The client side of the control socket, for the CLI and for parent pods: requests matched to
//! their replies by id, subscribed events on their own queue, and stopping a pod.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::location::locate_socket;
use super::wire::{ActionParams, Call, ClientInfo, PodEvent, WireReply, WireRequest};
use crate::children::ChildError;
use crate::lifecycle::new_id;
use crate::record::{LifecycleAction, LifecycleKind};
use pod_home::locked;

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
        locked(&self.pending).insert(request_id.to_owned(), tx);
        let mut line = serde_json::to_string(&request).map_err(|e| ChildError::Protocol {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        let sent = self.write.lock().await.write_all(line.as_bytes()).await;
        if let Err(source) = sent {
            locked(&self.pending).remove(request_id);
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
                let waiter = reply.id.as_ref().and_then(|id| locked(&pending).remove(id));
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
    locked(&pending).clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{CONTROL_SOCKET, cli_client};

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
        let err = ControlClient::connect(dir.path(), cli_client())
            .await
            .err()
            .expect("no socket");
        assert!(matches!(err, ChildError::NotRunning { .. }));
        assert!(err.to_string().contains("control.sock"), "{err}");
    }
}
