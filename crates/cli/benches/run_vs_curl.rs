//! The whole `pods run` against `curl` on the same stream. Run with
//! `cargo bench -p pod-cli --bench run_vs_curl` (`-- --runs N` for more runs, `-- --strace` to
//! also count the write syscalls of one run per mode when `strace` is installed;
//! `-- --set KEY=VALUE` passes a manifest override to every `pods run`;
//! `PODS_BENCH_BIN=path/to/pods` measures another build of `pods`).
//!
//! A loopback server (in this file: a plain TCP listener answering every request with the same
//! HTTP/1.1 response) streams a generated 200,000-delta stream per scheme: Responses with the
//! four closing events carrying the full ~1.1 MB text, Chat, Anthropic. The real `pods` binary
//! runs against it with stdout a pipe that is drained, with tracing off, with the trace sidecar
//! on, with raw SSE capture on, and with `--json` events instead of text; `curl -sN` reads the
//! same stream. Printed per mode: median
//! wall time and CPU time (user + sys, from `wait4`'s rusage), events/s, the ratio to curl (the
//! figure that carries between machines), peak RSS (GNU `time`'s, else `wait4`'s, which counts
//! this process's own memory too), and trace entries shed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DELTAS: usize = 200_000;
/// 5.25 bytes on average: 200,000 deltas make ~1.05 MB of text.
const WORDS: [&str; 8] = [
    "The ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs. ",
];

fn responses_stream() -> String {
    let mut s = String::with_capacity(56 << 20);
    let mut text = String::with_capacity(1 << 21);
    let item = "msg_67e554a21aa88191b65876ac5e5bbe0406c52f0e511c76ed";
    s.push_str("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4o-2024-08-06\",\"output\":[]}}\n\n");
    s.push_str(&format!("event: response.output_item.added\ndata: {{\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{{\"id\":\"{item}\",\"type\":\"message\",\"status\":\"in_progress\",\"content\":[],\"role\":\"assistant\"}}}}\n\n"));
    for i in 0..DELTAS {
        let w = WORDS[i % WORDS.len()];
        text.push_str(w);
        s.push_str(&format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{},\"item_id\":\"{item}\",\"output_index\":0,\"content_index\":0,\"delta\":\"{w}\",\"logprobs\":[]}}\n\n",
            i + 2
        ));
    }
    let n = DELTAS + 2;
    s.push_str(&format!("event: response.output_text.done\ndata: {{\"type\":\"response.output_text.done\",\"sequence_number\":{n},\"item_id\":\"{item}\",\"output_index\":0,\"content_index\":0,\"text\":\"{text}\",\"logprobs\":[]}}\n\n"));
    s.push_str(&format!("event: response.content_part.done\ndata: {{\"type\":\"response.content_part.done\",\"sequence_number\":{},\"item_id\":\"{item}\",\"output_index\":0,\"content_index\":0,\"part\":{{\"type\":\"output_text\",\"annotations\":[],\"text\":\"{text}\"}}}}\n\n", n + 1));
    s.push_str(&format!("event: response.output_item.done\ndata: {{\"type\":\"response.output_item.done\",\"sequence_number\":{},\"output_index\":0,\"item\":{{\"id\":\"{item}\",\"type\":\"message\",\"status\":\"completed\",\"content\":[{{\"type\":\"output_text\",\"annotations\":[],\"text\":\"{text}\"}}],\"role\":\"assistant\"}}}}\n\n", n + 2));
    s.push_str(&format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":{},\"response\":{{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-4o-2024-08-06\",\"output\":[{{\"id\":\"{item}\",\"type\":\"message\",\"status\":\"completed\",\"content\":[{{\"type\":\"output_text\",\"annotations\":[],\"text\":\"{text}\"}}],\"role\":\"assistant\"}}],\"usage\":{{\"input_tokens\":12,\"input_tokens_details\":{{\"cached_tokens\":0}},\"output_tokens\":{DELTAS},\"output_tokens_details\":{{\"reasoning_tokens\":0}},\"total_tokens\":{}}}}}}}\n\n", n + 3, DELTAS + 12));
    s
}

fn chat_stream() -> String {
    let mut s = String::with_capacity(40 << 20);
    for i in 0..DELTAS {
        let w = WORDS[i % WORDS.len()];
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_1\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"obfuscation\":\"{:0>10}\"}}\n\n", i * 7919 % 1_000_003));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":200000,\"total_tokens\":200012}}\n\ndata: [DONE]\n\n");
    s
}

fn anthropic_stream() -> String {
    let mut s = String::with_capacity(40 << 20);
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n");
    s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for i in 0..DELTAS {
        let w = WORDS[i % WORDS.len()];
        s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"));
        if i % 5000 == 0 {
            s.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
        }
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":200000}}\n\n");
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s
}

