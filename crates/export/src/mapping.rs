//! From what the scan accumulated to the document's shapes: a run's summary (outcome, phase,
//! provider error, interrupt and its lifecycle action, crash evidence, and the facts the log
//! does not hold), and a segment's.

use pod_protocol::record::{
    LifecycleAction, Origin, RunTrigger, ToolExecutionPhase, UnverifiedOrigin,
};

use crate::document::{
    ActionDoc, ActionRef, CrashEvidence, ErrorDoc, InterruptDoc, OriginDoc, Outcome, PeerDoc,
    PhaseDoc, RunDoc, SegmentDoc, TriggerDoc, UsageDoc,
};
use crate::retry::retry_safety;
use crate::scan::{PhaseLite, RunAcc, SegmentScan, Terminal, preview};
use pod_home::Liveness;
use pod_home::runs::{RunOutcome, SegmentOwner};

pub(crate) fn segment_doc(seg: &SegmentScan) -> SegmentDoc {
    let started = seg.started.as_ref();
    SegmentDoc {
        segment_id: seg.segment_id.clone(),
        log: seg.log_rel.clone(),
        started_at: started.map(|(_, ts)| ts.clone()),
        format_version: started.map(|(s, _)| s.format_version),
        writer: started.map(|(s, _)| s.writer.clone()),
        owner_pid: started.map(|(s, _)| s.pid),
        closed: seg.closed.clone(),
    }
}

