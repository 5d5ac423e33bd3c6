//! `search`: a regular expression over the files in the pod's scope, the way ripgrep searches
//! (its own crates: `ignore` walks the tree respecting `.gitignore`, `.ignore` and hidden files,
//! `grep-searcher` reads each file, skipping binary ones). Results are bounded and each says
//! `path:line: text`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks::UTF8};
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolFuture, string_arg};
use crate::record::SideEffectClass;
use crate::scope::{Access, Scope};

/// The most matching lines `search` returns.
pub const SEARCH_MAX_MATCHES: usize = 200;
/// The most files `search` reads in one call.
pub const SEARCH_MAX_FILES: usize = 20_000;
/// The most bytes of one matching line shown.
const LINE_MAX_BYTES: usize = 300;

pub(super) struct Search;

impl Tool for Search {
    fn name(&self) -> &str {
        "search"
    }
    fn description(&self) -> &str {
        "Search the files inside the pod's scope for a regular expression (Rust regex syntax), \
         as ripgrep does: files ignored by .gitignore and hidden files are skipped. Returns \
         `path:line: text` for each matching line, at most 200."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "pattern": {"type": "string", "description": "Regular expression to look for"},
            "path": {"type": "string", "description": "File or directory to search, relative to the working directory (default `.`)"},
            "case_insensitive": {"type": "boolean", "description": "Match regardless of case (default false)"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX_MATCHES, "description": "The most matching lines to return (default and at most 200)"}
        }, "required": ["pattern"], "additionalProperties": false})
    }
    fn side_effect(&self) -> SideEffectClass {
        SideEffectClass::ReadOnly
    }
    fn call<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let query = Query::from_input(&input)?;
            let scope = Arc::clone(&ctx.scope);
            // Walking and reading files blocks: off the runtime's threads.
            tokio::task::spawn_blocking(move || query.run(&scope))
                .await
                .map_err(|e| ToolError(format!("search failed: {e}")))?
        })
    }
}

/// One call's arguments, checked.
struct Query {
    pattern: String,
    path: String,
    case_insensitive: bool,
    max_results: usize,
}

impl Query {
    fn from_input(input: &Value) -> Result<Query, ToolError> {
        let pattern = string_arg(input, "pattern")?.to_owned();
        let path = match input.get("path") {
            None | Some(Value::Null) => ".".to_owned(),
            Some(Value::String(path)) => path.clone(),
            Some(_) => return Err(ToolError("`path` must be a string".into())),
        };
        let case_insensitive = match input.get("case_insensitive") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(ToolError("`case_insensitive` must be true or false".into())),
        };
        let max_results = match input.get("max_results") {
            None | Some(Value::Null) => SEARCH_MAX_MATCHES,
            Some(value) => match value.as_u64() {
                Some(n @ 1..) => {
                    usize::try_from(n).map_or(SEARCH_MAX_MATCHES, |n| n.min(SEARCH_MAX_MATCHES))
                }
                _ => {
                    return Err(ToolError(format!(
                        "`max_results` must be a whole number from 1 to {SEARCH_MAX_MATCHES}"
                    )));
                }
            },
        };
        Ok(Query {
            pattern,
            path,
            case_insensitive,
            max_results,
        })
    }

    fn run(self, scope: &Scope) -> Result<String, ToolError> {
        let root = scope.check(&self.path, Access::Read)?;
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(self.case_insensitive)
            .build(&self.pattern)
            .map_err(|e| ToolError(format!("`pattern` is not a valid regular expression: {e}")))?;
        let mut searcher = SearcherBuilder::new()
            .line_number(true)
            .binary_detection(BinaryDetection::quit(b'\0'))
            .build();
        // `.gitignore` counts whether or not the tree is a git repository.
        let walk = ignore::WalkBuilder::new(&root)
            .require_git(false)
            .follow_links(false)
            .build();
        let mut found = Found::new(self.max_results);
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    found.unreadable += 1;
                    tracing::debug!(%error, "search skipped an entry");
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            if found.files == SEARCH_MAX_FILES {
                found.stopped_at_files = true;
                break;
            }
            let shown = shown_path(scope.work_dir(), entry.path());
            // Each file passes the scope on its own: a denied directory or pod state may lie
            // inside the searched one.
            if scope.check(&shown, Access::Read).is_err() {
                continue;
            }
            found.files += 1;
            let sink = UTF8(|line_number, line| Ok(found.push(&shown, line_number, line)));
            if searcher.search_path(&matcher, entry.path(), sink).is_err() {
                found.unreadable += 1;
            }
            if found.full() {
                break;
            }
        }
        Ok(found.report())
    }
}

/// `path` relative to the working directory when it is inside it, as the model named it.
fn shown_path(work_dir: &Path, path: &Path) -> String {
    let relative: PathBuf = path
        .strip_prefix(work_dir)
        .map_or_else(|_| path.to_owned(), Path::to_owned);
    relative.display().to_string()
}

/// The matching lines gathered so far.
struct Found {
    lines: Vec<String>,
    max: usize,
    files: usize,
    unreadable: usize,
    stopped_at_files: bool,
}

impl Found {
    fn new(max: usize) -> Found {
        Found {
            lines: Vec::new(),
            max,
            files: 0,
            unreadable: 0,
            stopped_at_files: false,
        }
    }

    /// Keep one matching line; `false` (stop reading this file) once the bound is reached.
    fn push(&mut self, path: &str, line_number: u64, line: &str) -> bool {
        if self.full() {
            return false;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        // Scrubbed whole before it is cut: a key that straddles the cut would no longer be
        // recognised by the scrub of the tool's output.
        let line = pod_trace::scrub::scrub(line);
        let kept = pod_protocol::text::cut_at_char_boundary(&line, LINE_MAX_BYTES);
        let cut = if kept.len() < line.len() { "…" } else { "" };
        self.lines
            .push(format!("{path}:{line_number}: {kept}{cut}"));
        true
    }

    fn full(&self) -> bool {
        self.lines.len() == self.max
    }

    fn report(self) -> String {
        let mut text = if self.lines.is_empty() {
            format!("no matches in {} file(s)", self.files)
        } else {
            self.lines.join("\n")
        };
        if self.full() {
            text.push_str(&format!(
                "\n[stopped at {} matching lines; narrow the pattern or the path to see the rest]",
                self.max
            ));
        }
        if self.stopped_at_files {
            text.push_str(&format!(
                "\n[stopped after reading {SEARCH_MAX_FILES} files; narrow the path]"
            ));
        }
        if self.unreadable > 0 {
            text.push_str(&format!(
                "\n[{} file(s) or directories could not be read]",
                self.unreadable
            ));
        }
        text
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
