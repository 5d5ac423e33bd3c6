//! Export throughput and peak memory over a synthetic pod tree.
//!
//! Generates a parent and seven children whose session logs total `PODS_EXPORT_BENCH_MB`
//! megabytes (default 64; set 1024 for the ≥ 1 GB measurement) into a temporary directory with
//! the runtime's own record types, then exports the tree the way `pods export -o FILE` does:
//! the JSON document written as it is built, through the secret check, into a temporary file
//! renamed into place. It prints the time of export and render together, MB/s of logs and the
//! process's peak resident memory (`VmHWM`) before and after.
//!
//! `PODS_EXPORT_BENCH_SANITIZE=1` exports with `--sanitize`.
//! `PODS_EXPORT_BENCH_OUT=null` checks the document and throws it away instead of writing the
//! file (to tell the cost of the file from that of the export).
//! `PODS_EXPORT_BENCH_PATH=memory` measures the in-memory path instead (`export` into an
//! [`pod_export::ExportDocument`], then `render_checked` into a buffer), with each step timed.
//!
//! `PODS_EXPORT_BENCH_SHAPE` picks the shape of the logs:
//! - `large` (default): long runs — 20 model turns each with a message and a tool call — so the
//!   logs are big and the runs few;
//! - `small`: many one-turn runs with short texts, so the same bytes hold far more runs. The
//!   document holds one summary per run, so this shape shows whether memory grows with the
//!   number of runs.
//!
//! Run: `PODS_EXPORT_BENCH_MB=256 PODS_EXPORT_BENCH_SHAPE=small cargo bench -p pod-export`.
//! Targets: ≥ 500 MB/s and < 100 MB resident.

#![allow(clippy::unwrap_used)]

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use pod_export::{
    ExportRequest, Format, Secret, export, prepare, render_checked, write_file_atomically,
};
use pod_protocol::record::*;
use pod_protocol::{ErrorClass, ProviderError};

const PODS: usize = 8;

/// The shape of the generated logs.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Model turns per run, each with a message and a tool call.
    Large { turns: u32 },
    /// One turn per run, short texts, no tools.
    Small,
}