pub(crate) fn run_doc(
    pod_id: &str,
    seg: &SegmentScan,
    mut acc: RunAcc,
    later_segment: bool,
    pod_pid: Option<u32>,
) -> RunDoc {
    let acc_owned = &mut acc;
    let mut missing = std::mem::take(&mut acc_owned.terminal_missing);
    if !acc_owned.seen_run_started {
        missing.insert(0, "run.run_started".to_owned());
    }
    // What the summary copies as it is is moved out; the rest is read below.
    let mut run = RunDoc {
        run_id: std::mem::take(&mut acc_owned.run_id),
        pod_id: pod_id.to_owned(),
        segment_id: Some(seg.segment_id.clone()),
        started_at: acc_owned.started_at.take(),
        ended_at: acc_owned.ended_at.take(),
        outcome: Outcome::Completed,
        trigger: acc_owned.trigger.as_ref().map(trigger_doc),
        request_id: acc_owned.request_id.take(),
        input: acc_owned.input.take(),
        output: None,
        provider_requests: Some(acc_owned.provider_requests),
        model: acc_owned.model.take(),
        stop_reason: None,
        stop_raw: None,
        stop_statement: None,
        truncated: None,
        usage: (acc_owned.usage.requests_recorded > 0).then_some(UsageDoc {
            input_tokens: acc_owned.usage.input_tokens,
            output_tokens: acc_owned.usage.output_tokens,
            cached_input_tokens: acc_owned.usage.cached_input_tokens,
            reasoning_tokens: acc_owned.usage.reasoning_tokens,
            requests_started: acc_owned.first_attempts,
            requests_recorded: acc_owned.usage.requests_recorded,
            requests_with_usage: acc_owned.usage.requests_with_usage,
        }),
        unhandled_events: (acc_owned.usage.requests_recorded > 0)
            .then(|| std::mem::take(&mut acc_owned.unhandled)),
        tool_calls_rejected: Some(acc_owned.tools_rejected),
        tool_decisions: std::mem::take(&mut acc_owned.decisions),
        error: None,
        interrupt: None,
        crash_evidence: None,
        phase: None,
        tool_calls_started: Some(acc.tools_started),
        tool_calls_finished: Some(acc.tools_finished),
        tools_in_flight: Vec::new(),
        retry_safety: None,
        missing_provenance: Vec::new(),
        unreadable_terminal: None,
    };
    if let Some(Terminal::Completed { text, stop_reason }) = &mut acc.terminal {
        run.output = Some(std::mem::take(text));
        let stop = pod_protocol::report::StopFacts::of(stop_reason.as_ref());
        if stop_reason.is_none() {
            missing.push("stop_reason".to_owned());
        }
        run.stop_reason = Some(stop.stop_reason);
        run.stop_raw = stop.stop_raw.as_deref().map(preview);
        run.stop_statement = Some(preview(&stop.stop_statement));
        run.truncated = stop.truncated;
    }
    let acc = &acc;
    match &acc.terminal {
        Some(Terminal::Completed { .. }) => {
            run.outcome = Outcome::Completed;
            run.phase = Some(derived_phase(acc));
        }
        Some(Terminal::Errored { error, phase }) => {
            run.outcome = Outcome::ProviderError;
            run.error = error.as_ref().map(|e| ErrorDoc {
                class: e.class.clone().unwrap_or_else(|| "unknown".to_owned()),
                code: e.code.clone(),
                http_status: e.http_status,
                provider_request_id: e.provider_request_id.clone(),
                retryable: e.retryable,
                message: e.message.clone(),
            });
            run.phase = Some(recorded_phase(phase));
        }
        Some(Terminal::Interrupted {
            reason,
            action,
            phase,
        }) => {
            run.outcome = Outcome::Interrupted;
            run.phase = Some(recorded_phase(phase));
            interrupt_facts(action.as_ref(), &mut missing);
            run.interrupt = Some(InterruptDoc {
                reason: reason.clone().unwrap_or_else(|| "unknown".to_owned()),
                action: action.as_ref().map(action_doc),
            });
        }
        // The run has a terminal entry, but it could not be read: the kind says how the run
        // ended; everything the entry held is unknown, and the phase comes from the entries.
        None if acc.unreadable_terminal.is_some() => {
            let kind = acc
                .unreadable_terminal
                .as_ref()
                .map(|u| u.kind.as_str())
                .unwrap_or_default();
            missing.push("terminal_entry".to_owned());
            if kind == "run_errored" {
                run.outcome = Outcome::ProviderError;
                missing.push("error".to_owned());
            } else {
                run.outcome = Outcome::Interrupted;
                missing.push("interrupt.reason".to_owned());
                interrupt_facts(None, &mut missing);
            }
            run.phase = Some(derived_phase(acc));
        }
        None => {
            let owner = SegmentOwner {
                pid: seg.started.as_ref().map(|(s, _)| s.pid),
                started_at: seg.started.as_ref().map(|(_, ts)| ts.clone()),
                closed: seg.closed.clone(),
                later_segment,
            };
            let pid = owner.pid.or(pod_pid);
            let liveness = owner.liveness(pod_pid);
            run.phase = Some(derived_phase(acc));
            run.outcome = RunOutcome::unfinished(&liveness);
            let (owner, detail) = match liveness {
                Liveness::Alive => ("alive".to_owned(), String::new()),
                Liveness::Gone(detail) => ("gone".to_owned(), detail),
                Liveness::Unknown(detail) => {
                    missing.push("crash.owner_liveness".to_owned());
                    ("unknown".to_owned(), detail)
                }
            };
            if run.outcome == Outcome::Crashed {
                missing.push("crash.cause".to_owned());
                run.crash_evidence = Some(CrashEvidence {
                    last_seq: seg.last_seq,
                    last_entry_kind: seg.last_kind.clone(),
                    last_entry_at: seg.last_ts.clone(),
                    owner_pid: pid,
                    owner,
                    detail,
                    torn_tail: seg.integrity.torn_final_line,
                    actions_seen: acc.actions_seen.clone(),
                    exit_seen_by_parent: None,
                });
            }
        }
    }
    if let Some(phase) = &run.phase
        && run.outcome != Outcome::Running
    {
        for (fact, known) in [
            (
                "phase.provider_progress_seen",
                phase.provider_progress_seen.is_some(),
            ),
            (
                "phase.visible_output_seen",
                phase.visible_output_seen.is_some(),
            ),
            (
                "phase.side_effects_started",
                phase.side_effects_started.is_some(),
            ),
        ] {
            if !known && !missing.iter().any(|m| m == fact) {
                missing.push(fact.to_owned());
            }
        }
        run.retry_safety = Some(retry_safety(phase));
    }
    run.missing_provenance = missing;
    run.tools_in_flight = acc.in_flight.clone();
    run.unreadable_terminal = acc.unreadable_terminal.clone();
    run
}

/// What an interrupt's action leaves unknown.
fn interrupt_facts(action: Option<&LifecycleAction>, missing: &mut Vec<String>) {
    match action {
        None => {
            missing.push("interrupt.action".to_owned());
            missing.push("interrupt.origin".to_owned());
        }
        Some(action) => {
            if let Origin::Unknown { missing: facts } = &action.origin {
                if facts.is_empty() {
                    missing.push("interrupt.origin".to_owned());
                }
                missing.extend(facts.iter().map(|f| format!("interrupt.origin.{f}")));
            }
        }
    }
}

