//! The approval policy at work: whether a tool call the model asked for may run.
//!
//! `[permissions]` rules each call `allow`, `deny` or `ask` (by the tool's side-effect class,
//! tightened by the tool's own entry). An `ask` goes to the pod's [`Approver`]:
//! - a root pod run from a terminal asks its user (the CLI's prompt: once, for this pod, or
//!   deny);
//! - a root pod without one decides by `--approve` ([`Unattended`]), else denies, saying why;
//! - a child pod asks its parent over the control socket ([`parent::AskParent`]); the parent
//!   decides with its own approver, so an ask climbs the tree to the root's terminal or flags.
//!
//! Every decision, `allow` and `deny` from the config included, is a `tool_decision` entry in
//! the asking pod's log with its source (`config`, `user`, `flag`, `parent`).

pub(crate) mod parent;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use pod_home::locked;
use pod_profile::{Permission, PermissionsSection};
use pod_protocol::control::{ApprovalAnswer, ApprovalAsk};
use pod_protocol::record::{Decision, DecisionSource, SideEffectClass};

pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = ApprovalAnswer> + Send + 'a>>;

/// Decides the asks of a pod, and of the pods below it that forward theirs.
pub trait Approver: Send + Sync {
    fn decide<'a>(&'a self, ask: &'a ApprovalAsk) -> AnswerFuture<'a>;
}

/// `--approve`: how a root pod answers asks without asking anybody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproveFlag {
    /// Deny every ask.
    Never,
    /// Allow every ask.
    All,
    /// Allow asks for `read_only` tools, deny the rest.
    ReadOnly,
}

/// A root pod with nobody to ask: `--approve` decides, and without it every ask is denied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unattended {
    pub flag: Option<ApproveFlag>,
}

impl Approver for Unattended {
    fn decide<'a>(&'a self, ask: &'a ApprovalAsk) -> AnswerFuture<'a> {
        let answer = |allow: bool, source, detail: String| ApprovalAnswer {
            ask_id: ask.ask_id.clone(),
            allow,
            for_pod: false,
            source,
            detail,
        };
        let decided = match self.flag {
            Some(ApproveFlag::All) => answer(true, DecisionSource::Flag, "--approve all".into()),
            Some(ApproveFlag::Never) => {
                answer(false, DecisionSource::Flag, "--approve never".into())
            }
            Some(ApproveFlag::ReadOnly) => {
                let read_only = ask.side_effect == SideEffectClass::ReadOnly;
                let detail = if read_only {
                    "--approve read-only".to_owned()
                } else {
                    format!(
                        "--approve read-only, and {} has side effect {}",
                        ask.tool,
                        ask.side_effect.as_str()
                    )
                };
                answer(read_only, DecisionSource::Flag, detail)
            }
            None => answer(
                false,
                DecisionSource::Config,
                format!(
                    "{}, and there is no terminal to ask on; run with --approve all (or \
                     read-only) to decide without one, or set it to \"allow\"",
                    ask.why
                ),
            ),
        };
        Box::pin(std::future::ready(decided))
    }
}

/// The decision on one call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub source: DecisionSource,
    pub detail: String,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allowed
    }
}

/// A pod's approvals: its approver, and the tools allowed for the rest of its life.
#[derive(Clone)]
pub struct Approvals {
    approver: Arc<dyn Approver>,
    /// Tool → how it was allowed for this pod.
    allowed_for_pod: Arc<Mutex<BTreeMap<String, Verdict>>>,
}

impl Default for Approvals {
    /// Nobody to ask and no flag: every ask is denied.
    fn default() -> Approvals {
        Approvals::new(Arc::new(Unattended::default()))
    }
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

impl Approvals {
    pub fn new(approver: Arc<dyn Approver>) -> Approvals {
        Approvals {
            approver,
            allowed_for_pod: Arc::default(),
        }
    }

    /// The approver, for answering the asks this pod's children forward.
    pub(crate) fn approver(&self) -> Arc<dyn Approver> {
        self.approver.clone()
    }

    /// Decide `ask` under `permissions`: the config's `allow` or `deny`, an earlier "allow for
    /// this pod", or the approver's answer. `ask.why` is filled in here.
    pub(crate) async fn decide(
        &self,
        permissions: &PermissionsSection,
        mut ask: ApprovalAsk,
    ) -> Verdict {
        let ruling = permissions.for_tool(&ask.tool, ask.side_effect);
        let config = |decision| Verdict {
            decision,
            source: DecisionSource::Config,
            detail: ruling.to_string(),
        };
        match ruling.permission {
            Permission::Allow => return config(Decision::Allowed),
            Permission::Deny => return config(Decision::Denied),
            Permission::Ask => {}
        }
        if let Some(earlier) = locked(&self.allowed_for_pod).get(&ask.tool) {
            return Verdict {
                detail: format!("{} (allowed for this pod)", earlier.detail),
                ..earlier.clone()
            };
        }
        ask.why = ruling.to_string();
        let answer = self.approver.decide(&ask).await;
        let verdict = Verdict {
            decision: if answer.allow {
                Decision::Allowed
            } else {
                Decision::Denied
            },
            source: answer.source,
            detail: answer.detail,
        };
        if answer.allow && answer.for_pod {
            locked(&self.allowed_for_pod).insert(ask.tool, verdict.clone());
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
