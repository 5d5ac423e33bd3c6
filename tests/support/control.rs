//! A running pod's control socket, and waiting for the moment its run streams.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::logs::{entries_so_far, of_kind};
use crate::support::process::wait_until;

/// Send one request on the control socket of the pod in `dir` and read its reply.
#[track_caller]
pub fn control_request(dir: &Path, request: Value) -> Value {
    let mut stream = UnixStream::connect(dir.join("control.sock")).expect("connect control.sock");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    writeln!(stream, "{request}").expect("send request");
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("read reply");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?}: {e}"))
}

/// Wait until the pod in `dir` streams: its provider request started and its socket is up.
#[track_caller]
pub fn wait_streaming(dir: &Path) {
    wait_until("a streaming run", Duration::from_secs(15), || {
        let entries = entries_so_far(dir);
        let started = !of_kind(&entries, "provider_request_started").is_empty();
        (started && dir.join("control.sock").exists()).then_some(())
    });
    // The events before the pause arrive at once; give them a moment to be consumed.
    std::thread::sleep(Duration::from_millis(300));
}