fn main() {
    let mb: u64 = std::env::var("PODS_EXPORT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let shape = match std::env::var("PODS_EXPORT_BENCH_SHAPE").as_deref() {
        Ok("small") => Shape::Small,
        Ok("large") | Err(_) => Shape::Large { turns: 20 },
        Ok(other) => {
            eprintln!("PODS_EXPORT_BENCH_SHAPE must be `large` or `small`, not `{other}`");
            std::process::exit(2);
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("pods-export-bench-")
        .tempdir()
        .unwrap();
    let t = Instant::now();
    let total = generate(dir.path(), mb * 1024 * 1024, shape);
    eprintln!(
        "generated {:.1} MB of session logs ({shape:?}) in {:.1?}",
        total as f64 / 1e6,
        t.elapsed()
    );
    let hwm_before = vm_hwm_kb();

    let request = ExportRequest {
        home: dir.path().to_path_buf(),
        pod: pod_id(0),
        tree: true,
        sanitize: std::env::var("PODS_EXPORT_BENCH_SANITIZE").as_deref() == Ok("1"),
    };
    let secrets = [Secret::new(
        "OPENAI_API_KEY",
        "sk-bench-0123456789abcdef0123456789abcdef",
    )];
    let mb_total = total as f64 / 1e6;
    if std::env::var("PODS_EXPORT_BENCH_PATH").as_deref() == Ok("memory") {
        let t = Instant::now();
        let mut doc = export(&request, &mut |_| {}).unwrap();
        let scan = t.elapsed();
        let hwm_scan = vm_hwm_kb();
        let t = Instant::now();
        let out = render_checked(&mut doc, Format::Json, &secrets).unwrap();
        let render = t.elapsed();
        let hwm_render = vm_hwm_kb();
        let runs: usize = doc.pods.iter().map(|p| p.runs.len()).sum();
        println!(
            "{shape:?} (in memory): {} pods, {mb_total:.1} MB of logs, {runs} runs, {} incidents\n  \
             export {scan:.2?} = {:.0} MB/s; render+check {render:.2?}; together {:.0} MB/s\n  \
             document {:.1} MB ({} bytes/run); peak RSS {hwm_before} kB before, {hwm_scan} kB \
             after export, {hwm_render} kB after render",
            doc.pods.len(),
            doc.incidents.len(),
            mb_total / scan.as_secs_f64(),
            mb_total / (scan + render).as_secs_f64(),
            out.len() as f64 / 1e6,
            out.len() / runs.max(1),
        );
        return;
    }
    let path = dir.path().join("export.json");
    let discard = std::env::var("PODS_EXPORT_BENCH_OUT").as_deref() == Ok("null");
    let t = Instant::now();
    let plan = prepare(&request).unwrap();
    let stats = if discard {
        plan.write_to(Format::Json, &secrets, &mut std::io::sink(), &mut |_| {})
    } else {
        write_file_atomically(&path, |out| {
            plan.write_to(Format::Json, &secrets, out, &mut |_| {})
        })
    }
    .unwrap();
    let took = t.elapsed();
    let hwm = vm_hwm_kb();
    println!(
        "{shape:?} (streamed to {}): {} pods, {mb_total:.1} MB of logs, {} runs, {} \
         incidents\n  export+render+check {took:.2?} = {:.0} MB/s\n  document {:.1} MB ({} \
         bytes/run); peak RSS {hwm_before} kB before, {hwm} kB after",
        if discard { "nowhere" } else { "a file" },
        stats.pods,
        stats.runs,
        stats.incidents,
        mb_total / took.as_secs_f64(),
        stats.bytes as f64 / 1e6,
        stats.bytes / stats.runs.max(1),
    );
}

fn pod_id(i: usize) -> String {
    format!("0193b000-0000-7000-8000-{i:012}")
}

/// Write the tree; returns the bytes of session log written.
fn generate(home: &Path, target: u64, shape: Shape) -> u64 {
    let per_pod = target / PODS as u64;
    let mut total = 0;
    let text =
        "Here is the next part of the analysis.\n\tIt quotes \"code\" and keeps going. ".repeat(12);
    let output = "line of tool output with a path /work/src/lib.rs and more\n".repeat(30);
    for p in 0..PODS {
        let id = pod_id(p);
        let dir = home.join("pods").join(&id);
        std::fs::create_dir_all(dir.join("sessions")).unwrap();
        let info = PodInfo {
            id: id.clone(),
            name: format!("bench-{p}"),
            profile: "coder".into(),
            parent_id: (p > 0).then(|| pod_id(0)),
            created: "2026-11-23T01:00:00.000Z".into(),
            pid: None,
            state: PodState::Stopped,
            work_dir: None,
        };
        std::fs::write(dir.join("pod.json"), serde_json::to_vec(&info).unwrap()).unwrap();
        std::fs::write(dir.join("manifest.toml"), "[model]\nmodel = \"m\"\n").unwrap();
        let file =
            std::fs::File::create(dir.join("sessions/0193b000-0000-7000-8000-0000000000aa.jsonl"))
                .unwrap();
        let mut w = Counting {
            inner: BufWriter::with_capacity(1 << 20, file),
            bytes: 0,
        };
        let mut seq = 0;
        let mut put = |w: &mut Counting, body: LogBody| {
            seq += 1;
            let entry = LogEntry {
                seq,
                ts: "2026-11-23T01:02:03.456Z".into(),
                body,
            };
            serde_json::to_writer(&mut *w, &entry).unwrap();
            w.write_all(b"\n").unwrap();
        };
        put(
            &mut w,
            LogBody::SegmentStarted(SegmentStarted {
                pod_id: id.clone(),
                segment_id: "0193b000-0000-7000-8000-0000000000aa".into(),
                profile: "coder".into(),
                manifest_digest: "sha256:00".into(),
                pid: 2_147_483_000,
                format_version: LOG_FORMAT_VERSION,
                writer: "pods bench".into(),
            }),
        );
        let mut run = 0u64;
        while w.bytes < per_pod {
            run += 1;
            let run_id = format!("run-{p}-{run}");
            put(
                &mut w,
                LogBody::RunStarted(RunStarted {
                    run_id: run_id.clone(),
                    trigger: RunTrigger::Cli,
                    request_id: Some(format!("req-{run}")),
                    input: "Please continue the analysis of the repository.".into(),
                    traceparent: None,
                }),
            );
            let turns = match shape {
                Shape::Large { turns } => turns,
                Shape::Small => {
                    small_run(&mut w, &mut put, &run_id);
                    continue;
                }
            };
            for turn in 1..=turns {
                put(
                    &mut w,
                    LogBody::ProviderRequestStarted(ProviderRequestStarted {
                        run_id: run_id.clone(),
                        turn,
                        attempt: 1,
                        scheme: "openai-responses".into(),
                        model: "gpt-bench".into(),
                        retry_of: None,
                    }),
                );
                put(
                    &mut w,
                    LogBody::AssistantMessage(AssistantMessage {
                        run_id: run_id.clone(),
                        turn,
                        text: text.clone(),
                        reasoning: String::new(),
                        tool_calls: vec![RequestedToolCall {
                            call_id: format!("c{turn}"),
                            tool: "read_file".into(),
                            arguments: "{\"path\":\"src/lib.rs\"}".into(),
                        }],
                    }),
                );
                put(
                    &mut w,
                    LogBody::ToolCallStarted(ToolCallStarted {
                        run_id: run_id.clone(),
                        call_id: format!("c{turn}"),
                        tool: "read_file".into(),
                        side_effect: SideEffectClass::ReadOnly,
                        input: serde_json::json!({"path": "src/lib.rs"}),
                    }),
                );
                put(
                    &mut w,
                    LogBody::ToolCallFinished(ToolCallFinished {
                        run_id: run_id.clone(),
                        call_id: format!("c{turn}"),
                        tool: "read_file".into(),
                        side_effect: SideEffectClass::ReadOnly,
                        outcome: ToolOutcome::Ok,
                        output: output.clone(),
                    }),
                );
            }
            let phase = RunPhase {
                provider_progress_seen: true,
                visible_output_seen: true,
                tool_execution: ToolExecutionPhase::Completed,
                side_effects_started: vec![SideEffectClass::ReadOnly],
            };
            if run.is_multiple_of(50) {
                put(
                    &mut w,
                    LogBody::RunErrored(RunErrored {
                        run_id: run_id.clone(),
                        error: ProviderError {
                            class: ErrorClass::RateLimited,
                            code: Some("rate_limit_exceeded".into()),
                            http_status: Some(429),
                            provider_request_id: Some("req_x".into()),
                            retry_after_ms: Some(1000),
                            retryable: true,
                            message: "slow down".into(),
                        },
                        phase,
                    }),
                );
            } else {
                put(
                    &mut w,
                    LogBody::RunCompleted(RunCompleted {
                        run_id,
                        turns,
                        text: "done".into(),
                        reason: "end_turn".into(),
                        stop_reason: Some(pod_protocol::record::StopReason::EndTurn),
                    }),
                );
            }
        }
        w.inner.flush().unwrap();
        total += w.bytes;
    }
    total
}

/// One short run: a request, a one-line answer, done.
fn small_run(w: &mut Counting, put: &mut impl FnMut(&mut Counting, LogBody), run_id: &str) {
    put(
        w,
        LogBody::ProviderRequestStarted(ProviderRequestStarted {
            run_id: run_id.to_owned(),
            turn: 1,
            attempt: 1,
            scheme: "openai-responses".into(),
            model: "gpt-bench".into(),
            retry_of: None,
        }),
    );
    put(
        w,
        LogBody::AssistantMessage(AssistantMessage {
            run_id: run_id.to_owned(),
            turn: 1,
            text: "Done: the file has 42 lines.".into(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
        }),
    );
    put(
        w,
        LogBody::RunCompleted(RunCompleted {
            run_id: run_id.to_owned(),
            turns: 1,
            text: "Done: the file has 42 lines.".into(),
            reason: "end_turn".into(),
            stop_reason: Some(pod_protocol::record::StopReason::EndTurn),
        }),
    );
}

struct Counting {
    inner: BufWriter<std::fs::File>,
    bytes: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Peak resident set size of this process, in kB.
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
