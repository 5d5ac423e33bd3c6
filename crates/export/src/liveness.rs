//! Is the process that owns a segment still alive?
//!
//! Checked through `/proc` rather than `kill(pid, 0)`: `/proc/<pid>/stat` also gives the
//! process state (a zombie is dead) and its start time, which guards against pid reuse — a
//! process that started after the segment was opened cannot be its owner. No `unsafe` needed.
//! Where `/proc` is not available the answer is [`Liveness::Unknown`], stated as such.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// Gone, with the evidence.
    Gone(String),
    Unknown(String),
}

/// A process that started this long after the segment's first entry is not its owner.
const REUSE_SLACK: Duration = Duration::from_secs(2);

/// Liveness of `pid` as the owner of a segment that started at `segment_started` (RFC 3339).
pub(crate) fn owner_liveness(pid: u32, segment_started: Option<&str>) -> Liveness {
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
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return Liveness::Gone(format!("process {pid} has exited (zombie)"));
    }
    let Some(started) = pod_core::home::process_started(pid) else {
        return Liveness::Alive;
    };
    let segment = segment_started.and_then(|ts| humantime::parse_rfc3339_weak(ts).ok());
    match segment {
        Some(segment) if started > segment + REUSE_SLACK => Liveness::Gone(format!(
            "pid {pid} now belongs to a process started after the segment (pid reused)"
        )),
        _ => Liveness::Alive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn this_process_is_alive_as_owner_of_a_segment_started_now() {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        assert_eq!(
            owner_liveness(std::process::id(), Some(&now)),
            Liveness::Alive
        );
    }

    #[test]
    fn a_process_started_after_the_segment_is_not_its_owner() {
        let long_ago = "2001-01-01T00:00:00.000Z";
        assert!(matches!(
            owner_liveness(std::process::id(), Some(long_ago)),
            Liveness::Gone(reason) if reason.contains("reused")
        ));
    }

    #[test]
    fn an_exited_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(matches!(owner_liveness(pid, None), Liveness::Gone(_)));
    }

    #[test]
    fn a_zombie_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: wait until it is a zombie.
        for _ in 0..200 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if stat.contains(") Z") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(owner_liveness(pid, None), Liveness::Gone(r) if r.contains("zombie")));
        child.wait().unwrap();
    }
}
