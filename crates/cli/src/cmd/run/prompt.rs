//! The prompt of a run: given as an argument or read from stdin.

use crate::failure::Failure;

/// The most prompt text read from stdin.
const STDIN_PROMPT_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The prompt piped on stdin, all of it.
pub(super) fn read_stdin_prompt() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(STDIN_PROMPT_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::usage(format!("cannot read the prompt from stdin: {e}")))?;
    if bytes.len() as u64 > STDIN_PROMPT_MAX_BYTES {
        return Err(Failure::usage(format!(
            "the prompt on stdin is longer than {} MiB",
            STDIN_PROMPT_MAX_BYTES / (1024 * 1024)
        ))
        .with_hint(
            "put the material in a file in the working directory and ask the pod to read it",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| Failure::usage(format!("the prompt on stdin is not UTF-8 text: {e}")))
}

/// Refuse a prompt with nothing to ask.
pub(super) fn check_prompt(prompt: &str) -> Result<(), Failure> {
    if prompt.trim().is_empty() {
        return Err(Failure::usage("the prompt is empty")
            .with_hint("say what the pod should do, as an argument or on stdin"));
    }
    Ok(())
}
