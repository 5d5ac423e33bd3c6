//! Tools a pod offers its model: the [`Tool`] trait, the registry, and the builtin tools, all
//! confined to the manifest's scope: the file tools (`read_file`, `list_dir`, `write_file`,
//! `edit_file`, in `files`) and `search` (in `search`); and the tools of MCP servers (`mcp`).
//!
//! A tool returns `Ok(output)` or `Err(ToolError)`; both go back to the model as the call's
//! result (an error is marked as one). A tool error never ends the run.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use pod_profile::Manifest;
use pod_provider::ToolSpec;

use crate::record::SideEffectClass;
use crate::scope::Scope;
use crate::session_log::SessionLog;

mod files;
pub mod mcp;
mod search;
pub mod shell;

pub use files::{EDIT_FILE_MAX_BYTES, LIST_DIR_MAX_ENTRIES, READ_FILE_MAX_BYTES};
use files::{EditFile, ListDir, ReadFile, WriteFile};
use search::Search;
pub use search::{SEARCH_MAX_FILES, SEARCH_MAX_MATCHES};
use shell::Shell;

/// What a tool call gets to work with.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub pod_id: String,
    pub pod_dir: PathBuf,
    pub scope: Arc<Scope>,
    pub manifest: Arc<Manifest>,
    /// The pod's session log, for tools that record their own entries (e.g. `child_spawned`).
    pub log: SessionLog,
    pub run_id: String,
    pub call_id: String,
}

/// A failed tool call; the text goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl<T: Into<String>> From<T> for ToolError {
    fn from(text: T) -> ToolError {
        ToolError(text.into())
    }
}

pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ToolError>> + Send + 'a>>;

/// One tool the model may call.
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    fn side_effect(&self) -> SideEffectClass;
    /// Run the call. `input` is the parsed argument object.
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a>;
}

/// The tools of one pod, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    pub fn new() -> ToolRegistry {
        ToolRegistry::default()
    }

    /// The builtin tools named in `agent.tools` (unknown names are left for other registrations,
    /// e.g. `spawn_pod`).
    pub fn builtin(allowed: &[String]) -> ToolRegistry {
        let mut registry = ToolRegistry::new();
        let all: [Arc<dyn Tool>; 6] = [
            Arc::new(ReadFile),
            Arc::new(ListDir),
            Arc::new(WriteFile),
            Arc::new(EditFile),
            Arc::new(Search),
            Arc::new(Shell),
        ];
        for tool in all {
            if allowed.iter().any(|name| name == tool.name()) {
                registry.register(tool);
            }
        }
        registry
    }

    /// Add (or replace) a tool. Every tool is registered behind the secret scrubber: the key
    /// values this process knows are taken out of its arguments before it runs and out of its
    /// result (or error) before anyone sees it, so a key read from a file (`read_file .env`) or
    /// echoed by the model reaches neither the model, the log, the terminal nor another file.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools
            .insert(tool.name().to_owned(), Arc::new(Scrubbed(tool)));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// What the model is told about the tools.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .values()
            .map(|tool| ToolSpec {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            })
            .collect()
    }
}

/// A tool whose arguments and results are scrubbed of known secret values
/// ([`pod_trace::scrub`]).
struct Scrubbed(Arc<dyn Tool>);

/// `value` with every string in it scrubbed.
fn scrub_value(value: Value) -> Value {
    match value {
        Value::String(text) => match pod_trace::scrub::scrub(&text) {
            std::borrow::Cow::Borrowed(_) => Value::String(text),
            std::borrow::Cow::Owned(clean) => Value::String(clean),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(scrub_value).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (pod_trace::scrub::scrub(&k).into_owned(), scrub_value(v)))
                .collect(),
        ),
        other => other,
    }
}

impl Tool for Scrubbed {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn description(&self) -> &str {
        self.0.description()
    }
    fn parameters(&self) -> Value {
        self.0.parameters()
    }
    fn side_effect(&self) -> SideEffectClass {
        self.0.side_effect()
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let scrub = |text: String| match pod_trace::scrub::scrub(&text) {
                std::borrow::Cow::Borrowed(_) => text,
                std::borrow::Cow::Owned(clean) => clean,
            };
            match self.0.call(ctx, scrub_value(input)).await {
                Ok(output) => Ok(scrub(output)),
                Err(ToolError(error)) => Err(ToolError(scrub(error))),
            }
        })
    }
}

/// The string argument `key` of a call, or an error naming it.
pub(crate) fn string_arg<'a>(input: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError(format!("missing string argument `{key}`")))
}

#[cfg(test)]
mod tests;
