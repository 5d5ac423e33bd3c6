//! From a pod home to an [`ExportDocument`]: find the pods, scan their logs, summarize runs,
//! explain incidents.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use pod_core::record::{
    LifecycleAction, LifecycleKind, Origin, RunTrigger, SideEffectClass, ToolExecutionPhase,
};

use crate::chain::{ActionIndex, explain};
use crate::document::{
    ActionDoc, ActionRef, CrashEvidence, ErrorDoc, ExportDocument, FORMAT_NAME, InterruptDoc,
    LogIntegrity, OriginDoc, Outcome, PhaseDoc, PodDoc, ProvenanceDoc, Redaction, RedactionMode,
    RetrySafety, RetryVerdict, RunDoc, SCHEMA_VERSION, SegmentDoc, ToolInfo, TriggerDoc,
    UnreadablePod,
};
use crate::error::ExportError;
use crate::liveness::{Liveness, owner_liveness};
use crate::redact::sanitize;
use crate::scan::{
    PhaseLite, RunAcc, SegmentScan, Terminal, empty_integrity, preview, scan_segment,
    side_effect_name,
};

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The pods home (`PODS_HOME`).
    pub home: PathBuf,
    /// A pod id, a unique id prefix, or a unique pod name.
    pub pod: String,
    /// Include all descendants.
    pub tree: bool,
    /// Replace prompts, outputs, tool inputs, paths and free text with placeholders.
    pub sanitize: bool,
}

/// Progress reports, for people (the CLI prints them on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// About to read `total` pods (ancestors read for cascade links not counted).
    Pods { total: usize },
    /// One session log was read.
    LogScanned {
        pod_id: String,
        log: String,
        bytes: u64,
    },
    /// A session log (or the pod's `sessions` directory) could not be read; the export goes on
    /// and records it in `integrity`.
    LogUnreadable {
        pod_id: String,
        log: String,
        error: String,
    },
}

