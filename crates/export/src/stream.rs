//! Writing the document as it is built: a [`Sink`] gets the envelope, then each pod, each of its
//! runs and its segments, then what is known only at the end (incidents, integrity,
//! redaction). [`JsonSink`] writes the document indented as `serde_json::to_writer_pretty`
//! would, except that each run and each incident — the bulk of a big export — is one line of
//! compact JSON (the field order of [`ExportDocument`] is the order things become known);
//! [`MarkdownSink`] writes the report, keeping only one line per pod and spooling the runs
//! tables (which the report shows after the incidents) to an unlinked temporary file.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};

use serde::Serialize;

use crate::document::{
    ExportDocument, Incident, LogIntegrity, PodDoc, Redaction, RunDoc, SegmentDoc, ToolInfo,
    UnreadablePod,
};
use crate::error::ExportError;
use crate::render;

/// The fields of the document that come before `pods`.
#[derive(Debug, Clone)]
pub(crate) struct DocHead {
    pub format: String,
    pub schema_version: u32,
    pub exported_at: String,
    pub tool: ToolInfo,
    pub upgraded_from: Option<u32>,
    pub root_pod_id: String,
    pub tree: bool,
}

/// The fields of the document that come after `pods`.
#[derive(Debug, Clone)]
pub(crate) struct DocTail {
    pub incidents: Vec<Incident>,
    pub integrity: Option<Vec<LogIntegrity>>,
    pub unreadable_pods: Vec<UnreadablePod>,
    pub redaction: Redaction,
}

/// Where a document goes, piece by piece, in this order: `begin`, then per pod `pod_start`,
/// its runs, `pod_end`; then `finish`.
pub(crate) trait Sink {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError>;
    /// A pod; its `runs` and `segments` are ignored (they follow).
    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError>;
    fn run(&mut self, run: &RunDoc) -> Result<(), ExportError>;
    /// A run the caller has no more use for: a sink that keeps runs takes it as it is.
    fn run_owned(&mut self, run: RunDoc) -> Result<(), ExportError> {
        self.run(&run)
    }
    fn pod_end(&mut self, segments: Vec<SegmentDoc>) -> Result<(), ExportError>;
    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError>;
}

/// Give a whole document to `sink`.
pub(crate) fn feed(doc: &ExportDocument, sink: &mut dyn Sink) -> Result<(), ExportError> {
    sink.begin(&DocHead {
        format: doc.format.clone(),
        schema_version: doc.schema_version,
        exported_at: doc.exported_at.clone(),
        tool: doc.tool.clone(),
        upgraded_from: doc.upgraded_from,
        root_pod_id: doc.root_pod_id.clone(),
        tree: doc.tree,
    })?;
    for pod in &doc.pods {
        sink.pod_start(pod)?;
        for run in &pod.runs {
            sink.run(run)?;
        }
        sink.pod_end(pod.segments.clone())?;
    }
    sink.finish(DocTail {
        incidents: doc.incidents.clone(),
        integrity: doc.integrity.clone(),
        unreadable_pods: doc.unreadable_pods.clone(),
        redaction: doc.redaction.clone(),
    })
}

/// Collects the pieces into an [`ExportDocument`].
#[derive(Default)]
pub(crate) struct CollectSink {
    head: Option<DocHead>,
    pods: Vec<PodDoc>,
    tail: Option<DocTail>,
}

impl CollectSink {
    pub(crate) fn into_document(self) -> ExportDocument {
        let head = self.head.unwrap_or_else(|| DocHead {
            format: String::new(),
            schema_version: 0,
            exported_at: String::new(),
            tool: crate::tool_info(),
            upgraded_from: None,
            root_pod_id: String::new(),
            tree: false,
        });
        let tail = self.tail.unwrap_or_else(|| DocTail {
            incidents: Vec::new(),
            integrity: None,
            unreadable_pods: Vec::new(),
            redaction: Redaction {
                mode: crate::document::RedactionMode::Unknown,
                secrets_checked: Vec::new(),
                replaced: Default::default(),
            },
        });
        ExportDocument {
            format: head.format,
            schema_version: head.schema_version,
            exported_at: head.exported_at,
            tool: head.tool,
            upgraded_from: head.upgraded_from,
            root_pod_id: head.root_pod_id,
            tree: head.tree,
            pods: self.pods,
            incidents: tail.incidents,
            integrity: tail.integrity,
            unreadable_pods: tail.unreadable_pods,
            redaction: tail.redaction,
        }
    }
}

