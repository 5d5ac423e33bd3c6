//! Tools a pod offers its model: the [`Tool`] trait, the registry, and the builtin filesystem
//! tools (`read_file`, `list_dir`, `write_file`), all confined to the manifest's scope.
//!
//! A tool returns `Ok(output)` or `Err(ToolError)`; both go back to the model as the call's
//! result (an error is marked as one). A tool error never ends the run.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use pod_profile::Manifest;
use pod_provider::ToolSpec;

use crate::record::SideEffectClass;
use crate::scope::{Access, Scope};
use crate::session_log::SessionLog;

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
        let all: [Arc<dyn Tool>; 3] = [Arc::new(ReadFile), Arc::new(ListDir), Arc::new(WriteFile)];
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

/// The largest file content `read_file` returns.
pub const READ_FILE_MAX_BYTES: usize = 64 * 1024;
/// The most entries `list_dir` returns.
pub const LIST_DIR_MAX_ENTRIES: usize = 500;

fn string_arg<'a>(input: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError(format!("missing string argument `{key}`")))
}

struct ReadFile;

impl Tool for ReadFile {
    fn name(&self) -> &str {
        "read_file"
    }
    fn description(&self) -> &str {
        "Read a text file inside the pod's scope (at most 64 KiB are returned)."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"path": {"type": "string", "description": "File path, relative to the working directory"}}, "required": ["path"], "additionalProperties": false})
    }
    fn side_effect(&self) -> SideEffectClass {
        SideEffectClass::ReadOnly
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let requested = string_arg(&input, "path")?;
            let path = ctx.scope.check(requested, Access::Read)?;
            let (file, size) = open_regular(&path, requested, Access::Read).await?;
            // Never more than the bound (and one byte to know there is more) is read, whatever
            // the file's size.
            let mut bytes = Vec::new();
            file.take(READ_FILE_MAX_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("{requested}: {e}"))?;
            let more = bytes.len() > READ_FILE_MAX_BYTES;
            bytes.truncate(READ_FILE_MAX_BYTES);
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if more {
                let total = if size > READ_FILE_MAX_BYTES as u64 {
                    format!("{size}")
                } else {
                    // The file grew while it was read.
                    format!("more than {READ_FILE_MAX_BYTES}")
                };
                text.push_str(&format!(
                    "\n[truncated: {READ_FILE_MAX_BYTES} of {total} bytes shown]"
                ));
            }
            Ok(text)
        })
    }
}

/// Open `path` (already checked against the scope) for reading or for writing (created and
/// truncated), refusing anything that is not a regular file: opening a FIFO or a device could
/// block the pod or never end. The file is opened non-blocking, so a FIFO swapped in after the
/// first check cannot block the open either, and checked again once open. Returns the file and
/// its size when opened.
async fn open_regular(
    path: &std::path::Path,
    requested: &str,
    access: Access,
) -> Result<(tokio::fs::File, u64), ToolError> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |file_type: std::fs::FileType| {
        ToolError(format!(
            "{requested}: {} — only regular files can be {}",
            pod_trace::file_kind(file_type),
            match access {
                Access::Read => "read",
                Access::Write => "written",
            }
        ))
    };
    match tokio::fs::metadata(path).await {
        Ok(meta) if !meta.file_type().is_file() => return Err(refuse(meta.file_type())),
        Ok(_) => {}
        Err(e) if access == Access::Write && e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ToolError(format!("{requested}: {e}"))),
    }
    let mut options = std::fs::OpenOptions::new();
    match access {
        Access::Read => options.read(true),
        Access::Write => options.write(true).create(true),
    };
    options.custom_flags(libc::O_NONBLOCK);
    let file = tokio::fs::OpenOptions::from(options)
        .open(path)
        .await
        .map_err(|e| format!("{requested}: {e}"))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| format!("{requested}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(refuse(meta.file_type()));
    }
    Ok((file, meta.len()))
}

struct ListDir;

impl Tool for ListDir {
    fn name(&self) -> &str {
        "list_dir"
    }
    fn description(&self) -> &str {
        "List a directory inside the pod's scope; directories end with `/`."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"path": {"type": "string", "description": "Directory path, relative to the working directory; `.` for the working directory"}}, "required": ["path"], "additionalProperties": false})
    }
    fn side_effect(&self) -> SideEffectClass {
        SideEffectClass::ReadOnly
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let requested = string_arg(&input, "path")?;
            let path = ctx.scope.check(requested, Access::Read)?;
            let mut listing = tokio::fs::read_dir(&path)
                .await
                .map_err(|e| format!("{requested}: {e}"))?;
            let mut names = Vec::new();
            while let Some(entry) = listing
                .next_entry()
                .await
                .map_err(|e| format!("{requested}: {e}"))?
            {
                let mut name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                    name.push('/');
                }
                names.push(name);
            }
            names.sort();
            let total = names.len();
            names.truncate(LIST_DIR_MAX_ENTRIES);
            let mut text = names.join("\n");
            if total > LIST_DIR_MAX_ENTRIES {
                text.push_str(&format!(
                    "\n[{} more entries not shown]",
                    total - LIST_DIR_MAX_ENTRIES
                ));
            }
            if total == 0 {
                text = "(empty directory)".into();
            }
            Ok(text)
        })
    }
}

struct WriteFile;

impl Tool for WriteFile {
    fn name(&self) -> &str {
        "write_file"
    }
    fn description(&self) -> &str {
        "Create or replace a text file inside the pod's scope."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"], "additionalProperties": false})
    }
    fn side_effect(&self) -> SideEffectClass {
        SideEffectClass::LocalWrite
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let requested = string_arg(&input, "path")?;
            let content = string_arg(&input, "content")?;
            let path = ctx.scope.check(requested, Access::Write)?;
            let (mut file, _) = open_regular(&path, requested, Access::Write).await?;
            // Truncated only once known to be a regular file.
            let written = async {
                file.set_len(0).await?;
                file.write_all(content.as_bytes()).await?;
                file.flush().await
            };
            written.await.map_err(|e| format!("{requested}: {e}"))?;
            Ok(format!("wrote {} bytes to {requested}", content.len()))
        })
    }
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
