//! What the trace sidecar and live telemetry cost: a long streamed run (many text deltas, through
//! the real client over loopback HTTP + SSE) with `session.record_event_trace` off, on, and on
//! with raw SSE frames, and (paced) with live OpenTelemetry export to a loopback collector that
//! answers, and to one that never answers. Prints the median wall time of each and the ratio to
//! "off", in two settings:
//!
//! - **burst**: the replay server sends the whole stream at once, so the run is CPU-bound (the
//!   worst case: the trace writer thread competes with the stream for the CPU);
//! - **paced**: a loopback server sends `TRACE_BENCH_RATE` events per second, like a fast
//!   provider (real models stream well under 1000 tokens/s).
//!
//! A run's wall time is from starting its segment to closing it. With telemetry, the pod then
//! gives its last spans a bounded time to reach the collector (`pod_core::telemetry`); that end
//! is printed on its own.
//!
//! `cargo bench -p pod-core --bench trace_overhead` (env `TRACE_BENCH_DELTAS`, `TRACE_BENCH_RUNS`,
//! `TRACE_BENCH_PACED_DELTAS`, `TRACE_BENCH_RATE`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use pod_core::record::RunTrigger;
use pod_core::{
    ModelConnection, Pod, PodHome, PodOptions, Quiet, RunControl, RunInput, RunOutcome,
};
use pod_profile::{Manifest, Scheme};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The SSE frames of one Chat Completions stream with `deltas` text deltas.
fn frames(deltas: usize) -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let c = serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
            "model": "bench", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut frames = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    for i in 0..deltas {
        frames.push(chunk(
            serde_json::json!({"content": format!("token{i} ")}),
            None,
        ));
    }
    frames.push(chunk(serde_json::json!({}), Some("stop")));
    frames.push("data: [DONE]\n\n".into());
    frames
}

