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
        eprintln!("error: {}", self.error);
        let mut source = self.error.source();
        while let Some(cause) = source {
            eprintln!("  Caused by: {cause}");
            source = cause.source();
        }
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        self.exit.into()
    }
}

/// What every command returns.
pub type CmdResult = Result<Exit, Failure>;

/// An error and its causes on one line (`outer: cause: root cause`), for tables and JSON.
pub fn error_text(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
