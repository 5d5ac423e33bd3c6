//! How a foreground pod answers the tool calls `[permissions]` says to ask about, its own and
//! those its children forward: `--approve` when given, else the user at the terminal, else
//! nobody (every ask denied, saying why).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use clap::ValueEnum;

use pod_core::approval::{AnswerFuture, ApproveFlag, Approver, Unattended};
use pod_core::control::{ApprovalAnswer, ApprovalAsk};
use pod_core::record::DecisionSource;

/// `--approve`: decide asks without a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApproveArg {
    /// Deny every ask.
    Never,
    /// Allow every ask.
    All,
    /// Allow asks for read-only tools; deny the rest.
    ReadOnly,
}

impl From<ApproveArg> for ApproveFlag {
    fn from(arg: ApproveArg) -> ApproveFlag {
        match arg {
            ApproveArg::Never => ApproveFlag::Never,
            ApproveArg::All => ApproveFlag::All,
            ApproveArg::ReadOnly => ApproveFlag::ReadOnly,
        }
    }
}

/// The approver of a foreground pod: the flag, else a prompt when stdin and stderr are a
/// terminal, else nobody.
pub(super) fn approver(flag: Option<ApproveArg>) -> Arc<dyn Approver> {
    match flag {
        Some(flag) => Arc::new(Unattended {
            flag: Some(flag.into()),
        }),
        None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            Arc::new(TerminalPrompt::default())
        }
        None => Arc::new(Unattended { flag: None }),
    }
}

/// Asks the user on stderr and reads the answer from stdin, one question at a time.
#[derive(Default)]
struct TerminalPrompt {
    turn: tokio::sync::Mutex<()>,
}

/// What the user answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Once,
    ForPod,
    Deny,
}

impl Approver for TerminalPrompt {
    fn decide<'a>(&'a self, ask: &'a ApprovalAsk) -> AnswerFuture<'a> {
        Box::pin(async move {
            let _turn = self.turn.lock().await;
            let question = question(ask);
            let reply = tokio::task::spawn_blocking(move || {
                let stdin = std::io::stdin();
                prompt(&question, &mut stdin.lock(), &mut std::io::stderr())
            })
            .await
            .unwrap_or(Reply::Deny);
            let who = format!(
                "at the terminal of pods run, for pod {}",
                pod_core::printable(&ask.pod_name)
            );
            let (allow, for_pod, detail) = match reply {
                Reply::Once => (true, false, format!("allowed once {who}")),
                Reply::ForPod => (true, true, format!("allowed for the pod {who}")),
                Reply::Deny => (false, false, format!("denied {who}")),
            };
            ApprovalAnswer {
                ask_id: ask.ask_id.clone(),
                allow,
                for_pod,
                source: DecisionSource::User,
                detail,
            }
        })
    }
}

/// The question for `ask`; everything the model chose is escaped for the terminal.
fn question(ask: &ApprovalAsk) -> String {
    format!(
        "\npods: pod {} wants to run {} ({}), because {}:\n  {}\n",
        pod_core::printable(&ask.pod_name),
        pod_core::printable(&ask.tool),
        ask.side_effect.as_str(),
        ask.why,
        pod_core::printable(&ask.input),
    )
}

/// Ask until the answer is understood; the end of input denies.
fn prompt(question: &str, input: &mut dyn BufRead, out: &mut dyn Write) -> Reply {
    let _ = out.write_all(question.as_bytes());
    loop {
        let _ = out.write_all(b"allow once [y], allow for this pod [a], deny [n]: ");
        let _ = out.flush();
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => {
                let _ = out.write_all(b"\n(no answer: denied)\n");
                return Reply::Deny;
            }
            Ok(_) => {}
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => return Reply::Once,
            "a" | "always" => return Reply::ForPod,
            "n" | "no" => return Reply::Deny,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(typed: &str) -> (Reply, String) {
        let mut out = Vec::new();
        let reply = prompt("question?\n", &mut typed.as_bytes(), &mut out);
        (reply, String::from_utf8(out).unwrap_or_default())
    }

    #[test]
    fn answers_are_read_until_understood_and_the_end_of_input_denies() {
        assert_eq!(answer("y\n").0, Reply::Once);
        assert_eq!(answer("A\n").0, Reply::ForPod);
        assert_eq!(answer("no\n").0, Reply::Deny);
        let (reply, shown) = answer("maybe\n\nyes\n");
        assert_eq!(reply, Reply::Once);
        assert_eq!(shown.matches("deny [n]").count(), 3, "{shown}");
        let (reply, shown) = answer("");
        assert_eq!(reply, Reply::Deny);
        assert!(shown.contains("no answer: denied"), "{shown}");
    }

    #[test]
    fn the_question_escapes_what_the_model_wrote() {
        let ask = ApprovalAsk {
            ask_id: "a".into(),
            pod_id: "p".into(),
            pod_name: "coder".into(),
            run_id: "r".into(),
            call_id: "c".into(),
            tool: "shell".into(),
            side_effect: pod_core::record::SideEffectClass::Process,
            input: "{\"command\":\"echo \u{1b}]0;pwned\u{7}\"}".into(),
            why: "permissions.process = \"ask\"".into(),
        };
        let text = question(&ask);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("shell (process)"), "{text}");
        assert!(text.contains("permissions.process"), "{text}");
    }
}
