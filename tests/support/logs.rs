//! A pod's session logs (one segment per start or resume) and trace sidecars, read back.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::home::sorted_entries;

/// The files in `pod`'s `sessions` directory whose names `keep` accepts, sorted (segments are
/// named so that the oldest sorts first); none while the directory does not exist.
fn session_files(pod: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    sorted_entries(&pod.join("sessions"))
        .into_iter()
        .filter(|p| keep(&p.to_string_lossy()))
        .collect()
}

/// `pod`'s session log segments, oldest first (none before the pod wrote any).
pub fn session_logs(pod: &Path) -> Vec<PathBuf> {
    session_files(pod, |name| {
        name.ends_with(".jsonl") && !name.ends_with(".trace.jsonl")
    })
}

/// `pod`'s trace sidecars, oldest first.
pub fn trace_logs(pod: &Path) -> Vec<PathBuf> {
    session_files(pod, |name| name.ends_with(".trace.jsonl"))
}

/// `pod`'s one session log segment; the test fails if there is not exactly one.
#[track_caller]
pub fn only_segment(pod: &Path) -> PathBuf {
    let logs = session_logs(pod);
    assert_eq!(logs.len(), 1, "one session log segment: {logs:?}");
    logs.into_iter().next().expect("one segment")
}

/// `pod`'s one trace sidecar; the test fails if there is not exactly one.
#[track_caller]
pub fn only_trace(pod: &Path) -> PathBuf {
    let traces = trace_logs(pod);
    assert_eq!(traces.len(), 1, "one trace sidecar: {traces:?}");
    traces.into_iter().next().expect("one trace")
}

/// Every entry of every session log segment of `pod`, oldest first. The pod must have its
/// `sessions` directory; a line still being written (not JSON yet) is skipped.
#[track_caller]
pub fn log_entries(pod: &Path) -> Vec<Value> {
    let sessions = pod.join("sessions");
    assert!(sessions.is_dir(), "{} is missing", sessions.display());
    entries_so_far(pod)
}

/// [`log_entries`] of a pod that may still be starting: none before it wrote any.
pub fn entries_so_far(pod: &Path) -> Vec<Value> {
    session_logs(pod)
        .iter()
        .flat_map(|log| read_json_lines(log))
        .collect()
}

/// Every entry of every trace sidecar of `pod`, oldest first.
pub fn trace_entries(pod: &Path) -> Vec<Value> {
    trace_logs(pod)
        .iter()
        .flat_map(|trace| read_json_lines(trace))
        .collect()
}

/// Every JSON line of `path` (unparseable lines are skipped).
pub fn read_json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Every line of `path`, each of which must be JSON.
#[track_caller]
pub fn parse_json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}: {line}", path.display()))
        })
        .collect()
}

/// The entries of `kind`.
pub fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

/// The kind of each entry, in order.
#[track_caller]
pub fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().expect("an entry has a kind"))
        .collect()
}
