//! Incidents: why a run did not complete, as a chain of links from the run outward to whoever
//! started the action that ended it — through cascades into ancestor pods' logs.

use std::collections::{HashMap, HashSet};

use crate::document::{
    ActionDoc, Cause, ChainLink, ChildExit, Incident, OriginDoc, Outcome, RunDoc, UnreadableEntry,
};
use crate::mapping::action_doc;
use crate::scan::SegmentScan;

/// Every lifecycle action recorded in the logs read, by action id, with the pod whose log
/// recorded it.
#[derive(Debug, Default)]
pub(crate) struct ActionIndex {
    actions: HashMap<String, (String, ActionDoc)>,
    /// The last `child_exited` seen for each child pod id.
    child_exits: HashMap<String, ChildExit>,
}

impl ActionIndex {
    pub(crate) fn add_segment(&mut self, pod_id: &str, seg: &SegmentScan) {
        for recorded in &seg.actions {
            self.actions
                .entry(recorded.action.action_id.clone())
                .or_insert_with(|| (pod_id.to_owned(), action_doc(&recorded.action)));
        }
        for exit in &seg.child_exits {
            self.child_exits.insert(
                exit.child_pod_id.clone(),
                ChildExit {
                    parent_pod_id: pod_id.to_owned(),
                    exit_code: exit.exit_code,
                    signal: exit.signal,
                    expected: exit.expected,
                },
            );
        }
    }

    /// Add what `later` holds, as if its logs had been read after these: an action recorded
    /// in both keeps the first recording; a child's end keeps the last.
    pub(crate) fn absorb(&mut self, later: ActionIndex) {
        for (id, action) in later.actions {
            self.actions.entry(id).or_insert(action);
        }
        self.child_exits.extend(later.child_exits);
    }

    /// How `pod_id`'s process ended, as its parent recorded it.
    pub(crate) fn child_exit(&self, pod_id: &str) -> Option<ChildExit> {
        self.child_exits.get(pod_id).cloned()
    }

    fn get(&self, action_id: &str) -> Option<&(String, ActionDoc)> {
        self.actions.get(action_id)
    }
}

/// Deepest cascade followed (guards against cycles in damaged data too).
const MAX_CASCADE: usize = 32;

