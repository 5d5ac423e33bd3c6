//! Rendering: JSON (the wire format) and Markdown (for people), and the secret-checked render
//! that the CLI writes.

use std::io::Write;

use crate::document::{
    ChainLink, ExportDocument, Incident, LogIntegrity, OriginDoc, Redaction, RedactionMode, RunDoc,
    UnreadablePod,
};
use crate::error::ExportError;
use crate::redact::{Secret, check_secrets};
use crate::stream::{DocHead, JsonSink, MarkdownSink, Spool, Transcripts, feed};
use pod_home::conversation::{Conversation, Item, read_conversation};
use pod_protocol::text::printable;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
}

/// The JSON document as `pods export` writes it (see `FORMAT.md`, **Layout**): indented, but
/// each run and each incident on one line; one trailing newline.
pub fn render_json(doc: &ExportDocument, out: &mut dyn Write) -> std::io::Result<()> {
    feed(doc, &mut JsonSink::new(out)).map_err(|e| match e {
        ExportError::Render(e) => e,
        other => std::io::Error::other(other),
    })
}

/// Record which secrets are checked (`redaction.secrets_checked`), render to memory in
/// `format`, then refuse if any secret's value is in the bytes. Nothing is written anywhere on
/// refusal.
pub fn render_checked(
    doc: &mut ExportDocument,
    format: Format,
    secrets: &[Secret],
) -> Result<Vec<u8>, ExportError> {
    doc.redaction.secrets_checked = secrets.iter().map(|s| s.env_var.clone()).collect();
    let mut bytes = Vec::new();
    match format {
        Format::Json => render_json(doc, &mut bytes),
        Format::Markdown => render_markdown(doc, &mut bytes),
    }
    .map_err(ExportError::Render)?;
    check_secrets(&bytes, secrets)?;
    Ok(bytes)
}

/// A readable report: the pod tree, each incident's summary and chain, a runs table per pod.
pub fn render_markdown(doc: &ExportDocument, out: &mut dyn Write) -> std::io::Result<()> {
    let mut sink = MarkdownSink::new(out, Spool::Memory(Vec::new()));
    feed(doc, &mut sink).map_err(|e| match e {
        ExportError::Render(e) => e,
        other => std::io::Error::other(other),
    })
}

/// [`render_markdown`] of a document exported from the pods home at `home`, with each pod's
/// transcript read from its session logs (only their counts for a sanitized document), as
/// `pods export --format markdown` writes it.
pub fn render_markdown_with_logs(
    doc: &ExportDocument,
    home: &std::path::Path,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut sink = MarkdownSink::new(out, Spool::Memory(Vec::new())).with_transcripts(
        Transcripts::of(home, doc.redaction.mode == RedactionMode::Sanitized),
    );
    feed(doc, &mut sink).map_err(|e| match e {
        ExportError::Render(e) => e,
        other => std::io::Error::other(other),
    })
}

/// The title, the envelope in words, and the start of the pod tree.
pub(crate) fn md_header(
    out: &mut dyn Write,
    head: &DocHead,
    redaction: &Redaction,
) -> std::io::Result<()> {
    writeln!(
        out,
        "# Session export: pod {}",
        printable(&head.root_pod_id)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{} schema {}, exported {} by {} {}; redaction: {}.",
        head.format,
        head.schema_version,
        head.exported_at,
        head.tool.name,
        head.tool.version,
        redaction_words(redaction)
    )?;
    if let Some(from) = head.upgraded_from {
        writeln!(
            out,
            "Upgraded from schema {from}; facts that schema did not hold are listed as missing."
        )?;
    }
    writeln!(out)?;
    writeln!(out, "## Pods")?;
    writeln!(out)
}

/// Where the exported pod sits when it is not a root: its ancestors, root first.
pub(crate) fn md_ancestors(out: &mut dyn Write, ancestors: &[String]) -> std::io::Result<()> {
    if ancestors.is_empty() {
        return Ok(());
    }
    let path: Vec<String> = ancestors.iter().map(|id| format!("`{id}`")).collect();
    writeln!(
        out,
        "Below {} (ancestors, root first; not part of this export).",
        path.join(" › ")
    )?;
    writeln!(out)
}

/// One pod of the tree.
pub(crate) fn md_pod_line(
    out: &mut dyn Write,
    depth: usize,
    name: &str,
    id: &str,
    profile: &str,
    state: Option<&str>,
    runs: u64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}- {} `{}` (profile {}, {}, {} runs)",
        "  ".repeat(depth),
        printable(name),
        printable(id),
        printable(profile),
        printable(state.unwrap_or("unknown")),
        runs
    )
}

