//! Every recorded fixture through its adapter: the facts that matter, and the same result
//! whatever the network chunking. Expected values were read from the fixture files.

use pod_provider::event::{ReasoningKind, StopReason, Usage};
use pod_provider::{
    ErrorClass, StreamDecoder, StreamEvent, WireScheme, decode_body, from_error_json,
};
use serde_json::{Value, json};

use crate::{CAP, Facts, decode, facts, read};

const R: WireScheme = WireScheme::OpenaiResponses;
const C: WireScheme = WireScheme::OpenaiChat;
const A: WireScheme = WireScheme::AnthropicMessages;
const G: WireScheme = WireScheme::Gemini;

fn usage(input: u64, output: u64, cached: Option<u64>, reasoning: Option<u64>) -> Option<Usage> {
    Some(Usage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        cached_input_tokens: cached,
        reasoning_tokens: reasoning,
    })
}

/// Deterministic xorshift for split points.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn decode_pieces(scheme: WireScheme, body: &[u8], cuts: &[usize]) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new(scheme, CAP);
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts {
        d.push(&body[prev..c], &mut out, None);
        prev = c;
    }
    d.push(&body[prev..], &mut out, None);
    d.finish(&mut out, None);
    out
}

/// Decode whole, then at every split point (small files) or many random splits (large ones),
/// and in 1-byte chunks; every run must give identical events.
fn check(scheme: WireScheme, rel: &str) -> Facts {
    let body = read(rel);
    let whole = decode_body(scheme, &body, 0, CAP);
    assert_eq!(
        decode_body(scheme, &body, 1, CAP),
        whole,
        "{rel}: 1-byte chunks differ"
    );
    if body.len() <= 3_000 {
        for cut in 1..body.len() {
            assert_eq!(
                decode_pieces(scheme, &body, &[cut]),
                whole,
                "{rel}: split at {cut} differs"
            );
        }
    } else {
        let mut rng = Rng(body.len() as u64 | 1);
        for _ in 0..40 {
            let mut cuts: Vec<usize> = (0..1 + rng.below(8))
                .map(|_| rng.below(body.len()))
                .collect();
            cuts.sort_unstable();
            assert_eq!(
                decode_pieces(scheme, &body, &cuts),
                whole,
                "{rel}: split at {cuts:?} differs"
            );
        }
    }
    facts(&whole)
}

fn completed(f: &Facts) -> StopReason {
    match &f.terminal {
        StreamEvent::Completed(c) => c.stop_reason.clone(),
        other => panic!("expected completed, got {other:?}"),
    }
}

