//! Child pod processes: launching `pods serve --pod-dir DIR`, the readiness handshake, the
//! stderr tail, rollback before ready, and reaping.
//!
//! Handshake: the child binds its control socket, then prints one line on stdout,
//! `{"ready": {"pod_id": "…", "pid": N}}`. The parent waits for it at most
//! `limits.spawn_ready_timeout_ms`. Until then nothing of the child is registered; on any failure
//! the child's whole process group (the child and anything it started) is killed, the child is
//! reaped, and the error carries the tail of its stderr.
//!
//! Parent death: the parent holds the write end of the child's stdin and never writes to it. When
//! the parent process dies, the child reads EOF and stops itself with a `parent_exit` action
//! ([`watch_parent`]). Children run in their own process group so that a terminal's Ctrl-C
//! reaches only the top pod, which then stops the tree with one recorded action.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pod_protocol::ready::ReadyLine;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{oneshot, watch};

use super::ChildError;
use pod_home::locked;

/// Environment variable that replaces the `pods` executable used to launch children.
pub const CHILD_EXE_ENV: &str = "PODS_CHILD_EXE";

/// The environment variable that carries a W3C trace context into a process.
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

/// Bytes of a child's stderr kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => write!(f, "unknown exit status"),
        }
    }
}

/// Last bytes of a child's stderr, shared with the task that drains it.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut buf = locked(&self.0);
        buf.extend(bytes);
        let excess = buf.len().saturating_sub(STDERR_TAIL_BYTES);
        buf.drain(..excess);
    }

    /// The tail as text, starting at a line boundary when one is in the buffer.
    pub(crate) fn text(&self) -> String {
        let buf = locked(&self.0);
        let bytes: Vec<u8> = buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if bytes.len() >= STDERR_TAIL_BYTES
            && let Some(i) = text.find('\n')
        {
            return text[i + 1..].to_owned();
        }
        text
    }
}

/// Launches child pods.
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
    /// Arguments placed before `serve` (e.g. the parent's `--profile-dir`s).
    global_args: Vec<std::ffi::OsString>,
}

impl Launcher {
    /// The running `pods` executable, or `$PODS_CHILD_EXE` when set.
    pub fn from_env() -> Result<Launcher, ChildError> {
        if let Some(exe) = std::env::var_os(CHILD_EXE_ENV) {
            return Ok(Launcher::with_exe(exe));
        }
        std::env::current_exe()
            .map(Launcher::with_exe)
            .map_err(ChildError::CurrentExe)
    }

    /// A specific executable (benches, tests).
    pub fn with_exe(exe: impl Into<PathBuf>) -> Launcher {
        Launcher {
            exe: exe.into(),
            global_args: Vec::new(),
        }
    }

    /// Pass `args` to every child before the `serve` subcommand.
    pub fn with_global_args<I, S>(mut self, args: I) -> Launcher
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        self.global_args = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Start `EXE serve --pod-dir DIR` for the pod in `pod_dir` and wait until it reports ready.
    /// The child's `TRACEPARENT` is `traceparent` (the W3C trace context its runs are in), or
    /// unset without one, whatever this process has. On failure the process is killed and
    /// reaped before this returns; the pod directory is left to the caller (who created it) to
    /// remove.
    pub async fn launch(
        &self,
        pod_id: &str,
        pod_dir: &Path,
        ready_timeout: Duration,
        traceparent: Option<&str>,
    ) -> Result<ChildProcess, ChildError> {
        let mut command = Command::new(&self.exe);
        match traceparent {
            Some(traceparent) => command.env(TRACEPARENT_ENV, traceparent),
            None => command.env_remove(TRACEPARENT_ENV),
        };
        let mut child = command
            .args(&self.global_args)
            .arg("serve")
            .arg("--pod-dir")
            .arg(pod_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ChildError::Launch {
                pod_id: pod_id.to_owned(),
                exe: self.exe.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let tail = StderrTail::default();
        if let Some(mut stderr) = child.stderr.take() {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stderr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tail.push(&buf[..n]);
                }
            });
        }
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            return Err(rollback(child, pod_id, "stdout not captured", &tail).await);
        };
        let mut lines = BufReader::new(stdout).lines();
        let handshake = tokio::time::timeout(ready_timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(ready) = ReadyLine::parse(&line) {
                    return Some(ready);
                }
                tracing::debug!(pod_id, line = %line, "child stdout before ready");
            }
            None
        })
        .await;
        match handshake {
            Ok(Some(ready)) if ready.pod_id == pod_id => {}
            Ok(Some(ready)) => {
                let what = format!("it announced pod {} instead", ready.pod_id);
                return Err(rollback(child, pod_id, &what, &tail).await);
            }
            Ok(None) => return Err(rollback(child, pod_id, "", &tail).await),
            Err(_) => {
                kill_group(&mut child);
                let _ = child.wait().await;
                settle_tail().await;
                return Err(ChildError::NotReady {
                    pod_id: pod_id.to_owned(),
                    timeout_ms: u64::try_from(ready_timeout.as_millis()).unwrap_or(u64::MAX),
                    stderr_tail: tail.text(),
                });
            }
        }
        // Keep draining stdout so a chatty child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (exit_tx, exit) = watch::channel(None);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        tokio::spawn(reap(child, kill_rx, exit_tx));
        Ok(ChildProcess {
            pod_id: pod_id.to_owned(),
            pid,
            dir: pod_dir.to_owned(),
            stdin,
            exit,
            kill: Some(kill_tx),
            stderr_tail: tail,
        })
    }
}

