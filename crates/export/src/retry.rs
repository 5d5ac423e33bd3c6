//! Whether a run is safe to run again, judged from its phase: the side-effect classes of the
//! tool calls it started, and whether the user saw (or may have seen) its output.

use pod_protocol::record::SideEffectClass;

use crate::document::{PhaseDoc, RetrySafety, RetryVerdict};

/// What a retry of the run would repeat: a side effect on this machine (a write, a process, a
/// child) or of unknown kind is unsafe to repeat; a network side effect, or output the user may
/// have seen, makes it the user's call; otherwise it is safe.
pub(crate) fn retry_safety(phase: &PhaseDoc) -> RetrySafety {
    let read_only = SideEffectClass::ReadOnly.as_str();
    let network = SideEffectClass::Network.as_str();
    if let Some(effects) = &phase.side_effects_started {
        let writes: Vec<&str> = effects
            .iter()
            .map(String::as_str)
            .filter(|c| *c != read_only && *c != network)
            .collect();
        if !writes.is_empty() {
            let verdict = RetryVerdict::Unsafe;
            let named = writes.join(" and ");
            let article = if named.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            let reason =
                format!("{article} {named} side effect started; repeating the run would repeat it");
            return RetrySafety { verdict, reason };
        }
    }
    let ask = |reason: &str| RetrySafety {
        verdict: RetryVerdict::AskUser,
        reason: reason.to_owned(),
    };
    if phase
        .side_effects_started
        .as_ref()
        .is_some_and(|effects| effects.iter().any(|c| c == network))
    {
        return ask(
            "a network side effect started; whether repeating it is harmless depends on what it reached",
        );
    }
    match phase.visible_output_seen {
        Some(true) => return ask("visible output was already shown to the user"),
        None if phase.source == "recorded" => {
            return ask("the terminal entry does not record whether visible output was shown");
        }
        None => {
            return ask(
                "output may have been shown: a provider stream was open when the run ended and \
                 the log does not say what it showed",
            );
        }
        Some(false) => {}
    }
    let Some(effects) = &phase.side_effects_started else {
        return ask("the log does not record which side effects started");
    };
    let reason = if effects.is_empty() {
        "nothing had started: no visible output and no tool side effects"
    } else {
        "only read_only tools ran and no visible output was shown"
    };
    RetrySafety {
        verdict: RetryVerdict::Safe,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
