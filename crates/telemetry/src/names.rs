//! Attribute and span names. GenAI names come from `opentelemetry-semantic-conventions`; the
//! facts only pods knows are `pods.*`.

// The GenAI constants are marked deprecated only because the conventions moved to their own
// repository; the names themselves are the current ones.
#![allow(deprecated)]

use opentelemetry_semantic_conventions::attribute as semconv;

pub const OPERATION_NAME: &str = semconv::GEN_AI_OPERATION_NAME;
pub const PROVIDER_NAME: &str = semconv::GEN_AI_PROVIDER_NAME;
pub const REQUEST_MODEL: &str = semconv::GEN_AI_REQUEST_MODEL;
pub const RESPONSE_FINISH_REASONS: &str = semconv::GEN_AI_RESPONSE_FINISH_REASONS;
pub const RESPONSE_ID: &str = semconv::GEN_AI_RESPONSE_ID;
pub const RESPONSE_MODEL: &str = semconv::GEN_AI_RESPONSE_MODEL;
/// Seconds, as the conventions measure it.
pub const RESPONSE_TIME_TO_FIRST_CHUNK: &str = semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK;
pub const USAGE_INPUT_TOKENS: &str = semconv::GEN_AI_USAGE_INPUT_TOKENS;
pub const USAGE_OUTPUT_TOKENS: &str = semconv::GEN_AI_USAGE_OUTPUT_TOKENS;
pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS;
pub const USAGE_REASONING_OUTPUT_TOKENS: &str = semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS;
pub const CONVERSATION_ID: &str = semconv::GEN_AI_CONVERSATION_ID;
pub const AGENT_ID: &str = semconv::GEN_AI_AGENT_ID;
pub const AGENT_NAME: &str = semconv::GEN_AI_AGENT_NAME;
pub const TOOL_NAME: &str = semconv::GEN_AI_TOOL_NAME;
pub const TOOL_CALL_ID: &str = semconv::GEN_AI_TOOL_CALL_ID;
pub const TOOL_TYPE: &str = semconv::GEN_AI_TOOL_TYPE;
pub const TOOL_CALL_ARGUMENTS: &str = semconv::GEN_AI_TOOL_CALL_ARGUMENTS;
pub const TOOL_CALL_RESULT: &str = semconv::GEN_AI_TOOL_CALL_RESULT;
pub const INPUT_MESSAGES: &str = semconv::GEN_AI_INPUT_MESSAGES;
pub const OUTPUT_MESSAGES: &str = semconv::GEN_AI_OUTPUT_MESSAGES;
pub const ERROR_TYPE: &str = semconv::ERROR_TYPE;
pub const SERVICE_NAME: &str = semconv::SERVICE_NAME;

/// `gen_ai.operation.name` values.
pub const OP_INVOKE_AGENT: &str = "invoke_agent";
pub const OP_CHAT: &str = "chat";
pub const OP_EXECUTE_TOOL: &str = "execute_tool";

pub const POD_PROFILE: &str = "pods.pod.profile";
pub const RUN_ID: &str = "pods.run.id";
pub const RUN_TRIGGER: &str = "pods.run.trigger";
pub const RUN_OUTCOME: &str = "pods.run.outcome";
pub const RUN_STOP_REASON: &str = "pods.run.stop_reason";
pub const RUN_TURNS: &str = "pods.run.turns";
pub const SCHEME: &str = "pods.model.scheme";

pub const LIFECYCLE_ACTION_ID: &str = "pods.lifecycle.action_id";
pub const LIFECYCLE_KIND: &str = "pods.lifecycle.kind";
pub const LIFECYCLE_ORIGIN: &str = "pods.lifecycle.origin";
pub const LIFECYCLE_ORIGIN_DETAIL: &str = "pods.lifecycle.origin.detail";
pub const LIFECYCLE_CAUSED_BY_POD: &str = "pods.lifecycle.caused_by.pod_id";
pub const LIFECYCLE_CAUSED_BY_ACTION: &str = "pods.lifecycle.caused_by.action_id";
pub const LIFECYCLE_CAUSED_BY_KIND: &str = "pods.lifecycle.caused_by.kind";
pub const LIFECYCLE_REASON: &str = "pods.lifecycle.reason";
/// The span event of the action that interrupted a run.
pub const EVENT_LIFECYCLE_ACTION: &str = "pods.lifecycle_action";

pub const CRASH_OWNER: &str = "pods.crash.owner";
pub const CRASH_DETAIL: &str = "pods.crash.detail";
pub const CRASH_OWNER_PID: &str = "pods.crash.owner_pid";
pub const CRASH_LAST_SEQ: &str = "pods.crash.last_seq";
pub const CRASH_LAST_ENTRY_KIND: &str = "pods.crash.last_entry_kind";
pub const CRASH_LAST_ENTRY_AT: &str = "pods.crash.last_entry_at";
pub const CRASH_ACTIONS_SEEN: &str = "pods.crash.actions_seen";
/// The span event of a run's crash evidence.
pub const EVENT_CRASH: &str = "pods.crash";

pub const ERROR_CODE: &str = "pods.error.code";
pub const ERROR_HTTP_STATUS: &str = "pods.error.http_status";
pub const ERROR_RETRYABLE: &str = "pods.error.retryable";

pub const REQUEST_TURN: &str = "pods.request.turn";
pub const REQUEST_ATTEMPT: &str = "pods.request.attempt";
pub const REQUEST_END: &str = "pods.request.end";
pub const REQUEST_RETRIED: &str = "pods.request.retried";
pub const REQUEST_UNHANDLED_EVENTS: &str = "pods.request.unhandled_events";
/// The same time as `gen_ai.response.time_to_first_chunk`, in whole milliseconds as recorded.
pub const REQUEST_TIME_TO_FIRST_CHUNK_MS: &str = "pods.request.time_to_first_chunk_ms";
/// On a retried attempt: how long the client waited before the next attempt.
pub const REQUEST_RETRY_DELAY_MS: &str = "pods.request.retry.delay_ms";
/// On a retried attempt: the provider's `Retry-After`, when it sent one.
pub const REQUEST_RETRY_AFTER_MS: &str = "pods.request.retry.retry_after_ms";

pub const TOOL_SIDE_EFFECT: &str = "pods.tool.side_effect";
pub const TOOL_OUTCOME: &str = "pods.tool.outcome";
pub const TOOL_DECISION: &str = "pods.tool.decision";
pub const TOOL_DECISION_SOURCE: &str = "pods.tool.decision.source";
pub const TOOL_CHILD_POD_ID: &str = "pods.tool.child_pod_id";

/// Set on a span still open when its run ended or its log stopped.
pub const UNFINISHED: &str = "pods.unfinished";

/// `gen_ai.provider.name` for a wire scheme (the replay scheme is pods' own).
pub fn provider_name(scheme: &str) -> &str {
    match scheme {
        "openai-responses" | "openai-chat" => "openai",
        "anthropic-messages" => "anthropic",
        "gemini" => "gcp.gemini",
        "replay" => "pods.replay",
        other => other,
    }
}
