//! Streaming performance: end-to-end events/s per scheme over loopback, SSE framing against
//! eventsource-stream, and chunking linearity. Plain std timing; run with
//! `cargo bench -p pod-provider --bench stream`.
//!
//! The big stream mirrors the anchor: a Responses stream of 200,000 text deltas
//! (~51 MB) followed by closing events that carry the full ~1.1 MB text, as the real protocol
//! does. Chat and Anthropic streams carry the same 200,000 deltas in their own wire shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use pod_provider::sse::Framer;
use pod_provider::{
    Cassette, CassetteResponse, Client, ClientConfig, ModelRequest, ReplayServer, RetryPolicy,
    StreamDecoder, StreamEvent, WireScheme,
};

const DELTAS: usize = 200_000;
/// 5.25 bytes on average: 200,000 deltas make ~1.05 MB of text, like the anchor stream.
const WORDS: [&str; 8] = [
    "The ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs. ",
];

fn obfuscation(i: usize) -> String {
    format!("{:0>10}", i * 7919 % 1_000_003)
}

fn responses_stream() -> (String, usize) {
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
    (s, text.len())
}

fn chat_stream() -> String {
    let mut s = String::with_capacity(40 << 20);
    for i in 0..DELTAS {
        let w = WORDS[i % WORDS.len()];
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_1\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"obfuscation\":\"{}\"}}\n\n", obfuscation(i)));
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

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed());
        last = Some(out);
    }
    (best, last.unwrap())
}

fn end_to_end(rt: &tokio::runtime::Runtime, scheme: WireScheme, body: &str) {
    const RUNS: usize = 3;
    let responses = (0..RUNS)
        .map(|_| CassetteResponse::sse(body.to_string()))
        .collect();
    let server =
        rt.block_on(async { ReplayServer::start(Cassette::new(scheme, responses)).unwrap() });
    let mut config = ClientConfig::new(scheme).with_base_url(server.base_url());
    config.retry = RetryPolicy::none();
    config.max_event_bytes = 64 << 20;
    let client = Client::new(config).unwrap();
    let (elapsed, (events, text_bytes)) = best_of(RUNS, || {
        rt.block_on(async {
            let mut stream = client.stream(&ModelRequest::default(), None);
            let (mut n, mut text) = (0usize, 0usize);
            let mut last = None;
            while let Some(ev) = stream.next().await {
                n += 1;
                if let StreamEvent::TextDelta(d) = &ev {
                    text += d.text.len();
                }
                last = Some(ev);
            }
            assert!(matches!(last, Some(StreamEvent::Completed(_))), "{last:?}");
            (n, text)
        })
    });
    println!(
        "end-to-end {:<18} {:>6.1} MB  {:>7} events  {:>6.3} s  {:>5.2} M events/s  ({} text bytes)",
        scheme.as_str(),
        body.len() as f64 / 1e6,
        events,
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64() / 1e6,
        text_bytes
    );
}

fn framer_only(body: &[u8], chunk: usize) -> usize {
    let mut framer = Framer::new(usize::MAX);
    let mut n = 0;
    for c in body.chunks(chunk) {
        framer.push(c, |_| n += 1).unwrap();
    }
    framer.finish(|_| n += 1).unwrap();
    n
}

fn decode_only(scheme: WireScheme, body: &[u8], chunk: usize) -> usize {
    let mut d = StreamDecoder::new(scheme, usize::MAX);
    let mut out = Vec::with_capacity(1024);
    let mut n = 0;
    for c in body.chunks(chunk) {
        d.push(c, &mut out, None);
        n += out.len();
        out.clear();
    }
    d.finish(&mut out, None);
    n + out.len()
}

fn eventsource_only(rt: &tokio::runtime::Runtime, body: &Bytes, chunk: usize) -> usize {
    use eventsource_stream::Eventsource;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(chunk)
        .map(|i| Ok(body.slice(i..(i + chunk).min(body.len()))))
        .collect();
    rt.block_on(async {
        let mut s = futures_util::stream::iter(chunks).eventsource();
        let mut n = 0;
        while let Some(ev) = s.next().await {
            ev.unwrap();
            n += 1;
        }
        n
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (responses, text_len) = responses_stream();
    println!(
        "responses stream: {:.1} MB, {} deltas, {:.2} MB text in each closing event",
        responses.len() as f64 / 1e6,
        DELTAS,
        text_len as f64 / 1e6
    );

    println!("\n-- end to end: replay server over loopback -> client -> normalized events");
    end_to_end(&rt, WireScheme::OpenaiResponses, &responses);
    end_to_end(&rt, WireScheme::OpenaiChat, &chat_stream());
    end_to_end(&rt, WireScheme::AnthropicMessages, &anthropic_stream());

    println!("\n-- in memory, responses stream");
    let body = Bytes::from(responses.clone());
    for chunk in [64 * 1024, 1024] {
        let (t, n) = best_of(3, || framer_only(&body, chunk));
        println!(
            "pod framer          {chunk:>6} B chunks  {:>7} frames  {:>6.3} s",
            n,
            t.as_secs_f64()
        );
        let (t, n) = best_of(3, || decode_only(WireScheme::OpenaiResponses, &body, chunk));
        println!(
            "pod framer+adapter  {chunk:>6} B chunks  {:>7} events  {:>6.3} s  {:.2} M events/s",
            n,
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64() / 1e6
        );
        let (t, n) = best_of(1, || eventsource_only(&rt, &body, chunk));
        println!(
            "eventsource-stream  {chunk:>6} B chunks  {:>7} frames  {:>6.3} s",
            n,
            t.as_secs_f64()
        );
    }

    println!("\n-- linearity: one 1 MB event");
    let mut one = String::from(
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"",
    );
    one.push_str(&"x".repeat(1 << 20));
    one.push_str("\"}\n\n");
    let one = Bytes::from(one);
    for chunk in [1, 1024, 64 * 1024] {
        let (t, n) = best_of(3, || decode_only(WireScheme::OpenaiResponses, &one, chunk));
        println!(
            "pod framer+adapter  {chunk:>6} B chunks  {n} events  {:>8.4} s",
            t.as_secs_f64()
        );
    }
    println!(
        "\n-- growth in 1-byte chunks: time per event size (linear doubles, quadratic quadruples)"
    );
    for size in [16 * 1024, 32 * 1024, 64 * 1024] {
        let mut ev = String::from("data: {\"type\":\"response.output_text.delta\",\"delta\":\"");
        ev.push_str(&"x".repeat(size));
        ev.push_str("\"}\n\n");
        let ev = Bytes::from(ev);
        let (ours, _) = best_of(3, || framer_only(&ev, 1));
        let (theirs, _) = best_of(1, || eventsource_only(&rt, &ev, 1));
        println!(
            "{:>3} KiB event: pod framer {:>8.5} s   eventsource-stream {:>8.4} s",
            size / 1024,
            ours.as_secs_f64(),
            theirs.as_secs_f64()
        );
    }
    for chunk in [1024, 64 * 1024] {
        let (t, n) = best_of(1, || eventsource_only(&rt, &one, chunk));
        println!(
            "eventsource-stream  {chunk:>6} B chunks  {n} frames  {:>8.4} s",
            t.as_secs_f64()
        );
    }
}