/// The incidents section, and the heading of the runs section that follows it.
pub(crate) fn md_incidents(out: &mut dyn Write, incidents: &[Incident]) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "## Incidents")?;
    writeln!(out)?;
    if incidents.is_empty() {
        writeln!(out, "None: every run completed or is still running.")?;
    }
    for incident in incidents {
        writeln!(out, "### Run `{}`", printable(&incident.run_id))?;
        writeln!(out)?;
        writeln!(out, "{}", printable(&incident.summary))?;
        writeln!(out)?;
        for (i, link) in incident.chain.iter().enumerate() {
            writeln!(out, "{}. {}", i + 1, printable(&link_words(link)))?;
        }
        writeln!(out)?;
        if incident.diagnostics_complete {
            writeln!(out, "Diagnostics complete.")?;
        } else {
            writeln!(
                out,
                "Diagnostics incomplete; missing: {}.",
                printable(&incident.missing_provenance.join(", "))
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "## Runs")
}

/// Unreadable pods and the log integrity table.
pub(crate) fn md_tail(
    out: &mut dyn Write,
    unreadable_pods: &[UnreadablePod],
    integrity: Option<&[LogIntegrity]>,
) -> std::io::Result<()> {
    if !unreadable_pods.is_empty() {
        writeln!(out)?;
        writeln!(out, "## Unreadable pods")?;
        writeln!(out)?;
        writeln!(
            out,
            "These pod directories have an unreadable pod.json and are not in this export:"
        )?;
        for pod in unreadable_pods {
            writeln!(
                out,
                "- `{}`: {}",
                printable(&pod.dir),
                printable(&pod.error)
            )?;
        }
    }
    if let Some(integrity) = integrity {
        writeln!(out)?;
        writeln!(out, "## Log integrity")?;
        writeln!(out)?;
        writeln!(
            out,
            "| pod | log | read | entries | torn tail | seq gaps | unparseable | trace |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---|---|")?;
        for log in integrity {
            writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                log.pod_id,
                log.log,
                log.read_error.as_deref().unwrap_or("whole"),
                log.entries,
                yes_no(log.torn_final_line),
                log.sequence_gap_count,
                log.unparseable_count,
                yes_no(log.trace_sidecar)
            )?;
        }
    }
    Ok(())
}

/// The heading of one pod's runs table.
pub(crate) fn md_runs_heading(out: &mut dyn Write, name: &str, id: &str) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "### {} `{}`", printable(name), printable(id))?;
    writeln!(out)
}

pub(crate) fn md_no_runs(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "No runs.")
}

pub(crate) fn md_runs_table_head(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "| run | started | outcome | detail | tokens | retry |")?;
    writeln!(out, "|---|---|---|---|---|---|")
}

