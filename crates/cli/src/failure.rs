//! Exit codes and the one place errors are rendered for people.

use std::error::Error;
use std::process::ExitCode;

/// The process exit codes of `pods` (see `pods --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The run (or replayed stream) failed.
    RunFailed = 1,
    /// Bad usage or configuration.
    Usage = 2,
    /// Interrupted by the user (Ctrl-C) or a signal.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A command that could not do its job: an error with its cause chain, an optional hint, and the
/// exit code to end with.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: Box<dyn Error + Send + Sync + 'static>,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Failure {
            exit,
            error: error.into(),
            hint: None,
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Failure::new(Exit::Usage, error)
    }

    /// A failed run (exit 1).
    pub fn run_failed(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Failure::new(Exit::RunFailed, error)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Print `error: …`, one `Caused by: …` per source, then `hint: …`; return the exit code.
    pub fn report(self) -> ExitCode {
        let mut text = format!("error: {}\n", self.error);
        let mut source = self.error.source();
        while let Some(cause) = source {
            text.push_str(&format!("  Caused by: {cause}\n"));
            source = cause.source();
        }
        if let Some(hint) = &self.hint {
            text.push_str(&format!("hint: {hint}\n"));
        }
        out::stderr(&text);
        self.exit.into()
    }
}

/// What every command returns.
pub type CmdResult = Result<Exit, Failure>;

/// An error and its causes on one line (`outer: cause: root cause`), for tables and JSON.
pub use pod_core::error_chain as error_text;

/// Writes for people on stdout and stderr that never panic. Once a write to a stream fails (its
/// reader went away, e.g. `pods run … | head`), that stream takes no more writes for the rest of
/// the process; the command goes on to a clean end. A closed stdout is mentioned on stderr.
pub mod out {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
    static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

    /// Write `text` to stdout and flush; `false` once stdout is closed.
    pub fn stdout(text: &str) -> bool {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return false;
        }
        let written = {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
        match written {
            Ok(()) => true,
            Err(error) => {
                if !STDOUT_CLOSED.swap(true, Ordering::Relaxed) {
                    stderr(&format!(
                        "note: stdout is closed ({error}); nothing more is written to it (the session log keeps the run's text)\n"
                    ));
                }
                false
            }
        }
    }

    /// Write `text` to stderr and flush; `false` once stderr is closed.
    pub fn stderr(text: &str) -> bool {
        if STDERR_CLOSED.load(Ordering::Relaxed) {
            return false;
        }
        let written = {
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes()).and_then(|()| err.flush())
        };
        match written {
            Ok(()) => true,
            Err(error) => {
                if !STDERR_CLOSED.swap(true, Ordering::Relaxed) {
                    tracing::debug!(%error, "stderr is closed; nothing more is written to it");
                }
                false
            }
        }
    }
}
