//! `pods provider …`: tools around the provider adapters.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use pod_provider::{
    Cassette, Client, ClientConfig, ReplayFile, RetryPolicy, StreamEvent, WireScheme,
};

use crate::failure::{CmdResult, Exit, Failure, out};
use crate::global::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Run a recorded SSE body, HTTP response capture or cassette through the real adapter.
    ///
    /// FILE is a bare SSE body (served as `200 text/event-stream`), a full HTTP/1.1 response
    /// capture (status line, headers, blank line, body; `curl -i` output included, even when its
    /// body was already de-chunked) whose status and headers drive error classification, or a
    /// cassette (a JSON file naming its scheme and responses; each response is requested in
    /// turn). It is served by an in-process loopback replay server and read by the real client
    /// (no retries), so what you see is what a pod would see. How a capture was read (a
    /// de-chunked body, a body cut short and replayed as a disconnect) is noted on stderr. The
    /// formats are described in crates/provider/CAPTURES.md.
    ///
    /// Prints the normalized events: one JSON object per line with --json; otherwise one readable
    /// line per event, consecutive text or reasoning fragments joined into one line.
    ///
    /// Exit codes: 0 when every response completed cleanly (the model ended its turn or called
    /// tools); 1 when one ended in an error (the error is the last event printed) or was not a
    /// clean finish (cut at the output-token limit, filtered, refused: named on stderr); 2 on bad
    /// usage.
    ///
    /// Example: pods provider replay --scheme anthropic-messages --json stream.sse
    Replay(ReplayArgs),
    /// Build a cassette from a pod's trace, to replay a run offline.
    ///
    /// The pod must have run with `session.record_event_trace = true` and
    /// `session.trace_raw_sse = true`: then its trace holds every provider response of the run —
    /// status, headers (without cookies or anything that authenticates) and raw body, failed
    /// attempts included. The cassette serves them in the order they came, so a pod with
    /// `model.scheme = "replay"` and `model.cassette` set to it sees the same events, the same
    /// errors and the same retries. Attempts that failed before any response (connect errors)
    /// cannot be served and are named on stderr. The format is described in
    /// crates/provider/CAPTURES.md.
    ///
    /// Exit codes: 0 written; 1 the trace could not be read or the file written; 2 bad usage,
    /// or the trace lacks what a cassette needs (the message says what and how to record it).
    ///
    /// Example: pods provider cassette my-pod -o field.json
    Cassette(CassetteArgs),
}

#[derive(Debug, Args)]
pub struct CassetteArgs {
    /// Pod id, unique id prefix, or name (see `pods ls`).
    #[arg(value_name = "POD")]
    pod: String,
    /// The run to rebuild (id or unique prefix, as in `pods show`); the pod's last run if not
    /// given.
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Write the cassette to FILE (atomically, private to you) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Wire scheme: openai-responses, openai-chat, anthropic-messages or gemini. Required for a capture
    /// or SSE body; a cassette names its own (given here, it must match).
    #[arg(long, value_name = "SCHEME")]
    scheme: Option<String>,
    /// Print one JSON object per event (the `StreamEvent` wire format, tag `type`).
    #[arg(long)]
    json: bool,
    /// A bare SSE body, a full HTTP/1.1 response capture, or a cassette.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(global: &GlobalArgs, command: ProviderCommand) -> CmdResult {
    match command {
        ProviderCommand::Replay(args) => replay(args),
        ProviderCommand::Cassette(args) => cassette(global, args),
    }
}

const RECORD_HINT: &str = "record the run again with `--set session.record_event_trace=true --set \
                           session.trace_raw_sse=true` (or a profile setting both)";

fn cassette(global: &GlobalArgs, args: CassetteArgs) -> CmdResult {
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let dir = home
        .find(&args.pod)
        .map_err(|e| Failure::usage(e).with_hint("`pods ls` lists the pods in this home"))?;
    let segments = dir.segments().map_err(Failure::run_failed)?;
    let mut entries = Vec::new();
    for path in segments.iter().filter_map(|s| s.trace.as_ref()) {
        let (read, problems) =
            pod_trace::TraceReader::read_all(path).map_err(Failure::run_failed)?;
        for problem in &problems {
            if let pod_trace::TraceLine::Unreadable { line, error, .. } = problem {
                out::stderr(&format!(
                    "warning: {}:{line}: unreadable line left out ({error})\n",
                    path.display()
                ));
            }
        }
        entries.extend(read);
    }
    if entries.is_empty() {
        return Err(Failure::usage(format!(
            "pod {} has no trace: tracing was off (session.record_event_trace = false)",
            dir.id()
        ))
        .with_hint(RECORD_HINT));
    }
    let built = pod_trace::cassette_from_trace(&entries, args.run.as_deref()).map_err(|gap| {
        let hint = match &gap {
            pod_trace::CassetteGap::NoRun { .. } => {
                "`pods show POD` lists the pod's runs".to_owned()
            }
            pod_trace::CassetteGap::Truncated { .. } => {
                format!("{RECORD_HINT}, and a larger `session.trace_max_frame_bytes`")
            }
            _ => RECORD_HINT.to_owned(),
        };
        Failure::usage(format!(
            "cannot build a cassette from pod {}: {gap}",
            dir.id()
        ))
        .with_hint(hint)
    })?;
    for note in &built.notes {
        out::stderr(&format!("note: {note}\n"));
    }
    let mut json = serde_json::to_string_pretty(&built.cassette)
        .map_err(|e| Failure::run_failed(format!("cannot serialize the cassette: {e}")))?;
    json.push('\n');
    match &args.output {
        Some(path) => {
            pod_core::write_atomic(path, json.as_bytes()).map_err(Failure::run_failed)?;
            // Named absolutely, so the cassette line works from any directory.
            let path = &std::env::current_dir()
                .map(|cwd| cwd.join(path))
                .unwrap_or_else(|_| path.clone());
            out::stderr(&format!(
                "wrote {} ({} responses of run {}); replay it with model.scheme = \"replay\" and \
                 model.cassette = \"{}\"\n",
                path.display(),
                built.cassette.responses.len(),
                built.run_id,
                path.display()
            ));
        }
        None => {
            if !out::stdout(&json) {
                return Err(
                    Failure::run_failed("stdout is closed; the cassette was not written")
                        .with_hint("write it to a file with -o FILE"),
                );
            }
        }
    }
    Ok(Exit::Success)
}

