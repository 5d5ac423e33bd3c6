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

    /// Add (or replace) a tool.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_owned(), tool);
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
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| format!("{requested}: {e}"))?;
            let shown = &bytes[..bytes.len().min(READ_FILE_MAX_BYTES)];
            let mut text = String::from_utf8_lossy(shown).into_owned();
            if bytes.len() > READ_FILE_MAX_BYTES {
                text.push_str(&format!(
                    "\n[truncated: {} of {} bytes shown]",
                    READ_FILE_MAX_BYTES,
                    bytes.len()
                ));
            }
            Ok(text)
        })
    }
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
            tokio::fs::write(&path, content)
                .await
                .map_err(|e| format!("{requested}: {e}"))?;
            Ok(format!("wrote {} bytes to {requested}", content.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pod_profile::manifest::ScopeSection;

    fn ctx(work: &std::path::Path) -> ToolContext {
        let scope = Scope::new(&ScopeSection::default(), work);
        ToolContext {
            pod_id: "p".into(),
            pod_dir: work.to_owned(),
            scope: Arc::new(scope),
            manifest: Arc::new(Manifest::default()),
            log: SessionLog::from_sink(std::path::Path::new("mem"), Box::new(NullSink)),
            run_id: "r".into(),
            call_id: "c".into(),
        }
    }

    pub struct NullSink;
    impl std::io::Write for NullSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl crate::session_log::LogSink for NullSink {
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn builtin_tools_work_inside_scope_and_refuse_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(work.join("d")).unwrap();
        std::fs::write(work.join("a.txt"), "hello").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "nope").unwrap();
        let ctx = ctx(&work);
        let tools = ToolRegistry::builtin(&Manifest::default().agent.tools);
        assert_eq!(tools.names(), vec!["list_dir", "read_file", "write_file"]);
        let read = tools.get("read_file").unwrap();
        assert_eq!(
            read.call(&ctx, json!({"path": "a.txt"})).await.unwrap(),
            "hello"
        );
        let error = read
            .call(&ctx, json!({"path": "../secret.txt"}))
            .await
            .unwrap_err();
        assert!(error.0.contains("outside"), "{error:?}");
        assert!(!error.0.contains("nope"));
        let list = tools.get("list_dir").unwrap();
        assert_eq!(
            list.call(&ctx, json!({"path": "."})).await.unwrap(),
            "a.txt\nd/"
        );
        let write = tools.get("write_file").unwrap();
        assert_eq!(write.side_effect(), SideEffectClass::LocalWrite);
        write
            .call(&ctx, json!({"path": "d/new.txt", "content": "x"}))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(work.join("d/new.txt")).unwrap(),
            "x"
        );
        assert!(
            write
                .call(&ctx, json!({"path": "../evil.txt", "content": "x"}))
                .await
                .is_err()
        );
        assert!(!tmp.path().join("evil.txt").exists());
        let missing = read.call(&ctx, json!({})).await.unwrap_err();
        assert!(missing.0.contains("`path`"));
    }
}
