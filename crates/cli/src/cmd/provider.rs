//! `pods provider …`: tools around the provider adapters.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use pod_provider::{
    Cassette, CassetteResponse, Client, ClientConfig, RetryPolicy, StreamEvent, WireScheme,
};

use crate::failure::{CmdResult, Exit, Failure, out};
use crate::global::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Run a recorded SSE body or HTTP response through the real adapter.
    ///
    /// FILE is either a bare SSE body (served as `200 text/event-stream`) or a full HTTP/1.1
    /// response capture (status line, headers, blank line, body) whose status and headers drive
    /// error classification. It is served once by an in-process loopback replay server and read
    /// by the real client (no retries), so what you see is what a pod would see.
    ///
    /// Prints the normalized events: one JSON object per line with --json; otherwise one readable
    /// line per event, consecutive text or reasoning fragments joined into one line. Exit 0 when the stream completed (or ended `incomplete`), 1 when it
    /// ended in an error (the error is the last event printed), 2 on bad usage.
    ///
    /// Example: pods provider replay --scheme anthropic-messages --json stream.sse
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Wire scheme: openai-responses, openai-chat or anthropic-messages.
    #[arg(long, value_name = "SCHEME")]
    scheme: String,
    /// Print one JSON object per event (the `StreamEvent` wire format, tag `type`).
    #[arg(long)]
    json: bool,
    /// A bare SSE body or a full HTTP/1.1 response capture.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(_global: &GlobalArgs, command: ProviderCommand) -> CmdResult {
    match command {
        ProviderCommand::Replay(args) => replay(args),
    }
}

fn replay(args: ReplayArgs) -> CmdResult {
    let scheme = WireScheme::parse(&args.scheme).ok_or_else(|| {
        let known: Vec<&str> = WireScheme::ALL.iter().map(|s| s.as_str()).collect();
        let mut hint = format!("use one of: {}", known.join(", "));
        if args.scheme.starts_with("gemini") {
            hint.push_str(" (the gemini scheme is not handled yet)");
        }
        Failure::usage(format!("unknown wire scheme `{}`", args.scheme)).with_hint(hint)
    })?;
    let response = CassetteResponse::from_file(&args.file).map_err(Failure::usage)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::RunFailed, e))?;
    let events = runtime.block_on(async {
        let server = pod_provider::ReplayServer::start(Cassette::new(scheme, vec![response]))
            .map_err(|e| Failure::new(Exit::RunFailed, e))?;
        let mut config = ClientConfig::new(scheme).with_base_url(server.base_url());
        config.retry = RetryPolicy::none();
        config.first_event_timeout = Duration::from_secs(30);
        config.idle_timeout = Duration::from_secs(30);
        let client = Client::new(config).map_err(|e| Failure::new(Exit::RunFailed, e))?;
        let mut stream = client.stream(&pod_provider::ModelRequest::default(), None);
        let mut stdout = std::io::stdout().lock();
        let mut last = None;
        // Readable mode joins consecutive text (or reasoning) fragments into one line.
        let mut run: Option<(&'static str, u32, String)> = None;
        while let Some(event) = stream.next_event().await {
            let mut lines = Vec::new();
            if args.json {
                lines.push(serde_json::to_string(&event).unwrap_or_else(|e| {
                    serde_json::json!({"type": "unprintable", "error": e.to_string()}).to_string()
                }));
            } else {
                let fragment = match &event {
                    StreamEvent::TextDelta(d) => Some(("text", d.choice, d.text.as_str())),
                    StreamEvent::ReasoningDelta(r) if r.signature.is_none() => {
                        Some(("reasoning", r.choice, r.text.as_str()))
                    }
                    _ => None,
                };
                match (fragment, &mut run) {
                    (Some((label, choice, text)), Some((l, c, acc)))
                        if *l == label && *c == choice =>
                    {
                        acc.push_str(text);
                    }
                    (Some((label, choice, text)), _) => {
                        lines.extend(run.take().map(render_run));
                        run = Some((label, choice, text.to_string()));
                    }
                    (None, _) => {
                        lines.extend(run.take().map(render_run));
                        lines.push(render(&event));
                    }
                }
            }
            for line in lines {
                if writeln!(stdout, "{line}").is_err() {
                    // Broken pipe: the reader left; stop quietly.
                    return Ok(None);
                }
            }
            last = Some(event);
        }
        if let Some(r) = run.take() {
            let _ = writeln!(stdout, "{}", render_run(r));
        }
        Ok::<_, Failure>(last)
    })?;
    match events {
        Some(StreamEvent::Completed(_) | StreamEvent::Incomplete(_)) => Ok(Exit::Success),
        Some(StreamEvent::Error(e)) => {
            out::stderr(&format!(
                "error: the stream ended with {}: {}\n",
                e.class, e.message
            ));
            Ok(Exit::RunFailed)
        }
        None => Ok(Exit::Success),
        Some(_) => Ok(Exit::RunFailed),
    }
}

fn render_run((label, choice, text): (&'static str, u32, String)) -> String {
    format!("{label:<14} [{choice}] {text:?}")
}

/// One readable line per event.
fn render(event: &StreamEvent) -> String {
    match event {
        StreamEvent::Started(s) => format!(
            "started        response={} model={}",
            s.response_id.as_deref().unwrap_or("(unknown)"),
            s.model.as_deref().unwrap_or("(unknown)")
        ),
        StreamEvent::TextDelta(d) => format!("text           [{}] {:?}", d.choice, d.text),
        StreamEvent::ReasoningDelta(r) => match &r.signature {
            Some(sig) => format!(
                "reasoning      [{:?}] {:?} signature({} bytes)",
                r.kind,
                r.text,
                sig.len()
            ),
            None => format!("reasoning      [{:?}] {:?}", r.kind, r.text),
        },
        StreamEvent::ToolCallStart(t) => {
            format!("tool_call      #{} {} id={}", t.index, t.name, t.call_id)
        }
        StreamEvent::ToolCallDelta(t) => format!("tool_args      #{} {:?}", t.index, t.arguments),
        StreamEvent::ToolCallEnd(t) => format!("tool_call_end  #{} {}", t.index, t.arguments),
        StreamEvent::Usage(u) => format!(
            "usage          input={} output={} cached_input={} reasoning={}",
            opt(u.input_tokens),
            opt(u.output_tokens),
            opt(u.cached_input_tokens),
            opt(u.reasoning_tokens)
        ),
        StreamEvent::Completed(c) => format!("completed      stop_reason={:?}", c.stop_reason),
        StreamEvent::Incomplete(i) => format!("incomplete     reason={}", i.reason),
        StreamEvent::Error(e) => format!(
            "error          class={} retryable={} status={} code={} message={:?}",
            e.class,
            e.retryable,
            e.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            e.code.as_deref().unwrap_or("-"),
            e.message
        ),
        StreamEvent::Unhandled(u) => format!(
            "unhandled      {} ({} bytes) {:?}",
            u.event, u.original_len, u.preview
        ),
        other => other.kind().to_string(),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}