/// Explain one run that did not complete.
pub(crate) fn explain(run: &RunDoc, pod_name: &str, index: &ActionIndex) -> Incident {
    let mut chain = vec![ChainLink::Run {
        pod_id: run.pod_id.clone(),
        run_id: run.run_id.clone(),
        outcome: run.outcome,
    }];
    let mut missing = run.missing_provenance.clone();
    let mut origins: Vec<OriginDoc> = Vec::new();
    let mut actions: Vec<(String, ActionDoc)> = Vec::new();
    let cause;
    let who = format!("Run {} in pod {}", run.run_id, pod_name);
    let summary;
    match run.outcome {
        Outcome::ProviderError => {
            let (class, code, status, request_id) = match &run.error {
                Some(e) => (
                    e.class.clone(),
                    e.code.clone(),
                    e.http_status,
                    e.provider_request_id.clone(),
                ),
                None => ("unknown".to_owned(), None, None, None),
            };
            chain.push(ChainLink::ProviderError {
                class: class.clone(),
                code: code.clone(),
                http_status: status,
                provider_request_id: request_id.clone(),
            });
            let origin = OriginDoc::Provider {
                provider_request_id: request_id,
            };
            origins.push(origin);
            let code_part = code.map(|c| format!(" (code {c})")).unwrap_or_default();
            let status_part = status.map(|s| format!(", HTTP {s}")).unwrap_or_default();
            cause = Cause {
                category: "provider_error".to_owned(),
                detail: format!("{class}{code_part}{status_part}"),
            };
            let shown = match run.phase.as_ref().and_then(|p| p.visible_output_seen) {
                Some(true) => "after visible output had been shown",
                Some(false) => "before any visible output",
                None => "with no record of whether output was shown",
            };
            summary = match (&run.error, &run.unreadable_terminal) {
                (None, Some(entry)) => unreadable_summary(&who, entry, "which provider error"),
                _ => format!("{who} failed with provider error {class}{code_part} {shown}."),
            };
        }
        Outcome::Interrupted => {
            let interrupt = run.interrupt.as_ref();
            chain.push(ChainLink::Interrupt {
                pod_id: run.pod_id.clone(),
                reason: interrupt.map(|i| i.reason.clone()).unwrap_or_default(),
                at: run.ended_at.clone(),
            });
            match interrupt.and_then(|i| i.action.clone()) {
                None if interrupt.is_none() && run.unreadable_terminal.is_some() => {
                    cause = Cause {
                        category: "interrupted".to_owned(),
                        detail: "the terminal entry could not be read".to_owned(),
                    };
                    summary = match &run.unreadable_terminal {
                        Some(entry) => {
                            unreadable_summary(&who, entry, "which lifecycle action did it")
                        }
                        None => format!("{who} was interrupted."),
                    };
                }
                None => {
                    cause = Cause {
                        category: "interrupted".to_owned(),
                        detail: "no lifecycle action was recorded".to_owned(),
                    };
                    summary = format!(
                        "{who} was interrupted, but the log does not record which lifecycle \
                         action did it or who started it."
                    );
                }
                Some(action) => {
                    cause = Cause {
                        category: "interrupted".to_owned(),
                        detail: format!("{} action {}", action.kind, action.action_id),
                    };
                    follow(
                        &run.pod_id,
                        action,
                        index,
                        &mut chain,
                        &mut origins,
                        &mut actions,
                        &mut missing,
                    );
                    summary = interrupted_summary(&who, &actions, &origins);
                }
            }
        }
        _ => {
            let evidence = run.crash_evidence.as_ref();
            let owner = evidence.map(|e| e.owner.clone()).unwrap_or_default();
            let pid = evidence.and_then(|e| e.owner_pid);
            chain.push(ChainLink::CrashEvidence {
                pod_id: run.pod_id.clone(),
                owner_pid: pid,
                owner: owner.clone(),
            });
            cause = Cause {
                category: "crashed".to_owned(),
                detail: evidence.map(|e| e.detail.clone()).unwrap_or_default(),
            };
            let pid_part = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            let owner_part = if owner == "gone" {
                "is gone"
            } else {
                "could not be checked"
            };
            let exit_part = match evidence.and_then(|e| e.exit_seen_by_parent.as_ref()) {
                Some(ChildExit {
                    signal: Some(sig), ..
                }) => format!(" (its parent recorded it killed by signal {sig})"),
                Some(ChildExit {
                    exit_code: Some(code),
                    ..
                }) => format!(" (its parent recorded exit code {code})"),
                _ => String::new(),
            };
            summary = format!(
                "{who} never finished: its log has no terminal entry and the owning process{pid_part} \
                 {owner_part}{exit_part}, so it is crash evidence, not a lifecycle close."
            );
        }
    }
    let nearest_origin = origins.iter().find(|o| !o.is_unknown()).cloned();
    let root_origin = origins.last().cloned();
    let diagnostics_complete = missing.is_empty();
    Incident {
        pod_id: run.pod_id.clone(),
        run_id: run.run_id.clone(),
        cause,
        chain,
        nearest_origin,
        root_origin,
        missing_provenance: missing,
        diagnostics_complete,
        summary,
    }
}

