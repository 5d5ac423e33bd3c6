//! The child tools offered to the model (`spawn_pod`, `wait_pod`, `send_to_pod`, `stop_pod`,
//! `list_pods`): their names, descriptions and parameter schemas, and the dispatch of a call to
//! the pod's [`Children`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{ChildError, Children, SpawnArgs};
use crate::error::error_chain;
use crate::record::SideEffectClass;

/// Names of the tools this module provides, with their side-effect class.
pub(crate) const SPAWN_TOOLS: &[(&str, SideEffectClass)] = &[
    ("spawn_pod", SideEffectClass::Spawn),
    ("wait_pod", SideEffectClass::ReadOnly),
    ("send_to_pod", SideEffectClass::Spawn),
    ("stop_pod", SideEffectClass::Spawn),
    ("list_pods", SideEffectClass::ReadOnly),
];

/// What a tool gives back to the model: `ok` false marks the call as failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolReply {
    pub ok: bool,
    pub output: Value,
}

impl ToolReply {
    fn ok(output: Value) -> Self {
        ToolReply { ok: true, output }
    }

    fn err(error: &ChildError) -> Self {
        ToolReply {
            ok: false,
            output: json!({ "error": error_chain(error) }),
        }
    }
}

impl Children {
    /// Run one of the [`SPAWN_TOOLS`] by name with its JSON arguments.
    pub(crate) async fn call_tool(
        &self,
        tool: &str,
        run_id: &str,
        call_id: &str,
        args: Value,
    ) -> ToolReply {
        let result = match tool {
            "spawn_pod" => match serde_json::from_value::<SpawnArgs>(args) {
                Ok(args) => self.spawn(run_id, call_id, args).await,
                Err(e) => Err(ChildError::SpawnRefused(format!(
                    "invalid spawn_pod arguments: {e}"
                ))),
            },
            "wait_pod" => match pod_arg(&args) {
                Ok(pod) => {
                    let timeout = args.get("timeout_ms").and_then(Value::as_u64);
                    self.wait(&pod, timeout.map(Duration::from_millis)).await
                }
                Err(e) => Err(e),
            },
            "send_to_pod" => match (pod_arg(&args), args.get("input").and_then(Value::as_str)) {
                (Ok(pod), Some(input)) => self.send(&pod, call_id, input).await,
                (Err(e), _) => Err(e),
                (_, None) => Err(ChildError::SpawnRefused(
                    "send_to_pod needs `input` (text)".to_owned(),
                )),
            },
            "stop_pod" => match pod_arg(&args) {
                Ok(pod) => {
                    let reason = args
                        .get("reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.stop(&pod, call_id, reason).await
                }
                Err(e) => Err(e),
            },
            "list_pods" => Ok(self.list()),
            other => Err(ChildError::SpawnRefused(format!("unknown tool `{other}`"))),
        };
        match result {
            Ok(value) => ToolReply::ok(value),
            Err(error) => ToolReply::err(&error),
        }
    }
}

fn pod_arg(args: &Value) -> Result<String, ChildError> {
    args.get("pod_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ChildError::SpawnRefused("missing `pod_id` (text)".to_owned()))
}

/// One of the child tools, backed by the pod's [`Children`].
pub(crate) struct ChildTool {
    name: &'static str,
    side_effect: SideEffectClass,
    children: Arc<Children>,
}

impl ChildTool {
    /// All five child tools over one [`Children`].
    pub(crate) fn all(children: &Arc<Children>) -> Vec<Arc<dyn crate::tools::Tool>> {
        SPAWN_TOOLS
            .iter()
            .map(|(name, side_effect)| {
                Arc::new(ChildTool {
                    name,
                    side_effect: *side_effect,
                    children: children.clone(),
                }) as Arc<dyn crate::tools::Tool>
            })
            .collect()
    }
}

impl crate::tools::Tool for ChildTool {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        match self.name {
            "spawn_pod" => {
                "Start a child pod from a profile and hand it a task. Returns its pod_id and the \
                 run_id of the task; use wait_pod to get the result."
            }
            "wait_pod" => {
                "Wait for a child pod's latest run to end. Returns the completed text, or the \
                 structured provider error, or how it was interrupted or lost."
            }
            "send_to_pod" => "Start a new run in a child pod with the given input.",
            "stop_pod" => "Stop a child pod (and its own children) and wait for it to exit.",
            _ => "List this pod's children with their state and last run result.",
        }
    }

    fn parameters(&self) -> Value {
        match self.name {
            "spawn_pod" => json!({
                "type": "object",
                "properties": {
                    "profile": {"type": "string", "description": "child profile name"},
                    "task": {"type": "string"},
                    "name": {"type": "string", "description": "optional name for the child"},
                    "scope": {"type": "object", "properties": {
                        "allow": {"type": "array", "items": {"type": "string"}},
                        "deny": {"type": "array", "items": {"type": "string"}}}},
                    "overrides": {"type": "object", "description": "dotted manifest key -> value"}
                },
                "required": ["profile", "task"]
            }),
            "wait_pod" => json!({
                "type": "object",
                "properties": {"pod_id": {"type": "string"}, "timeout_ms": {"type": "integer"}},
                "required": ["pod_id"]
            }),
            "send_to_pod" => json!({
                "type": "object",
                "properties": {"pod_id": {"type": "string"}, "input": {"type": "string"}},
                "required": ["pod_id", "input"]
            }),
            "stop_pod" => json!({
                "type": "object",
                "properties": {"pod_id": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["pod_id"]
            }),
            _ => json!({"type": "object", "properties": {}}),
        }
    }

    fn side_effect(&self) -> SideEffectClass {
        self.side_effect
    }

    fn call<'a>(
        &'a self,
        ctx: &'a crate::tools::ToolContext,
        input: Value,
    ) -> crate::tools::ToolFuture<'a> {
        // The operation runs on its own task: when the run is interrupted and drops this future,
        // a spawn still finishes (registered and recorded, so it is cascaded and reaped) or
        // rolls back; it is never left half done.
        let children = self.children.clone();
        let name = self.name;
        let run_id = ctx.run_id.clone();
        let call_id = ctx.call_id.clone();
        let task =
            tokio::spawn(async move { children.call_tool(name, &run_id, &call_id, input).await });
        Box::pin(async move {
            let reply = match task.await {
                Ok(reply) => reply,
                Err(error) => ToolReply {
                    ok: false,
                    output: json!({ "error": format!("the {name} operation failed: {error}") }),
                },
            };
            let text = reply.output.to_string();
            if reply.ok {
                Ok(text)
            } else {
                Err(crate::tools::ToolError(text))
            }
        })
    }
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
