//! The file tools: `read_file`, `list_dir`, `write_file` and `edit_file`. Every path is checked
//! against the pod's scope, and only regular files are opened (a FIFO or a device could block
//! the pod or never end).

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::{Tool, ToolContext, ToolError, ToolFuture, string_arg};
use crate::record::SideEffectClass;
use crate::scope::Access;

/// The largest file content `read_file` returns.
pub const READ_FILE_MAX_BYTES: usize = 64 * 1024;
/// The largest file `edit_file` edits.
pub const EDIT_FILE_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// The most entries `list_dir` returns.
pub const LIST_DIR_MAX_ENTRIES: usize = 500;

pub(super) struct ReadFile;

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
            let (file, size) = open_regular(&path, requested).await?;
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

/// Open `path` (already checked against the scope) for reading, refusing anything that is
/// not a regular file: opening a FIFO or a device could block the pod or never end. The file is
/// opened non-blocking, so a FIFO swapped in after the first check cannot block the open either,
/// and checked again once open. Returns the file and its size when opened.
async fn open_regular(
    path: &std::path::Path,
    requested: &str,
) -> Result<(tokio::fs::File, u64), ToolError> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |file_type: std::fs::FileType| {
        ToolError(format!(
            "{requested}: {} — only regular files can be read",
            pod_trace::file_kind(file_type)
        ))
    };
    match tokio::fs::metadata(path).await {
        Ok(meta) if !meta.file_type().is_file() => return Err(refuse(meta.file_type())),
        Ok(_) => {}
        Err(e) => return Err(ToolError(format!("{requested}: {e}"))),
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).custom_flags(libc::O_NONBLOCK);
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

pub(super) struct ListDir;

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

pub(super) struct WriteFile;

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
            replace_contents(&path, requested, content.as_bytes().to_vec()).await?;
            Ok(format!("wrote {} bytes to {requested}", content.len()))
        })
    }
}

/// Put `bytes` in place of the file at `path` (checked against the scope; a regular file, or
/// none yet): written to a new file beside it, synced, given the original's permissions and
/// renamed over it. It runs as one blocking job, which an interrupted run does not cut short,
/// so the file is the old one or the new one, never emptied or half written.
async fn replace_contents(
    path: &std::path::Path,
    requested: &str,
    bytes: Vec<u8>,
) -> Result<(), ToolError> {
    let path = path.to_owned();
    let shown = requested.to_owned();
    tokio::task::spawn_blocking(move || replace_blocking(&path, &shown, &bytes))
        .await
        .map_err(|e| ToolError(format!("{requested}: {e}")))?
}

fn replace_blocking(
    path: &std::path::Path,
    requested: &str,
    bytes: &[u8],
) -> Result<(), ToolError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let failed = |e: std::io::Error| ToolError(format!("{requested}: {e}"));
    let permissions = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(ToolError(format!(
                "{requested}: {} — only regular files can be written",
                pod_trace::file_kind(meta.file_type())
            )));
        }
        Ok(meta) => Some(meta.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(failed(e)),
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(ToolError(format!("{requested}: not a file path")));
    };
    let temp = dir.join(format!(
        ".{}.{}.{}.pods-tmp",
        name.to_string_lossy(),
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if let Some(permissions) = permissions {
            std::fs::set_permissions(&temp, permissions)?;
        }
        std::fs::rename(&temp, path)
    })();
    if let Err(error) = result {
        // The temporary file is ours; the original is untouched.
        let _ = std::fs::remove_file(&temp);
        return Err(failed(error));
    }
    Ok(())
}

pub(super) struct EditFile;

impl Tool for EditFile {
    fn name(&self) -> &str {
        "edit_file"
    }
    fn description(&self) -> &str {
        "Edit a text file inside the pod's scope by replacing exact text: `old_text` must occur \
         exactly once (include enough surrounding lines to make it unique), or set `replace_all` \
         to replace every occurrence. Read the file first; whitespace and line ends must match."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "path": {"type": "string", "description": "File path, relative to the working directory"},
            "old_text": {"type": "string", "description": "The exact text to replace"},
            "new_text": {"type": "string", "description": "The text to put in its place"},
            "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)"}
        }, "required": ["path", "old_text", "new_text"], "additionalProperties": false})
    }
    fn side_effect(&self) -> SideEffectClass {
        SideEffectClass::LocalWrite
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let requested = string_arg(&input, "path")?;
            let old_text = string_arg(&input, "old_text")?;
            let new_text = string_arg(&input, "new_text")?;
            let replace_all = match input.get("replace_all") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(all)) => *all,
                Some(_) => return Err(ToolError("`replace_all` must be true or false".into())),
            };
            if old_text.is_empty() {
                return Err(ToolError(format!(
                    "{requested}: `old_text` is empty; give the exact text to replace \
                     (use write_file to create a file)"
                )));
            }
            // The file must exist: an edit never creates one.
            let path = ctx.scope.check(requested, Access::Read)?;
            ctx.scope.check(requested, Access::Write)?;
            let (mut file, size) = open_regular(&path, requested).await?;
            if size > EDIT_FILE_MAX_BYTES {
                return Err(ToolError(format!(
                    "{requested}: {size} bytes, larger than the {EDIT_FILE_MAX_BYTES} bytes \
                     edit_file edits"
                )));
            }
            let mut bytes = Vec::new();
            (&mut file)
                .take(EDIT_FILE_MAX_BYTES + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("{requested}: {e}"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{requested}: not UTF-8 text; edit_file edits text files"))?;
            let edited = replace_exact(&text, old_text, new_text, replace_all)
                .map_err(|problem| format!("{requested}: {problem}"))?;
            drop(file);
            let length = edited.text.len();
            replace_contents(&path, requested, edited.text.into_bytes()).await?;
            Ok(format!(
                "replaced {} occurrence{} in {requested} ({} bytes now)",
                edited.replaced,
                if edited.replaced == 1 { "" } else { "s" },
                length
            ))
        })
    }
}

/// A text after [`replace_exact`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Edited {
    pub text: String,
    pub replaced: usize,
}

/// `text` with `old` replaced by `new`: the one occurrence, or with `all` every one. What went
/// wrong is said so that the model can fix its call: the text is missing, or not unique.
pub(super) fn replace_exact(text: &str, old: &str, new: &str, all: bool) -> Result<Edited, String> {
    let count = text.matches(old).count();
    match count {
        0 => Err(
            "`old_text` was not found; read the file again and copy the text exactly, \
             whitespace and line ends included"
                .to_owned(),
        ),
        1 => Ok(Edited {
            text: text.replacen(old, new, 1),
            replaced: 1,
        }),
        _ if all => Ok(Edited {
            text: text.replace(old, new),
            replaced: count,
        }),
        _ => Err(format!(
            "`old_text` occurs {count} times; include more surrounding text so that it is \
             unique, or set `replace_all` to replace all {count}"
        )),
    }
}
