//! One MCP server: its process (a process group of its own; stdin and stdout carry the MCP
//! session, stderr goes to a file in the pod directory), the session over it, calls bounded by
//! the call timeout, a restart when it died, and its end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig};
use rmcp::model::{Implementation, JsonObject};
use rmcp::service::{Peer, RunningService, ServiceError};
use rmcp::{RoleClient, ServiceExt};
use tokio::process::Child;
use tokio::sync::Mutex;

use pod_profile::McpServer;

/// How long a server that lost its session gets to report how it ended before it is killed.
const SETTLE: Duration = Duration::from_millis(500);

/// Bytes of the end of a server's stderr file quoted in an error.
const STDERR_TAIL_BYTES: u64 = 600;

pub(super) struct Server {
    name: String,
    config: McpServer,
    /// Its working directory.
    dir: PathBuf,
    stderr_path: PathBuf,
    state: Mutex<Slot>,
    /// Sessions started so far: a failure is charged to the session it happened in.
    starts: AtomicU64,
}

/// The server's session, if it runs.
#[derive(Default)]
struct Slot {
    session: Option<Session>,
    /// Stopped with the pod: never started again.
    stopped: bool,
}

/// A running server process and the MCP session over its stdio.
struct Session {
    service: RunningService<RoleClient, ClientConfig>,
    child: Child,
    number: u64,
}

