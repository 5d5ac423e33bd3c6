//! Is a pod's process still alive? The one answer `ls`, `show`, `rm`, `prune`, the host and the
//! export share.
//!
//! Checked through `/proc` rather than `kill(pid, 0)`: `/proc/<pid>/stat` also gives the
//! process state (a zombie is dead) and its start time, which guards against pid reuse — a
//! process that started after the pod's records were written cannot be the pod's process.
//! Where `/proc` is not available the answer is [`Liveness::Unknown`], stated as such.

use std::time::{Duration, SystemTime};

use pod_protocol::record::{PodInfo, PodState};

use crate::layout::PodDir;

/// Whether a process is alive, with the evidence when it is not or cannot be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Gone, with the evidence.
    Gone(String),
    Unknown(String),
}

/// A process that started this long after the records it is checked against is not their
/// owner (clocks and file times are coarse).
const REUSE_SLACK: Duration = Duration::from_secs(2);

/// Liveness of `pid` as the owner of records written since `since` (a segment's first entry,
/// a log's last write): a live process that started later only reuses the pid. With `since`
/// unknown, any live process with the pid counts.
pub fn owner_liveness(pid: u32, since: Option<SystemTime>) -> Liveness {
    if std::fs::metadata("/proc/self/stat").is_err() {
        return Liveness::Unknown("/proc is not available to check the owner process".into());
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return Liveness::Gone(format!("no process with pid {pid} exists")),
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Liveness::Unknown(format!("unreadable /proc/{pid}/stat"));
    };
    if matches!(rest.split_whitespace().next(), Some("Z" | "X")) {
        return Liveness::Gone(format!("process {pid} has exited (zombie)"));
    }
    match (process_started(pid), since) {
        (Some(started), Some(since)) if started > since + REUSE_SLACK => Liveness::Gone(format!(
            "pid {pid} now belongs to a process started after the pod's records (pid reused)"
        )),
        _ => Liveness::Alive,
    }
}

/// Whether process `pid` exists and is not a zombie, whoever it is. Where `/proc` cannot tell,
/// it counts as alive: a pod that may be running is never treated as gone.
pub fn process_alive(pid: u32) -> bool {
    !matches!(owner_liveness(pid, None), Liveness::Gone(_))
}

/// When process `pid` started, from `/proc/<pid>/stat` (field 22, in clock ticks since boot);
/// `None` when `/proc` does not say.
pub fn process_started(pid: u32) -> Option<SystemTime> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(boot)
            + Duration::from_millis(ticks * 1000 / USER_HZ),
    )
}

/// A pod `pods run` created less than this long ago and that has no process yet is being set
/// up; it counts as running.
const STARTING_GRACE: Duration = Duration::from_secs(60);

/// Whether a pod's process may still use its directory. `Running`, `Idle` and `Created` pods
/// with a pid are live while that pid names a live process that started before the pod's
/// newest session log was last written (a later process only reuses the pid); a `Created` pod
/// without a process is live for a minute after its creation (its launcher is still setting it
/// up). When that cannot be told, the pod counts as live.
pub fn pod_is_live(dir: &PodDir, info: &PodInfo) -> bool {
    state_is_live(dir, Some(info.state), info.pid, Some(&info.created))
}

/// [`pod_is_live`] for what a lenient read of `pod.json` found: an unknown state may be live.
pub fn state_is_live(
    dir: &PodDir,
    state: Option<PodState>,
    pid: Option<u32>,
    created: Option<&str>,
) -> bool {
    match (state, pid) {
        (Some(PodState::Running | PodState::Idle | PodState::Created) | None, Some(pid)) => {
            !matches!(owner_liveness(pid, last_written(dir)), Liveness::Gone(_))
        }
        (Some(PodState::Created) | None, None) => created
            .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
            .and_then(|created| created.elapsed().ok())
            .is_none_or(|age| age < STARTING_GRACE),
        (Some(PodState::Running | PodState::Idle), None) => false,
        (Some(PodState::Stopped | PodState::Failed), _) => false,
    }
}

/// When the pod's newest session log was last written; `None` when it has none.
fn last_written(dir: &PodDir) -> Option<SystemTime> {
    dir.segments()
        .ok()
        .and_then(|s| s.last().cloned())
        .and_then(|s| std::fs::metadata(&s.log).ok())
        .and_then(|m| m.modified().ok())
}

#[cfg(test)]
#[path = "liveness_tests.rs"]
mod tests;
