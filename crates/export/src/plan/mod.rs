//! From a pod home to an [`ExportDocument`]: find the pods, scan their logs, summarize runs,
//! explain incidents — handing each piece to a [`Sink`] as soon as it is known, so that the
//! document can be written (or collected) without holding every run.
//!
//! The pods are found in `pods` and each pod's logs read in `logs`; `pipeline` reads on a
//! second thread while the calling thread renders, checks and writes the document;
//! [`crate::mapping`] turns what the scan found into the document's shapes.

mod logs;
mod pipeline;
mod pods;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Secret;
use crate::chain::{ActionIndex, explain};
use crate::document::{
    ExportDocument, FORMAT_NAME, Outcome, Redaction, RedactionMode, RunDoc, SCHEMA_VERSION,
    ToolInfo, UnreadablePod,
};
use crate::error::ExportError;
use crate::mapping::{run_doc, segment_doc};
use crate::redact::{Redactor, SecretGuard, key_env_names_of};
use crate::render::Format;
use crate::stream::{
    CollectSink, DocHead, DocTail, JsonSink, MarkdownSink, Sink, Spool, Transcripts,
};

use logs::scan_pod;
use pod_home::{PodHome, PodIndex};
use pods::{PodEntry, load_pods, pod_doc, resolve};

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
    /// The root's ancestors outside the export, from the top of its tree down.
    ancestors: Vec<String>,
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
    let index = PodIndex::load(&PodHome::at(&request.home)).map_err(ExportError::Home)?;
    let (all, unreadable) = load_pods(&index);
    let asked = resolve(&index, &request.pod)?;
    if asked.fields.is_err() {
        // The pod asked for is an unreadable one: that is an error, not a footnote.
        let path = asked.dir.info_path();
        let text = pod_home::files::read_regular(&path, 1 << 20).map_err(|source| {
            ExportError::ReadFile {
                path: path.clone(),
                source,
            }
        })?;
        let source = serde_json::from_slice::<Value>(&text)
            .err()
            .unwrap_or_else(|| serde::de::Error::custom("not a pod.json object"));
        return Err(ExportError::BadPodJson { path, source });
    }
    let root = asked.id().to_owned();
    let selected = if request.tree {
        // Pods whose pod.json cannot be read are listed as unreadable, not exported.
        let mut tree = index.tree(&root);
        tree.retain(|id| all.contains_key(id));
        tree
    } else {
        vec![root.clone()]
    };
    let ancestors = index.ancestors(&root);
    Ok(ExportPlan {
        request: request.clone(),
        all,
        unreadable,
        root,
        ancestors,
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
            .filter_map(|id| pod_doc(&self.all[id]).manifest)
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
            ancestors,
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
        for ancestor in ancestors {
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
            let mut head = pod_doc(pod);
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
                sink.run_owned(run)
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