/// Export a pod (or a tree) from its files. The document is sanitized when asked; secrets are
/// checked when it is rendered ([`crate::render_checked`]).
pub fn export(
    request: &ExportRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportDocument, ExportError> {
    let pods_dir = request.home.join("pods");
    if !pods_dir.is_dir() {
        return Err(ExportError::NoPodsDir { path: pods_dir });
    }
    let (all, unreadable) = load_pods(&pods_dir)?;
    if let Some((path, _)) = unreadable
        .iter()
        .find(|(path, _)| path.parent().and_then(Path::file_name) == Some(request.pod.as_ref()))
    {
        // The pod asked for is the unreadable one: that is an error, not a footnote.
        let text = std::fs::read(path).map_err(|source| ExportError::ReadFile {
            path: path.clone(),
            source,
        })?;
        let source = serde_json::from_slice::<Value>(&text)
            .err()
            .unwrap_or_else(|| serde::de::Error::custom("not a pod.json object"));
        return Err(ExportError::BadPodJson {
            path: path.clone(),
            source,
        });
    }
    let root = resolve(&all, &request.pod, &request.home)?;
    let mut selected = vec![root.clone()];
    if request.tree {
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for pod in all.values() {
            if let Some(parent) = &pod.parent_id {
                children.entry(parent.as_str()).or_default().push(&pod.id);
            }
        }
        let mut i = 0;
        while i < selected.len() {
            if let Some(kids) = children.get(selected[i].as_str()) {
                let mut kids: Vec<String> = kids.iter().map(|k| (*k).to_owned()).collect();
                kids.sort();
                for kid in kids {
                    if !selected.contains(&kid) {
                        selected.push(kid);
                    }
                }
            }
            i += 1;
        }
    }
    progress(Progress::Pods {
        total: selected.len(),
    });

    let mut index = ActionIndex::default();
    let mut scanned = Vec::new();
    let mut integrity = Vec::new();
    for id in &selected {
        let pod = &all[id];
        let scan = scan_pod(pod, progress);
        for seg in &scan.segments {
            index.add_segment(&pod.id, seg);
        }
        integrity.extend(scan.unlisted);
        scanned.push((pod, scan.segments));
    }
    // Ancestors outside the export are read only for the actions a cascade links to; what of
    // them could not be read is listed, since a cascade link may be missing because of it.
    let mut ancestor_problems = Vec::new();
    for ancestor in ancestors(&all, &root) {
        if let Some(pod) = all.get(&ancestor) {
            let scan = scan_pod(pod, &mut |_| {});
            for seg in scan.segments {
                index.add_segment(&pod.id, &seg);
                if seg.integrity.read_error.is_some() {
                    ancestor_problems.push(seg.integrity);
                }
            }
            ancestor_problems.extend(scan.unlisted);
        }
    }

    let mut pods = Vec::new();
    let mut incidents = Vec::new();
    for (pod, segments) in scanned {
        let mut doc = pod_doc(pod, &all);
        // A later log counts as a later segment (a later owner) only when it was read or
        // at least showed its `segment_started`: an unopenable file named like a log may be
        // no segment at all.
        let last_known = segments
            .iter()
            .rposition(|seg| seg.integrity.read_error.is_none() || seg.started.is_some());
        for (i, seg) in segments.into_iter().enumerate() {
            let later_segment = last_known.is_some_and(|last| i < last);
            doc.segments.push(segment_doc(&seg));
            for acc in &seg.runs {
                let mut run = run_doc(&pod.id, &seg, acc, later_segment, pod.pid);
                if let Some(evidence) = run.crash_evidence.as_mut()
                    && !later_segment
                {
                    evidence.exit_seen_by_parent = index.child_exit(&pod.id);
                }
                if matches!(
                    run.outcome,
                    Outcome::ProviderError | Outcome::Interrupted | Outcome::Crashed
                ) {
                    incidents.push(explain(&run, &doc.name, &index));
                }
                doc.runs.push(run);
            }
            integrity.push(seg.integrity);
        }
        pods.push(doc);
    }
    integrity.extend(ancestor_problems);

    let mut document = ExportDocument {
        format: FORMAT_NAME.to_owned(),
        schema_version: SCHEMA_VERSION,
        exported_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        tool: tool_info(),
        upgraded_from: None,
        root_pod_id: root,
        tree: request.tree,
        redaction: Redaction {
            mode: RedactionMode::SecretsOnly,
            secrets_checked: Vec::new(),
            replaced: BTreeMap::new(),
        },
        pods,
        incidents,
        integrity: Some(integrity),
        unreadable_pods: unreadable
            .into_iter()
            .map(|(path, error)| UnreadablePod {
                dir: path
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                error,
            })
            .collect(),
    };
    if request.sanitize {
        sanitize(&mut document);
    }
    Ok(document)
}

/// `pods` and the version of this build.
pub fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "pods".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// `pod.json`, read leniently: fields an older writer did not write are reported missing.
#[derive(Debug)]
struct PodEntry {
    dir: PathBuf,
    id: String,
    name: Option<String>,
    profile: Option<String>,
    parent_id: Option<String>,
    created: Option<String>,
    pid: Option<u32>,
    state: Option<String>,
}

/// Every readable `pod.json` under `pods/`, and the paths of unreadable ones with why.
type LoadedPods = (BTreeMap<String, PodEntry>, Vec<(PathBuf, String)>);

fn load_pods(pods_dir: &Path) -> Result<LoadedPods, ExportError> {
    let read_dir = std::fs::read_dir(pods_dir).map_err(|source| ExportError::ReadFile {
        path: pods_dir.to_path_buf(),
        source,
    })?;
    let mut pods = BTreeMap::new();
    let mut unreadable = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|source| ExportError::ReadFile {
            path: pods_dir.to_path_buf(),
            source,
        })?;
        let dir = entry.path();
        let path = dir.join("pod.json");
        if !path.is_file() {
            continue;
        }
        let value = match std::fs::read(&path) {
            Ok(text) => match serde_json::from_slice::<Value>(&text) {
                Ok(value) if value.is_object() => value,
                Ok(_) => {
                    unreadable.push((path, "not a JSON object".to_owned()));
                    continue;
                }
                Err(e) => {
                    unreadable.push((path, e.to_string()));
                    continue;
                }
            },
            Err(e) => {
                unreadable.push((path, e.to_string()));
                continue;
            }
        };
        let text_field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        let pod = PodEntry {
            id: text_field("id").unwrap_or(dir_name),
            name: text_field("name"),
            profile: text_field("profile"),
            parent_id: text_field("parent_id"),
            created: text_field("created"),
            pid: value
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            state: text_field("state"),
            dir,
        };
        pods.insert(pod.id.clone(), pod);
    }
    for (path, error) in &unreadable {
        tracing::warn!(path = %path.display(), %error, "skipping a pod with an unreadable pod.json");
    }
    Ok((pods, unreadable))
}

