//! Running one command in a process group of its own, reading its output into a bounded
//! buffer, and killing the group: on timeout, once the command has exited, and when the call
//! is dropped unfinished.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use tokio::io::AsyncReadExt;

use super::ToolError;
use super::output::HeadTail;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Exited(i32),
    Signalled(i32),
    /// Still running at the timeout; its group was killed.
    TimedOut,
}

/// A finished command: how it ended and its output.
pub(super) struct Finished {
    pub(super) ending: Ending,
    /// Rendered, bounded and scrubbed.
    pub(super) output: String,
    /// The length of everything it wrote.
    pub(super) output_bytes: u64,
    /// It exited, but a process that left its group still held the output open at the
    /// deadline: reading stopped there.
    pub(super) held_open: bool,
}

/// The process group of a running command, killed when this is dropped unless it was killed
/// already. The group's id is the command's pid, which is not reused while the command is
/// unreaped: every kill happens before it is reaped.
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            // Fails only when no process of the group is left.
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running command's process group, then its temporary directory: fields drop in order, so
/// the directory is removed once nothing of the command can write to it any more.
struct Running {
    group: ProcessGroup,
    _tmp: tempfile::TempDir,
}

/// Run `command` (stdio and process group set here) for at most `timeout`, keeping at most
/// `output_max` bytes of what it writes to stdout and stderr (one pipe, in the order written).
/// `tmp`, the command's temporary directory, is removed after it.
pub(super) async fn run(
    mut command: tokio::process::Command,
    tmp: tempfile::TempDir,
    timeout: Duration,
    output_max: usize,
) -> Result<Finished, ToolError> {
    let pipe_error = |e: std::io::Error| ToolError(format!("cannot create the output pipe: {e}"));
    let (writer, mut reader) = tokio::net::unix::pipe::pipe().map_err(pipe_error)?;
    let writer = writer.into_blocking_fd().map_err(pipe_error)?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(pipe_error)?)
        .stderr(writer)
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| ToolError(format!("cannot start the command: {e}")))?;
    // The write ends now belong to the command alone, so the pipe ends when its group does.
    drop(command);
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    let mut running = Running {
        group: ProcessGroup(pid),
        _tmp: tmp,
    };
    let mut exited = tokio::task::spawn_blocking(move || wait_without_reaping(pid));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);

    let mut output = HeadTail::new(output_max);
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut eof, mut leader_exited, mut deadline_passed, mut timed_out) =
        (false, false, false, false);
    // The command's output ends when every process holding the pipe has ended; one that left
    // the group (its own session) may hold it past the deadline: reading stops there.
    while !(leader_exited && (eof || deadline_passed)) {
        tokio::select! {
            read = reader.read(&mut chunk), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => output.push(&chunk[..n]),
            },
            _ = &mut exited, if !leader_exited => {
                leader_exited = true;
                // Whatever it left running in the background.
                running.group.kill();
            }
            () = &mut deadline, if !deadline_passed => {
                deadline_passed = true;
                timed_out = !leader_exited;
                running.group.kill();
            }
        }
    }
    // What is already in the pipe, without waiting for more.
    while let Ok(n @ 1..) = reader.try_read(&mut chunk) {
        output.push(&chunk[..n]);
    }
    let status = child
        .wait()
        .await
        .map_err(|e| ToolError(format!("cannot learn how the command ended: {e}")))?;
    let ending = if timed_out {
        Ending::TimedOut
    } else if let Some(code) = status.code() {
        Ending::Exited(code)
    } else {
        Ending::Signalled(status.signal().unwrap_or(0))
    };
    let output_bytes = output.total();
    Ok(Finished {
        ending,
        output: output.render(),
        output_bytes,
        held_open: !eof && !timed_out,
    })
}

/// Block until process `pid` has ended, leaving it to be reaped (so its pid, the group's id,
/// stays taken until the group is killed).
fn wait_without_reaping(pid: Option<Pid>) {
    let Some(pid) = pid else {
        return;
    };
    loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}
