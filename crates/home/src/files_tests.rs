#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;

#[test]
fn a_line_over_the_bound_is_consumed_without_being_kept() {
    let text = format!("{}\nshort\ntail", "x".repeat(1000));
    let mut reader = std::io::BufReader::with_capacity(16, text.as_bytes());
    let mut buf = Vec::new();
    let long = read_line_bounded(&mut reader, &mut buf, 100).unwrap_or(None);
    assert_eq!(
        long,
        Some(LineRead {
            bytes: 1001,
            terminated: true,
            oversized: true
        })
    );
    assert!(buf.is_empty());
    let short = read_line_bounded(&mut reader, &mut buf, 100).unwrap_or(None);
    assert_eq!(short.map(|r| r.oversized), Some(false));
    assert_eq!(buf, b"short\n");
    buf.clear();
    let tail = read_line_bounded(&mut reader, &mut buf, 100).unwrap_or(None);
    assert_eq!(tail.map(|r| r.terminated), Some(false));
    assert_eq!(buf, b"tail");
    buf.clear();
    assert_eq!(
        read_line_bounded(&mut reader, &mut buf, 100).unwrap_or(None),
        None
    );
}

#[test]
fn only_regular_files_are_opened() {
    let dir = std::env::temp_dir();
    let text = open_regular(&dir)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(text.contains("a directory, not a regular file"), "{text}");
    let text = open_regular(Path::new("/dev/null"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(text.contains("character device"), "{text}");
}

#[test]
fn a_growing_file_asks_for_writeback_step_by_step_and_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let mut file = WritebackFile::new(File::create(&path).unwrap());
    let chunk: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let steps = 3;
    let chunks = (steps * WRITEBACK_STEP as usize).div_ceil(chunk.len()) + 1;
    for _ in 0..chunks {
        file.write_all(&chunk).unwrap();
    }
    // Asked for each full step as it was passed, and not for the part since.
    let (written, requested) = (file.written, file.requested);
    assert!(file.writeback);
    assert_eq!(written, (chunks * chunk.len()) as u64);
    assert!(requested >= steps as u64 * WRITEBACK_STEP, "{requested}");
    assert!(written - requested < WRITEBACK_STEP);
    file.sync_data().unwrap();
    let back = std::fs::read(&path).unwrap();
    assert_eq!(back.len(), chunks * chunk.len());
    assert!(back.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
}

#[test]
fn a_file_the_kernel_will_not_write_back_early_still_takes_every_byte() {
    // A FIFO refuses `fadvise` (ESPIPE): the file stops asking and goes on writing.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opened for reading and writing, a FIFO's open does not wait for the other end.
    let both = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let mut reader = File::open(&fifo).unwrap();
    let total = WRITEBACK_STEP as usize + 4096;
    let drained = std::thread::spawn(move || {
        let mut got = vec![0u8; total];
        std::io::Read::read_exact(&mut reader, &mut got).map(|()| got)
    });
    let mut file = WritebackFile::new(both);
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    file.write_all(&data).unwrap();
    assert!(!file.writeback, "the refusal stops the requests");
    assert_eq!(file.requested, 0);
    assert_eq!(drained.join().unwrap().unwrap(), data);
}
