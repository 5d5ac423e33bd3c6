//! What a run's records add up to, as `ls`, `show`, the export and `run --json` report it: token
//! usage summed over its requests, and why its model stopped, in words.

use serde::{Deserialize, Serialize};

use crate::event::{StopReason, Usage};

/// Token usage summed over a run's model requests. Input counts the whole prompt, cached input
/// included, on every scheme. A field is `None` when no request of the run reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// Model requests whose end was recorded (`provider_request_finished`).
    pub requests_recorded: u64,
    /// Of those, the requests that reported any usage.
    pub requests_with_usage: u64,
}

impl UsageTotals {
    /// Add one request's end.
    pub fn add(&mut self, usage: Option<&Usage>) {
        self.requests_recorded += 1;
        let Some(usage) = usage else {
            return;
        };
        self.requests_with_usage += 1;
        let sum = |total: &mut Option<u64>, value: Option<u64>| {
            if let Some(value) = value {
                *total = Some(total.unwrap_or(0).saturating_add(value));
            }
        };
        sum(&mut self.input_tokens, usage.input_tokens);
        sum(&mut self.output_tokens, usage.output_tokens);
        sum(&mut self.cached_input_tokens, usage.cached_input_tokens);
        sum(&mut self.reasoning_tokens, usage.reasoning_tokens);
    }

    /// One line for people, e.g. `input 326 tokens (314 cached), output 12, reasoning 0 over 1
    /// request`; unknown fields say `unknown`.
    pub fn describe(&self) -> String {
        if self.requests_with_usage == 0 {
            return format!(
                "not reported by the provider ({} request(s))",
                self.requests_recorded
            );
        }
        let n = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
        let mut text = format!(
            "input {} tokens ({} cached), output {}, reasoning {}, over {} request(s)",
            n(self.input_tokens),
            n(self.cached_input_tokens),
            n(self.output_tokens),
            n(self.reasoning_tokens),
            self.requests_recorded
        );
        let silent = self.requests_recorded - self.requests_with_usage;
        if silent > 0 {
            text.push_str(&format!("; {silent} reported no usage"));
        }
        text
    }
}

/// Why a run's model stopped, as presented: the normalized reason, whether the answer is cut
/// short, and a plain statement. `reason` is `unknown` when the log does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopFacts {
    /// `end_turn`, `tool_calls`, `max_tokens`, `refusal`, `content_filter`, `incomplete`,
    /// `other`, or `unknown`.
    pub stop_reason: String,
    /// The provider's own wording, for `incomplete` and `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_raw: Option<String>,
    /// `true` when the answer is not a clean finish; `None` when unknown.
    pub truncated: Option<bool>,
    pub stop_statement: String,
}

impl StopFacts {
    pub fn of(reason: Option<&StopReason>) -> StopFacts {
        match reason {
            Some(reason) => StopFacts {
                stop_reason: reason.name().to_owned(),
                stop_raw: match reason {
                    StopReason::Incomplete { raw } | StopReason::Other { raw } => Some(raw.clone()),
                    _ => None,
                },
                truncated: Some(reason.is_truncated()),
                stop_statement: reason.statement(),
            },
            None => StopFacts {
                stop_reason: "unknown".to_owned(),
                stop_raw: None,
                truncated: None,
                stop_statement: "the log does not record why the model stopped (written before stop reasons were recorded)".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_totals_sum_what_was_reported_and_count_what_was_not() {
        let mut totals = UsageTotals::default();
        totals.add(Some(&Usage {
            input_tokens: Some(100),
            output_tokens: Some(10),
            cached_input_tokens: Some(80),
            reasoning_tokens: None,
        }));
        totals.add(None);
        totals.add(Some(&Usage {
            input_tokens: Some(26),
            output_tokens: Some(2),
            cached_input_tokens: None,
            reasoning_tokens: None,
        }));
        assert_eq!(totals.input_tokens, Some(126));
        assert_eq!(totals.cached_input_tokens, Some(80));
        assert_eq!(
            totals.reasoning_tokens, None,
            "never reported: unknown, not 0"
        );
        assert_eq!(totals.requests_recorded, 3);
        assert_eq!(totals.requests_with_usage, 2);
        assert!(
            totals.describe().ends_with("; 1 reported no usage"),
            "{}",
            totals.describe()
        );
    }
}