impl Server {
    /// Start server `name` working in `dir`, its stderr in `pod_dir`; the tools it offers, or
    /// why it did not start.
    pub(super) async fn start(
        name: &str,
        config: &McpServer,
        dir: PathBuf,
        pod_dir: &Path,
    ) -> Result<(Arc<Server>, Vec<rmcp::model::Tool>), String> {
        let server = Server {
            name: name.to_owned(),
            config: config.clone(),
            dir,
            stderr_path: pod_dir.join(format!("mcp-{}.stderr.log", super::plain_name(name))),
            state: Mutex::new(Slot::default()),
            starts: AtomicU64::new(0),
        };
        let (session, tools) = server.connect().await?;
        server.state.lock().await.session = Some(session);
        Ok((Arc::new(server), tools))
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn side_effect(&self) -> pod_profile::SideEffectClass {
        self.config.side_effect
    }

    /// The server's allow-list, when it has one.
    pub(super) fn allowed(&self) -> Option<&[String]> {
        self.config.tools.as_deref()
    }

    /// Call `tool` with `arguments`; the error is a sentence for the model naming the server and
    /// what to check.
    pub(super) async fn call(
        &self,
        tool: &str,
        arguments: JsonObject,
    ) -> Result<CallToolResult, String> {
        let (peer, number) = self.session().await?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = Some(arguments);
        let limit = self.config.call_timeout_ms;
        match tokio::time::timeout(Duration::from_millis(limit), peer.call_tool(params)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ServiceError::McpError(error))) => Err(format!(
                "MCP server `{}` refused the call to `{tool}`: {} (error code {})",
                self.name, error.message, error.code.0
            )),
            Ok(Err(error @ (ServiceError::TransportClosed | ServiceError::TransportSend(_)))) => {
                let ended = self.lost(number).await;
                Err(format!(
                    "MCP server `{}` {ended} during the call to `{tool}` ({error}); the next call to one of its tools starts it again; {}",
                    self.name,
                    self.stderr_hint()
                ))
            }
            Ok(Err(error)) => Err(format!(
                "MCP server `{}` answered the call to `{tool}` with something pods cannot use: {error}",
                self.name
            )),
            Err(_) => Err(format!(
                "MCP server `{}` did not answer the call to `{tool}` within {limit} ms (`mcp.servers.{}.call_timeout_ms`); the call was cancelled and the server left running; {}",
                self.name,
                self.name,
                self.stderr_hint()
            )),
        }
    }

    /// Stop the server for good: close its stdin, wait up to `grace` for it to exit, then kill
    /// what is left of its process group.
    pub(super) async fn stop(&self, grace: Duration) {
        let session = {
            let mut slot = self.state.lock().await;
            slot.stopped = true;
            slot.session.take()
        };
        if let Some(session) = session {
            let ended = session.end(grace).await;
            self.note(&format!("stopped with the pod: it {ended}"));
        }
    }

    /// The running session's peer and number, starting the server again if it ended.
    async fn session(&self) -> Result<(Peer<RoleClient>, u64), String> {
        let mut slot = self.state.lock().await;
        // It died between calls.
        if let Some(session) = slot
            .session
            .take_if(|session| session.service.peer().is_transport_closed())
        {
            let ended = session.end(SETTLE).await;
            self.note(&format!("it {ended}"));
        }
        if slot.stopped {
            return Err(format!(
                "MCP server `{}` was stopped: the pod is ending",
                self.name
            ));
        }
        if let Some(session) = &slot.session {
            return Ok((session.service.peer().clone(), session.number));
        }
        let (session, _) = self.connect().await.map_err(|error| {
            format!(
                "MCP server `{}` could not be started again: {error}",
                self.name
            )
        })?;
        let found = (session.service.peer().clone(), session.number);
        slot.session = Some(session);
        Ok(found)
    }

    /// The session numbered `number` failed: end it (unless that already happened) and say how
    /// the server ended.
    async fn lost(&self, number: u64) -> String {
        let session = self
            .state
            .lock()
            .await
            .session
            .take_if(|session| session.number == number);
        let Some(session) = session else {
            return "ended".into();
        };
        let ended = session.end(SETTLE).await;
        self.note(&format!("it {ended}"));
        ended
    }

    /// Start the process and complete the MCP handshake and the tool list within the startup
    /// timeout; a failure is noted in the stderr file too.
    async fn connect(&self) -> Result<(Session, Vec<rmcp::model::Tool>), String> {
        self.try_connect().await.map_err(|error| {
            self.note(&format!("did not start: {error}"));
            format!("{error}; {}", self.stderr_hint())
        })
    }

    async fn try_connect(&self) -> Result<(Session, Vec<rmcp::model::Tool>), String> {
        let program = super::find_command(&self.config.command, &self.dir).map_err(|problem| {
            format!(
                "{problem} (`mcp.servers.{}.command`); install it or give its path",
                self.name
            )
        })?;
        let stderr = open_append(&self.stderr_path)
            .map_err(|error| format!("cannot open {}: {error}", self.stderr_path.display()))?;
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&self.config.args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(
                self.config
                    .env
                    .iter()
                    .filter_map(|name| std::env::var_os(name).map(|value| (name, value))),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            // Its own group: pods ends it (and what it started), not a terminal's Ctrl-C.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|error| {
            format!(
                "cannot start `{}` in {}: {error}",
                program.display(),
                self.dir.display()
            )
        })?;
        let number = self.starts.fetch_add(1, Ordering::Relaxed) + 1;
        self.note(&format!(
            "started `{}` (pid {})",
            program.display(),
            child.id().unwrap_or_default()
        ));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let ended = end_process(child, Duration::ZERO).await;
            return Err(format!("its stdio could not be connected; it {ended}"));
        };
        let handshake = async {
            let client = ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("pods", env!("CARGO_PKG_VERSION")),
            );
            let service = client
                .serve((stdout, stdin))
                .await
                .map_err(|error| error.to_string())?;
            let tools = service
                .peer()
                .list_all_tools()
                .await
                .map_err(|error| error.to_string())?;
            Ok::<_, String>((service, tools))
        };
        let limit = self.config.startup_timeout_ms;
        let failed = match tokio::time::timeout(Duration::from_millis(limit), handshake).await {
            Ok(Ok((service, tools))) => {
                return Ok((
                    Session {
                        service,
                        child,
                        number,
                    },
                    tools,
                ));
            }
            Ok(Err(error)) => {
                let ended = end_process(child, SETTLE).await;
                format!("the MCP handshake failed ({error}); it {ended}")
            }
            Err(_) => {
                let ended = end_process(child, Duration::ZERO).await;
                format!(
                    "the MCP handshake and tool list took longer than {limit} ms (`mcp.servers.{}.startup_timeout_ms`); it {ended}",
                    self.name
                )
            }
        };
        Err(failed)
    }

    /// Append a line of our own to the server's stderr file.
    fn note(&self, text: &str) {
        let line = format!("[pods {}] {text}\n", crate::now_rfc3339());
        if let Err(error) =
            open_append(&self.stderr_path).and_then(|mut file| file.write_all(line.as_bytes()))
        {
            tracing::debug!(%error, path = %self.stderr_path.display(), "cannot note in the MCP stderr file");
        }
    }

    /// Where the server's stderr is, with its last lines.
    fn stderr_hint(&self) -> String {
        let tail = stderr_tail(&self.stderr_path);
        if tail.is_empty() {
            format!("its stderr is in {}", self.stderr_path.display())
        } else {
            format!(
                "its stderr is in {}, ending with:\n{tail}",
                self.stderr_path.display()
            )
        }
    }
}