impl Sink for CollectSink {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError> {
        self.head = Some(head.clone());
        Ok(())
    }

    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError> {
        let mut pod = pod.clone();
        pod.runs.clear();
        pod.segments.clear();
        self.pods.push(pod);
        Ok(())
    }

    fn run(&mut self, run: &RunDoc) -> Result<(), ExportError> {
        self.run_owned(run.clone())
    }

    fn run_owned(&mut self, run: RunDoc) -> Result<(), ExportError> {
        if let Some(pod) = self.pods.last_mut() {
            pod.runs.push(run);
        }
        Ok(())
    }

    fn pod_end(&mut self, segments: Vec<SegmentDoc>) -> Result<(), ExportError> {
        if let Some(pod) = self.pods.last_mut() {
            pod.segments = segments;
        }
        Ok(())
    }

    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError> {
        self.tail = Some(tail);
        Ok(())
    }
}

const SPACES: &[u8] = b"                                ";

/// `serde_json`'s pretty formatter (two-space indent), starting `level` deep.
struct Nested {
    level: usize,
    has_value: bool,
}

impl Nested {
    fn at(level: usize) -> Self {
        Nested {
            level,
            has_value: false,
        }
    }

    fn indent<W: ?Sized + Write>(&self, out: &mut W) -> std::io::Result<()> {
        let mut n = 2 * self.level;
        while n > 0 {
            let step = n.min(SPACES.len());
            out.write_all(&SPACES[..step])?;
            n -= step;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            out.write_all(b"\n")?;
            self.indent(out)?;
        }
        out.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(out)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            out.write_all(b"\n")?;
            self.indent(out)?;
        }
        out.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(out)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The JSON document (two-space indent, a run or an incident per line), written piece by piece.
pub(crate) struct JsonSink<W: Write> {
    out: W,
    scratch: Vec<u8>,
    pods: usize,
    runs: u64,
    missing: Vec<String>,
}

impl<W: Write> JsonSink<W> {
    pub(crate) fn new(out: W) -> Self {
        JsonSink {
            out,
            scratch: Vec::with_capacity(64 * 1024),
            pods: 0,
            runs: 0,
            missing: Vec::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.write_all(bytes).map_err(ExportError::from_io)
    }

    fn indent(&mut self, level: usize) -> Result<(), ExportError> {
        self.raw(&SPACES[..2 * level])
    }

    /// `value` as pretty JSON, as if nested `level` deep.
    fn value<T: Serialize + ?Sized>(&mut self, level: usize, value: &T) -> Result<(), ExportError> {
        self.scratch.clear();
        let mut ser = serde_json::Serializer::with_formatter(&mut self.scratch, Nested::at(level));
        value
            .serialize(&mut ser)
            .map_err(|e| ExportError::Render(std::io::Error::other(e)))?;
        self.out
            .write_all(&self.scratch)
            .map_err(ExportError::from_io)
    }

    /// `value` as compact JSON: one line. Rendered into a buffer first: the serializer's many
    /// small writes are cheap into a `Vec` and costly through a writer.
    fn line<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ExportError> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, value)
            .map_err(|e| ExportError::Render(std::io::Error::other(e)))?;
        self.out
            .write_all(&self.scratch)
            .map_err(ExportError::from_io)
    }

    /// `"key": [ … ]` as a member of an object whose members are `level` deep, with each item
    /// on a line of its own (compact JSON).
    fn lines<T: Serialize>(
        &mut self,
        level: usize,
        key: &str,
        items: &[T],
    ) -> Result<(), ExportError> {
        self.raw(b",\n")?;
        self.indent(level)?;
        self.raw(b"\"")?;
        self.raw(key.as_bytes())?;
        self.raw(b"\": [")?;
        for (i, item) in items.iter().enumerate() {
            self.raw(if i == 0 { b"\n" } else { b",\n" })?;
            self.indent(level + 1)?;
            self.line(item)?;
        }
        if !items.is_empty() {
            self.raw(b"\n")?;
            self.indent(level)?;
        }
        self.raw(b"]")
    }