/// Answers every request on a loopback port with `response` (headers and body), then closes.
/// The listener thread ends with the process.
fn serve(response: Arc<Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let response = response.clone();
            std::thread::spawn(move || answer(conn, &response));
        }
    });
    port
}

/// Read the request (headers, then `content-length` bytes of body) and write the response.
fn answer(mut conn: TcpStream, response: &[u8]) {
    let _ = conn.set_nodelay(true);
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let body_start = loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = request.len() - body_start;
    while have < length {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }
    let _ = conn.write_all(response);
}

fn http_response(body: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

/// One finished child: wall time, CPU time, peak RSS, bytes on stdout, stderr.
struct Sample {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
    stdout_bytes: usize,
    stderr: String,
    status: i32,
}

/// Run `cmd` with stdout and stderr pipes drained by threads; reap it with `wait4` for its
/// rusage (CPU time). Peak RSS comes from GNU `time` when it is installed: a child forked from
/// this process starts with this process's resident set as its high-water mark (the streams
/// held here), while one forked from `time` starts from `time`'s.
// Reaped by `wait4` below, not `Child::wait`, to get the child's own rusage.
#[allow(clippy::zombie_processes)]
fn measure(cmd: Command) -> Sample {
    let rss_file = std::env::temp_dir().join(format!("pods-bench-rss-{}", std::process::id()));
    let timed = Path::new("/usr/bin/time").exists();
    let mut cmd = if timed {
        let mut wrapped = Command::new("/usr/bin/time");
        wrapped.args(["-f", "%M", "-o"]).arg(&rss_file);
        wrapped.arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    } else {
        cmd
    };
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        while let Ok(k) = stdout.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (status, usage) = wait4(child.id());
    let wall = start.elapsed();
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let max_rss_kb = if timed {
        let kb = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|t| t.trim().lines().last()?.trim().parse().ok())
            .unwrap_or(0);
        let _ = std::fs::remove_file(&rss_file);
        kb
    } else {
        usage.ru_maxrss
    };
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kb,
        stdout_bytes: out.join().unwrap(),
        stderr: err.join().unwrap(),
        status,
    }
}

#[allow(unsafe_code)]
fn wait4(pid: u32) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = pid as libc::pid_t;
    // SAFETY: `pid` is our own unreaped child; both pointers are to live locals.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A pods home, config dir and working directory with one profile `bench` per trace mode.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(scheme: &str, port: u16) -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("pods-bench-")
            .tempdir()
            .unwrap();
        let profiles = dir.path().join("work/.pods/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        for (name, session) in [
            ("plain", ""),
            ("trace", "record_event_trace = true\n"),
            ("raw", "record_event_trace = true\ntrace_raw_sse = true\n"),
        ] {
            std::fs::write(
                profiles.join(format!("{name}.toml")),
                format!(
                    "[model]\nscheme = \"{scheme}\"\nmodel = \"bench\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\napi_key_env = \"PODS_BENCH_KEY\"\n\n[agent]\ntools = []\n\n[session]\n{session}"
                ),
            )
            .unwrap();
        }
        Sandbox { dir }
    }

    fn pods(&self, profile: &str, sets: &[String], json: bool) -> Command {
        let mut cmd = Command::new(pods_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PODS_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("PODS_HOME", self.dir.path().join("home"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("PODS_BENCH_KEY", "bench-key-0123456789")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path().join("work"))
            .args(["run", "-p", profile]);
        for set in sets {
            cmd.arg("--set").arg(set);
        }
        if json {
            cmd.arg("--json");
        }
        cmd.arg("go");
        cmd
    }

    /// Remove the pods of earlier runs, so every run starts from the same empty home.
    fn clear_home(&self) {
        let pods = self.dir.path().join("home/pods");
        if pods.exists() {
            std::fs::remove_dir_all(&pods).unwrap();
        }
    }
}

/// The `pods` built with this bench, or `PODS_BENCH_BIN` (to measure another build).
fn pods_bin() -> std::ffi::OsString {
    std::env::var_os("PODS_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_pods").into())
}

fn curl(port: u16, path: &str) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sN", "-X", "POST", "--data", "{}"])
        .arg(format!("http://127.0.0.1:{port}/v1/{path}"));
    cmd
}

/// Write syscalls of one run of `cmd` (all threads), or `None` without strace.
fn count_writes(cmd: &Command) -> Option<u64> {
    let log = std::env::temp_dir().join(format!("pods-bench-strace-{}", std::process::id()));
    let mut traced = Command::new("strace");
    traced
        .args(["-f", "-c", "-e", "trace=write,writev", "-o"])
        .arg(&log)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => traced.env(k, v),
            None => traced.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        traced.current_dir(dir);
    }
    let ok = traced
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    let text = std::fs::read_to_string(&log).ok()?;
    let _ = std::fs::remove_file(&log);
    if !ok {
        return None;
    }
    // The `total` line: "100.00 time seconds usecs/call calls [errors] total".
    text.lines()
        .filter(|l| l.contains(" write"))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .reduce(|a, b| a + b)
}

