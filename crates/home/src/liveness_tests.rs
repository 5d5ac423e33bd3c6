#![allow(clippy::unwrap_used)]

use super::*;
use crate::layout::PodHome;

fn pod(home: &PodHome, state: PodState, pid: Option<u32>, created: &str) -> (PodDir, PodInfo) {
    let dir = home
        .create_pod(Some("p"), "demo", None)
        .expect("create pod");
    let info = dir
        .update_info(|info| {
            info.state = state;
            info.pid = pid;
            info.created = created.to_owned();
        })
        .expect("write pod.json");
    (dir, info)
}

#[test]
fn a_live_pid_counts_only_when_it_started_before_the_log_was_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = PodHome::at(tmp.path());
    let now = crate::now_rfc3339();
    let me = Some(std::process::id());
    let (dir, info) = pod(&home, PodState::Running, me, &now);
    assert!(
        pod_is_live(&dir, &info),
        "no log yet: this process may own it"
    );
    let log = dir.segment_log_path("01a00000-0000-7000-8000-000000000001");
    std::fs::write(&log, b"").expect("write log");
    assert!(
        pod_is_live(&dir, &info),
        "written now, by a process already running"
    );
    // A log last written long before this process started: the pid was reused.
    let file = std::fs::File::options()
        .write(true)
        .open(&log)
        .expect("open");
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000))
        .expect("set mtime");
    assert!(!pod_is_live(&dir, &info));
    let (stopped, info) = pod(&home, PodState::Stopped, me, &now);
    assert!(!pod_is_live(&stopped, &info));
}

#[test]
fn a_created_pod_without_a_process_is_live_only_while_it_is_being_set_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = PodHome::at(tmp.path());
    let (fresh, info) = pod(&home, PodState::Created, None, &crate::now_rfc3339());
    assert!(pod_is_live(&fresh, &info));
    let (old, info) = pod(&home, PodState::Created, None, "2020-01-01T00:00:00.000Z");
    assert!(!pod_is_live(&old, &info));
    let (unknown, info) = pod(&home, PodState::Created, None, "not a time");
    assert!(pod_is_live(&unknown, &info), "an unknown age is not old");
}

#[test]
fn this_process_is_alive_as_owner_of_records_written_now() {
    let now = std::time::SystemTime::now();
    assert_eq!(
        owner_liveness(std::process::id(), Some(now)),
        Liveness::Alive
    );
    assert!(process_alive(std::process::id()));
}

#[test]
fn a_process_started_after_the_records_is_not_their_owner() {
    let long_ago = humantime::parse_rfc3339("2001-01-01T00:00:00Z").unwrap();
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
    assert!(!process_alive(pid));
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
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(matches!(owner_liveness(pid, None), Liveness::Gone(r) if r.contains("zombie")));
    child.wait().unwrap();
}
