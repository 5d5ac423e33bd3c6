//! A child pod's asks, sent up to its parent: published as `approval_requested` events on the
//! child's control socket, which the parent follows, and answered by the parent with an
//! `approve` request that only the verified parent may send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, oneshot};

use pod_home::locked;
use pod_protocol::control::{ApprovalAnswer, ApprovalAsk, PodEvent};
use pod_protocol::record::DecisionSource;

use super::{AnswerFuture, Approver};

/// Asks published and not yet answered, by ask id.
#[derive(Clone, Default)]
pub(crate) struct PendingAsks(Arc<Mutex<HashMap<String, oneshot::Sender<ApprovalAnswer>>>>);

impl PendingAsks {
    fn open(&self, ask_id: &str) -> oneshot::Receiver<ApprovalAnswer> {
        let (tx, rx) = oneshot::channel();
        locked(&self.0).insert(ask_id.to_owned(), tx);
        rx
    }

    fn forget(&self, ask_id: &str) {
        locked(&self.0).remove(ask_id);
    }

    /// Hand `answer` to the ask it names; an error says why it cannot be taken.
    pub(crate) fn resolve(&self, answer: ApprovalAnswer) -> Result<(), String> {
        let waiting = locked(&self.0).remove(&answer.ask_id);
        match waiting {
            Some(tx) => tx
                .send(answer)
                .map_err(|_| "the tool call stopped waiting for the answer".to_owned()),
            None => Err(format!(
                "no ask `{}` is waiting for an answer (answered already, or never asked)",
                answer.ask_id
            )),
        }
    }
}

/// Asks the parent pod `parent_id`, which follows this pod's events.
pub(crate) struct AskParent {
    pub(crate) parent_id: String,
    pub(crate) events: broadcast::Sender<PodEvent>,
    pub(crate) pending: PendingAsks,
}

impl Approver for AskParent {
    fn decide<'a>(&'a self, ask: &'a ApprovalAsk) -> AnswerFuture<'a> {
        Box::pin(async move {
            let deny = |detail: String| ApprovalAnswer {
                ask_id: ask.ask_id.clone(),
                allow: false,
                for_pod: false,
                source: DecisionSource::Config,
                detail,
            };
            let answer = self.pending.open(&ask.ask_id);
            // Removes the ask when the call stops waiting (an interrupted run drops this).
            let _forget = Forget {
                pending: &self.pending,
                ask_id: &ask.ask_id,
            };
            if self
                .events
                .send(PodEvent::ApprovalRequested(ask.clone()))
                .is_err()
            {
                return deny(format!(
                    "{}, and parent pod {} is not listening to ask",
                    ask.why, self.parent_id
                ));
            }
            match answer.await {
                Ok(answer) => ApprovalAnswer {
                    source: DecisionSource::Parent,
                    detail: format!(
                        "parent pod {} answered ({}: {})",
                        self.parent_id,
                        answer.source.as_str(),
                        answer.detail
                    ),
                    ..answer
                },
                Err(_) => deny(format!(
                    "{}, and the ask to parent pod {} went unanswered",
                    ask.why, self.parent_id
                )),
            }
        })
    }
}

struct Forget<'a> {
    pending: &'a PendingAsks,
    ask_id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pending.forget(self.ask_id);
    }
}