/// Give the stderr drain a moment to catch the last bytes of a process that just ended.
async fn settle_tail() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// SIGKILL the process group `child` leads (it was started with `process_group(0)`), so that
/// processes it started go with it, then the child itself. A stopped (SIGSTOPped) process is
/// killed too. `child` must not have been reaped yet: its pid is then still taken, so the group
/// id cannot belong to anyone else.
fn kill_group(child: &mut Child) {
    if let Some(group) = child.id().and_then(signal_target)
        && let Err(error) =
            rustix::process::kill_process_group(group, rustix::process::Signal::KILL)
    {
        // ESRCH: the group is already empty.
        tracing::debug!(pid = group.as_raw_nonzero().get(), %error, "kill of the child's process group failed");
    }
    let _ = child.start_kill();
}

/// `pid` as the target of a signal; `None` for 0, which would mean the caller's own group.
fn signal_target(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

async fn rollback(mut child: Child, pod_id: &str, what: &str, tail: &StderrTail) -> ChildError {
    kill_group(&mut child);
    let status = child.wait().await;
    settle_tail().await;
    let status = match status {
        Ok(status) => exit_info(status).to_string(),
        Err(e) => format!("status unknown: {e}"),
    };
    let status = if what.is_empty() {
        status
    } else {
        format!("{what}; {status}")
    };
    ChildError::ExitedBeforeReady {
        pod_id: pod_id.to_owned(),
        status,
        stderr_tail: tail.text(),
    }
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}

async fn reap(
    mut child: Child,
    kill: oneshot::Receiver<()>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = kill => {
            kill_group(&mut child);
            child.wait().await
        }
    };
    let info = match status {
        Ok(status) => exit_info(status),
        Err(error) => {
            tracing::warn!(%error, "waiting for child failed");
            ExitInfo {
                code: None,
                signal: None,
            }
        }
    };
    let _ = exit_tx.send(Some(info));
}

/// A live child pod process. Dropping it closes the child's stdin (the child then stops with a
/// `parent_exit` action) and kills the process if it is still running.
#[derive(Debug)]
pub struct ChildProcess {
    pub pod_id: String,
    pub pid: u32,
    pub dir: PathBuf,
    stdin: Option<ChildStdin>,
    exit: watch::Receiver<Option<ExitInfo>>,
    kill: Option<oneshot::Sender<()>>,
    stderr_tail: StderrTail,
}

impl ChildProcess {
    /// How the process ended, if it has.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Wait for the process to end.
    pub async fn wait(&self) -> ExitInfo {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(info) => info.unwrap_or(ExitInfo {
                code: None,
                signal: None,
            }),
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        }
    }

    /// A receiver that sees the exit (for select loops).
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitInfo>> {
        self.exit.clone()
    }

    /// Close the child's stdin, telling it its parent is gone.
    pub fn release(&mut self) {
        self.stdin.take();
    }

    /// Kill the process and its process group (SIGKILL) and wait for it.
    pub async fn kill(&mut self) -> ExitInfo {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.wait().await
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr_tail.text()
    }
}

/// In a child: resolve when the parent is gone (EOF or error on stdin). Reads on a plain
/// thread: blocking stdin reads never tie up the async runtime.
pub(crate) async fn watch_parent() {
    let (tx, rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 64];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = tx.send(());
        });
    if spawned.is_err() {
        tracing::warn!("cannot watch the parent process; parent exit will not be noticed");
        std::future::pending::<()>().await;
    }
    let _ = rx.await;
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
