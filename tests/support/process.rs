//! `pods` processes in the background, guarded so that a failing test leaves nothing running,
//! and the polling and signals tests drive them with.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::Sandbox;

/// A `pods` process started in the background. It is killed and reaped when dropped.
pub struct Background {
    child: Option<Child>,
    /// Where its stdout and stderr go, when they go to files in the sandbox.
    out: Option<PathBuf>,
    err: Option<PathBuf>,
}

impl Background {
    /// Guard a process started with whatever pipes the test gave it.
    pub fn adopt(child: Child) -> Background {
        Background {
            child: Some(child),
            out: None,
            err: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process not dropped").id()
    }

    /// Wait for the process to end and return its exit code. After `limit` (a safety deadline,
    /// not a timing assertion) the process is killed and the test fails.
    #[track_caller]
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        self.wait_status(limit).code()
    }

    /// Wait for the process to end, as [`Background::wait`], and return what it did.
    #[track_caller]
    pub fn finish(&mut self, limit: Duration) -> Output {
        let status = self.wait_status(limit);
        Output {
            status,
            stdout: read_or_empty(&self.out),
            stderr: read_or_empty(&self.err),
        }
    }

    /// What the process wrote so far, rendered for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&read_or_empty(&self.out)),
            String::from_utf8_lossy(&read_or_empty(&self.err))
        )
    }

    #[track_caller]
    fn wait_status(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("process not dropped");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pods did not end within {limit:?}\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_or_empty(path: &Option<PathBuf>) -> Vec<u8> {
    path.as_ref()
        .and_then(|path| std::fs::read(path).ok())
        .unwrap_or_default()
}

impl Drop for Background {
    fn drop(&mut self) {
        // A child already waited on is not killed again: its pid may be another process's now.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sandbox {
    /// Start `pods ARGS…` in the background; `tag` names its output files.
    pub fn spawn(&self, args: &[&str], tag: &str) -> Background {
        self.spawn_command(self.pods(), args, tag)
    }

    /// Start `cmd ARGS…` (a `pods` command) in the background; `tag` names its output files.
    pub fn spawn_command(&self, mut cmd: Command, args: &[&str], tag: &str) -> Background {
        let out = self.root().join(format!("{tag}.out"));
        let err = self.root().join(format!("{tag}.err"));
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("create stdout file"))
            .stderr(std::fs::File::create(&err).expect("create stderr file"))
            .spawn()
            .expect("spawn pods");
        Background {
            child: Some(child),
            out: Some(out),
            err: Some(err),
        }
    }

    /// Run `pods ARGS…` to its end, failing (and killing it) if it takes longer than `limit`.
    #[track_caller]
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Output {
        let tag = format!("run-{}", RUNS.fetch_add(1, Ordering::Relaxed));
        self.spawn(args, &tag).finish(limit)
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Poll `probe` until it gives a value. `limit` is a safety deadline, not a timing assertion:
/// past it the test fails naming `what` it waited for.
#[track_caller]
pub fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Send `sig` (as `kill` spells it: `-TERM`, `-9`, …) to process `pid`, which must exist.
#[track_caller]
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Whether process `pid` exists and has not ended: a zombie (ended, not yet reaped by whoever
/// inherited it) counts as ended.
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}