pub(crate) fn md_run_row(out: &mut dyn Write, run: &RunDoc) -> std::io::Result<()> {
    let detail = if let Some(e) = &run.error {
        // The message always: it is what says what went wrong (sanitized like all free text
        // under --sanitize).
        let message = e.message.as_deref().unwrap_or("(no message recorded)");
        match &e.code {
            Some(code) => format!("{} ({code}): {message}", e.class),
            None => format!("{}: {message}", e.class),
        }
    } else if let Some(i) = &run.interrupt {
        match &i.action {
            Some(a) => format!("{} by {}", a.kind, origin_type(&a.origin)),
            None => format!("{} (no action recorded)", i.reason),
        }
    } else if let Some(c) = &run.crash_evidence {
        format!("owner {}", c.owner)
    } else if let Some(stop) = &run.stop_reason {
        let statement = run.stop_statement.as_deref().unwrap_or("");
        match run.truncated {
            Some(true) => format!("**truncated** ({stop}): {statement}"),
            Some(false) => stop.clone(),
            None => format!("stop reason {stop}: {statement}"),
        }
    } else {
        String::new()
    };
    let mut detail = detail;
    if let Some(events) = run.unhandled_events.as_ref().filter(|e| !e.is_empty()) {
        let names: Vec<String> = events.iter().map(|(e, n)| format!("{e} ×{n}")).collect();
        detail.push_str(&format!(
            "{}unhandled stream events: {} (kept only in a trace; {})",
            if detail.is_empty() { "" } else { "; " },
            names.join(", "),
            pod_home::summary::UNHANDLED_TRACE_HINT
        ));
    }
    let tokens = match &run.usage {
        Some(u) if u.requests_with_usage == 0 => "not reported".to_owned(),
        Some(u) => {
            let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
            format!(
                "in {} (cached {}), out {}, reasoning {}",
                n(u.input_tokens),
                n(u.cached_input_tokens),
                n(u.output_tokens),
                n(u.reasoning_tokens)
            )
        }
        None => "unknown".to_owned(),
    };
    let retry = run
        .retry_safety
        .as_ref()
        .map(|r| {
            serde_json::to_value(r.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "-".to_owned());
    writeln!(
        out,
        "| `{}` | {} | {} | {} | {} | {} |",
        printable(&run.run_id),
        printable(run.started_at.as_deref().unwrap_or("unknown")),
        run.outcome.as_str(),
        printable(&detail).replace('|', "\\|"),
        tokens,
        retry
    )
}

/// Tool-result lines a transcript shows; the rest is counted.
const TRANSCRIPT_RESULT_LINES: usize = 12;

/// One pod's transcript after its runs table: the conversation in full, or under `--sanitize`
/// only its counts, or a note that a document holds none.
pub(crate) fn md_transcript(
    out: &mut dyn Write,
    transcripts: &Transcripts,
    pod_id: &str,
) -> std::io::Result<()> {
    let dir = match transcripts {
        Transcripts::Full(pods) | Transcripts::Counts(pods) => {
            pod_home::PodDir::open(&pods.join(pod_id))
        }
        Transcripts::Unavailable => {
            writeln!(out)?;
            writeln!(
                out,
                "Transcript: not available (rendered from an export document, which holds none)."
            )?;
            return Ok(());
        }
    };
    writeln!(out)?;
    let conversation = match read_conversation(&dir) {
        Ok(conversation) => conversation,
        Err(error) => {
            let text = pod_protocol::text::error_chain(&error);
            return match transcripts {
                // The error names paths and text from the logs: not under --sanitize.
                Transcripts::Counts(_) => writeln!(
                    out,
                    "Transcript left out (sanitized); its log could not be read."
                ),
                _ => writeln!(out, "Transcript unavailable: {}", printable(&text)),
            };
        }
    };
    if let Transcripts::Counts(_) = transcripts {
        return md_transcript_counts(out, &conversation);
    }
    writeln!(out, "#### Transcript")?;
    for problem in &conversation.problems {
        writeln!(out)?;
        writeln!(out, "Log problem: {}", printable(problem))?;
    }
    for run in &conversation.runs {
        writeln!(out)?;
        writeln!(
            out,
            "**Run `{}`** ({}, {})",
            printable(&run.run_id),
            run.trigger,
            printable(&run.started)
        )?;
        writeln!(out)?;
        quote(out, "User", &run.input)?;
        for item in &run.items {
            match item {
                Item::Assistant {
                    text, reasoning, ..
                } => {
                    if !reasoning.is_empty() {
                        writeln!(
                            out,
                            "_Reasoning: {} characters (`pods log --reasoning` shows it)._",
                            reasoning.chars().count()
                        )?;
                        writeln!(out)?;
                    }
                    if !text.is_empty() {
                        quote(out, "Assistant", text)?;
                    }
                }
                Item::ToolCall {
                    tool,
                    arguments,
                    outcome,
                    result,
                    result_chars,
                    decision,
                    ..
                } => {
                    let outcome = outcome
                        .and_then(|o| serde_json::to_value(o).ok())
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "no result recorded".into());
                    writeln!(
                        out,
                        "Tool `{}` {}: {outcome}",
                        printable(tool).replace('`', "'"),
                        printable(&arguments.to_string())
                    )?;
                    writeln!(out)?;
                    if let Some(decision) = decision.as_ref().filter(|d| d.notable()) {
                        writeln!(out, "Approval: {}", printable(&decision.describe()))?;
                        writeln!(out)?;
                    }
                    // An indented code block: nothing in a result can end it early.
                    let lines: Vec<&str> = result.lines().collect();
                    for line in lines.iter().take(TRANSCRIPT_RESULT_LINES) {
                        writeln!(out, "    {}", printable(line))?;
                    }
                    let shown: usize = lines
                        .iter()
                        .take(TRANSCRIPT_RESULT_LINES)
                        .map(|l| l.chars().count() + 1)
                        .sum();
                    if shown < *result_chars {
                        writeln!(out, "    … ({result_chars} characters in all)")?;
                    }
                    if !lines.is_empty() {
                        writeln!(out)?;
                    }
                }
                Item::ChildSpawned {
                    child_pod_id,
                    profile,
                    ..
                } => {
                    writeln!(
                        out,
                        "Child spawned: `{}` (profile {}).",
                        printable(child_pod_id),
                        printable(profile)
                    )?;
                    writeln!(out)?;
                }
                Item::ChildExited {
                    child_pod_id,
                    exit_code,
                    signal,
                    ..
                } => {
                    let how = match (exit_code, signal) {
                        (Some(code), _) => format!("exit code {code}"),
                        (None, Some(signal)) => format!("signal {signal}"),
                        (None, None) => "no exit status".into(),
                    };
                    writeln!(out, "Child exited: `{}` ({how}).", printable(child_pod_id))?;
                    writeln!(out)?;
                }
            }
        }
        let mut end = format!("End: {}", run.outcome);
        if let Some(stop) = &run.stop {
            end.push_str(&format!(" ({}): {}", stop.stop_reason, stop.stop_statement));
        } else if let Some(reason) = &run.reason {
            end.push_str(&format!(" ({reason})"));
        }
        if let Some(error) = &run.error {
            end.push_str(&format!("; error {}: {}", error.class, error.message));
        }
        let stop = if end.ends_with('.') { "" } else { "." };
        writeln!(out, "{}{stop}", printable(&end))?;
        writeln!(out)?;
        writeln!(out, "Usage: {}.", run.usage.describe())?;
    }
    Ok(())
}

/// Under `--sanitize`: what the transcript holds, counted, without any of its text.
fn md_transcript_counts(out: &mut dyn Write, conversation: &Conversation) -> std::io::Result<()> {
    let items = || conversation.runs.iter().flat_map(|r| &r.items);
    let messages = items()
        .filter(|i| matches!(i, Item::Assistant { .. }))
        .count();
    let calls = items()
        .filter(|i| matches!(i, Item::ToolCall { .. }))
        .count();
    let children = items()
        .filter(|i| matches!(i, Item::ChildSpawned { .. }))
        .count();
    writeln!(
        out,
        "Transcript left out (sanitized): {} run(s), {messages} assistant message(s), {calls} tool call(s), {children} child pod(s) spawned.",
        conversation.runs.len()
    )
}

/// `text` as a blockquote headed by `who`, control characters escaped.
fn quote(out: &mut dyn Write, who: &str, text: &str) -> std::io::Result<()> {
    writeln!(out, "> **{who}:**")?;
    for line in text.lines() {
        writeln!(out, "> {}", printable(line))?;
    }
    writeln!(out)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn redaction_words(redaction: &Redaction) -> String {
    let mode = serde_json::to_value(redaction.mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if redaction.replaced.is_empty() {
        return mode;
    }
    let counts: Vec<String> = redaction
        .replaced
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    format!("{mode} ({} replaced)", counts.join(", "))
}

fn origin_type(origin: &OriginDoc) -> &'static str {
    match origin {
        OriginDoc::Cli { .. } => "cli",
        OriginDoc::ControlRequest { .. } => "control_request",
        OriginDoc::Signal { .. } => "signal",
        OriginDoc::ParentPod { .. } => "parent_pod",
        OriginDoc::Watchdog { .. } => "watchdog",
        OriginDoc::Runtime { .. } => "runtime",
        OriginDoc::Provider { .. } => "provider",
        OriginDoc::Unknown { .. } => "unknown origin",
        OriginDoc::Unverified { .. } => "unverified claim",
    }
}

fn link_words(link: &ChainLink) -> String {
    match link {
        ChainLink::Run {
            pod_id,
            run_id,
            outcome,
        } => format!("run `{run_id}` of pod `{pod_id}`: {}", outcome.as_str()),
        ChainLink::ProviderError {
            class,
            code,
            http_status,
            provider_request_id,
        } => format!(
            "provider error {class}{}{}{}",
            code.as_deref()
                .map(|c| format!(", code {c}"))
                .unwrap_or_default(),
            http_status
                .map(|s| format!(", HTTP {s}"))
                .unwrap_or_default(),
            provider_request_id
                .as_deref()
                .map(|r| format!(", provider request {r}"))
                .unwrap_or_default()
        ),
        ChainLink::Interrupt { reason, at, .. } => format!(
            "interrupted ({reason}) at {}",
            at.as_deref().unwrap_or("unknown time")
        ),
        ChainLink::LifecycleAction {
            pod_id,
            action_id,
            kind,
            started_at,
        } => format!("{kind} action `{action_id}` on pod `{pod_id}`, started {started_at}"),
        ChainLink::Origin { origin, .. } => {
            format!("origin: {}", crate::chain::describe(origin))
        }
        ChainLink::Request { request_id, client } => {
            format!("request `{request_id}` from client {client}")
        }
        ChainLink::Unresolved {
            pod_id,
            action_id,
            kind,
        } => format!(
            "caused by {kind} action `{action_id}` on pod `{pod_id}`, which is not in that pod's logs"
        ),
        ChainLink::CrashEvidence {
            owner_pid, owner, ..
        } => format!(
            "no terminal entry; owner process{} {owner}",
            owner_pid.map(|p| format!(" {p}")).unwrap_or_default()
        ),
    }
}
