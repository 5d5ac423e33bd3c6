//! The signals that end a hosted pod.

/// SIGTERM, SIGINT and SIGHUP (the terminal closed, the SSH session was lost) as a stream of
/// names. Each ends the pod the same way: a `shutdown` action with origin `signal`. A SIGHUP
/// this process was started ignoring (`nohup pods run …`) stays ignored.
pub(super) struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(super) fn new(enabled: bool) -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind| {
            if !enabled {
                return None;
            }
            match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::warn!(%error, ?kind, "cannot listen for a signal");
                    None
                }
            }
        };
        Signals {
            term: listen(SignalKind::terminate()),
            int: listen(SignalKind::interrupt()),
            hup: if ignored_from_start(SIGHUP) {
                None
            } else {
                listen(SignalKind::hangup())
            },
        }
    }

    pub(super) async fn next(&mut self) -> Option<&'static str> {
        async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match stream {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            Some(()) = recv(&mut self.term) => Some("SIGTERM"),
            Some(()) = recv(&mut self.int) => Some("SIGINT"),
            Some(()) = recv(&mut self.hup) => Some("SIGHUP"),
        }
    }
}

/// Signal number of SIGHUP.
const SIGHUP: u32 = 1;

/// Whether this process ignores signal `number` (its `SigIgn` mask in `/proc/self/status`),
/// as it does when started by `nohup`. Read before any handler is installed for it.
fn ignored_from_start(number: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| number >= 1 && mask & (1u64 << (number - 1)) != 0)
}