fn error(f: &Facts) -> pod_provider::ProviderError {
    match &f.terminal {
        StreamEvent::Error(e) => e.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn args(f: &Facts, i: usize) -> Value {
    serde_json::from_str(&f.calls[i].3)
        .unwrap_or_else(|e| panic!("call {i} args not JSON: {e}: {:?}", f.calls[i]))
}

// ---------------------------------------------------------------- OpenAI Responses

#[test]
fn responses_text_basic() {
    let f = check(R, "openai-responses/text-basic.sse");
    assert_eq!(f.text, "The capital of France is Paris.");
    assert_eq!(f.usage, usage(278, 9, Some(0), Some(0)));
    assert_eq!(completed(&f), StopReason::EndTurn);
    assert_eq!(f.started, 1);
    assert!(f.unhandled.is_empty(), "{:?}", f.unhandled);
}

#[test]
fn responses_function_call() {
    let f = check(R, "openai-responses/function-call-args.sse");
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].1, "get_capital");
    assert_eq!(f.calls[0].2, "call_kL0PCQV7M2WMoVX8V8OtYSAL");
    assert_eq!(args(&f, 0), json!({"country": "France"}));
    assert_eq!(f.usage, usage(255, 16, Some(0), Some(0)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn responses_parallel_function_calls() {
    let f = check(R, "openai-responses/parallel-function-calls.sse");
    let names: Vec<(u32, &str)> = f.calls.iter().map(|c| (c.0, c.1.as_str())).collect();
    assert_eq!(names, vec![(1, "get_weather"), (2, "get_weather")]);
    assert_eq!(args(&f, 0), json!({"location": "San Francisco, CA"}));
    assert_eq!(args(&f, 1), json!({"location": "New York, NY"}));
    assert_eq!(f.usage, usage(136, 678, Some(0), Some(576)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn responses_reasoning_summary_long() {
    let f = check(R, "openai-responses/reasoning-summary-long.sse");
    assert_eq!(f.text.chars().count(), 1251);
    assert!(f.text.starts_with("I'm not a road safety professional"));
    assert!(f.text.ends_with("rules specific to your area. Stay safe!"));
    assert_eq!(f.reasoning.chars().count(), 2022);
    assert_eq!(f.usage, usage(13, 1680, Some(0), Some(1408)));
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn responses_incomplete_max_output_tokens() {
    let f = check(R, "openai-responses/incomplete-max-output-tokens.sse");
    assert_eq!(completed(&f), StopReason::MaxTokens);
    assert_eq!(f.usage, usage(38, 64, Some(0), Some(64)));
}

#[test]
fn responses_error_event_nested_insufficient_quota() {
    let f = check(
        R,
        "openai-responses/error-then-failed-insufficient-quota.sse",
    );
    let e = error(&f);
    assert_eq!(e.class, ErrorClass::QuotaExceeded);
    assert_eq!(e.code.as_deref(), Some("insufficient_quota"));
    assert!(!e.retryable);
    assert!(e.message.starts_with("You exceeded your current quota"));
}

#[test]
fn responses_background_and_resume() {
    let f = check(R, "openai-responses/background-queued.sse");
    assert_eq!(f.text, "2 + 2 equals 4.");
    assert_eq!(f.usage, usage(15, 9, Some(0), Some(0)));
    assert_eq!(f.started, 1);
    // A resumed stream starts without response.created; the queued/in_progress event starts it.
    let f = check(R, "openai-responses/resume-starting-after.sse");
    assert_eq!(f.text, "2 + 2 equals 4.");
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn responses_text_then_function_call() {
    let f = check(R, "openai-responses/text-then-function-call-phase.sse");
    assert_eq!(
        f.text,
        "I’ll check the capital lookup tool for “PotatoLand.”"
    );
    assert_eq!(f.calls.len(), 1);
    assert_eq!((f.calls[0].0, f.calls[0].1.as_str()), (2, "get_capital"));
    assert_eq!(args(&f, 0), json!({"country": "PotatoLand"}));
    assert_eq!(f.usage, usage(63, 69, Some(0), Some(26)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn responses_custom_tool_input() {
    let f = check(R, "openai-responses/custom-tool-input-delta.sse");
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].1, "write_sql");
    assert_eq!(f.calls[0].3, "SELECT * FROM users WHERE age > 25");
    assert_eq!(f.usage, usage(50, 20, Some(0), Some(0)));
}

#[test]
fn responses_hosted_tools_are_unhandled_not_dropped() {
    let f = check(R, "openai-responses/web-search-annotations.sse");
    assert_eq!(f.text.chars().count(), 162);
    assert!(
        f.text
            .starts_with("The tallest mountain in Alberta is **Mount Columbia**")
    );
    assert!(
        f.unhandled
            .iter()
            .any(|u| u.starts_with("response.web_search_call."))
    );
    assert!(
        f.unhandled
            .iter()
            .any(|u| u == "response.output_text.annotation.added")
    );
    assert_eq!(f.usage, usage(12243, 140, Some(0), Some(100)));

    let f = check(R, "openai-responses/code-interpreter-reasoning.sse");
    assert_eq!(f.text.chars().count(), 646);
    assert!(
        f.unhandled
            .iter()
            .any(|u| u == "response.code_interpreter_call_code.delta")
    );
    assert_eq!(f.usage, usage(3727, 347, Some(3200), Some(128)));

    let f = check(R, "openai-responses/mcp-call.sse");
    assert_eq!(f.text.chars().count(), 687);
    assert!(
        f.unhandled
            .iter()
            .any(|u| u.starts_with("response.mcp_call"))
    );
    assert_eq!(f.usage, usage(1401, 480, Some(0), Some(256)));

    let f = check(R, "openai-responses/shell-call-new-events.sse");
    assert_eq!(f.text, "The command ran successfully.");
    assert!(
        f.unhandled
            .iter()
            .any(|u| u.starts_with("response.shell_call"))
    );
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn responses_compat_providers() {
    let f = check(R, "openai-responses/compat-deepseek-reasoning-text.sse");
    assert_eq!(f.text, "The capital of France is Paris.");
    assert!(
        !f.reasoning.is_empty(),
        "reasoning_text deltas are raw reasoning"
    );
    assert_eq!(f.usage, usage(90, 15, Some(0), Some(7)));
    let f = check(R, "openai-responses/compat-openrouter-done-sentinel.sse");
    assert_eq!(f.text, "4");
    assert_eq!(f.usage, usage(78, 37, Some(0), Some(22)));
    assert_eq!(completed(&f), StopReason::EndTurn);
}

// ---------------------------------------------------------------- OpenAI Chat

#[test]
fn chat_text_usage_done() {
    let f = check(C, "openai-chat/text-usage-done.sse");
    assert_eq!(f.text.chars().count(), 159);
    assert!(
        f.text
            .starts_with("I'm unable to provide real-time weather updates.")
    );
    assert!(f.text.ends_with("liable weather website or a weather app."));
    assert_eq!(f.usage, usage(14, 30, None, Some(0)));
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn chat_single_and_parallel_tool_calls() {
    let f = check(C, "openai-chat/single-tool-call.sse");
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].1, "get_weather");
    assert_eq!(args(&f, 0), json!({"city": "New York City"}));
    assert_eq!(f.usage, usage(44, 16, None, Some(0)));
    assert_eq!(completed(&f), StopReason::ToolCalls);

    let f = check(C, "openai-chat/parallel-tool-calls.sse");
    let names: Vec<(u32, &str)> = f.calls.iter().map(|c| (c.0, c.1.as_str())).collect();
    assert_eq!(names, vec![(0, "GetWeatherArgs"), (1, "get_stock_price")]);
    assert_eq!(
        args(&f, 0),
        json!({"city": "Edinburgh", "country": "GB", "units": "c"})
    );
    assert_eq!(args(&f, 1), json!({"ticker": "AAPL", "exchange": "NASDAQ"}));
    assert_eq!(f.usage, usage(149, 60, None, Some(0)));

    let f = check(C, "openai-chat/parallel-tool-calls-obfuscation.sse");
    let names: Vec<&str> = f.calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, vec!["get_country", "get_product_name"]);
    assert_eq!(args(&f, 0), json!({}));
    assert_eq!(args(&f, 1), json!({}));
    assert_eq!(f.usage, usage(364, 40, Some(0), Some(0)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn chat_finish_length_is_max_tokens() {
    let f = check(C, "openai-chat/finish-length.sse");
    assert_eq!(f.text, "{\"");
    assert_eq!(f.usage, usage(79, 1, None, Some(0)));
    assert_eq!(completed(&f), StopReason::MaxTokens);
}

#[test]
fn chat_multi_choice_keeps_choices_apart() {
    let events = decode_body(C, &read("openai-chat/multi-choice-n3.sse"), 0, CAP);
    let f = check(C, "openai-chat/multi-choice-n3.sse");
    assert_eq!(
        f.text,
        r#"{"city":"San Francisco","temperature":65,"units":"f"}"#
    );
    let mut per_choice = [String::new(), String::new(), String::new()];
    for e in &events {
        if let StreamEvent::TextDelta(d) = e {
            per_choice[d.choice as usize].push_str(&d.text);
        }
    }
    for (i, text) in per_choice.iter().enumerate() {
        let v: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("choice {i}: {e}: {text}"));
        assert_eq!(v["city"], "San Francisco", "choice {i}");
    }
    assert_eq!(f.usage, usage(79, 42, None, Some(0)));
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn chat_refusal() {
    for rel in [
        "openai-chat/refusal.sse",
        "openai-chat/refusal-logprobs.sse",
    ] {
        let f = check(C, rel);
        assert!(!f.text.is_empty(), "{rel}: the refusal text is shown");
        assert_eq!(completed(&f), StopReason::Refusal, "{rel}");
    }
}

#[test]
fn chat_compat_providers() {
    let f = check(C, "openai-chat/compat-azure-prompt-filter.sse");
    assert_eq!(f.text, "Capital of Denmark.");
    assert_eq!(
        f.unhandled,
        vec!["data".to_string()],
        "the prompt_filter_results chunk is reported"
    );
    assert_eq!(f.usage, usage(15, 78, Some(0), Some(64)));
    assert_eq!(completed(&f), StopReason::EndTurn);

    let f = check(C, "openai-chat/compat-deepseek-reasoning-content.sse");
    assert_eq!(f.text, "Hello there! 😊 How can I help you today?");
    assert_eq!(f.reasoning.chars().count(), 882);
    assert_eq!(f.usage, usage(6, 212, Some(0), Some(198)));

    let f = check(C, "openai-chat/compat-groq-error-event-no-done.sse");
    let e = error(&f);
    assert_eq!(e.class, ErrorClass::InvalidRequest);
    assert_eq!(e.code.as_deref(), Some("tool_use_failed"));
    assert!(e.message.starts_with("Tool call validation failed"));
    assert!(!f.reasoning.is_empty());

    let f = check(
        C,
        "openai-chat/compat-openrouter-comments-midstream-error.sse",
    );
    let e = error(&f);
    assert!(e.message.contains("Token limit reached"), "{e:?}");
    assert!(!e.retryable);
}

// ---------------------------------------------------------------- Anthropic

#[test]
fn anthropic_text_basic() {
    let f = check(A, "anthropic/text-basic.sse");
    assert_eq!(f.text, "- Captain\n- Scoop");
    assert_eq!(f.usage, usage(17, 10, Some(0), None));
    assert_eq!(completed(&f), StopReason::EndTurn);
    assert!(f.unhandled.is_empty(), "{:?}", f.unhandled);
}

#[test]
fn anthropic_thinking_signature_and_tool_use() {
    let f = check(A, "anthropic/thinking-signature-padded.sse");
    assert_eq!(f.text.chars().count(), 1021);
    assert!(
        f.text
            .starts_with("Here are the basic steps for safely crossing the street:")
    );
    assert_eq!(f.reasoning.chars().count(), 202);
    assert_eq!(f.signatures, 1);
    assert_eq!(f.usage, usage(43, 282, Some(0), None));

    let f = check(A, "anthropic/thinking-tool-use.sse");
    assert_eq!(f.reasoning.chars().count(), 180);
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].1, "fixed_version");
    // No input_json_delta at all: the input is an empty object.
    assert_eq!(args(&f, 0), json!({}));
    assert_eq!(f.usage, usage(598, 92, Some(0), Some(53)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn anthropic_stop_reasons() {
    let f = check(A, "anthropic/max-tokens.sse");
    assert_eq!(f.text, "#");
    assert_eq!(f.usage, usage(16, 1, Some(0), None));
    assert_eq!(completed(&f), StopReason::MaxTokens);

    let f = check(A, "anthropic/max-tokens-mid-tool-json.sse");
    assert_eq!(f.text.chars().count(), 135);
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].1, "make_file");
    assert!(f.calls[0].3.starts_with("{\"filename\": \"taxes.txt\""));
    assert!(
        serde_json::from_str::<Value>(&f.calls[0].3).is_err(),
        "cut mid-JSON by max_tokens"
    );
    assert_eq!(completed(&f), StopReason::MaxTokens);

    let f = check(A, "anthropic/refusal.sse");
    assert_eq!(completed(&f), StopReason::Refusal);
    assert_eq!(f.usage, usage(20, 0, None, None));
    let f = check(A, "anthropic/refusal-stop-details.sse");
    assert_eq!(completed(&f), StopReason::Refusal);
    assert_eq!(f.usage.as_ref().and_then(|u| u.input_tokens), Some(18));

    let f = check(A, "anthropic/pause-turn.sse");
    assert_eq!(
        completed(&f),
        StopReason::Incomplete {
            raw: "pause_turn".into()
        }
    );
    assert_eq!(f.text.chars().count(), 166);
    assert!(
        f.calls.is_empty(),
        "server tool use is not a client tool call"
    );
    assert!(f.unhandled.iter().any(|u| u == "content_block_start"));
}

#[test]
fn anthropic_message_delta_input_tokens_override() {
    let f = check(A, "anthropic/message-delta-input-tokens.sse");
    assert_eq!(f.text, "pong");
    assert_eq!(f.usage, usage(61, 2, None, None));
}

#[test]
fn anthropic_redacted_thinking_and_server_tools() {
    let f = check(A, "anthropic/redacted-thinking.sse");
    assert_eq!(f.text.chars().count(), 359);
    assert!(
        f.signatures >= 1,
        "redacted thinking data is kept to send back"
    );

    let f = check(A, "anthropic/web-search-citations.sse");
    assert_eq!(f.text.chars().count(), 1792);
    assert!(f.calls.is_empty());
    assert!(f.unhandled.len() >= 2);
    assert_eq!(f.usage, usage(31772, 644, Some(0), None));

    let f = check(A, "anthropic/code-execution.sse");
    assert_eq!(f.text.chars().count(), 501);
    assert_eq!(f.usage.as_ref().and_then(|u| u.input_tokens), Some(4714));
    assert_eq!(completed(&f), StopReason::EndTurn);

    let f = check(A, "anthropic/mcp-tool-use.sse");
    assert_eq!(f.text.chars().count(), 806);
    assert!(f.calls.is_empty());

    let f = check(A, "anthropic/compaction-unknown-block.sse");
    assert_eq!(f.text, "Hello! 👋");
    assert!(!f.unhandled.is_empty(), "the unknown block is reported");
}

// ---------------------------------------------------------------- synthetic cases

#[test]
fn synthetic_responses_cases() {
    let f = check(R, "synthetic/openai-responses/truncated-no-terminal.sse");
    assert_eq!(error(&f).class, ErrorClass::StreamClosedBeforeCompletion);
    assert!(error(&f).retryable);

    let f = check(R, "synthetic/openai-responses/failed-context-length.sse");
    assert_eq!(error(&f).class, ErrorClass::ContextLengthExceeded);
    assert!(!error(&f).retryable);

    let f = check(
        R,
        "synthetic/openai-responses/error-event-context-length-nested.sse",
    );
    assert_eq!(error(&f).class, ErrorClass::ContextLengthExceeded);
    assert_eq!(error(&f).code.as_deref(), Some("context_length_exceeded"));

    let f = check(
        R,
        "synthetic/openai-responses/error-event-flat-documented.sse",
    );
    let e = error(&f);
    assert_eq!(e.class, ErrorClass::Overloaded);
    assert_eq!(e.code.as_deref(), Some("server_is_overloaded"));
    assert!(e.retryable);
    assert!(
        e.message
            .starts_with("Our servers are currently overloaded")
    );

    let f = check(R, "synthetic/openai-responses/failed-server-error.sse");
    assert_eq!(error(&f).class, ErrorClass::ServerError);
    assert!(!f.text.is_empty());

    let f = check(R, "synthetic/openai-responses/unknown-event-type.sse");
    assert_eq!(f.text, "The capital of France is Paris.");
    assert_eq!(f.unhandled.len(), 1);

    for rel in [
        "synthetic/openai-responses/event-name-mismatch.sse",
        "synthetic/openai-responses/data-only-no-event-lines.sse",
    ] {
        let f = check(R, rel);
        assert_eq!(f.text, "The capital of France is Paris.", "{rel}");
        assert_eq!(completed(&f), StopReason::EndTurn, "{rel}");
    }
}

#[test]
fn synthetic_chat_cases() {
    let f = check(C, "synthetic/openai-chat/truncated-no-done.sse");
    assert_eq!(error(&f).class, ErrorClass::StreamClosedBeforeCompletion);

    let f = check(C, "synthetic/openai-chat/midstream-error-object.sse");
    assert_eq!(error(&f).class, ErrorClass::ServerError);
    assert!(f.text.ends_with(" real"));

    let f = check(C, "synthetic/openai-chat/error-event-then-data.sse");
    assert_eq!(error(&f).class, ErrorClass::RateLimited);
    assert!(error(&f).retryable);
}

#[test]
fn synthetic_anthropic_cases() {
    let f = check(A, "synthetic/anthropic/overloaded-error-midstream.sse");
    let e = error(&f);
    assert_eq!(e.class, ErrorClass::Overloaded);
    assert!(e.retryable);
    assert_eq!(
        e.provider_request_id.as_deref(),
        Some("req_011CSynthetic000000000000")
    );

    // The usage the stream sent before failing is reported, not lost.
    assert_eq!(f.usage, usage(17, 1, Some(0), None));

    let f = check(A, "synthetic/anthropic/api-error-before-content.sse");
    assert_eq!(error(&f).class, ErrorClass::ServerError);
    assert_eq!(f.usage, usage(17, 1, Some(0), None));

    let f = check(A, "synthetic/anthropic/parallel-tool-use.sse");
    assert_eq!(f.calls.len(), 2);
    assert_eq!((f.calls[0].0, f.calls[1].0), (1, 2));
    assert!(serde_json::from_str::<Value>(&f.calls[0].3).is_ok());
    assert!(serde_json::from_str::<Value>(&f.calls[1].3).is_ok());
    assert_eq!(completed(&f), StopReason::ToolCalls);

    let f = check(A, "synthetic/anthropic/unknown-event-and-block.sse");
    assert_eq!(f.text, "- Captain\n- Scoop");
    assert!(f.unhandled.iter().any(|u| u == "future_event"));

    let f = check(A, "synthetic/anthropic/duplicate-message-start.sse");
    assert_eq!(f.text, "Hello, World!");
    assert_eq!(f.started, 1);
    assert_eq!(f.unhandled, vec!["message_start".to_string()]);

    let f = check(A, "synthetic/anthropic/spliced-message-start.sse");
    assert_eq!(error(&f).class, ErrorClass::MalformedStream);
}

// ---------------------------------------------------------------- Gemini

#[test]
fn gemini_text_usage_and_stop() {
    let f = check(G, "gemini/text.sse");
    assert_eq!(f.text, "The capital of France is Paris.\n");
    assert_eq!(f.started, 1);
    // Usage is repeated in every chunk; the last one is reported, once.
    assert_eq!(f.usage, usage(13, 8, None, None));
    assert_eq!(completed(&f), StopReason::EndTurn);
    assert!(f.unhandled.is_empty(), "{:?}", f.unhandled);
    let started = decode(G, "gemini/text.sse")
        .into_iter()
        .find_map(|e| match e {
            StreamEvent::Started(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (started.response_id.as_deref(), started.model.as_deref()),
        (
            Some("w1peaMz6INOvnvgPgYfPiQY"),
            Some("gemini-2.0-flash-exp")
        )
    );
}

#[test]
fn gemini_thought_parts_are_reasoning_and_thoughts_count_as_output() {
    let f = check(G, "gemini/thinking-parts.sse");
    assert!(
        f.reasoning.starts_with("**Clarifying User Goals**"),
        "{}",
        f.reasoning
    );
    assert!(!f.text.contains("Clarifying"), "thoughts are not text");
    assert!(
        f.text.starts_with("This is a great question!"),
        "{}",
        f.text
    );
    assert!(
        f.text
            .ends_with("Always assume a driver might not see you.")
    );
    assert_eq!(f.signatures, 1, "the thoughtSignature is kept to send back");
    // candidatesTokenCount 469 + thoughtsTokenCount 787.
    assert_eq!(f.usage, usage(34, 469 + 787, None, Some(787)));
    assert_eq!(completed(&f), StopReason::EndTurn);
    let kinds: Vec<ReasoningKind> = decode(G, "gemini/thinking-parts.sse")
        .into_iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta(r) => Some(r.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.first(), Some(&ReasoningKind::Summary));
}

#[test]
fn gemini_function_call_whole_with_signature_and_made_up_id() {
    let f = check(G, "gemini/function-call-thought-signature.sse");
    assert_eq!(f.calls.len(), 1);
    let (index, name, id, arguments) = &f.calls[0];
    assert_eq!((*index, name.as_str()), (0, "get_country"));
    assert_eq!(id, "pods-call-QUVVadTSNJ6_qtsPvN7J8Q0-0");
    assert_eq!(arguments, "{}");
    assert_eq!(f.signatures, 1);
    assert_eq!(f.text, "");
    assert_eq!(f.usage, usage(29, 10 + 202, None, Some(202)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
    // A call with args and an id of its own, and a second call in the same stream.
    let body = concat!(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[",
        "{\"functionCall\":{\"id\":\"fc_1\",\"name\":\"read_file\",\"args\":{\"path\":\"a.txt\"}}},",
        "{\"functionCall\":{\"name\":\"list_dir\",\"args\":{\"path\":\".\"}}}]},",
        "\"finishReason\":\"STOP\"}]}\r\n\r\n"
    );
    let f = facts(&decode_body(G, body.as_bytes(), 0, CAP));
    assert_eq!(f.calls[0].2, "fc_1");
    assert_eq!(args(&f, 0), json!({"path": "a.txt"}));
    assert_eq!(
        f.calls[1].2, "pods-call-1",
        "no response id: the index alone"
    );
    assert_eq!((f.calls[1].0, args(&f, 1)), (1, json!({"path": "."})));
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn gemini_vertex_streamed_arguments_are_assembled() {
    let f = check(G, "gemini/vertex-partial-args.sse");
    assert_eq!(f.calls.len(), 2);
    assert_eq!(f.calls[0].1, "getWeather");
    assert_eq!(args(&f, 0), json!({"location": "Boston"}));
    assert_eq!(args(&f, 1), json!({"location": "San Francisco"}));
    assert_ne!(f.calls[0].2, f.calls[1].2, "call ids are unique");
    assert_eq!(f.signatures, 1);
    // Only the last chunk carries token counts; the others' `trafficType` is not usage.
    assert_eq!(f.usage, usage(26, 23 + 132, None, Some(132)));
    assert_eq!(completed(&f), StopReason::ToolCalls);
    assert!(f.unhandled.is_empty(), "{:?}", f.unhandled);
}

#[test]
fn gemini_max_tokens_and_code_execution_parts() {
    let f = check(G, "gemini/max-tokens.sse");
    assert_eq!(completed(&f), StopReason::MaxTokens);
    assert_eq!(
        f.usage,
        Some(Usage {
            input_tokens: Some(10),
            ..Usage::default()
        }),
        "no output count said is None, not zero"
    );

    let f = check(G, "gemini/code-execution.sse");
    assert_eq!(
        f.text,
        "The result of $65465 - 6544 \\times 65464 - 6 + 1.02255$ is **-428,330,955.97745**."
    );
    assert_eq!(
        f.unhandled,
        vec!["part.executableCode", "part.codeExecutionResult"],
        "parts without an event are reported, not dropped"
    );
    // promptTokenCount 147 + toolUsePromptTokenCount 360 in, 108 + 168 thoughts out: the
    // response's totalTokenCount 783.
    assert_eq!(f.usage, usage(147 + 360, 108 + 168, None, Some(168)));
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn gemini_synthetic_midstream_error_and_missing_finish() {
    let f = check(G, "synthetic/gemini/midstream-error.sse");
    assert_eq!(f.text, "The");
    let e = error(&f);
    assert_eq!(
        (e.class, e.code.as_deref(), e.retryable),
        (ErrorClass::Overloaded, Some("UNAVAILABLE"), true)
    );
    assert_eq!(
        e.message,
        "The model is overloaded. Please try again later."
    );
    assert_eq!(
        f.usage.and_then(|u| u.input_tokens),
        Some(15),
        "usage seen before the error is reported"
    );

    let f = check(G, "synthetic/gemini/no-finish-reason.sse");
    assert_eq!(f.text, "The capital of France");
    assert_eq!(error(&f).class, ErrorClass::StreamClosedBeforeCompletion);
}

/// One Gemini chunk with `candidate` as its only candidate.
fn gemini_chunk(candidate: Value) -> String {
    format!(
        "data: {}\r\n\r\n",
        json!({"candidates": [candidate], "responseId": "r1"})
    )
}

#[test]
fn gemini_finish_reasons_are_normalized() {
    for (raw, expected) in [
        ("STOP", StopReason::EndTurn),
        ("MAX_TOKENS", StopReason::MaxTokens),
        ("SAFETY", StopReason::ContentFilter),
        ("RECITATION", StopReason::ContentFilter),
        ("BLOCKLIST", StopReason::ContentFilter),
        ("PROHIBITED_CONTENT", StopReason::ContentFilter),
        ("SPII", StopReason::ContentFilter),
        (
            "MALFORMED_FUNCTION_CALL",
            StopReason::Other {
                raw: "MALFORMED_FUNCTION_CALL".into(),
            },
        ),
        (
            "OTHER",
            StopReason::Other {
                raw: "OTHER".into(),
            },
        ),
    ] {
        let body = gemini_chunk(json!({
            "content": {"role": "model", "parts": [{"text": "x"}]},
            "finishReason": raw,
        }));
        let f = facts(&decode_body(G, body.as_bytes(), 0, CAP));
        assert_eq!(completed(&f), expected, "{raw}");
    }
    // A blocked prompt has no candidate, only the feedback.
    let body = "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":7}}\r\n\r\n";
    let f = facts(&decode_body(G, body.as_bytes(), 0, CAP));
    assert_eq!(completed(&f), StopReason::ContentFilter);
    assert_eq!(f.usage.and_then(|u| u.input_tokens), Some(7));
}

#[test]
fn gemini_cached_tokens_unknown_parts_and_unknown_chunks() {
    let body = format!(
        "{}data: {}\r\n\r\n",
        gemini_chunk(json!({
            "content": {"role": "model", "parts": [
                {"text": "hi"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
            ]},
            "finishReason": "STOP",
        })),
        json!({"usageMetadata": {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 5,
        }, "somethingNew": 1})
    );
    let f = facts(&decode_body(G, body.as_bytes(), 0, CAP));
    assert_eq!(f.text, "hi");
    assert_eq!(f.unhandled, vec!["part.inlineData"]);
    assert_eq!(
        f.usage,
        usage(100, 5, Some(60), None),
        "cached tokens are part of the prompt count"
    );
    let body = "data: {\"responseId\":\"r\",\"somethingNew\":{}}\r\n\r\n";
    let f = facts(&decode_body(G, body.as_bytes(), 0, CAP));
    assert_eq!(f.unhandled, vec!["data"]);
    assert_eq!(error(&f).class, ErrorClass::StreamClosedBeforeCompletion);
    let f = facts(&decode_body(G, b"data: {\"candidates\": [\r\n\r\n", 0, CAP));
    assert_eq!(error(&f).class, ErrorClass::MalformedStream);
}

#[test]
fn gemini_error_bodies_classify() {
    use pod_provider::from_http;
    let h = reqwest::header::HeaderMap::new();
    let e = from_http(429, &h, &read("errors/gemini-429-resource_exhausted.json"));
    assert_eq!(
        (e.class, e.retry_after_ms, e.retryable),
        (ErrorClass::RateLimited, Some(34_400), true),
        "a RetryInfo delay makes \"exceeded your current quota\" a rate limit"
    );
    let e = from_http(404, &h, &read("errors/gemini-404-not_found.json"));
    assert_eq!(e.class, ErrorClass::NotFound);
    for (status, code, message, class) in [
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ErrorClass::ContextLengthExceeded,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            ErrorClass::InvalidRequest,
        ),
        (
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            ErrorClass::QuotaExceeded,
        ),
        (
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers.",
            ErrorClass::Permission,
        ),
        (
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            ErrorClass::Auth,
        ),
        (
            503,
            "UNAVAILABLE",
            "The model is overloaded.",
            ErrorClass::Overloaded,
        ),
        (
            500,
            "INTERNAL",
            "An internal error has occurred.",
            ErrorClass::ServerError,
        ),
    ] {
        let body = json!({"error": {"code": status, "message": message, "status": code}});
        let e = from_http(status, &h, body.to_string().as_bytes());
        assert_eq!(
            (e.class, e.code.as_deref()),
            (class, Some(code)),
            "{message}"
        );
    }
    let bad_key = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
        "message": "API key not valid. Please pass a valid API key.",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}});
    assert_eq!(
        from_http(400, &h, bad_key.to_string().as_bytes()).class,
        ErrorClass::Auth
    );
}

/// The adapter each fixture folder is decoded with; `None` for a folder no adapter reads.
fn scheme_of(rel: &str) -> Option<WireScheme> {
    let dir = rel.strip_prefix("synthetic/").unwrap_or(rel);
    match dir.split('/').next()? {
        "openai-responses" | "framing" => Some(R),
        "openai-chat" => Some(C),
        "anthropic" => Some(A),
        "gemini" => Some(G),
        _ => None,
    }
}

/// Every file under `tests/fixtures`, as paths relative to it, sorted.
fn fixture_files() -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    let root = crate::fixture("");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Provenance and notes, not streams or payloads.
const DOCUMENTATION: &[&str] = &[
    "MANIFEST.json",
    "README.md",
    "errors/SOURCES.json",
    "synthetic/NOTES.json",
];

#[test]
fn every_fixture_folder_has_an_adapter() {
    // A new fixture folder without an adapter fails here until an adapter reads it.
    let unread: Vec<String> = fixture_files()
        .into_iter()
        .filter(|rel| {
            !DOCUMENTATION.contains(&rel.as_str())
                && !rel.starts_with("errors/")
                && scheme_of(rel).is_none()
        })
        .collect();
    assert_eq!(unread, Vec::<String>::new());
}

#[test]
fn every_fixture_is_decoded_and_asserted_on_by_some_test() {
    let suite = crate::fixture("../suite");
    let mut sources = String::new();
    for entry in std::fs::read_dir(&suite).unwrap() {
        sources.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let mut decoded = 0;
    for rel in fixture_files() {
        if DOCUMENTATION.contains(&rel.as_str()) {
            continue;
        }
        // Error payloads may be named without their folder (`errors/{name}` built in code).
        let named = match rel.strip_prefix("errors/") {
            Some(name) => sources.contains(&format!("{name}\"")),
            None => sources.contains(&format!("\"{rel}\"")),
        };
        assert!(named, "{rel} is in the test data but no test names it");
        if let Some(scheme) = scheme_of(&rel) {
            // `facts` checks there is exactly one terminal event, and it is the last.
            facts(&decode_body(scheme, &read(&rel), 0, CAP));
            decoded += 1;
        }
    }
    assert!(decoded >= 60, "only {decoded} streams found");
}

#[test]
fn in_stream_error_payloads_classify() {
    let anthropic: Value =
        serde_json::from_slice(&read("errors/anthropic-stream-error-event.json")).unwrap();
    let responses: Value = serde_json::from_slice(&read(
        "errors/openai-responses-stream-error-event-nested.json",
    ))
    .unwrap();

    let e = from_error_json(&anthropic, None);
    assert_eq!(
        (e.class, e.code.as_deref(), e.retryable, e.http_status),
        (ErrorClass::Overloaded, Some("overloaded_error"), true, None)
    );
    assert_eq!(e.message, "Overloaded");
    assert_eq!(
        e.provider_request_id, None,
        "the recording's elided id `req_011...` is not an id"
    );

    let e = from_error_json(&responses, None);
    assert_eq!(
        (e.class, e.code.as_deref(), e.retryable),
        (ErrorClass::QuotaExceeded, Some("insufficient_quota"), false)
    );
    assert!(
        e.message.starts_with("You exceeded your current quota"),
        "{e:?}"
    );

    // The same payloads as the `error` SSE events they were recorded as, through the adapters.
    for (scheme, payload, class, code) in [
        (A, &anthropic, ErrorClass::Overloaded, "overloaded_error"),
        (
            R,
            &responses,
            ErrorClass::QuotaExceeded,
            "insufficient_quota",
        ),
    ] {
        let body = format!("event: error\ndata: {payload}\n\n");
        let f = facts(&decode_body(scheme, body.as_bytes(), 0, CAP));
        let e = error(&f);
        assert_eq!(
            (e.class, e.code.as_deref()),
            (class, Some(code)),
            "{scheme:?}"
        );
    }
}

#[test]
fn chat_calls_reusing_index_zero_stay_apart() {
    // Some compatible servers send each complete call as its own chunk, all with index 0.
    let chunk = |id: &str, name: &str, args: &str| {
        json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": args}}
        ]}, "finish_reason": null}]})
    };
    let body = pod_provider::sse_body(&[
        ("", chunk("call_a", "first", "{\"x\":1}")),
        ("", chunk("call_b", "second", "{\"y\":2}")),
        (
            "",
            json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ),
    ]) + "data: [DONE]\n\n";
    let f = facts(&decode_body(C, body.as_bytes(), 0, CAP));
    let calls: Vec<(u32, &str, &str, &str)> = f
        .calls
        .iter()
        .map(|c| (c.0, c.1.as_str(), c.2.as_str(), c.3.as_str()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (0, "first", "call_a", "{\"x\":1}"),
            (1, "second", "call_b", "{\"y\":2}")
        ]
    );
    assert_eq!(completed(&f), StopReason::ToolCalls);
}

#[test]
fn chat_delta_fields_the_decoder_does_not_read_are_unhandled() {
    let delta = |d: Value| json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": d, "finish_reason": null}]});
    let body = pod_provider::sse_body(&[
        // Fields that carry nothing: no noise.
        (
            "",
            delta(
                json!({"role": "assistant", "content": null, "refusal": null, "audio": null, "channel": "analysis"}),
            ),
        ),
        ("", delta(json!({"content": "Hi"}))),
        // Legacy function calling and audio output: reported, never dropped.
        (
            "",
            delta(json!({"function_call": {"name": "lookup", "arguments": ""}})),
        ),
        (
            "",
            delta(json!({"audio": {"id": "audio_1", "data": "A".repeat(1000)}})),
        ),
        // A `reasoning_details` that repeats `reasoning` is not news; one with more is.
        (
            "",
            delta(
                json!({"reasoning": "think", "reasoning_details": [{"type": "reasoning.text", "text": "think"}]}),
            ),
        ),
        (
            "",
            delta(
                json!({"reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque"}]}),
            ),
        ),
        (
            "",
            json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ),
    ]) + "data: [DONE]\n\n";
    let events = decode_body(C, body.as_bytes(), 0, CAP);
    let f = facts(&events);
    assert_eq!(f.text, "Hi");
    assert_eq!(f.reasoning, "think");
    assert_eq!(
        f.unhandled,
        [
            "delta.function_call",
            "delta.audio",
            "delta.reasoning_details"
        ]
    );
    let previews: Vec<(&str, usize)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Unhandled(u) => Some((u.preview.as_str(), u.original_len)),
            _ => None,
        })
        .collect();
    let (preview, len) = previews[0];
    assert_eq!(
        serde_json::from_str::<Value>(preview).unwrap(),
        json!({"name": "lookup", "arguments": ""}),
        "the value is kept"
    );
    assert_eq!(len, preview.len());
    assert!(
        previews[1].0.len() == pod_provider::event::UNHANDLED_PREVIEW_BYTES && previews[1].1 > 1000,
        "a long value is previewed, bounded: {:?}",
        previews[1]
    );
    assert!(previews[2].0.contains("reasoning.encrypted"));
    assert_eq!(completed(&f), StopReason::EndTurn);
}

#[test]
fn recorded_chat_streams_report_nothing_they_fully_read() {
    // `role`, `refusal: null`, `content: null`, Groq's `channel` and OpenRouter's repeated
    // `reasoning_details` are read or carry nothing: none of them is `unhandled`.
    for rel in fixture_files()
        .into_iter()
        .filter(|rel| scheme_of(rel) == Some(C))
    {
        let f = facts(&decode_body(C, &read(&rel), 0, CAP));
        let expected: &[&str] = if rel.ends_with("compat-azure-prompt-filter.sse") {
            &["data"]
        } else {
            &[]
        };
        assert_eq!(f.unhandled, expected, "{rel}");
    }
}

// ---------------------------------------------------------------- stop reasons and usage, own fixtures

#[test]
fn chat_stop_reasons_are_normalized_and_never_incomplete_events() {
    let f = check(C, "synthetic/openai-chat/finish-content-filter.sse");
    assert_eq!(f.text, "Partial");
    assert_eq!(completed(&f), StopReason::ContentFilter);
    assert!(completed(&f).is_truncated());
    let f = check(C, "synthetic/openai-chat/finish-unknown-reason.sse");
    assert_eq!(
        completed(&f),
        StopReason::Other {
            raw: "abort".into()
        }
    );
    // The OpenAI schemes count the cached part inside the prompt.
    assert_eq!(f.usage, usage(326, 5, Some(314), None));
}

#[test]
fn chat_empty_choice_chunks_are_keepalives_not_events() {
    let f = check(C, "synthetic/openai-chat/empty-choices-keepalive.sse");
    assert_eq!(f.text, "Hi");
    assert!(f.unhandled.is_empty(), "{:?}", f.unhandled);
    assert_eq!(completed(&f), StopReason::EndTurn);
    assert_eq!(f.usage, usage(326, 5, Some(314), None));
}

#[test]
fn responses_incomplete_status_and_event_are_completed_with_the_reason() {
    let f = check(
        R,
        "synthetic/openai-responses/completed-status-incomplete-max-output.sse",
    );
    assert_eq!(f.text, "Partial");
    assert_eq!(completed(&f), StopReason::MaxTokens);
    assert_eq!(f.usage, usage(326, 7, Some(314), Some(0)));
    let f = check(
        R,
        "synthetic/openai-responses/incomplete-content-filter.sse",
    );
    assert_eq!(completed(&f), StopReason::ContentFilter);
    let f = check(
        R,
        "synthetic/openai-responses/completed-status-incomplete-other.sse",
    );
    assert_eq!(
        completed(&f),
        StopReason::Incomplete {
            raw: "server_paused".into()
        }
    );
}

#[test]
fn responses_failed_still_reports_usage() {
    let f = check(R, "synthetic/openai-responses/failed-with-usage.sse");
    assert_eq!(error(&f).class, ErrorClass::ServerError);
    assert_eq!(f.usage, usage(326, 7, Some(314), Some(0)));
}

#[test]
fn anthropic_input_tokens_include_the_cached_prompt() {
    let f = check(A, "synthetic/anthropic/stop-sequence-cached-usage.sse");
    assert_eq!(f.text, "Hello");
    assert_eq!(completed(&f), StopReason::EndTurn);
    // 12 uncached + 314 read from the cache: the same 326 the OpenAI schemes report.
    assert_eq!(f.usage, usage(326, 5, Some(314), None));

    let f = check(
        A,
        "synthetic/anthropic/context-window-exceeded-cache-write.sse",
    );
    assert_eq!(
        completed(&f),
        StopReason::Incomplete {
            raw: "model_context_window_exceeded".into()
        }
    );
    // Tokens written to the cache are part of the prompt too.
    assert_eq!(f.usage, usage(120, 3, Some(0), None));
}

#[test]
fn anthropic_text_in_message_delta_is_unhandled_and_done_ends_the_message() {
    let f = check(A, "synthetic/anthropic/compat-message-delta-text-done.sse");
    assert_eq!(f.text, "", "text outside content blocks is not guessed at");
    assert_eq!(
        f.unhandled,
        vec!["message_delta".to_string(), "message_delta".to_string()]
    );
    assert_eq!(completed(&f), StopReason::EndTurn);
    assert_eq!(f.usage, usage(9, 2, None, None));

    let f = check(A, "synthetic/anthropic/compat-done-before-stop.sse");
    let e = error(&f);
    assert_eq!(e.class, ErrorClass::StreamClosedBeforeCompletion);
    assert!(e.message.contains("[DONE]"), "{e:?}");
    assert!(!e.message.contains("valid JSON"), "{e:?}");
    assert_eq!(f.text, "Hel");
}

#[test]
fn responses_calls_without_output_index_are_keyed_by_item_id() {
    let f = check(
        R,
        "synthetic/openai-responses/compat-llamacpp-parallel-calls-item-id.sse",
    );
    assert_eq!(f.calls.len(), 2, "{:?}", f.calls);
    assert_ne!(f.calls[0].0, f.calls[1].0, "two calls, two indexes");
    assert_eq!(
        (f.calls[0].1.as_str(), f.calls[0].2.as_str()),
        ("read_file", "call_a")
    );
    assert_eq!(
        (f.calls[1].1.as_str(), f.calls[1].2.as_str()),
        ("write_file", "call_b")
    );
    assert_eq!(args(&f, 0), json!({"path": "in.txt"}));
    // The done item says "" but the deltas said more: the received arguments are kept.
    assert_eq!(args(&f, 1), json!({"path": "out.txt", "text": "hi"}));
    assert_eq!(completed(&f), StopReason::ToolCalls);

    let f = check(
        R,
        "synthetic/openai-responses/compat-arguments-only-in-done-event.sse",
    );
    assert_eq!(f.calls.len(), 1);
    assert_eq!(args(&f, 0), json!({"path": "a.txt"}));

    let f = check(
        R,
        "synthetic/openai-responses/compat-unattributable-delta.sse",
    );
    assert_eq!(args(&f, 0), json!({}));
    assert_eq!(args(&f, 1), json!({}));
    assert_eq!(
        f.unhandled,
        vec!["response.function_call_arguments.delta".to_string()]
    );
}

#[test]
fn no_adapter_produces_the_legacy_incomplete_event() {
    for rel in fixture_files() {
        if let Some(scheme) = scheme_of(&rel) {
            let events = decode_body(scheme, &read(&rel), 0, CAP);
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, StreamEvent::Incomplete(_))),
                "{rel}"
            );
        }
    }
    // Old traces still read.
    let old: StreamEvent =
        serde_json::from_str(r#"{"type":"incomplete","reason":"max_output_tokens"}"#).unwrap();
    assert_eq!(old.kind(), "incomplete");
}

#[test]
fn gemini_streamed_arguments_fill_nested_paths_and_refuse_far_indexes() {
    let call = |f: Value| {
        format!(
            "data: {}\r\n\r\n",
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": f}]}}]})
        )
    };
    let body = [
        call(json!({"name": "plan", "willContinue": true})),
        call(json!({"partialArgs": [
            {"jsonPath": "$.steps[0].title", "stringValue": "fi", "willContinue": true},
        ], "willContinue": true})),
        call(json!({"partialArgs": [
            {"jsonPath": "$.steps[0].title", "stringValue": "rst"},
            {"jsonPath": "$.steps[1]", "numberValue": 2},
            {"jsonPath": "$.done", "boolValue": false},
            {"jsonPath": "$.steps[99999999]", "numberValue": 1},
        ], "willContinue": true})),
        call(json!({})),
        format!(
            "data: {}\r\n\r\n",
            json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}]})
        ),
    ]
    .concat();
    let f = facts(&decode_body(G, body.as_bytes(), 0, CAP));
    assert_eq!(
        args(&f, 0),
        json!({"steps": [{"title": "first"}, 2], "done": false})
    );
    assert_eq!(f.unhandled, vec!["part.functionCall.partialArgs"]);
    assert_eq!(completed(&f), StopReason::ToolCalls);
}