fn shed(stderr: &str) -> u64 {
    // "warning: trace sidecar: N trace entries were shed (…)"
    stderr
        .lines()
        .find_map(|l| {
            let at = l.find(" trace entries were shed")?;
            l[..at].rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or(0)
}

struct Options {
    runs: usize,
    strace: bool,
    /// `--set KEY=VALUE` arguments for every `pods run`.
    sets: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        runs: 5,
        strace: false,
        sets: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(5).max(1),
            "--strace" => o.strace = true,
            "--set" => o.sets.extend(args.next()),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    o
}

fn bench_scheme(o: &Options, scheme: &str, path: &str, body: &str, text_bytes: usize) {
    let port = serve(Arc::new(http_response(body)));
    let sandbox = Sandbox::new(scheme, port);
    let events = DELTAS as f64;
    println!(
        "\n{scheme}: {:.1} MB stream, {DELTAS} deltas, {} runs per mode",
        body.len() as f64 / 1e6,
        o.runs
    );

    // (name, profile, `--json`)
    let modes: [(&str, Option<&str>, bool); 5] = [
        ("curl -sN", None, false),
        ("pods run", Some("plain"), false),
        ("pods run, trace", Some("trace"), false),
        ("pods run, trace+raw", Some("raw"), false),
        ("pods run --json", Some("plain"), true),
    ];
    // Interleave modes run by run, so a noisy neighbour hits all of them alike.
    let mut samples: Vec<Vec<Sample>> = modes.iter().map(|_| Vec::new()).collect();
    for _ in 0..o.runs {
        for (i, (_, profile, json)) in modes.iter().enumerate() {
            let cmd = match profile {
                None => curl(port, path),
                Some(p) => {
                    sandbox.clear_home();
                    sandbox.pods(p, &o.sets, *json)
                }
            };
            let s = measure(cmd);
            assert_eq!(
                s.status, 0,
                "{}: exit {}: {}",
                modes[i].0, s.status, s.stderr
            );
            if *json {
                // The text in `text` events, and the events around it.
                assert!(s.stdout_bytes > text_bytes, "{}", s.stderr);
            } else if profile.is_some() {
                // The text and the newline that ends it.
                assert_eq!(s.stdout_bytes, text_bytes + 1, "{}", s.stderr);
            }
            samples[i].push(s);
        }
    }
    let curl_wall = median(samples[0].iter().map(|s| s.wall).collect());
    let plain_wall = median(samples[1].iter().map(|s| s.wall).collect());
    let plain_cpu = median(samples[1].iter().map(|s| s.cpu).collect());
    println!(
        "  {:<20} {:>8} {:>8} {:>9} {:>8} {:>9} {:>9} {:>7}",
        "mode", "wall", "cpu", "M ev/s", "× curl", "× plain", "cpu×plain", "RSS MB"
    );
    for (i, (name, _, _)) in modes.iter().enumerate() {
        let wall = median(samples[i].iter().map(|s| s.wall).collect());
        let cpu = median(samples[i].iter().map(|s| s.cpu).collect());
        let rss = samples[i].iter().map(|s| s.max_rss_kb).max().unwrap_or(0);
        let shed_max = samples[i]
            .iter()
            .map(|s| shed(&s.stderr))
            .max()
            .unwrap_or(0);
        println!(
            "  {:<20} {:>7.3}s {:>7.3}s {:>9.2} {:>8.2} {:>9.2} {:>9.2} {:>7.1}{}",
            name,
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            events / wall.as_secs_f64() / 1e6,
            wall.as_secs_f64() / curl_wall.as_secs_f64(),
            wall.as_secs_f64() / plain_wall.as_secs_f64(),
            cpu.as_secs_f64() / plain_cpu.as_secs_f64(),
            rss as f64 / 1024.0,
            if shed_max > 0 {
                format!("  ({shed_max} trace entries shed)")
            } else {
                String::new()
            }
        );
    }
    if o.strace {
        for (name, profile, json) in &modes[1..] {
            sandbox.clear_home();
            match count_writes(&sandbox.pods(profile.unwrap(), &o.sets, *json)) {
                Some(n) => println!("  {name:<20} {n} write syscalls (strace -f, all threads)"),
                None => println!("  {name:<20} write syscalls not counted (no strace?)"),
            }
        }
    }
}

fn main() {
    let o = options();
    let responses = responses_stream();
    let text_bytes: usize = (0..DELTAS).map(|i| WORDS[i % WORDS.len()].len()).sum();
    bench_scheme(&o, "openai-responses", "responses", &responses, text_bytes);
    drop(responses);
    bench_scheme(
        &o,
        "openai-chat",
        "chat/completions",
        &chat_stream(),
        text_bytes,
    );
    bench_scheme(
        &o,
        "anthropic-messages",
        "messages",
        &anthropic_stream(),
        text_bytes,
    );
}