impl Drop for Server {
    /// The last owner went without [`Server::stop`] (a launch that failed, a panic): no server
    /// process outlives its pod.
    fn drop(&mut self) {
        if let Some(session) = &mut self.state.get_mut().session {
            kill_group(&mut session.child);
        }
    }
}

impl Session {
    /// End the session: close the server's stdin, wait up to `grace` for it to exit, kill what
    /// is left of its group; how it ended.
    async fn end(mut self, grace: Duration) -> String {
        let _ = self.service.close_with_timeout(grace).await;
        end_process(self.child, grace).await
    }
}

/// Wait up to `grace` for `child` to exit, kill what is left of its process group, reap it, and
/// say how it ended.
async fn end_process(mut child: Child, grace: Duration) -> String {
    let exited = exited_within(&child, grace).await;
    kill_group(&mut child);
    match child.wait().await {
        Ok(status) if exited => describe(status),
        Ok(_) => "did not exit and was killed".into(),
        Err(error) => format!("could not be waited for ({error})"),
    }
}

/// Whether `child` exits within `limit`, seen without reaping it: its pid stays taken, so its
/// process group id cannot belong to anyone else when it is signalled afterwards.
async fn exited_within(child: &Child, limit: Duration) -> bool {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let Some(pid) = child.id().and_then(signal_target) else {
        return true;
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match waitid(WaitId::Pid(pid), options) {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILL the process group `child` leads, then `child` itself. `child` must not have been
/// reaped yet (tokio then still reports its id).
fn kill_group(child: &mut Child) {
    if let Some(group) = child.id().and_then(signal_target)
        && let Err(error) =
            rustix::process::kill_process_group(group, rustix::process::Signal::KILL)
    {
        // ESRCH: the group is already empty.
        tracing::debug!(%error, "kill of an MCP server's process group failed");
    }
    let _ = child.start_kill();
}

/// `pid` as the target of a signal; `None` for 0, which would mean our own group.
fn signal_target(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// How a process ended, as the end of a sentence starting "it".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// `path` opened for appending, created private (0600).
fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The last lines of the server's own output in its stderr file (our `[pods …]` lines left
/// out), at most [`STDERR_TAIL_BYTES`].
fn stderr_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(STDERR_TAIL_BYTES * 4);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .skip(usize::from(start > 0))
        .filter(|line| !line.starts_with("[pods ") && !line.trim().is_empty())
        .collect();
    let mut tail = lines.join("\n");
    let limit = STDERR_TAIL_BYTES as usize;
    if tail.len() > limit {
        let mut cut = tail.len() - limit;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    tail
}
