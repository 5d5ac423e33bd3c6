//! Reading one model request's stream: text, reasoning and tool calls gathered, usage merged,
//! and the way it ended, with interruption taking its chance whenever the stream must wait on
//! the network.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};

use pod_provider::event::{Started, StopReason, Usage};
use pod_provider::{ModelRequest, ProviderError, StreamEvent, StreamObserver, ToolCall};
use pod_trace::Marker;

use super::tap::Tap;
use super::{Pod, RunObserver};
use crate::record::{LifecycleAction, RunPhase};

/// What one model request's stream gave.
pub(super) struct Streamed {
    pub text: String,
    pub reasoning: Vec<pod_provider::event::ReasoningDelta>,
    pub calls: Vec<ToolCall>,
    pub end: StreamEnd,
    pub usage: Option<Usage>,
    /// Stream events the adapter could not map, by name.
    pub unhandled: BTreeMap<String, u64>,
    /// What the stream said of its response (id, model), with the attempt that said it: an
    /// earlier attempt's, when it was retried, is not the answer's.
    pub started: Option<(u32, Started)>,
}

impl Default for Streamed {
    fn default() -> Self {
        Streamed {
            text: String::new(),
            reasoning: Vec::new(),
            calls: Vec::new(),
            // Replaced by every path out of the stream loop.
            end: StreamEnd::Done {
                stop_reason: StopReason::EndTurn,
            },
            usage: None,
            unhandled: BTreeMap::new(),
            started: None,
        }
    }
}

/// How a model request's stream ended.
pub(super) enum StreamEnd {
    Done { stop_reason: StopReason },
    Error(ProviderError),
    Interrupted(LifecycleAction),
}

impl Pod {
    pub(super) async fn stream_turn(
        &self,
        request: &ModelRequest,
        tap: &Arc<Tap>,
        phase: &mut RunPhase,
        observer: &dyn RunObserver,
    ) -> Streamed {
        let mut out = Streamed::default();
        let mut stream = self
            .model
            .client
            .stream(request, Some(tap.clone() as Arc<dyn StreamObserver>));
        let mut trace = tap.stream_trace();
        let mut first = true;
        let mut open: Vec<(u32, ToolCall)> = Vec::new();
        loop {
            // An event the client already has is taken at once; only when it must wait on the
            // network does interruption get its chance (the client tells the observer when a
            // read is drained, which is when presenters write what they gathered).
            let ready = if self.control.is_interrupted() {
                None
            } else {
                stream.next().now_or_never()
            };
            let event = match ready {
                Some(event) => event,
                None => {
                    // The stream waits: what it gathered goes to the trace meanwhile.
                    trace.send();
                    tokio::select! {
                        biased;
                        () = self.control.interrupted() => {
                            if let Some(action) = self.control.governing() {
                                trace.marker(Marker::StreamEnd { outcome: "interrupted".into() });
                                out.end = StreamEnd::Interrupted(action);
                                break;
                            }
                            continue;
                        }
                        event = stream.next() => event,
                    }
                }
            };
            let Some(event) = event else {
                // The client promises a terminal event; its absence is a broken stream.
                out.end = StreamEnd::Error(ProviderError {
                    class: pod_provider::ErrorClass::StreamClosedBeforeCompletion,
                    code: None,
                    http_status: None,
                    provider_request_id: None,
                    retry_after_ms: None,
                    retryable: false,
                    message: "the provider stream ended without a terminal event".into(),
                });
                break;
            };
            if first {
                first = false;
                observer.on_first_event();
            }
            if !matches!(event, StreamEvent::Error(_)) {
                phase.provider_progress_seen = true;
            }
            match &event {
                // Once per attempt: adapters say it at the start of a response.
                StreamEvent::Started(started) => {
                    out.started = Some((tap.attempt(), started.clone()));
                }
                StreamEvent::TextDelta(delta) => {
                    if !delta.text.is_empty() {
                        phase.visible_output_seen = true;
                    }
                    observer.on_text(&delta.text);
                    out.text.push_str(&delta.text);
                }
                StreamEvent::ReasoningDelta(delta) => {
                    observer.on_reasoning(&delta.text);
                    out.reasoning.push(delta.clone());
                }
                StreamEvent::ToolCallStart(start) => open.push((
                    start.index,
                    ToolCall {
                        call_id: start.call_id.clone(),
                        name: start.name.clone(),
                        arguments: String::new(),
                    },
                )),
                StreamEvent::ToolCallDelta(delta) => {
                    if let Some((_, call)) = open.iter_mut().find(|(i, _)| *i == delta.index) {
                        call.arguments.push_str(&delta.arguments);
                    }
                }
                StreamEvent::ToolCallEnd(end) => {
                    if let Some((_, call)) = open.iter_mut().find(|(i, _)| *i == end.index) {
                        call.arguments = end.arguments.clone();
                    }
                }
                StreamEvent::Usage(usage) => merge_usage(&mut out.usage, usage),
                StreamEvent::Unhandled(unhandled) => {
                    *out.unhandled.entry(unhandled.event.clone()).or_insert(0) += 1;
                }
                _ => {}
            }
            let terminal = match &event {
                StreamEvent::Completed(done) => Some(StreamEnd::Done {
                    stop_reason: done.stop_reason.clone(),
                }),
                StreamEvent::Incomplete(incomplete) => Some(StreamEnd::Done {
                    stop_reason: incomplete_reason(&incomplete.reason),
                }),
                StreamEvent::Error(error) => Some(StreamEnd::Error(error.clone())),
                _ => None,
            };
            trace.event(event);
            if let Some(end) = terminal {
                out.end = end;
                break;
            }
        }
        trace.send();
        out.calls = open.into_iter().map(|(_, call)| call).collect();
        out
    }
}

/// The stop reason of a legacy `incomplete` event (the provider's reason as it said it).
fn incomplete_reason(reason: &str) -> StopReason {
    match reason {
        "max_output_tokens" | "max_tokens" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFilter,
        raw => StopReason::Incomplete {
            raw: raw.to_owned(),
        },
    }
}

/// Usage events of one stream are cumulative and may each carry only some fields (Anthropic
/// sends input at the start and output at the end): the latest value of each field wins.
fn merge_usage(total: &mut Option<Usage>, usage: &Usage) {
    let total = total.get_or_insert_with(Usage::default);
    let take = |slot: &mut Option<u64>, value: Option<u64>| {
        if value.is_some() {
            *slot = value;
        }
    };
    take(&mut total.input_tokens, usage.input_tokens);
    take(&mut total.output_tokens, usage.output_tokens);
    take(&mut total.cached_input_tokens, usage.cached_input_tokens);
    take(&mut total.reasoning_tokens, usage.reasoning_tokens);
}