/// Serve every connection the same stream, `rate` frames per second. Runs until the runtime
/// ends.
async fn paced_server(frames: Arc<Vec<String>>, rate: usize) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let frames = frames.clone();
            tokio::spawn(async move {
                // Read the request head and its body (Content-Length) before answering.
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // Send in 1 ms ticks, as many frames per tick as the rate asks for.
                let per_tick = (rate / 1000).max(1);
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                for batch in frames.chunks(per_tick) {
                    tick.tick().await;
                    if socket.write_all(batch.concat().as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[derive(Clone)]
enum Source {
    Cassette(std::path::PathBuf),
    Paced(String),
}

/// A collector on loopback: one that answers every request with 200, or one that accepts
/// connections and never answers. Runs until the runtime ends.
async fn collector(answers: bool) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        // A request's bytes: answer once they stop coming (good enough for a
                        // client that sends one request per connection turn).
                        Ok(_) if answers => {
                            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if socket.write_all(ok.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    format!("http://{addr}/v1/traces")
}

/// How one run is observed.
#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    trace: bool,
    raw: bool,
    /// Live telemetry: to a collector that answers (`Some(true)`) or never does.
    telemetry: Option<bool>,
}

const TRACE_MODES: [Mode; 3] = [
    Mode {
        name: "off",
        trace: false,
        raw: false,
        telemetry: None,
    },
    Mode {
        name: "trace on",
        trace: true,
        raw: false,
        telemetry: None,
    },
    Mode {
        name: "trace+raw",
        trace: true,
        raw: true,
        telemetry: None,
    },
];

const TELEMETRY_MODES: [Mode; 2] = [
    Mode {
        name: "otel",
        trace: false,
        raw: false,
        telemetry: Some(true),
    },
    Mode {
        name: "otel mute",
        trace: false,
        raw: false,
        telemetry: Some(false),
    },
];

/// Wall time of one run, the number of trace entries it shed, and how long the telemetry end
/// took.
async fn one_run(
    root: &Path,
    source: &Source,
    mode: Mode,
    collectors: &Collectors,
) -> (Duration, u64, Duration) {
    let Mode { trace, raw, .. } = mode;
    let mut manifest = Manifest::default();
    manifest.model.model = "bench".into();
    match source {
        Source::Cassette(path) => {
            manifest.model.scheme = Scheme::Replay;
            manifest.model.cassette = Some(path.display().to_string());
        }
        Source::Paced(base_url) => {
            manifest.model.scheme = Scheme::OpenaiChat;
            manifest.model.base_url = Some(base_url.clone());
            // Any variable that is always set: the loopback server ignores the key.
            manifest.model.api_key_env = Some("PATH".into());
        }
    }
    manifest.session.record_event_trace = trace;
    manifest.session.trace_raw_sse = raw;
    manifest.telemetry.otlp_endpoint = match mode.telemetry {
        Some(true) => Some(collectors.answering.clone()),
        Some(false) => Some(collectors.mute.clone()),
        None => None,
    };
    let home = PodHome::at(root.join("home"));
    let model = ModelConnection::connect(&manifest, root).await.unwrap();
    let dir = home.create_pod(None, "bench", None).unwrap();
    let started = Instant::now();
    let info = dir.read_info().unwrap();
    let trace = pod_core::telemetry::tree_trace(&dir, &info, None);
    let telemetry = pod_core::telemetry::LiveTelemetry::start(&info, &manifest, trace);
    assert_eq!(telemetry.is_some(), mode.telemetry.is_some());
    let mut pod = Pod::start(
        dir,
        manifest,
        PodOptions {
            work_dir: root.to_owned(),
            model,
            control: RunControl::new(),
            approvals: Default::default(),
            telemetry: telemetry.clone(),
            traceparent: None,
        },
    )
    .unwrap();
    let input = RunInput {
        text: "stream".into(),
        trigger: RunTrigger::Cli,
        request_id: None,
    };
    let report = pod.run(input, Arc::new(Quiet)).await.unwrap();
    assert!(
        matches!(report.outcome, RunOutcome::Completed { .. }),
        "{:?}",
        report.outcome
    );
    pod.close("completed").await.unwrap();
    let elapsed = started.elapsed();
    let ending = Instant::now();
    if let Some(live) = telemetry {
        tokio::task::spawn_blocking(move || live.finish(pod_core::telemetry::END_GRACE))
            .await
            .unwrap();
    }
    let end = ending.elapsed();
    let shed = report.trace_path.map_or(0, |path| {
        let (entries, _) = pod_trace::TraceReader::read_all(&path).unwrap();
        entries
            .iter()
            .map(|e| match e.body {
                pod_trace::TraceBody::Shed { count } => count,
                _ => 0,
            })
            .sum()
    });
    (elapsed, shed, end)
}

/// The two collectors' endpoints.
struct Collectors {
    answering: String,
    mute: String,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    label: &str,
    source: &Source,
    runs: usize,
    modes: &[Mode],
    collectors: &Collectors,
) {
    // Warm up every mode once, then interleave so drift hits all modes alike.
    for mode in modes {
        rt.block_on(one_run(root, source, *mode, collectors));
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut ends: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut shed = vec![0u64; modes.len()];
    for _ in 0..runs {
        for (i, mode) in modes.iter().enumerate() {
            let (elapsed, lost, end) = rt.block_on(one_run(root, source, *mode, collectors));
            samples[i].push(elapsed);
            ends[i].push(end);
            shed[i] += lost;
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    println!("{label}, median of {runs} runs:");
    for (i, (mode, m)) in modes.iter().zip(&medians).enumerate() {
        let ratio = m.as_secs_f64() / medians[0].as_secs_f64();
        let end = median(ends[i].clone());
        let end = if mode.telemetry.is_some() {
            format!("   telemetry end: {:.2} ms", end.as_secs_f64() * 1000.0)
        } else {
            String::new()
        };
        println!(
            "  {:<10} {:>9.2} ms   x{ratio:.3}   shed trace entries (all runs): {}{end}",
            mode.name,
            m.as_secs_f64() * 1000.0,
            shed[i]
        );
    }
}

fn main() {
    let deltas = env_or("TRACE_BENCH_DELTAS", 20_000);
    let runs = env_or("TRACE_BENCH_RUNS", 7);
    let paced_deltas = env_or("TRACE_BENCH_PACED_DELTAS", 3_000);
    let rate = env_or("TRACE_BENCH_RATE", 3_000);
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let collectors = Collectors {
        answering: rt.block_on(collector(true)),
        mute: rt.block_on(collector(false)),
    };
    let cassette_path = tmp.path().join("long.json");
    let body = frames(deltas).concat();
    let cassette =
        serde_json::json!({"scheme": "openai-chat", "responses": [{"status": 200, "body": body}]});
    std::fs::write(&cassette_path, cassette.to_string()).unwrap();
    measure(
        &rt,
        tmp.path(),
        &format!("burst: {deltas} text deltas served at once (CPU-bound worst case)"),
        &Source::Cassette(cassette_path),
        runs,
        &TRACE_MODES,
        &collectors,
    );

    let base_url = rt.block_on(paced_server(Arc::new(frames(paced_deltas)), rate));
    measure(
        &rt,
        tmp.path(),
        &format!("paced: {paced_deltas} text deltas at {rate} events/s"),
        &Source::Paced(base_url),
        runs.min(5),
        &[TRACE_MODES.as_slice(), TELEMETRY_MODES.as_slice()].concat(),
        &collectors,
    );
}