    /// `"key": value` as a member of an object whose members are `level` deep.
    fn field<T: Serialize + ?Sized>(
        &mut self,
        level: usize,
        first: bool,
        key: &str,
        value: &T,
    ) -> Result<(), ExportError> {
        self.raw(if first { b"\n" } else { b",\n" })?;
        self.indent(level)?;
        self.raw(b"\"")?;
        self.raw(key.as_bytes())?;
        self.raw(b"\": ")?;
        self.value(level, value)
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError> {
        self.raw(b"{")?;
        self.field(1, true, "format", &head.format)?;
        self.field(1, false, "schema_version", &head.schema_version)?;
        self.field(1, false, "exported_at", &head.exported_at)?;
        self.field(1, false, "tool", &head.tool)?;
        if let Some(from) = head.upgraded_from {
            self.field(1, false, "upgraded_from", &from)?;
        }
        self.field(1, false, "root_pod_id", &head.root_pod_id)?;
        self.field(1, false, "tree", &head.tree)?;
        self.raw(b",\n  \"pods\": [")
    }

    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError> {
        self.raw(if self.pods == 0 { b"\n" } else { b",\n" })?;
        self.pods += 1;
        self.runs = 0;
        self.indent(2)?;
        self.raw(b"{")?;
        self.field(3, true, "id", &pod.id)?;
        self.field(3, false, "name", &pod.name)?;
        self.field(3, false, "profile", &pod.profile)?;
        self.field(3, false, "parent_id", &pod.parent_id)?;
        self.field(3, false, "ancestors", &pod.ancestors)?;
        self.field(3, false, "created", &pod.created)?;
        self.field(3, false, "state", &pod.state)?;
        if pod.recorded_state.is_some() {
            self.field(3, false, "recorded_state", &pod.recorded_state)?;
        }
        self.field(3, false, "manifest", &pod.manifest)?;
        self.field(3, false, "provenance", &pod.provenance)?;
        self.missing = pod.missing.clone();
        self.raw(b",\n      \"runs\": [")
    }

    fn run(&mut self, run: &RunDoc) -> Result<(), ExportError> {
        self.raw(if self.runs == 0 { b"\n" } else { b",\n" })?;
        self.runs += 1;
        self.indent(4)?;
        self.line(run)
    }

    fn pod_end(&mut self, segments: Vec<SegmentDoc>) -> Result<(), ExportError> {
        if self.runs > 0 {
            self.raw(b"\n      ]")?;
        } else {
            self.raw(b"]")?;
        }
        self.field(3, false, "segments", &segments)?;
        let missing = std::mem::take(&mut self.missing);
        self.field(3, false, "missing", &missing)?;
        self.raw(b"\n    }")
    }

    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError> {
        if self.pods > 0 {
            self.raw(b"\n  ]")?;
        } else {
            self.raw(b"]")?;
        }
        self.lines(1, "incidents", &tail.incidents)?;
        self.field(1, false, "integrity", &tail.integrity)?;
        if !tail.unreadable_pods.is_empty() {
            self.field(1, false, "unreadable_pods", &tail.unreadable_pods)?;
        }
        self.field(1, false, "redaction", &tail.redaction)?;
        self.raw(b"\n}\n")?;
        self.out.flush().map_err(ExportError::from_io)
    }
}

/// Where the Markdown runs tables wait for the incidents to be written.
pub(crate) enum Spool {
    Memory(Vec<u8>),
    File(BufWriter<File>),
}

impl Spool {
    /// An unlinked temporary file: nothing is left behind, whatever happens.
    pub(crate) fn file() -> std::io::Result<Spool> {
        let file = crate::output::anonymous_file(&std::env::temp_dir())?;
        Ok(Spool::File(BufWriter::with_capacity(1 << 20, file)))
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Spool::Memory(bytes) => bytes,
            Spool::File(file) => file,
        }
    }

    fn copy_into(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Spool::Memory(bytes) => out.write_all(bytes),
            Spool::File(file) => {
                file.flush()?;
                let file = file.get_mut();
                file.rewind()?;
                std::io::copy(file, out)?;
                Ok(())
            }
        }
    }
}