/// The phase a terminal entry recorded; what it lacks stays unknown.
fn recorded_phase(phase: &PhaseLite) -> PhaseDoc {
    PhaseDoc {
        source: "recorded".to_owned(),
        provider_progress_seen: phase.provider_progress_seen,
        visible_output_seen: phase.visible_output_seen,
        tool_execution: phase
            .tool_execution
            .clone()
            .unwrap_or_else(|| "unknown".to_owned()),
        side_effects_started: phase.side_effects_started.clone(),
    }
}

/// The phase of a run without a recorded one, from its entries. A provider request that started
/// after the last logged assistant message may have streamed text the log never received, so
/// visible output is then unknown rather than "no".
fn derived_phase(acc: &RunAcc) -> PhaseDoc {
    let progress = if acc.assistant_messages > 0 {
        Some(true)
    } else if acc.provider_requests == 0 || acc.terminal.is_some() {
        Some(false)
    } else {
        None
    };
    let visible = if acc.visible_text {
        Some(true)
    } else if acc.request_open && acc.terminal.is_none() {
        None
    } else {
        Some(false)
    };
    let tool_execution = if !acc.in_flight.is_empty() {
        ToolExecutionPhase::Started
    } else if acc.tools_finished > 0 {
        ToolExecutionPhase::Completed
    } else {
        ToolExecutionPhase::NotStarted
    };
    PhaseDoc {
        source: "derived".to_owned(),
        provider_progress_seen: progress,
        visible_output_seen: visible,
        tool_execution: tool_execution.as_str().to_owned(),
        side_effects_started: Some(
            acc.side_effects
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        ),
    }
}

fn trigger_doc(trigger: &RunTrigger) -> TriggerDoc {
    match trigger {
        RunTrigger::Cli => TriggerDoc::Cli,
        RunTrigger::ControlRequest { client } => TriggerDoc::ControlRequest {
            client: preview(client),
        },
        RunTrigger::ParentPod {
            parent_pod_id,
            tool_call_id,
        } => TriggerDoc::ParentPod {
            parent_pod_id: parent_pod_id.clone(),
            tool_call_id: tool_call_id.clone(),
        },
    }
}

pub(crate) fn action_doc(action: &LifecycleAction) -> ActionDoc {
    ActionDoc {
        action_id: action.action_id.clone(),
        kind: action.kind.as_str().to_owned(),
        started_at: action.started_at.clone(),
        affects: action.affects.clone(),
        origin: origin_doc(&action.origin),
        reason: action.reason.as_deref().map(preview),
        caused_by: action.caused_by.as_ref().map(|c| ActionRef {
            pod_id: c.pod_id.clone(),
            action_id: c.action_id.clone(),
            kind: c.kind.as_str().to_owned(),
        }),
    }
}

fn origin_doc(origin: &Origin) -> OriginDoc {
    match origin.clone() {
        Origin::Cli {
            command,
            request_id,
        } => OriginDoc::Cli {
            command: preview(&command),
            request_id,
        },
        Origin::ControlRequest { request_id, client } => OriginDoc::ControlRequest {
            request_id,
            client: preview(&client),
        },
        Origin::Signal { signal } => OriginDoc::Signal {
            signal: preview(&signal),
        },
        Origin::ParentPod {
            parent_pod_id,
            tool_call_id,
        } => OriginDoc::ParentPod {
            parent_pod_id,
            tool_call_id,
        },
        Origin::Watchdog { idle_ms } => OriginDoc::Watchdog { idle_ms },
        Origin::Runtime { detail } => OriginDoc::Runtime {
            detail: preview(&detail),
        },
        Origin::Unknown { missing } => OriginDoc::Unknown { missing },
        Origin::Unverified(unverified) => {
            let UnverifiedOrigin {
                claimed,
                claimed_caused_by,
                peer,
                why,
            } = *unverified;
            OriginDoc::Unverified {
                claimed: Box::new(origin_doc(&claimed)),
                claimed_caused_by: claimed_caused_by.map(|c| ActionRef {
                    pod_id: c.pod_id,
                    action_id: c.action_id,
                    kind: c.kind.as_str().to_owned(),
                }),
                peer: PeerDoc {
                    pid: peer.pid,
                    uid: peer.uid,
                },
                why: preview(&why),
            }
        }
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
