//! From a pod home to an [`ExportDocument`]: find the pods, scan their logs, summarize runs,
//! explain incidents — handing each piece to a [`Sink`] as soon as it is known, so that the
//! document can be written (or collected) without holding every run.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use pod_core::record::{
    LifecycleAction, LifecycleKind, Origin, RunTrigger, SideEffectClass, ToolExecutionPhase,
    UnverifiedOrigin,
};

use crate::Secret;
use crate::chain::{ActionIndex, explain};
use crate::document::{
    ActionDoc, ActionRef, CrashEvidence, ErrorDoc, ExportDocument, FORMAT_NAME, InterruptDoc,
    LogIntegrity, OriginDoc, Outcome, PeerDoc, PhaseDoc, PodDoc, ProvenanceDoc, Redaction,
    RedactionMode, RetrySafety, RetryVerdict, RunDoc, SCHEMA_VERSION, SegmentDoc, ToolInfo,
    TriggerDoc, UnreadablePod, UsageDoc,
};
use crate::error::ExportError;
use crate::liveness::{Liveness, owner_liveness};
use crate::redact::{Redactor, SecretGuard, key_env_names_of};
use crate::render::Format;
use crate::scan::{
    PhaseLite, RunAcc, SegmentScan, Terminal, empty_integrity, preview, scan_segment,
    side_effect_name,
};
use crate::stream::{
    CollectSink, DocHead, DocTail, JsonSink, MarkdownSink, Sink, Spool, Transcripts,
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

/// Export a pod (or a tree) from its files, into memory. The document is sanitized when asked;
/// secrets are checked when it is rendered ([`crate::render_checked`]). [`prepare`] and
/// [`ExportPlan::write_to`] give the same document without holding it.
pub fn export(
    request: &ExportRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportDocument, ExportError> {
    prepare(request)?.collect(progress)
}

/// An export ready to run: the pods are found and the one asked for is resolved; no log has
/// been read yet.
#[derive(Debug)]
pub struct ExportPlan {
    request: ExportRequest,
    all: BTreeMap<String, PodEntry>,
    unreadable: Vec<(PathBuf, String)>,
    root: String,
    selected: Vec<String>,
}

/// What [`ExportPlan::write_to`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportStats {
    pub pods: usize,
    pub runs: u64,
    pub incidents: usize,
    /// Bytes of the rendered document.
    pub bytes: u64,
}

/// Find the pods of an export (the one asked for, and with `tree` its descendants).
pub fn prepare(request: &ExportRequest) -> Result<ExportPlan, ExportError> {
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
        let text = pod_home::files::read_regular(path, 1 << 20).map_err(|source| {
            ExportError::ReadFile {
                path: path.clone(),
                source,
            }
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
    Ok(ExportPlan {
        request: request.clone(),
        all,
        unreadable,
        root,
        selected,
    })
}

impl ExportPlan {
    /// Names of the key variables whose values the document must not contain: the defaults
    /// plus every exported pod's `model.api_key_env` (read from the manifests now, before any
    /// log, so that the check can run while the document is written).
    pub fn key_env_names(&self) -> Vec<String> {
        let manifests: Vec<Value> = self
            .selected
            .iter()
            .filter_map(|id| pod_doc(&self.all[id], &self.all).manifest)
            .collect();
        key_env_names_of(manifests.iter())
    }

    /// Run the export into memory.
    pub fn collect(
        self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportDocument, ExportError> {
        let mut sink = CollectSink::default();
        self.run(&mut sink, Vec::new(), progress)?;
        Ok(sink.into_document())
    }

    /// Run the export and write the document to `out` in `format` as it is built — each pod
    /// as soon as its logs are read, each run as soon as it is final — so that memory does not
    /// grow with the number of runs. Everything written goes through a [`SecretGuard`] for
    /// `secrets` (recorded in `redaction.secrets_checked`): on
    /// [`ExportError::SecretInOutput`] (or any other error) `out` holds part of a document and
    /// must be discarded, so `out` should never be the final destination (see
    /// [`crate::write_file_atomically`] and [`crate::write_stdout_checked`]).
    pub fn write_to(
        self,
        format: Format,
        secrets: &[Secret],
        out: &mut dyn Write,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportStats, ExportError> {
        let checked = secrets.iter().map(|s| s.env_var.clone()).collect();
        let mut guard = SecretGuard::new(out, secrets);
        let mut stats = match format {
            Format::Json => self.run_beside(&mut JsonSink::new(&mut guard), checked, progress)?,
            Format::Markdown => {
                let spool = Spool::file().map_err(ExportError::Render)?;
                // A sanitized export keeps no conversation text: only its counts.
                let transcripts = Transcripts::of(&self.request.home, self.request.sanitize);
                let mut sink = MarkdownSink::new(&mut guard, spool).with_transcripts(transcripts);
                self.run_beside(&mut sink, checked, progress)?
            }
        };
        // Everything is searched and passed on before it is counted.
        guard.flush().map_err(ExportError::from_io)?;
        stats.bytes = guard.written();
        guard.finish().map_err(ExportError::from_io)?;
        Ok(stats)
    }

    /// [`ExportPlan::run`] on a second thread, which reads the logs and builds the pieces
    /// while this one writes them (and reports progress). A few batches of runs are in flight
    /// between the two, no more.
    fn run_beside(
        self,
        sink: &mut dyn Sink,
        secrets_checked: Vec<String>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportStats, ExportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(PIECES_IN_FLIGHT);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut pieces = PieceSink::new(tx.clone());
                let result = self.run(&mut pieces, secrets_checked, &mut |p| {
                    // A closed channel is seen by the next piece sent.
                    let _ = tx.send(Piece::Progress(p));
                });
                result.and_then(|stats| pieces.flush().map(|()| stats))
            });
            let mut written = Ok(());
            for piece in rx.iter() {
                let step = match piece {
                    Piece::Progress(p) => {
                        progress(p);
                        Ok(())
                    }
                    Piece::Begin(head) => sink.begin(&head),
                    Piece::PodStart(pod) => sink.pod_start(&pod),
                    Piece::Runs(runs) => runs.into_iter().try_for_each(|run| sink.run(run)),
                    Piece::PodEnd(segments) => sink.pod_end(segments),
                    Piece::Finish(tail) => sink.finish(*tail),
                };
                if let Err(error) = step {
                    written = Err(error);
                    break;
                }
            }
            // Dropping the receiver makes the reader's next send fail, so it stops.
            drop(rx);
            let read = reader.join().unwrap_or_else(|_| {
                Err(ExportError::Render(std::io::Error::other(
                    "the thread reading the logs panicked",
                )))
            });
            written?;
            read
        })
    }

    fn run(
        self,
        sink: &mut dyn Sink,
        secrets_checked: Vec<String>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportStats, ExportError> {
        let ExportPlan {
            request,
            all,
            unreadable,
            root,
            selected,
        } = self;
        progress(Progress::Pods {
            total: selected.len(),
        });
        sink.begin(&DocHead {
            format: FORMAT_NAME.to_owned(),
            schema_version: SCHEMA_VERSION,
            exported_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            tool: tool_info(),
            upgraded_from: None,
            root_pod_id: root.clone(),
            tree: request.tree,
        })?;

        // Ancestors outside the export are read first, only for the actions a cascade links to
        // and how they saw their children end; what of them could not be read is listed, since
        // a cascade link may be missing because of it.
        let mut ancestor_index = ActionIndex::default();
        let mut ancestor_problems = Vec::new();
        for ancestor in ancestors(&all, &root) {
            if let Some(pod) = all.get(&ancestor) {
                let scan = scan_pod(pod, &mut |_| {}, &mut |_, _| Ok(()))?;
                for seg in scan.segments {
                    ancestor_index.add_segment(&pod.id, &seg);
                    if seg.integrity.read_error.is_some() {
                        ancestor_problems.push(seg.integrity);
                    }
                }
                ancestor_problems.extend(scan.unlisted);
            }
        }

        let mut redactor = request.sanitize.then(Redactor::default);
        let mut index = ActionIndex::default();
        let mut unlisted = Vec::new();
        let mut integrity = Vec::new();
        // Runs that did not complete, unsanitized, with their pod's name: explained at the end,
        // when every log (and so every action a cascade can link to) has been read.
        let mut pending: Vec<(RunDoc, String)> = Vec::new();
        let mut stats = ExportStats {
            pods: selected.len(),
            ..ExportStats::default()
        };
        for id in &selected {
            let pod = &all[id];
            let mut head = pod_doc(pod, &all);
            let name = head.name.clone();
            if let Some(r) = redactor.as_mut() {
                r.pod_head(&mut head);
            }
            sink.pod_start(&head)?;
            let mut emit = |mut run: RunDoc| -> Result<(), ExportError> {
                stats.runs += 1;
                if matches!(
                    run.outcome,
                    Outcome::ProviderError | Outcome::Interrupted | Outcome::Crashed
                ) {
                    pending.push((run.clone(), name.clone()));
                }
                if let Some(r) = redactor.as_mut() {
                    r.run(&mut run);
                }
                sink.run(run)
            };
            let scan = scan_pod(pod, progress, &mut |seg, acc| {
                // A run still open at its segment's end ends as a later segment (if any) says.
                let mut run = run_doc(&pod.id, seg.scan, acc, seg.later_segment, pod.pid);
                if let Some(evidence) = run.crash_evidence.as_mut()
                    && !seg.later_segment
                {
                    // As the parent recorded it: an ancestor's log (read first) has the last
                    // word, as it has in the merged index below.
                    evidence.exit_seen_by_parent = ancestor_index
                        .child_exit(&pod.id)
                        .or_else(|| index.child_exit(&pod.id));
                }
                emit(run)
            })?;
            let mut segments = Vec::with_capacity(scan.segments.len());
            for seg in scan.segments {
                index.add_segment(&pod.id, &seg);
                segments.push(segment_doc(&seg));
                integrity.push(seg.integrity);
            }
            unlisted.extend(scan.unlisted);
            sink.pod_end(segments)?;
        }
        index.absorb(ancestor_index);

        let mut incidents = Vec::with_capacity(pending.len());
        for (run, name) in pending {
            let mut incident = explain(&run, &name, &index);
            if let Some(r) = redactor.as_mut() {
                r.incident(&mut incident);
            }
            incidents.push(incident);
        }
        stats.incidents = incidents.len();
        unlisted.extend(integrity);
        unlisted.extend(ancestor_problems);
        let mut redaction = Redaction {
            mode: RedactionMode::SecretsOnly,
            secrets_checked,
            replaced: BTreeMap::new(),
        };
        if let Some(r) = redactor {
            r.finish(&mut redaction);
        }
        sink.finish(DocTail {
            incidents,
            integrity: Some(unlisted),
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
            redaction,
        })?;
        Ok(stats)
    }
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
        // Not a pod directory; a pod.json that is not a regular file is unreadable (below).
        if !path.exists() {
            continue;
        }
        let value = match pod_home::files::read_regular(&path, 1 << 20) {
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
    // Names need not be unique: the newest pod with the name is meant, as everywhere (ids are
    // time-ordered and `all` is sorted by id).
    let by_name: Vec<&String> = all
        .values()
        .filter(|p| p.name.as_deref() == Some(query))
        .map(|p| &p.id)
        .next_back()
        .into_iter()
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

/// Batches of runs (and other pieces) queued between the reading and the writing thread.
const PIECES_IN_FLIGHT: usize = 8;
/// Runs per batch.
const RUNS_PER_PIECE: usize = 128;

/// What the reading thread hands to the writing one.
enum Piece {
    Progress(Progress),
    Begin(DocHead),
    PodStart(Box<PodDoc>),
    Runs(Vec<RunDoc>),
    PodEnd(Vec<SegmentDoc>),
    Finish(Box<DocTail>),
}

/// A [`Sink`] that sends the pieces to the writing thread, runs in batches.
struct PieceSink {
    tx: std::sync::mpsc::SyncSender<Piece>,
    runs: Vec<RunDoc>,
}

impl PieceSink {
    fn new(tx: std::sync::mpsc::SyncSender<Piece>) -> Self {
        PieceSink {
            tx,
            runs: Vec::with_capacity(RUNS_PER_PIECE),
        }
    }

    fn send(&mut self, piece: Piece) -> Result<(), ExportError> {
        // The writer stopped (and says why): stop reading.
        self.tx
            .send(piece)
            .map_err(|_| ExportError::Render(std::io::Error::other("the writer stopped")))
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        if self.runs.is_empty() {
            return Ok(());
        }
        let runs = std::mem::replace(&mut self.runs, Vec::with_capacity(RUNS_PER_PIECE));
        self.send(Piece::Runs(runs))
    }
}

impl Sink for PieceSink {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError> {
        self.send(Piece::Begin(head.clone()))
    }

    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError> {
        self.send(Piece::PodStart(Box::new(pod.clone())))
    }

    fn run(&mut self, run: RunDoc) -> Result<(), ExportError> {
        self.runs.push(run);
        if self.runs.len() >= RUNS_PER_PIECE {
            self.flush()?;
        }
        Ok(())
    }

    fn pod_end(&mut self, segments: Vec<SegmentDoc>) -> Result<(), ExportError> {
        self.flush()?;
        self.send(Piece::PodEnd(segments))
    }

    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError> {
        self.flush()?;
        self.send(Piece::Finish(Box::new(tail)))
    }
}

/// Gets each run of a pod, with its segment.
type OnRun<'a> = dyn FnMut(&SegmentEnd<'_>, RunAcc) -> Result<(), ExportError> + 'a;

/// A segment at the end of its scan, with whether a later segment of its pod exists.
struct SegmentEnd<'a> {
    scan: &'a SegmentScan,
    later_segment: bool,
}

/// What reading one pod's logs left: a scan per segment log (its runs handed out), and
/// integrity entries for what could not be listed at all (an unreadable `sessions` directory).
struct PodScan {
    segments: Vec<SegmentScan>,
    unlisted: Vec<LogIntegrity>,
}

/// Read every segment log of `pod`, in order. Runs go to `on_run` in log order: each as soon
/// as it is final, then at a segment's end those still open. Nothing here fails the export but
/// `on_run`: a log or directory that cannot be read is recorded in its integrity entry and the
/// rest is read.
fn scan_pod(
    pod: &PodEntry,
    progress: &mut dyn FnMut(Progress),
    on_run: &mut OnRun<'_>,
) -> Result<PodScan, ExportError> {
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
    let open =
        |segment: &str,
         probe: bool,
         on_run: &mut dyn FnMut(&SegmentScan, RunAcc) -> Result<(), ExportError>| {
            let path = sessions.join(format!("{segment}.jsonl"));
            let trace = sessions.join(format!("{segment}.trace.jsonl")).is_file();
            let rel = format!("sessions/{segment}.jsonl");
            scan_segment(
                &pod.id,
                &path,
                rel,
                segment.to_owned(),
                trace,
                probe,
                on_run,
            )
        };
    // Whether log `i` counts as a segment, probed (read up to its `segment_started`) only when
    // an earlier segment ends with open runs.
    let mut is_segment: Vec<Option<bool>> = vec![None; logs.len()];
    let mut segments = Vec::with_capacity(logs.len());
    for i in 0..logs.len() {
        let scan = open(&logs[i], false, &mut |seg, acc| {
            // Final: the liveness facts of the segment's end are not needed.
            let end = SegmentEnd {
                scan: seg,
                later_segment: false,
            };
            on_run(&end, acc)
        })?;
        match &scan.integrity.read_error {
            Some(error) => progress(Progress::LogUnreadable {
                pod_id: pod.id.clone(),
                log: scan.log_rel.clone(),
                error: error.clone(),
            }),
            None => progress(Progress::LogScanned {
                pod_id: pod.id.clone(),
                log: scan.log_rel.clone(),
                bytes: scan.integrity.bytes,
            }),
        }
        is_segment[i] = Some(scan.is_a_segment());
        let mut scan = scan;
        let leftover: Vec<RunAcc> = scan.runs.drain(..).collect();
        if !leftover.is_empty() {
            let mut later_segment = false;
            // Only a run without a terminal entry ends as a later segment says.
            let open_runs = leftover.iter().any(|run| !run.is_final());
            let later = if open_runs { i + 1..logs.len() } else { 0..0 };
            for j in later {
                let known = match is_segment[j] {
                    Some(known) => known,
                    None => {
                        let probe = open(&logs[j], true, &mut |_, _| Ok(()))?;
                        let known = probe.is_a_segment();
                        is_segment[j] = Some(known);
                        known
                    }
                };
                if known {
                    later_segment = true;
                    break;
                }
            }
            let end = SegmentEnd {
                scan: &scan,
                later_segment,
            };
            for acc in leftover {
                on_run(&end, acc)?;
            }
        }
        segments.push(scan);
    }
    Ok(PodScan { segments, unlisted })
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
    // Read only if regular (a FIFO would block the export) and of a sane size.
    let small = |name: &str| pod_home::files::read_regular(&pod.dir.join(name), 16 << 20);
    let text = small("manifest.toml").and_then(|bytes| {
        String::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    });
    let manifest = match text {
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
    let provenance = match small("provenance.json") {
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
    // One answer with `pods ls`: a `running` pod whose process is gone crashed.
    let state = match pod.state.as_deref() {
        Some("running") if !pod.pid.is_some_and(pod_home::liveness::process_alive) => {
            Some("crashed".to_owned())
        }
        _ => pod.state.clone(),
    };
    let recorded_state = (state != pod.state).then(|| pod.state.clone()).flatten();
    PodDoc {
        id: pod.id.clone(),
        name,
        profile,
        parent_id: pod.parent_id.clone(),
        ancestors: ancestors(all, &pod.id),
        created: pod.created.clone(),
        state,
        recorded_state,
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
        let stop = pod_core::StopFacts::of(stop_reason.as_ref());
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
        LifecycleKind::Kill => "kill",
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
                    kind: kind_name(c.kind).to_owned(),
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