struct PodLine {
    depth: usize,
    /// The pod's ancestors' ids, root first.
    ancestors: Vec<String>,
    name: String,
    id: String,
    profile: String,
    state: Option<String>,
    runs: u64,
}

/// Where the Markdown report's per-pod transcripts come from.
#[derive(Debug, Clone)]
pub(crate) enum Transcripts {
    /// Read from each pod's session logs below this `pods/` directory.
    Full(std::path::PathBuf),
    /// Sanitized export: the transcript is left out; only its counts are read from the logs.
    Counts(std::path::PathBuf),
    /// Rendered from a document, not from pods: there are no logs to read.
    Unavailable,
}

impl Transcripts {
    /// The transcripts of the pods home at `home`: in full, or only counted when `sanitized`.
    pub(crate) fn of(home: &std::path::Path, sanitized: bool) -> Transcripts {
        let pods = home.join("pods");
        if sanitized {
            Transcripts::Counts(pods)
        } else {
            Transcripts::Full(pods)
        }
    }
}

/// The Markdown report, written piece by piece.
pub(crate) struct MarkdownSink<W: Write> {
    out: W,
    spool: Spool,
    head: Option<DocHead>,
    pods: Vec<PodLine>,
    runs: u64,
    transcripts: Transcripts,
}

impl<W: Write> MarkdownSink<W> {
    pub(crate) fn new(out: W, spool: Spool) -> Self {
        MarkdownSink {
            out,
            spool,
            head: None,
            pods: Vec::new(),
            runs: 0,
            transcripts: Transcripts::Unavailable,
        }
    }

    pub(crate) fn with_transcripts(mut self, transcripts: Transcripts) -> Self {
        self.transcripts = transcripts;
        self
    }
}

fn render_err(e: std::io::Error) -> ExportError {
    ExportError::from_io(e)
}

impl<W: Write> Sink for MarkdownSink<W> {
    fn begin(&mut self, head: &DocHead) -> Result<(), ExportError> {
        self.head = Some(head.clone());
        Ok(())
    }

    fn pod_start(&mut self, pod: &PodDoc) -> Result<(), ExportError> {
        self.pods.push(PodLine {
            depth: pod.ancestors.len(),
            ancestors: pod.ancestors.clone(),
            name: pod.name.clone(),
            id: pod.id.clone(),
            profile: pod.profile.clone(),
            state: pod.state.clone(),
            runs: 0,
        });
        self.runs = 0;
        render::md_runs_heading(self.spool.writer(), &pod.name, &pod.id).map_err(render_err)
    }

    fn run(&mut self, run: &RunDoc) -> Result<(), ExportError> {
        let out = self.spool.writer();
        if self.runs == 0 {
            render::md_runs_table_head(out).map_err(render_err)?;
        }
        self.runs += 1;
        render::md_run_row(out, run).map_err(render_err)
    }

    fn pod_end(&mut self, _segments: Vec<SegmentDoc>) -> Result<(), ExportError> {
        if self.runs == 0 {
            render::md_no_runs(self.spool.writer()).map_err(render_err)?;
        }
        if let Some(pod) = self.pods.last_mut() {
            pod.runs = self.runs;
            render::md_transcript(self.spool.writer(), &self.transcripts, &pod.id)
                .map_err(render_err)?;
        }
        Ok(())
    }

    fn finish(&mut self, tail: DocTail) -> Result<(), ExportError> {
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        let out = &mut self.out;
        render::md_header(out, &head, &tail.redaction).map_err(render_err)?;
        if let Some(top) = self.pods.first() {
            render::md_ancestors(out, &top.ancestors).map_err(render_err)?;
        }
        for pod in &self.pods {
            render::md_pod_line(
                out,
                pod.depth,
                &pod.name,
                &pod.id,
                &pod.profile,
                pod.state.as_deref(),
                pod.runs,
            )
            .map_err(render_err)?;
        }
        render::md_incidents(out, &tail.incidents).map_err(render_err)?;
        self.spool.copy_into(out).map_err(render_err)?;
        render::md_tail(out, &tail.unreadable_pods, tail.integrity.as_deref())
            .map_err(render_err)?;
        out.flush().map_err(render_err)
    }
}
