//! MCP servers as tool sources: the servers a manifest declares (`[mcp.servers.NAME]`) are
//! started over stdio with the pod, their tools offered to the model as `mcp__NAME__TOOL`, and
//! the servers stopped with the pod. The MCP session is the official SDK's (`rmcp`, client side);
//! the process around it is ours (`server`), so that its process group, its exit status and its
//! stderr file are in hand. A server's tool is a [`Tool`](super::Tool) like any other (`tool`):
//! registered behind the scrubber, recorded as `tool_call_started` / `tool_call_finished` with the
//! server's `side_effect` class.
//!
//! The rules, each chosen to be predictable:
//! - **Start**: every server of the manifest starts when the pod launches (concurrently, each
//!   within its `startup_timeout_ms`, which covers the process start, the MCP handshake and the
//!   tool list), before the pod accepts its first run; the pod's runs share the servers.
//! - **A server that fails to start** does not stop the pod: its tools are absent (the names and
//!   schemas come from the server, so there is nothing to offer). The failure is a warning on
//!   stderr and a line in the server's stderr file, and `pods doctor` checks the command.
//! - **A server that dies** (exits, or closes its output) fails the call it was in with a tool
//!   error naming the server, how it ended and its stderr file. The next call to one of its tools
//!   starts it again (once per call, same command, same `startup_timeout_ms`); the tool list
//!   offered to the model stays the one read at launch.
//! - **A call past `call_timeout_ms`** is cancelled (the server is told) and is a tool error; the
//!   server is left running.
//! - **Stop**: when the pod ends (its run, `pods stop`, a signal, its parent going), each server's
//!   stdin is closed — the MCP way to ask a stdio server to exit — and whatever is left of its
//!   process group after `limits.shutdown_grace_ms` is killed. A server runs in a process group
//!   of its own, so a terminal's Ctrl-C reaches pods, which ends it in that order. A pods process
//!   killed outright cannot do this; its servers then see their stdin close.
//! - **Environment**: a server gets only the variables its `env` names (the key variables only
//!   when named), and works in `cwd` (relative to the pod's working directory; default: that
//!   directory). Its stderr goes to `mcp-NAME.stderr.log` (0600) in the pod directory, with
//!   `[pods]` lines saying when it started, ended and why.

mod server;
mod tool;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pod_profile::{Manifest, McpServer};

use super::Tool;
use server::Server;
use tool::McpTool;

/// The most tool output of one MCP call handed to the model; the rest is cut, and said so.
pub const MCP_OUTPUT_MAX_BYTES: usize = 64 * 1024;

/// What every MCP tool name starts with.
const PREFIX: &str = "mcp__";

/// The MCP servers of one pod and the tools they offer.
pub struct McpServers {
    servers: Vec<Arc<Server>>,
    tools: Vec<Arc<dyn Tool>>,
    grace: Duration,
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.servers.iter().map(|s| s.name()))
            .finish()
    }
}

impl McpServers {
    /// Start the servers `manifest` declares, for the pod whose directory is `pod_dir` and
    /// which works in `work_dir`. A server that fails to start is reported (stderr, its stderr
    /// file) and left out; the others start regardless.
    pub async fn start(manifest: &Manifest, work_dir: &Path, pod_dir: &Path) -> McpServers {
        let starts = manifest.mcp.servers.iter().map(|(name, config)| {
            Server::start(name, config, server_dir(config, work_dir), pod_dir)
        });
        let mut servers = Vec::new();
        let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
        for (name, started) in manifest
            .mcp
            .servers
            .keys()
            .zip(futures_util::future::join_all(starts).await)
        {
            match started {
                Ok((server, offered)) => {
                    for tool in McpTool::offered(&server, offered) {
                        // Names a provider would refuse twice in one request (two servers, or
                        // two tools, whose names differ only in characters made `_`).
                        match tools.iter().find(|t| t.name() == tool.name()) {
                            Some(_) => tracing::warn!(
                                "MCP server `{name}` offers `{}`, a tool name another server's tool already has (their names differ only in characters that became `_`), so it is not offered; rename one of the servers in `[mcp.servers]`",
                                tool.name()
                            ),
                            None => tools.push(tool),
                        }
                    }
                    servers.push(server);
                }
                Err(error) => {
                    tracing::warn!(
                        "MCP server `{name}` did not start, so its tools are not offered: {error}"
                    );
                }
            }
        }
        McpServers {
            servers,
            tools,
            grace: Duration::from_millis(manifest.limits.shutdown_grace_ms),
        }
    }

    /// No servers (a pod that declares none).
    pub fn none() -> McpServers {
        McpServers {
            servers: Vec::new(),
            tools: Vec::new(),
            grace: Duration::ZERO,
        }
    }

    /// The tools of the servers that started, as the model sees them (`mcp__NAME__TOOL`).
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// Stop every server: close its stdin, give it the grace period to exit, then kill what is
    /// left of its process group. Calls made after this fail with a tool error.
    pub async fn stop(&self) {
        futures_util::future::join_all(self.servers.iter().map(|s| s.stop(self.grace))).await;
    }
}

/// Whether `tool` is an MCP server's tool (its name says so).
pub fn is_mcp_tool(tool: &str) -> bool {
    tool.starts_with(PREFIX)
}

/// The directory a server works in: its `cwd` relative to the pod's working directory.
pub fn server_dir(config: &McpServer, work_dir: &Path) -> PathBuf {
    match &config.cwd {
        Some(cwd) => work_dir.join(cwd),
        None => work_dir.to_owned(),
    }
}

/// The program a server's `command` names: a name without a slash is looked up on `PATH` (this
/// process's, as a shell would), a path is taken relative to the server's directory `dir`. The
/// error says what is wrong, for a message naming the server.
pub fn find_command(command: &str, dir: &Path) -> Result<PathBuf, String> {
    if command.is_empty() {
        return Err("its `command` is empty".into());
    }
    if command.contains('/') {
        let path = dir.join(command);
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(problem) => Err(format!("`{}` {problem}", path.display())),
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|entry| entry.join(command))
        .find(|candidate| executable(candidate).is_ok())
        .ok_or_else(|| format!("command `{command}` was not found on PATH"))
}

/// `Ok` when `path` is a file someone may execute, else what it is instead.
fn executable(path: &Path) -> Result<(), &'static str> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err("is not a file"),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Err("is not executable"),
        Ok(_) => Ok(()),
        Err(_) => Err("does not exist"),
    }
}

/// `text` with every character a tool name or file name should not hold replaced by `_`
/// (providers accept `[A-Za-z0-9_-]` in tool names).
fn plain_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
