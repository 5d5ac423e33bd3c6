//! A tool of an MCP server as the model sees it (`mcp__NAME__TOOL`, the server's description and
//! input schema), and its result as text: text parts joined, other content kinds summarized,
//! a result the server marks `isError` a tool error.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use serde_json::Value;

use super::server::Server;
use super::{MCP_OUTPUT_MAX_BYTES, PREFIX, plain_name};
use crate::record::SideEffectClass;
use crate::tools::{Tool, ToolContext, ToolError, ToolFuture};

pub(super) struct McpTool {
    /// `mcp__NAME__TOOL`.
    name: String,
    /// The tool's name on its server.
    remote: String,
    description: String,
    schema: Value,
    server: Arc<Server>,
}

impl McpTool {
    /// The tools `server` offers that its allow-list lets through. Allow-listed names the server
    /// does not offer are reported.
    pub(super) fn offered(
        server: &Arc<Server>,
        offered: Vec<rmcp::model::Tool>,
    ) -> Vec<Arc<dyn Tool>> {
        let name = server.name();
        if let Some(allowed) = server.allowed() {
            for missing in allowed
                .iter()
                .filter(|wanted| !offered.iter().any(|tool| tool.name == wanted.as_str()))
            {
                let names: Vec<&str> = offered.iter().map(|tool| tool.name.as_ref()).collect();
                tracing::warn!(
                    "`mcp.servers.{name}.tools` names `{missing}`, which the server does not offer (it offers: {})",
                    names.join(", ")
                );
            }
        }
        offered
            .into_iter()
            .filter(|tool| {
                server
                    .allowed()
                    .is_none_or(|allowed| allowed.iter().any(|a| *a == tool.name))
            })
            .map(|tool| {
                let description = tool
                    .description
                    .as_deref()
                    .or(tool.title.as_deref())
                    .map_or_else(
                        || format!("Tool `{}` of MCP server `{name}`.", tool.name),
                        str::to_owned,
                    );
                Arc::new(McpTool {
                    name: tool_name(name, &tool.name),
                    remote: tool.name.to_string(),
                    description,
                    schema: Value::Object((*tool.input_schema).clone()),
                    server: server.clone(),
                }) as Arc<dyn Tool>
            })
            .collect()
    }
}

/// The longest tool name providers accept (OpenAI and Anthropic: 64 characters).
const MAX_TOOL_NAME: usize = 64;

/// The name the model sees for `tool` of server `server`: `mcp__SERVER__TOOL` in the characters
/// providers accept. A longer name than they accept keeps its start and ends with a hash of the
/// whole, so it stays the same from run to run and apart from its neighbours.
pub(super) fn tool_name(server: &str, tool: &str) -> String {
    let full = format!("{PREFIX}{}__{}", plain_name(server), plain_name(tool));
    if full.len() <= MAX_TOOL_NAME {
        return full;
    }
    let hash = format!("_{:08x}", fnv1a(full.as_bytes()) as u32);
    // ASCII only (see `plain_name`): any byte is a character boundary.
    format!("{}{hash}", &full[..MAX_TOOL_NAME - hash.len()])
}

/// The 64-bit FNV-1a hash of `bytes`: stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.schema.clone()
    }

    fn side_effect(&self) -> SideEffectClass {
        self.server.side_effect()
    }

    fn call<'a>(&'a self, _ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let Value::Object(arguments) = input else {
                return Err(ToolError(format!(
                    "the arguments of `{}` must be a JSON object",
                    self.name
                )));
            };
            let result = self.server.call(&self.remote, arguments).await?;
            render(self.server.name(), &self.remote, result)
        })
    }
}

/// The result of a call as text for the model; `isError` makes it a tool error.
pub(super) fn render(
    server: &str,
    tool: &str,
    result: CallToolResult,
) -> Result<String, ToolError> {
    let mut parts: Vec<String> = result.content.iter().map(content_text).collect();
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = bounded(parts.join("\n"));
    if result.is_error == Some(true) {
        Err(ToolError(format!(
            "MCP server `{server}` reported an error from `{tool}`: {text}"
        )))
    } else {
        Ok(text)
    }
}

/// One content part as text: text as is, anything else summarized.
fn content_text(part: &ContentBlock) -> String {
    match part {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => format!(
            "[image: {}, {} bytes of base64 left out]",
            image.mime_type,
            image.data.len()
        ),
        ContentBlock::Audio(audio) => format!(
            "[audio: {}, {} bytes of base64 left out]",
            audio.mime_type,
            audio.data.len()
        ),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                format!("[resource {uri}]\n{text}")
            }
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => format!(
                "[resource {uri}: {}, {} bytes of base64 left out]",
                mime_type.as_deref().unwrap_or("binary"),
                blob.len()
            ),
            _ => "[a resource of a kind pods does not show]".into(),
        },
        ContentBlock::ResourceLink(link) => {
            format!("[resource link: {} ({})]", link.uri, link.name)
        }
        _ => "[content of a kind pods does not show]".into(),
    }
}

/// `text` cut to [`MCP_OUTPUT_MAX_BYTES`] on a character boundary, saying how much was cut.
fn bounded(text: String) -> String {
    if text.len() <= MCP_OUTPUT_MAX_BYTES {
        return text;
    }
    let mut end = MCP_OUTPUT_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… {} more bytes cut: MCP output is limited to {MCP_OUTPUT_MAX_BYTES} bytes]",
        &text[..end],
        text.len() - end
    )
}
