//! Announcing readiness: the line (`pod_protocol::ready`) on stdout, flushed, so the parent
//! that spawned this pod reads it as soon as it is written.

use std::io::Write;

use pod_protocol::ready::ReadyLine;

/// Print `line` on stdout, flushed.
pub(super) fn announce(line: &ReadyLine) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.render().as_bytes())?;
    stdout.flush()
}
