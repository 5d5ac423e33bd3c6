//! A request as the pod that owns the socket receives it: who sent it, whether what the client
//! claims about itself checks out against the kernel's account of the peer, and the origin or
//! trigger it is recorded with.

use std::path::PathBuf;

use serde_json::Value;
use tokio::sync::oneshot;

use super::wire::{Call, ClientInfo, ReplyError};
use crate::error::error_chain;
use crate::home::PodDir;
use crate::lifecycle::new_action;
use crate::record::{CausedBy, LifecycleAction, Origin, PeerCred, RunTrigger, UnverifiedOrigin};

/// One request handed to the pod that owns the socket; answer it with [`Incoming::respond`].
#[derive(Debug)]
pub(crate) struct Incoming {
    pub request_id: String,
    /// Who the client says it is.
    pub client: ClientInfo,
    pub call: Call,
    /// Set when the client claims to be this pod's parent (or sends a `caused_by` link) and the
    /// claim did not check out.
    pub unverified: Option<Unverified>,
    pub(super) reply: oneshot::Sender<Result<Value, ReplyError>>,
}

/// A claim the server could not verify: who the peer is according to the kernel, and why the
/// claim does not fit the pod's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unverified {
    pub peer: PeerCred,
    pub why: String,
}

impl Incoming {
    pub(crate) fn respond(self, result: Result<Value, ReplyError>) {
        // The client may have gone away; nothing to tell it then.
        let _ = self.reply.send(result);
    }

    /// Who started a lifecycle action requested by this call: what the client says, or, when
    /// that claim did not check out, [`Origin::Unverified`] holding it.
    pub(crate) fn origin(&self) -> Origin {
        let claimed = self.claimed_origin();
        match &self.unverified {
            None => claimed,
            Some(unverified) => Origin::Unverified(Box::new(UnverifiedOrigin {
                claimed,
                claimed_caused_by: self.claimed_caused_by(),
                peer: unverified.peer.clone(),
                why: unverified.why.clone(),
            })),
        }
    }

    fn claimed_caused_by(&self) -> Option<CausedBy> {
        match &self.call {
            Call::Action(_, params) => params.caused_by.clone(),
            _ => None,
        }
    }

    /// The origin the client claims.
    fn claimed_origin(&self) -> Origin {
        match &self.client {
            ClientInfo::Cli { command } => Origin::Cli {
                command: command.clone(),
                request_id: self.request_id.clone(),
            },
            ClientInfo::ParentPod {
                pod_id,
                tool_call_id: Some(call),
            } => Origin::ParentPod {
                parent_pod_id: pod_id.clone(),
                tool_call_id: call.clone(),
            },
            other => Origin::ControlRequest {
                request_id: self.request_id.clone(),
                client: other.describe(),
            },
        }
    }

    /// The lifecycle action this request asks for; `None` unless the call is an action.
    /// `affects` lists the pods it reaches: the addressed pod first, then (for an action that
    /// ends it) its live descendants. A `caused_by` in the params makes it a cascade of an
    /// ancestor's action.
    pub(crate) fn action(&self, affects: Vec<String>) -> Option<LifecycleAction> {
        let Call::Action(kind, params) = &self.call else {
            return None;
        };
        let mut action = new_action(*kind, affects, self.origin());
        action.reason = params.reason.clone();
        // An unverified link stays inside the unverified origin; it is not a cascade.
        action.caused_by = params
            .caused_by
            .clone()
            .filter(|_| self.unverified.is_none());
        Some(action)
    }

    /// The run trigger for a `run` request. A claim that did not check out is a control
    /// request whose client text says so.
    pub(crate) fn trigger(&self) -> RunTrigger {
        if let Some(unverified) = &self.unverified {
            let peer = match unverified.peer.pid {
                Some(pid) => format!("peer pid {pid}"),
                None => "peer pid unknown".to_owned(),
            };
            return RunTrigger::ControlRequest {
                client: format!(
                    "{} (unverified claim, {peer}: {})",
                    self.client.describe(),
                    unverified.why
                ),
            };
        }
        match &self.client {
            ClientInfo::Cli { .. } => RunTrigger::Cli,
            ClientInfo::ParentPod {
                pod_id,
                tool_call_id: Some(call),
            } => RunTrigger::ParentPod {
                parent_pod_id: pod_id.clone(),
                tool_call_id: call.clone(),
            },
            other => RunTrigger::ControlRequest {
                client: other.describe(),
            },
        }
    }
}

/// Checks what a client claims against the pod's records and the peer's credentials.
pub(super) struct Verifier {
    pub pod_dir: PathBuf,
    pub uid: u32,
}

impl Verifier {
    /// `None` when there is nothing to doubt: the client names no other pod as its own
    /// identity and sends no `caused_by` link, or it is this pod's parent process.
    pub(crate) fn check(
        &self,
        client: &ClientInfo,
        call: &Call,
        peer: &PeerCred,
    ) -> Option<Unverified> {
        let caused_by = match call {
            Call::Action(_, params) => params.caused_by.as_ref(),
            _ => None,
        };
        if !matches!(client, ClientInfo::ParentPod { .. }) && caused_by.is_none() {
            return None;
        }
        self.parent(client, caused_by, peer)
            .err()
            .map(|why| Unverified {
                peer: peer.clone(),
                why,
            })
    }

    /// Whether the peer is the parent pod the client claims to be, and the `caused_by` link
    /// (if any) names that parent.
    fn parent(
        &self,
        client: &ClientInfo,
        caused_by: Option<&CausedBy>,
        peer: &PeerCred,
    ) -> Result<(), String> {
        let ClientInfo::ParentPod { pod_id, .. } = client else {
            return Err(format!(
                "a caused_by link is taken only from this pod's parent, and the client says it is {}",
                client.describe()
            ));
        };
        if let Some(link) = caused_by
            && &link.pod_id != pod_id
        {
            return Err(format!(
                "the caused_by link names pod {}, not the claimed parent {pod_id}",
                link.pod_id
            ));
        }
        match peer.uid {
            Some(uid) if uid == self.uid => {}
            Some(uid) => return Err(format!("peer uid {uid} is not this pod's uid {}", self.uid)),
            None => return Err("the kernel gave no credentials for the peer".to_owned()),
        }
        let own = PodDir::open(&self.pod_dir)
            .read_info()
            .map_err(|e| format!("cannot read this pod's record: {}", error_chain(&e)))?;
        match own.parent_id.as_deref() {
            Some(parent) if parent == pod_id => {}
            Some(parent) => return Err(format!("pod.json names parent {parent}, not {pod_id}")),
            None => {
                return Err(format!(
                    "pod.json names no parent, but the client claims {pod_id}"
                ));
            }
        }
        // `<home>/pods/<id>`: the parent's directory is next to this one.
        let parent_dir = self
            .pod_dir
            .parent()
            .map(|pods| pods.join(pod_id))
            .ok_or_else(|| "this pod's directory has no parent directory".to_owned())?;
        let parent = PodDir::open(&parent_dir)
            .read_info()
            .map_err(|e| format!("cannot read the parent's record: {}", error_chain(&e)))?;
        match (parent.pid, peer.pid) {
            (Some(recorded), Some(pid)) if recorded == pid => Ok(()),
            (Some(recorded), Some(pid)) => Err(format!(
                "peer pid {pid} is not the parent's recorded pid {recorded}"
            )),
            (None, _) => Err("the parent's pod.json records no live process".to_owned()),
            (_, None) => Err("the kernel gave no pid for the peer".to_owned()),
        }
    }
}

#[cfg(test)]
#[path = "incoming_tests.rs"]
mod tests;
