//! The host loop's answers to calls on the control socket: start a run, take a lifecycle
//! action, report status.

use std::sync::Arc;

use serde_json::json;

use super::host_loop::{ActiveRun, HostLoop};
use super::pod_task::{Job, Work};
use crate::control::{Call, Incoming, ReplyError};
use crate::lifecycle::ends_pod;
use crate::record::LifecycleKind;
use crate::runtime::{Quiet, RunInput};

impl HostLoop {
    pub(super) async fn on_request(&mut self, request: Incoming) {
        if self.jobs.is_none() {
            return;
        }
        match &request.call {
            Call::Run(params) => {
                let text = params.input.clone();
                self.on_run_request(request, text).await;
            }
            Call::Action(kind, _) => {
                let kind = *kind;
                self.on_action_request(request, kind).await;
            }
            Call::Status => self.on_status(request),
            // The server answers subscriptions and approvals itself.
            Call::Subscribe => request.respond(Ok(json!({"subscribed": true}))),
            Call::Approve(_) => request.respond(Err(ReplyError::new(
                "bad_request",
                "`approve` is answered by the control server, never handed to the pod",
            ))),
        }
    }

    /// Start a run of `text` unless the pod is ending or already running one.
    async fn on_run_request(&mut self, request: Incoming, text: String) {
        if self.ending.is_some() {
            request.respond(Err(ReplyError::new("not_running", "the pod is ending")));
            return;
        }
        if self.active.is_running() {
            request.respond(Err(ReplyError::new(
                "busy",
                "a run is active; wait for it to end or cancel it",
            )));
            return;
        }
        let input = RunInput {
            text,
            trigger: request.trigger(),
            request_id: Some(request.request_id.clone()),
        };
        let request_id = request.request_id.clone();
        self.active = ActiveRun::Requested(request_id.clone());
        self.ctx.progress.touch();
        let observer = self.watched(Arc::new(Quiet), Some(request_id.clone()));
        if self.send(Work::Run(Job { input, observer })).await {
            request.respond(Ok(json!({ "request_id": request_id })));
        } else {
            self.active = ActiveRun::Idle;
            request.respond(Err(ReplyError::new("failed", "the pod task has ended")));
        }
    }

    /// Record a lifecycle action of `kind` and interrupt the active run with it; a reload then
    /// starts a new segment, an action that ends the pod begins its ending.
    async fn on_action_request(&mut self, request: Incoming, kind: LifecycleKind) {
        let Some(action) = request.action(self.ctx.affects(kind)) else {
            request.respond(Err(ReplyError::new("failed", "not an action")));
            return;
        };
        if kind == LifecycleKind::Reload {
            let Some(work_dir) = self.work_dir.clone() else {
                request.respond(Err(ReplyError::new(
                    "unsupported",
                    "this pod process cannot reload (no working directory given)",
                )));
                return;
            };
            // Interrupt the active run, then (in order, after it ends) start a new segment
            // with the manifest re-read from the pod directory.
            self.apply(&action);
            let reply = if self.send(Work::Reload { work_dir }).await {
                Ok(serde_json::to_value(&action).unwrap_or_default())
            } else {
                Err(ReplyError::new("failed", "the pod task has ended"))
            };
            request.respond(reply);
            return;
        }
        // When the pod is already ending, a later action is recorded; it does not change the
        // outcome.
        self.apply(&action);
        request.respond(Ok(serde_json::to_value(&action).unwrap_or_default()));
        if ends_pod(kind) && self.ending.is_none() {
            self.begin_ending(action);
        }
    }

    fn on_status(&self, request: Incoming) {
        let kids = self.ctx.children.as_ref().map(|c| c.list());
        request.respond(Ok(json!({
            "pod_id": self.ctx.pod_id,
            "pid": std::process::id(),
            "state": if self.active.is_running() { "running" } else { "idle" },
            "ending": self.ending.as_ref().map(|ending| ending.action.kind),
            "children": kids,
        })));
    }
}