/// Walk from an action through its origin and, for cascades, into the ancestor's action.
fn follow(
    pod_id: &str,
    first: ActionDoc,
    index: &ActionIndex,
    chain: &mut Vec<ChainLink>,
    origins: &mut Vec<OriginDoc>,
    actions: &mut Vec<(String, ActionDoc)>,
    missing: &mut Vec<String>,
) {
    let mut pod = pod_id.to_owned();
    let mut action = first;
    let mut seen = HashSet::new();
    for depth in 0..MAX_CASCADE {
        if !seen.insert(action.action_id.clone()) {
            break;
        }
        let prefix = if depth == 0 {
            "interrupt".to_owned()
        } else {
            format!("cascade[{depth}]")
        };
        chain.push(ChainLink::LifecycleAction {
            pod_id: pod.clone(),
            action_id: action.action_id.clone(),
            kind: action.kind.clone(),
            started_at: action.started_at.clone(),
        });
        chain.push(ChainLink::Origin {
            pod_id: pod.clone(),
            origin: action.origin.clone(),
        });
        match &action.origin {
            OriginDoc::Cli { request_id, .. } => chain.push(ChainLink::Request {
                request_id: request_id.clone(),
                client: "cli".to_owned(),
            }),
            OriginDoc::ControlRequest { request_id, client } => chain.push(ChainLink::Request {
                request_id: request_id.clone(),
                client: client.clone(),
            }),
            // A claim is not a fact: the origin is still to be established.
            OriginDoc::Unverified { .. } => missing.push(format!("{prefix}.origin.verified")),
            OriginDoc::Unknown { missing: facts } if depth > 0 => {
                if facts.is_empty() {
                    missing.push(format!("{prefix}.origin"));
                }
                missing.extend(facts.iter().map(|f| format!("{prefix}.origin.{f}")));
            }
            _ => {}
        }
        origins.push(action.origin.clone());
        if action.kind == "parent_exit" && action.caused_by.is_none() {
            // The parent process vanished without recording an action: what ended it is not in
            // any log (its own runs show crash evidence if it was killed).
            missing.push(format!("{prefix}.parent_exit.cause"));
        }
        let caused_by = action.caused_by.clone();
        actions.push((pod.clone(), action));
        let Some(parent) = caused_by else { break };
        match index.get(&parent.action_id) {
            Some((recorded_in, parent_action)) => {
                pod = recorded_in.clone();
                action = parent_action.clone();
            }
            None => {
                chain.push(ChainLink::Unresolved {
                    pod_id: parent.pod_id.clone(),
                    action_id: parent.action_id.clone(),
                    kind: parent.kind.clone(),
                });
                missing.push(format!("{prefix}.caused_by.action"));
                missing.push(format!("{prefix}.caused_by.origin"));
                break;
            }
        }
    }
}

/// A run whose terminal entry is in the log but unreadable.
fn unreadable_summary(who: &str, entry: &UnreadableEntry, unknown: &str) -> String {
    let cut = if entry.torn {
        "was cut off while being written"
    } else {
        "could not be read"
    };
    format!(
        "{who} ended with a {} entry (line {}) that {cut}, so {unknown} is unknown.",
        entry.kind, entry.line
    )
}

fn interrupted_summary(
    who: &str,
    actions: &[(String, ActionDoc)],
    origins: &[OriginDoc],
) -> String {
    let Some((_, first)) = actions.first() else {
        return format!("{who} was interrupted.");
    };
    let mut text = format!(
        "{who} was interrupted by a {} action started by {}",
        first.kind,
        describe(&first.origin)
    );
    if actions.len() > 1
        && let (Some((pod, last)), Some(root)) = (actions.last(), origins.last())
    {
        text.push_str(&format!(
            ", cascaded from a {} action on pod {} started by {}",
            last.kind,
            pod,
            describe(root)
        ));
    } else if first.caused_by.is_some() {
        text.push_str(", cascaded from an ancestor action that is not in the logs read");
    } else if first.kind == "parent_exit" {
        text.push_str("; what ended the parent pod is not recorded");
    }
    text.push('.');
    text
}

/// Origin in words, from ids and classes only (never free text, so a sanitized document's
/// summaries stay clean).
pub(crate) fn describe(origin: &OriginDoc) -> String {
    match origin {
        OriginDoc::Cli { request_id, .. } => format!("the command line (request {request_id})"),
        OriginDoc::ControlRequest { request_id, client } => {
            format!("a control-socket request {request_id} from {client}")
        }
        OriginDoc::Signal { signal } => format!("signal {signal}"),
        OriginDoc::ParentPod {
            parent_pod_id,
            tool_call_id,
        } => format!("parent pod {} (tool call {tool_call_id})", parent_pod_id),
        OriginDoc::Watchdog { idle_ms } => format!("the idle watchdog after {idle_ms} ms"),
        OriginDoc::Runtime { .. } => "the runtime".to_owned(),
        OriginDoc::Provider { .. } => "the provider".to_owned(),
        OriginDoc::Unknown { missing } if missing.is_empty() => "an unrecorded origin".to_owned(),
        OriginDoc::Unknown { missing } => {
            format!("an unrecorded origin (missing: {})", missing.join(", "))
        }
        OriginDoc::Unverified { claimed, why, .. } => {
            format!("an unverified claim to be {} ({why})", describe(claimed))
        }
    }
}