fn parse_scheme(name: &str) -> Result<WireScheme, Failure> {
    WireScheme::parse(name).ok_or_else(|| {
        let known: Vec<&str> = WireScheme::ALL.iter().map(|s| s.as_str()).collect();
        Failure::usage(format!("unknown wire scheme `{name}`"))
            .with_hint(format!("use one of: {}", known.join(", ")))
    })
}

/// The cassette to serve: a cassette file as it is, or one capture under `--scheme`.
fn replay_cassette(args: &ReplayArgs) -> Result<Cassette, Failure> {
    let scheme = args.scheme.as_deref().map(parse_scheme).transpose()?;
    let file = args.file.display();
    match pod_provider::load_replay_file(&args.file).map_err(Failure::usage)? {
        ReplayFile::Cassette(cassette) => match scheme {
            Some(given) if given != cassette.scheme => Err(Failure::usage(format!(
                "{file} is a cassette for scheme {}, not {}",
                cassette.scheme.as_str(),
                given.as_str()
            ))
            .with_hint("leave out --scheme: a cassette names its own")),
            _ => Ok(cassette),
        },
        ReplayFile::Response(response) => {
            let scheme = scheme.ok_or_else(|| {
                Failure::usage(format!(
                    "{file} is a capture or SSE body, which does not say its wire scheme"
                ))
                .with_hint(
                    "give it with --scheme openai-responses|openai-chat|anthropic-messages|gemini",
                )
            })?;
            Ok(Cassette::new(scheme, vec![*response]))
        }
    }
}

/// How one replayed response ended, for the exit code.
enum Ending {
    Clean,
    NotClean(String),
    Failed,
}

fn replay(args: ReplayArgs) -> CmdResult {
    let cassette = replay_cassette(&args)?;
    for (i, response) in cassette.responses.iter().enumerate() {
        for note in &response.notes {
            out::stderr(&format!("note: response {}: {note}\n", i + 1));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::RunFailed, e))?;
    let requests = cassette.responses.len();
    let scheme = cassette.scheme;
    let endings = runtime.block_on(async {
        let server = pod_provider::ReplayServer::start(cassette)
            .map_err(|e| Failure::new(Exit::RunFailed, e))?;
        let mut config = ClientConfig::new(scheme).with_base_url(server.base_url());
        config.retry = RetryPolicy::none();
        config.first_event_timeout = Duration::from_secs(30);
        config.idle_timeout = Duration::from_secs(30);
        let client = Client::new(config).map_err(|e| Failure::new(Exit::RunFailed, e))?;
        let mut endings = Vec::new();
        for request in 0..requests {
            if requests > 1 && !args.json {
                out::stdout(&format!("== response {}\n", request + 1));
            }
            match print_stream(&client, args.json).await {
                Some(last) => endings.push(ending(&last)),
                // Broken pipe: the reader left; stop quietly.
                None => return Ok::<_, Failure>(None),
            }
        }
        Ok(Some(endings))
    })?;
    let Some(endings) = endings else {
        return Ok(Exit::Success);
    };
    let mut exit = Exit::Success;
    for (i, ending) in endings.into_iter().enumerate() {
        match ending {
            Ending::Clean => {}
            Ending::NotClean(why) => {
                out::stderr(&format!("response {}: not a clean finish: {why}\n", i + 1));
                exit = Exit::RunFailed;
            }
            Ending::Failed => exit = Exit::RunFailed,
        }
    }
    Ok(exit)
}

fn ending(last: &Option<StreamEvent>) -> Ending {
    match last {
        Some(StreamEvent::Completed(c)) if !c.stop_reason.is_truncated() => Ending::Clean,
        Some(StreamEvent::Completed(c)) => Ending::NotClean(c.stop_reason.statement()),
        Some(StreamEvent::Incomplete(i)) => Ending::NotClean(format!(
            "the provider marked the answer incomplete ({})",
            i.reason
        )),
        Some(StreamEvent::Error(e)) => {
            out::stderr(&format!(
                "error: the stream ended with {}: {}\n",
                e.class, e.message
            ));
            Ending::Failed
        }
        None => Ending::NotClean("the stream produced no event".to_owned()),
        Some(other) => Ending::NotClean(format!("the stream ended after `{}`", other.kind())),
    }
}

/// Stream one request and print its events; `None` when stdout was closed, else the last event.
async fn print_stream(client: &Client, json: bool) -> Option<Option<StreamEvent>> {
    let mut stream = client.stream(&pod_provider::ModelRequest::default(), None);
    let mut stdout = std::io::stdout().lock();
    let mut last = None;
    // Readable mode joins consecutive text (or reasoning) fragments into one line.
    let mut run: Option<(&'static str, u32, String)> = None;
    while let Some(event) = stream.next_event().await {
        let mut lines = Vec::new();
        if json {
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
                (Some((label, choice, text)), Some((l, c, acc))) if *l == label && *c == choice => {
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
                return None;
            }
        }
        last = Some(event);
    }
    if let Some(r) = run.take()
        && writeln!(stdout, "{}", render_run(r)).is_err()
    {
        return None;
    }
    Some(last)
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