fn resolve(
    all: &BTreeMap<String, PodEntry>,
    query: &str,
    home: &Path,
) -> Result<String, ExportError> {
    if all.contains_key(query) {
        return Ok(query.to_owned());
    }
    let by_prefix: Vec<&String> = all.keys().filter(|id| id.starts_with(query)).collect();
    let by_name: Vec<&String> = all
        .values()
        .filter(|p| p.name.as_deref() == Some(query))
        .map(|p| &p.id)
        .collect();
    let matches = if by_prefix.is_empty() {
        by_name
    } else {
        by_prefix
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ExportError::PodNotFound {
            query: query.to_owned(),
            home: home.to_path_buf(),
        }),
        many => Err(ExportError::AmbiguousPod {
            query: query.to_owned(),
            candidates: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Ancestor ids from the root down to the parent.
fn ancestors(all: &BTreeMap<String, PodEntry>, id: &str) -> Vec<String> {
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut current = all.get(id).and_then(|p| p.parent_id.clone());
    while let Some(parent) = current {
        if !seen.insert(parent.clone()) {
            break;
        }
        current = all.get(&parent).and_then(|p| p.parent_id.clone());
        chain.push(parent);
    }
    chain.reverse();
    chain
}

/// What reading one pod's logs gave: a scan per segment log, and integrity entries for what
/// could not be listed at all (an unreadable `sessions` directory).
struct PodScan {
    segments: Vec<SegmentScan>,
    unlisted: Vec<LogIntegrity>,
}

/// Read every segment log of `pod`. Nothing here fails the export: a log or directory that
/// cannot be read is recorded in its integrity entry and the rest is read.
fn scan_pod(pod: &PodEntry, progress: &mut dyn FnMut(Progress)) -> PodScan {
    let sessions = pod.dir.join("sessions");
    let mut logs = Vec::new();
    let mut unlisted = Vec::new();
    let mut unreadable = |error: String| {
        progress(Progress::LogUnreadable {
            pod_id: pod.id.clone(),
            log: "sessions".to_owned(),
            error: error.clone(),
        });
        let mut integrity = empty_integrity(&pod.id, "sessions".to_owned(), false);
        integrity.read_error = Some(error);
        unlisted.push(integrity);
    };
    match std::fs::read_dir(&sessions) {
        Ok(read_dir) => {
            for entry in read_dir {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(error) => {
                        unreadable(format!("listing stopped: {error}"));
                        break;
                    }
                };
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(segment) = name.strip_suffix(".jsonl")
                    && !segment.ends_with(".trace")
                {
                    logs.push(segment.to_owned());
                }
            }
        }
        // A pod that never ran has no logs: nothing is missing.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => unreadable(format!("could not list the session logs: {error}")),
    }
    // Segment ids are UUIDv7: sorting by name is sorting by creation.
    logs.sort();
    let mut segments = Vec::new();
    for segment in logs {
        let path = sessions.join(format!("{segment}.jsonl"));
        let trace = sessions.join(format!("{segment}.trace.jsonl")).is_file();
        let rel = format!("sessions/{segment}.jsonl");
        let scan = scan_segment(&pod.id, &path, rel.clone(), segment, trace);
        match &scan.integrity.read_error {
            Some(error) => progress(Progress::LogUnreadable {
                pod_id: pod.id.clone(),
                log: rel,
                error: error.clone(),
            }),
            None => progress(Progress::LogScanned {
                pod_id: pod.id.clone(),
                log: rel,
                bytes: scan.integrity.bytes,
            }),
        }
        segments.push(scan);
    }
    PodScan { segments, unlisted }
}

fn pod_doc(pod: &PodEntry, all: &BTreeMap<String, PodEntry>) -> PodDoc {
    let mut missing = Vec::new();
    let mut need = |value: &Option<String>, fact: &str| {
        if value.is_none() {
            missing.push(fact.to_owned());
        }
        value.clone().unwrap_or_else(|| "unknown".to_owned())
    };
    let name = need(&pod.name, "pod.json:name");
    let profile = need(&pod.profile, "pod.json:profile");
    let manifest = match std::fs::read_to_string(pod.dir.join("manifest.toml")) {
        Ok(text) => match toml::from_str::<toml::Value>(&text) {
            Ok(v) => serde_json::to_value(v).ok(),
            Err(_) => {
                missing.push("manifest.toml (unparseable)".to_owned());
                None
            }
        },
        Err(error) => {
            missing.push(absent_or_unreadable("manifest.toml", &error));
            None
        }
    };
    let provenance = match std::fs::read(pod.dir.join("provenance.json")) {
        Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, ProvenanceDoc>>(&bytes) {
            Ok(p) => Some(p),
            Err(_) => {
                missing.push("provenance.json (unparseable)".to_owned());
                None
            }
        },
        Err(error) => {
            missing.push(absent_or_unreadable("provenance.json", &error));
            None
        }
    };
    PodDoc {
        id: pod.id.clone(),
        name,
        profile,
        parent_id: pod.parent_id.clone(),
        ancestors: ancestors(all, &pod.id),
        created: pod.created.clone(),
        state: pod.state.clone(),
        manifest,
        provenance,
        segments: Vec::new(),
        runs: Vec::new(),
        missing,
    }
}

/// `file` when it is absent; `file (unreadable: why)` when it is there but could not be read.
fn absent_or_unreadable(file: &str, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        file.to_owned()
    } else {
        format!("{file} (unreadable: {error})")
    }
}

fn segment_doc(seg: &SegmentScan) -> SegmentDoc {
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

fn run_doc(
    pod_id: &str,
    seg: &SegmentScan,
    acc: &RunAcc,
    later_segment: bool,
    pod_pid: Option<u32>,
) -> RunDoc {
    let mut missing = Vec::new();
    if !acc.seen_run_started {
        missing.push("run.run_started".to_owned());
    }
    let mut run = RunDoc {
        run_id: acc.run_id.clone(),
        pod_id: pod_id.to_owned(),
        segment_id: Some(seg.segment_id.clone()),
        started_at: acc.started_at.clone(),
        ended_at: acc.ended_at.clone(),
        outcome: Outcome::Completed,
        trigger: acc.trigger.as_ref().map(trigger_doc),
        request_id: acc.request_id.clone(),
        input: acc.input.clone(),
        output: None,
        provider_requests: Some(acc.provider_requests),
        model: acc.model.clone(),
        error: None,
        interrupt: None,
        crash_evidence: None,
        phase: None,
        tool_calls_started: Some(acc.tools_started),
        tool_calls_finished: Some(acc.tools_finished),
        tools_in_flight: acc.in_flight.clone(),
        retry_safety: None,
        missing_provenance: Vec::new(),
        unreadable_terminal: None,
    };
    missing.extend(acc.terminal_missing.iter().cloned());
    match &acc.terminal {
        Some(Terminal::Completed { text }) => {
            run.outcome = Outcome::Completed;
            run.output = Some(text.clone());
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
            let pid = seg.started.as_ref().map(|(s, _)| s.pid).or(pod_pid);
            let started = seg.started.as_ref().map(|(_, ts)| ts.as_str());
            let liveness = if later_segment {
                Liveness::Gone("a later segment of this pod was started by another process".into())
            } else if let Some(reason) = &seg.closed {
                Liveness::Gone(format!(
                    "the segment was closed ({reason}) without ending the run"
                ))
            } else if let Some(pid) = pid {
                owner_liveness(pid, started)
            } else {
                Liveness::Unknown("no owner pid was recorded".into())
            };
            run.phase = Some(derived_phase(acc));
            let (owner, detail) = match liveness {
                Liveness::Alive => {
                    run.outcome = Outcome::Running;
                    ("alive".to_owned(), String::new())
                }
                Liveness::Gone(detail) => {
                    run.outcome = Outcome::Crashed;
                    ("gone".to_owned(), detail)
                }
                Liveness::Unknown(detail) => {
                    run.outcome = Outcome::Crashed;
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
        tool_execution: tool_phase_name(tool_execution).to_owned(),
        side_effects_started: Some(
            acc.side_effects
                .iter()
                .map(|c| side_effect_name(*c).to_owned())
                .collect(),
        ),
    }
}

fn tool_phase_name(phase: ToolExecutionPhase) -> &'static str {
    match phase {
        ToolExecutionPhase::NotStarted => "not_started",
        ToolExecutionPhase::Started => "started",
        ToolExecutionPhase::Completed => "completed",
    }
}

/// What a retry of the run would repeat: a side effect beyond reading is unsafe to repeat;
/// output the user may have seen makes it the user's call; otherwise it is safe.
pub(crate) fn retry_safety(phase: &PhaseDoc) -> RetrySafety {
    let read_only = side_effect_name(SideEffectClass::ReadOnly);
    if let Some(effects) = &phase.side_effects_started {
        let writes: Vec<&str> = effects
            .iter()
            .map(String::as_str)
            .filter(|c| *c != read_only)
            .collect();
        if !writes.is_empty() {
            let verdict = RetryVerdict::Unsafe;
            let reason = format!(
                "a {} side effect started; repeating the run would repeat it",
                writes.join(" and ")
            );
            return RetrySafety { verdict, reason };
        }
    }
    let ask = |reason: &str| RetrySafety {
        verdict: RetryVerdict::AskUser,
        reason: reason.to_owned(),
    };
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

pub(crate) fn kind_name(kind: LifecycleKind) -> &'static str {
    match kind {
        LifecycleKind::Cancel => "cancel",
        LifecycleKind::Stop => "stop",
        LifecycleKind::StopTree => "stop_tree",
        LifecycleKind::Shutdown => "shutdown",
        LifecycleKind::ParentExit => "parent_exit",
        LifecycleKind::Reload => "reload",
        LifecycleKind::Watchdog => "watchdog",
    }
}

pub(crate) fn action_doc(action: &LifecycleAction) -> ActionDoc {
    ActionDoc {
        action_id: action.action_id.clone(),
        kind: kind_name(action.kind).to_owned(),
        started_at: action.started_at.clone(),
        affects: action.affects.clone(),
        origin: origin_doc(&action.origin),
        reason: action.reason.as_deref().map(preview),
        caused_by: action.caused_by.as_ref().map(|c| ActionRef {
            pod_id: c.pod_id.clone(),
            action_id: c.action_id.clone(),
            kind: kind_name(c.kind).to_owned(),
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
    }
}
