//! The readiness line: what a served pod prints on stdout once its control socket is bound,
//! and what the parent that spawned it waits for (`{"ready":{"pod_id":…,"pid":…}}`).

use serde::{Deserialize, Serialize};

/// The readiness line a served pod prints on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyLine {
    pub ready: Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub pod_id: String,
    pub pid: u32,
}

impl ReadyLine {
    /// The line this process prints for `pod_id`.
    pub fn new(pod_id: &str) -> ReadyLine {
        ReadyLine {
            ready: Ready {
                pod_id: pod_id.to_owned(),
                pid: std::process::id(),
            },
        }
    }

    /// The line as printed, with its newline.
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// What a line of a child's stdout announces, when it is a readiness line.
    pub fn parse(line: &str) -> Option<Ready> {
        serde_json::from_str::<ReadyLine>(line)
            .ok()
            .map(|line| line.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_line_parses_back() {
        let line = ReadyLine::new("p1");
        let text = line.render();
        assert!(text.ends_with('\n'));
        assert_eq!(ReadyLine::parse(text.trim_end()), Some(line.ready));
        assert_eq!(ReadyLine::parse("starting up"), None);
    }
}
