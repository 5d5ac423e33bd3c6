use super::*;
use crate::record::{RunStarted, RunTrigger, SegmentClosed};

fn run_started(id: &str) -> LogBody {
    LogBody::RunStarted(RunStarted {
        run_id: id.into(),
        trigger: RunTrigger::Cli,
        request_id: None,
        input: "hi".into(),
        traceparent: None,
    })
}

#[test]
fn appends_number_from_one_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.jsonl");
    let log = SessionLog::create(&path).unwrap();
    assert_eq!(log.append(run_started("r1")).unwrap(), 1);
    let shared = log.clone();
    assert_eq!(
        shared
            .append(LogBody::SegmentClosed(SegmentClosed {
                reason: "completed".into()
            }))
            .unwrap(),
        2
    );
    let read = read_segment(&path).unwrap();
    assert!(read.problems.is_empty());
    assert_eq!(read.entries.len(), 2);
    assert_eq!(read.entries[0].body, run_started("r1"));
    assert!(read.entries[0].ts.ends_with('Z') && read.entries[0].ts.len() == 24);
}

#[test]
fn no_line_the_log_writes_holds_a_registered_secret() {
    let secret = "log-secret-0123456789abcdef";
    pod_trace::scrub::register_secret(secret);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.jsonl");
    let log = SessionLog::create(&path).unwrap();
    log.append(run_started(&format!("run {secret}"))).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "{text}");
    let read = read_segment(&path).unwrap();
    assert_eq!(read.entries[0].body, run_started("run [redacted]"));
}

#[test]
fn create_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.jsonl");
    std::fs::write(&path, "old\n").unwrap();
    assert!(SessionLog::create(&path).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
}

#[test]
fn torn_tail_gap_and_garbage_are_reported_and_nothing_before_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.jsonl");
    let log = SessionLog::create(&path).unwrap();
    for i in 0..3 {
        log.append(run_started(&format!("r{i}"))).unwrap();
    }
    let mut text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Drop entry 2 (a gap), add a garbage line, then a torn tail.
    let mut damaged = format!("{}\n{}\nnot json\n", lines[0], lines[2]);
    damaged.push_str(&lines[1][..20]);
    std::fs::write(&path, &damaged).unwrap();
    let read = read_segment(&path).unwrap();
    assert_eq!(
        read.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(
        read.problems[0],
        LogProblem::SeqGap {
            line: 2,
            expected: 2,
            found: 3
        }
    );
    assert!(matches!(
        read.problems[1],
        LogProblem::Unparseable { line: 3, .. }
    ));
    assert_eq!(
        read.problems[2],
        LogProblem::TornTail { line: 4, bytes: 20 }
    );
    text.clear();
}

struct FailAfter {
    ok_writes: usize,
}
impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.ok_writes == 0 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.ok_writes -= 1;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl LogSink for FailAfter {
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_write_failure_is_an_error_and_poisons_the_log() {
    let log = SessionLog::from_sink(
        Path::new("/pods/s.jsonl"),
        Box::new(FailAfter { ok_writes: 1 }),
    );
    assert_eq!(log.append(run_started("r1")).unwrap(), 1);
    let error = log.append(run_started("r2")).unwrap_err();
    assert!(matches!(error, CoreError::LogWrite { .. }));
    assert!(error.to_string().contains("/pods/s.jsonl"), "{error}");
    let poisoned = log.append(run_started("r3")).unwrap_err();
    assert!(matches!(poisoned, CoreError::LogPoisoned { .. }));
    assert!(
        poisoned.to_string().contains("No space left on device"),
        "{poisoned}"
    );
}

#[test]
fn huge_seq_values_from_disk_are_problems_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.jsonl");
    let log = SessionLog::create(&path).unwrap();
    log.append(run_started("r1")).unwrap();
    log.append(run_started("r2")).unwrap();
    log.append(run_started("r3")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let max = u64::MAX.to_string();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => l.replacen("\"seq\":1", &format!("\"seq\":{max}"), 1),
            _ => l.to_owned(),
        })
        .collect();
    std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    let read = read_segment(&path).unwrap();
    assert_eq!(
        read.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![u64::MAX, 2, 3]
    );
    assert_eq!(
        read.problems,
        vec![
            LogProblem::SeqGap {
                line: 1,
                expected: 1,
                found: u64::MAX
            },
            LogProblem::SeqAfterLast { line: 2, found: 2 },
        ]
    );
    assert!(read.problems[1].to_string().contains("largest possible"));
}

#[test]
fn a_fifo_or_device_is_refused_by_the_reader_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let error = LogReader::open(&fifo).err().unwrap();
    let text = crate::error_chain(&error);
    assert!(text.contains("fifo.jsonl"), "{text}");
    assert!(text.contains("named pipe (FIFO)"), "{text}");
    let zero = tmp.path().join("zero.jsonl");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let text = crate::error_chain(&LogReader::open(&zero).err().unwrap());
    assert!(text.contains("character device"), "{text}");
}

#[test]
fn a_full_device_fails_the_append() {
    let Ok(file) = File::options().append(true).open("/dev/full") else {
        return; // not on Linux
    };
    let log = SessionLog::from_sink(Path::new("/dev/full"), Box::new(file));
    let error = log.append(run_started("r1")).unwrap_err();
    assert!(
        matches!(error, CoreError::LogWrite { ref source, .. } if source.raw_os_error() == Some(28)),
        "{error:?}"
    );
}
