//! The terminal presentation of a foreground run: the model's text on stdout, a spinner, tool
//! calls and retries on stderr.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use pod_core::RunObserver;
use pod_core::record::{SideEffectClass, ToolOutcome};
use pod_provider::ProviderError;

use crate::failure::out;

/// Streams text to stdout; spinner, tool calls and retries to stderr. Writes go through
/// [`out`], so a closed stdout or stderr never stops the run.
///
/// Text is gathered and written once per network read (when the stream says the read is
/// drained), not once per delta: it still appears as it arrives, at a write per read. Whatever
/// is gathered goes out before anything is written to stderr, so the two stay in order.
pub(super) struct Terminal {
    /// Text not yet written to stdout.
    text: std::sync::Mutex<String>,
    waiting: Arc<AtomicBool>,
    spinner: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// No spinner thread is left to join.
    spinner_joined: AtomicBool,
    wrote_text: AtomicBool,
    ends_with_newline: AtomicBool,
    saw_reasoning: AtomicBool,
}

impl Terminal {
    pub(super) fn new() -> Terminal {
        Terminal {
            text: std::sync::Mutex::new(String::new()),
            waiting: Arc::new(AtomicBool::new(true)),
            spinner: std::sync::Mutex::new(None),
            spinner_joined: AtomicBool::new(false),
            wrote_text: AtomicBool::new(false),
            ends_with_newline: AtomicBool::new(true),
            saw_reasoning: AtomicBool::new(false),
        }
    }

    /// Show a spinner on a terminal's stderr until the model's first event.
    pub(super) fn start_spinner(&self) {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let waiting = self.waiting.clone();
            std::thread::spawn(move || {
                let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                let mut i = 0;
                while waiting.load(Ordering::Relaxed) {
                    if !out::stderr(&format!(
                        "\r{} waiting for the model…",
                        frames[i % frames.len()]
                    )) {
                        return;
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(80));
                }
                out::stderr("\r\x1b[2K");
            })
        });
        if let Ok(mut slot) = self.spinner.lock() {
            *slot = spinner;
            self.spinner_joined.store(false, Ordering::Relaxed);
        }
    }

    fn stop_spinner(&self) {
        // Called for every delta: once the spinner is stopped and joined, there is nothing to do.
        if !self.waiting.swap(false, Ordering::Relaxed)
            && self.spinner_joined.load(Ordering::Relaxed)
        {
            return;
        }
        if let Ok(mut spinner) = self.spinner.lock()
            && let Some(handle) = spinner.take()
        {
            let _ = handle.join();
        }
        self.spinner_joined.store(true, Ordering::Relaxed);
    }

    /// Whether any reasoning streamed during the run.
    pub(super) fn saw_reasoning(&self) -> bool {
        self.saw_reasoning.load(Ordering::Relaxed)
    }

    /// Write the gathered text to stdout.
    fn flush_text(&self) {
        if let Ok(mut text) = self.text.lock()
            && !text.is_empty()
        {
            // A closed stdout (e.g. `| head`) must not stop the run; the log keeps the text.
            out::stdout(&pod_trace::scrub::scrub(&text));
            text.clear();
        }
    }

    /// End the streamed text with a newline.
    pub(super) fn finish(&self) {
        self.stop_spinner();
        self.flush_text();
        if self.wrote_text.load(Ordering::Relaxed)
            && !self.ends_with_newline.load(Ordering::Relaxed)
        {
            out::stdout("\n");
        }
    }

    /// Stop presenting without waiting for anything (the spinner thread ends by itself).
    pub(super) fn abandon(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    fn break_line(&self) {
        self.flush_text();
        if !self.ends_with_newline.swap(true, Ordering::Relaxed) {
            out::stdout("\n");
        }
    }
}

impl RunObserver for Terminal {
    fn on_first_event(&self) {
        self.stop_spinner();
    }

    fn on_text(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.stop_spinner();
        let gathered = match self.text.lock() {
            Ok(mut gathered) => {
                gathered.push_str(text);
                gathered.len()
            }
            Err(_) => 0,
        };
        self.wrote_text.store(true, Ordering::Relaxed);
        self.ends_with_newline
            .store(text.ends_with('\n'), Ordering::Relaxed);
        // A stream that never reports a drained read still writes in bounded pieces.
        if gathered >= TEXT_FLUSH_BYTES {
            self.flush_text();
        }
    }

    fn on_read_drained(&self) {
        self.flush_text();
    }

    fn on_turn_end(&self, _run_id: &str, _turn: u32) {
        self.flush_text();
    }

    fn on_reasoning(&self, text: &str) {
        if !text.is_empty() {
            self.saw_reasoning.store(true, Ordering::Relaxed);
        }
    }

    fn on_tool_call(
        &self,
        _call_id: &str,
        tool: &str,
        _side_effect: SideEffectClass,
        input: &Value,
    ) {
        self.stop_spinner();
        self.break_line();
        // The arguments as the model sent them: a key it echoes is not printed.
        let input = pod_trace::scrub::scrub(&input.to_string()).into_owned();
        out::stderr(&format!(
            "→ {} {}\n",
            pod_core::printable(tool),
            pod_core::printable(&bounded(&input, 200))
        ));
    }

    fn on_tool_result(
        &self,
        _call_id: &str,
        tool: &str,
        _side_effect: SideEffectClass,
        outcome: ToolOutcome,
        output: &str,
    ) {
        self.flush_text();
        let tool = pod_core::printable(tool);
        let lines = output.lines().count();
        if outcome == ToolOutcome::Ok {
            out::stderr(&format!(
                "← {tool}: ok ({} bytes, {lines} lines)\n",
                output.len()
            ));
        } else {
            let first = output.lines().next().unwrap_or("");
            let first = pod_trace::scrub::scrub(first);
            out::stderr(&format!(
                "← {tool}: error: {}\n",
                pod_core::printable(&bounded(&first, 500))
            ));
        }
    }

    /// The question comes next on stderr: the streamed text ends before it.
    fn on_approval_pending(&self, _call_id: &str, _tool: &str) {
        self.stop_spinner();
        self.break_line();
    }

    fn on_retry(&self, attempt: u32, delay: Duration, cause: &ProviderError) {
        self.flush_text();
        out::stderr(&format!(
            "attempt {attempt} failed ({}); retrying in {} ms\n",
            cause.class,
            delay.as_millis()
        ));
    }
}

/// The most text [`Terminal`] gathers before writing it out, drained read or not: more than one
/// network read decodes to (the client reads at most a few hundred KB at a time).
const TEXT_FLUSH_BYTES: usize = 1 << 20;

/// `text` cut to at most `max` bytes (on a character boundary), with `…` when cut.
fn bounded(text: &str, max: usize) -> String {
    let kept = pod_protocol::text::cut_at_char_boundary(text, max);
    if kept.len() == text.len() {
        return text.to_owned();
    }
    format!("{kept}…")
}
