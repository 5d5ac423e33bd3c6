//! `pods trace`: render a pod's trace sidecars.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use pod_core::PodHome;
use pod_core::record::PodState;
use pod_provider::StreamEvent;
use pod_trace::{
    FailedRequest, Marker, TimelineItem, TraceBody, TraceEntry, TraceLine, TraceReader,
    failed_requests, is_failure, timeline,
};

use pod_core::printable;

use crate::failure::{CmdResult, Exit, Failure, out};
use crate::global::GlobalArgs;

/// Show what a pod's provider streams did: lifecycle markers (request built, stream open,
/// first event, retries, stream end, run end), every normalized stream event with text deltas
/// coalesced, raw SSE frames when they were captured, and errors highlighted with `!!`.
///
/// Traces exist only for pods that ran with `session.record_event_trace = true` (for example
/// `pods run --set session.record_event_trace=true …` or the `debug` profile).
#[derive(Debug, Args)]
#[command(after_help = TRACE_HELP)]
pub struct TraceArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`).
    #[arg(value_name = "POD")]
    pub pod: String,
    /// Show only failed requests, each with the events and markers that led up to it (also
    /// with `--json`). Not with `--follow`, which shows every new entry.
    #[arg(long, conflicts_with = "follow")]
    pub errors: bool,
    /// Print the trace entries as JSON Lines, unchanged. With `--errors`: only the entries of
    /// failed requests (each failure after the entries that led up to it).
    #[arg(long)]
    pub json: bool,
    /// Keep printing new entries while the pod is running.
    #[arg(long)]
    pub follow: bool,
}

const TRACE_HELP: &str = "\
Each line: time, request (tN.aM = turn N, attempt M), then a marker or event; `!!` marks errors,
stream open failures, idle timeouts and shed entries (lost because the writer queue was full).

Examples:
  pods trace <pod>                 the whole timeline, text deltas joined
  pods trace <pod> --errors        each failed request with what led up to it
  pods trace <pod> --json | jq .   the entries as written (JSON Lines)
  pods trace <pod> --errors --json the entries of failed requests only";

pub fn run(global: &GlobalArgs, args: TraceArgs) -> CmdResult {
    let home = PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = home
        .find(&args.pod)
        .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?;
    let segments = dir.segments().map_err(Failure::run_failed)?;
    let traces: Vec<PathBuf> = segments.iter().filter_map(|s| s.trace.clone()).collect();
    if traces.is_empty() {
        out::stderr(&format!(
            "pod {} has no trace: tracing was off (session.record_event_trace = false) for all its {} segment(s)\n",
            dir.id(),
            segments.len()
        ));
        out::stderr(
            "hint: run with `--set session.record_event_trace=true` (or a profile that sets it, e.g. `debug`) to record one\n",
        );
        return Ok(Exit::Success);
    }
    let mut out = std::io::stdout().lock();
    let mut all = Vec::new();
    for path in &traces {
        let (entries, problems) = TraceReader::read_all(path).map_err(Failure::run_failed)?;
        for problem in &problems {
            if let TraceLine::Unreadable { line, torn, error } = problem {
                out::stderr(&format!(
                    "warning: {}:{line}: {} ({error})\n",
                    path.display(),
                    if *torn {
                        "torn last line"
                    } else {
                        "unreadable line"
                    }
                ));
            }
        }
        if args.json {
            if args.errors {
                for failure in failed_requests(&entries) {
                    for entry in &failure.leading {
                        write_json(&mut out, entry);
                    }
                    write_json(&mut out, &failure.failure);
                }
            } else {
                for entry in &entries {
                    write_json(&mut out, entry);
                }
            }
        }
        all.push((path.clone(), entries));
    }
    if !args.json {
        if args.errors {
            let mut count = 0;
            for (path, entries) in &all {
                for failure in failed_requests(entries) {
                    count += 1;
                    render_failure(&mut out, path, &failure);
                }
            }
            if count == 0 {
                let _ = writeln!(out, "no failed requests in {} trace file(s)", all.len());
            }
        } else {
            for (path, entries) in &all {
                let _ = writeln!(out, "== {}", path.display());
                for item in timeline(entries) {
                    render_item(&mut out, &item);
                }
            }
        }
    }
    let _ = out.flush();
    drop(out);
    if args.follow
        && let Some(path) = traces.last()
    {
        let seen = all.last().map_or(0, |(_, e)| e.len());
        follow(&dir, path, seen, args.json);
    }
    Ok(Exit::Success)
}

/// Print entries appended after the first `seen` ones, until the pod stops running.
fn follow(dir: &pod_core::PodDir, path: &Path, mut seen: usize, json: bool) {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        // Asked before reading: once the pod is seen gone, this read has its last entries.
        // A pod whose process is gone (crashed) writes nothing more, whatever pod.json says.
        let running = dir.read_info().is_ok_and(|info| {
            matches!(info.state, PodState::Running | PodState::Idle)
                && info
                    .pid
                    .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
        });
        if let Ok((entries, _)) = TraceReader::read_all(path) {
            let mut out = std::io::stdout().lock();
            for entry in entries.iter().skip(seen) {
                if json {
                    write_json(&mut out, entry);
                } else {
                    render_item(&mut out, &TimelineItem::Entry(entry.clone()));
                }
            }
            let _ = out.flush();
            seen = seen.max(entries.len());
        }
        if !running {
            return;
        }
    }
}

fn write_json(out: &mut impl Write, entry: &TraceEntry) {
    if let Ok(line) = serde_json::to_string(entry) {
        let _ = writeln!(out, "{line}");
    }
}

fn render_failure(out: &mut impl Write, path: &Path, failure: &FailedRequest) {
    let f = &failure.failure;
    let _ = writeln!(
        out,
        "== failed request: run {} turn {} attempt {} ({})",
        printable(f.run_id.as_deref().unwrap_or("?")),
        f.turn.map_or("?".into(), |t| t.to_string()),
        f.attempt.map_or("?".into(), |t| t.to_string()),
        path.display()
    );
    for item in timeline(&failure.leading) {
        render_item(out, &item);
    }
    render_item(out, &TimelineItem::Entry(f.clone()));
    let _ = writeln!(out);
}

fn request_tag(entry: &TraceEntry) -> String {
    match (entry.turn, entry.attempt) {
        (Some(t), Some(a)) => format!("t{t}.a{a}"),
        _ => "    ".into(),
    }
}

fn render_item(out: &mut impl Write, item: &TimelineItem) {
    match item {
        TimelineItem::Text {
            first,
            text,
            deltas,
            reasoning,
        } => {
            let label = if *reasoning { "reasoning" } else { "text" };
            let _ = writeln!(
                out,
                "{} {} {label} ({deltas} deltas): {:?}",
                printable(time_of(&first.ts)),
                request_tag(first),
                text
            );
        }
        TimelineItem::Entry(entry) => {
            let flag = if is_failure(entry) { "!!" } else { "  " };
            let _ = writeln!(
                out,
                "{} {} {flag} {}",
                printable(time_of(&entry.ts)),
                request_tag(entry),
                printable(&describe(entry))
            );
        }
    }
}

fn time_of(ts: &str) -> &str {
    // `2026-01-01T12:34:56.789Z` → `12:34:56.789`
    ts.get(11..23).unwrap_or(ts)
}

fn describe(entry: &TraceEntry) -> String {
    match &entry.body {
        TraceBody::Lifecycle(marker) => describe_marker(marker),
        TraceBody::Stream { event } => describe_event(event),
        // A person reads what the frame was, not its payload: `--json` keeps the frame whole.
        TraceBody::RawSse(frame) => format!(
            "raw_sse {}{} bytes{}",
            frame
                .event
                .as_deref()
                .or_else(|| frame_type(&frame.data))
                .map(|e| format!("{e} "))
                .unwrap_or_default(),
            frame.original_len,
            if frame.truncated { " (truncated)" } else { "" },
        ),
        TraceBody::RawResponse(head) => format!(
            "raw_response {} {} {} headers{}",
            head.scheme,
            head.status,
            head.headers.len(),
            head.body
                .as_deref()
                .map(|b| format!(
                    ", body{}: {b:?}",
                    if head.truncated { " (truncated)" } else { "" }
                ))
                .unwrap_or_default()
        ),
        TraceBody::Shed { count } => {
            format!("SHED: {count} trace entries were lost here (writer queue full)")
        }
        _ => "unknown entry".into(),
    }
}

fn describe_marker(marker: &Marker) -> String {
    match marker {
        Marker::RequestBuilt {
            endpoint,
            body_bytes,
            messages,
            tools,
        } => format!(
            "request_built {endpoint} ({body_bytes} bytes, {messages} messages, {tools} tools)"
        ),
        Marker::StreamOpenOk { http_status } => format!("stream_open_ok HTTP {http_status}"),
        Marker::StreamOpenError { http_status, class } => format!(
            "STREAM OPEN ERROR {class}{}",
            http_status
                .map(|s| format!(" (HTTP {s})"))
                .unwrap_or_default()
        ),
        Marker::FirstEvent { after_ms } => format!(
            "first_event{}",
            after_ms
                .map(|ms| format!(" after {ms} ms"))
                .unwrap_or_default()
        ),
        Marker::RetryScheduled { delay_ms, cause } => {
            format!("retry_scheduled in {delay_ms} ms, cause: {cause}")
        }
        Marker::StreamEnd { outcome } => format!("stream_end {outcome}"),
        Marker::RunEnd { outcome } => format!("run_end {outcome}"),
        Marker::TraceStarted {
            segment_id, pod_id, ..
        } => format!("trace_started pod {pod_id} segment {segment_id}"),
        Marker::Other { name, detail } => format!("{name} {detail}"),
        other => other.name().to_owned(),
    }
}

fn describe_event(event: &StreamEvent) -> String {
    match event {
        StreamEvent::Error(error) => format!(
            "ERROR {}{}{}: {}",
            error.class,
            error
                .code
                .as_deref()
                .map(|c| format!(" code={c}"))
                .unwrap_or_default(),
            error
                .http_status
                .map(|s| format!(" HTTP {s}"))
                .unwrap_or_default(),
            error.message
        ),
        StreamEvent::ToolCallStart(start) => {
            format!("tool_call_start {} ({})", start.name, start.call_id)
        }
        StreamEvent::ToolCallEnd(end) => {
            format!(
                "tool_call_end #{} {}",
                end.index,
                arguments_words(&end.arguments)
            )
        }
        StreamEvent::ToolCallDelta(delta) => format!(
            "tool_call_delta #{} ({} bytes of arguments)",
            delta.index,
            delta.arguments.len()
        ),
        StreamEvent::Completed(done) => format!("completed ({})", done.stop_reason.name()),
        StreamEvent::Incomplete(incomplete) => format!("incomplete ({})", incomplete.reason),
        StreamEvent::Started(started) => format!(
            "started{}{}",
            started
                .response_id
                .as_deref()
                .map(|id| format!(" response {id}"))
                .unwrap_or_default(),
            started
                .model
                .as_deref()
                .map(|m| format!(" model {m}"))
                .unwrap_or_default()
        ),
        StreamEvent::Usage(usage) => {
            let counts = [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cached input", usage.cached_input_tokens),
                ("reasoning", usage.reasoning_tokens),
            ];
            let words: Vec<String> = counts
                .iter()
                .filter_map(|(name, n)| n.map(|n| format!("{name} {n}")))
                .collect();
            format!(
                "usage {}",
                if words.is_empty() {
                    "(no counts)".into()
                } else {
                    words.join(", ")
                }
            )
        }
        StreamEvent::TextDelta(delta) => format!("text_delta {:?}", delta.text),
        StreamEvent::ReasoningDelta(delta) => format!(
            "reasoning_delta ({}) {}",
            serde_json::to_value(delta.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            if delta.text.is_empty() {
                "(no text)".to_owned()
            } else {
                format!("{:?}", delta.text)
            }
        ),
        StreamEvent::Unhandled(u) => format!(
            "unhandled event={} ({} bytes; `--json` shows its start)",
            u.event, u.original_len
        ),
        other => format!("{} (`--json` shows it)", other.kind()),
    }
}

/// The `type` of a JSON data frame (data-only streams name their events there).
fn frame_type(data: &str) -> Option<&str> {
    let start = data.find("\"type\"")?;
    let rest = data[start + 6..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// A tool call's JSON arguments as `key=value` words; arguments that are not a JSON object are
/// shown by size only (the entry itself is in `--json`).
pub(crate) fn arguments_words(arguments: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(serde_json::Value::Object(map)) if map.is_empty() => "(no arguments)".into(),
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}={text:?}"),
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                    format!("{key}=({} bytes)", value.to_string().len())
                }
                scalar => format!("{key}={scalar}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => format!(
            "({} bytes of arguments, not a JSON object)",
            arguments.len()
        ),
    }
}
