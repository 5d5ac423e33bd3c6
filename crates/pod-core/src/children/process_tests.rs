use super::*;

fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-pods");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Whether a process `pid` exists (a zombie counts), asked with signal 0.
fn alive(pid: u32) -> bool {
    signal_target(pid).is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}

#[tokio::test]
async fn ready_line_completes_handshake_and_stdin_close_ends_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A child that announces itself and then waits for its parent to go away.
    let exe = script(
        dir.path(),
        r#"echo "noise before ready"
echo "{\"ready\":{\"pod_id\":\"p1\",\"pid\":$$}}"
cat >/dev/null
echo "parent gone" >&2
exit 3"#,
    );
    let mut child = Launcher::with_exe(exe)
        .launch("p1", dir.path(), Duration::from_secs(5), None)
        .await
        .expect("ready");
    assert!(child.exit_info().is_none());
    child.release();
    let info = child.wait().await;
    assert_eq!(info.code, Some(3));
    settle_tail().await;
    assert!(child.stderr_tail().contains("parent gone"));
}

#[tokio::test]
async fn child_that_never_becomes_ready_is_killed_and_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = script(
        dir.path(),
        r#"echo "loading something slow" >&2
echo $$ > "$3/pid"
exec sleep 30"#,
    );
    let started = std::time::Instant::now();
    let err = Launcher::with_exe(exe)
        .launch("p2", dir.path(), Duration::from_millis(300), None)
        .await
        .expect_err("not ready");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err,
            ChildError::NotReady {
                timeout_ms: 300,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("loading something slow"), "{err}");
    let pid: u32 = std::fs::read_to_string(dir.path().join("pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(!alive(pid), "child {pid} still running");
}

/// Whether `pid` is running; a zombie (ended, waiting to be reaped by whoever inherited it)
/// has ended.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Wait (at most a generous safety deadline) for `pid` to end.
async fn ended(pid: u32) -> bool {
    for _ in 0..500 {
        if !running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A background `sleep` the script starts, in the script's process group; its pid goes to
/// `$3/started` (`$3` is the pod directory).
const STARTS_A_PROCESS: &str = "sleep 30 </dev/null >/dev/null 2>&1 &\necho $! > \"$3/started\"";

/// Fail when `pid` outlives the rollback (killing it first, so no test leaves it behind).
async fn assert_gone_after_rollback(pid: u32) {
    let ended_in_time = ended(pid).await;
    if !ended_in_time && let Some(pid) = signal_target(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    assert!(ended_in_time, "process {pid} outlived the rollback");
}

#[tokio::test]
async fn never_ready_child_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = script(
        dir.path(),
        &format!("{STARTS_A_PROCESS}\necho $$ > \"$3/pid\"\nexec sleep 30"),
    );
    let err = Launcher::with_exe(exe)
        .launch("p6", dir.path(), Duration::from_millis(300), None)
        .await
        .expect_err("not ready");
    assert!(matches!(err, ChildError::NotReady { .. }), "{err}");
    assert_gone_after_rollback(read_pid(&dir.path().join("started"))).await;
    assert!(!running(read_pid(&dir.path().join("pid"))));
}

#[tokio::test]
async fn child_that_exits_before_ready_takes_what_it_started_along() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = script(
        dir.path(),
        &format!("{STARTS_A_PROCESS}\necho 'error: bad manifest' >&2\nexit 2"),
    );
    let err = Launcher::with_exe(exe)
        .launch("p7", dir.path(), Duration::from_secs(5), None)
        .await
        .expect_err("exits");
    assert!(matches!(err, ChildError::ExitedBeforeReady { .. }), "{err}");
    assert_gone_after_rollback(read_pid(&dir.path().join("started"))).await;
}

#[tokio::test]
async fn child_that_exits_early_reports_status_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = script(dir.path(), "echo 'error: bad manifest' >&2\nexit 2");
    let err = Launcher::with_exe(exe)
        .launch("p3", dir.path(), Duration::from_secs(5), None)
        .await
        .expect_err("exits");
    let text = err.to_string();
    assert!(matches!(err, ChildError::ExitedBeforeReady { .. }));
    assert!(text.contains("exit code 2"), "{text}");
    assert!(text.contains("error: bad manifest"), "{text}");
}

#[tokio::test]
async fn missing_executable_is_a_launch_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("no-such-pods");
    let err = Launcher::with_exe(&exe)
        .launch("p4", dir.path(), Duration::from_secs(1), None)
        .await
        .expect_err("no exe");
    assert!(matches!(err, ChildError::Launch { .. }));
    assert!(err.to_string().contains("no-such-pods"));
}

#[tokio::test]
async fn kill_reports_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = script(
        dir.path(),
        r#"echo "{\"ready\":{\"pod_id\":\"p5\",\"pid\":$$}}"
exec sleep 30"#,
    );
    let mut child = Launcher::with_exe(exe)
        .launch("p5", dir.path(), Duration::from_secs(5), None)
        .await
        .expect("ready");
    let info = child.kill().await;
    assert_eq!(info.signal, Some(9));
    assert_eq!(info.code, None);
    assert!(!alive(child.pid));
}

#[test]
fn stderr_tail_keeps_only_the_last_bytes_from_a_line_start() {
    let tail = StderrTail::default();
    for i in 0..1000 {
        tail.push(format!("line {i}\n").as_bytes());
    }
    let text = tail.text();
    assert!(text.len() <= STDERR_TAIL_BYTES);
    assert!(text.starts_with("line "), "{text:.20}");
    assert!(text.ends_with("line 999\n"));
}
