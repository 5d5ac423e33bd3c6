#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use super::tool::{render, tool_name};
use super::{MCP_OUTPUT_MAX_BYTES, find_command, is_mcp_tool};

#[test]
fn tool_names_carry_the_server_and_only_characters_providers_accept() {
    assert_eq!(
        tool_name("time", "get_current_time"),
        "mcp__time__get_current_time"
    );
    assert_eq!(
        tool_name("my.server", "files/read"),
        "mcp__my_server__files_read"
    );
    assert!(is_mcp_tool("mcp__time__get_current_time"));
    assert!(!is_mcp_tool("read_file"));
}

#[test]
fn a_tool_name_too_long_for_providers_is_cut_to_64_and_kept_apart_by_a_hash() {
    let server = "company-knowledge-base";
    let long = |tail: &str| format!("search_every_document_of_the_workspace_by_{tail}");
    let a = tool_name(server, &long("title"));
    let b = tool_name(server, &long("author"));
    for name in [&a, &b] {
        assert_eq!(name.len(), 64, "{name}");
        assert!(name.starts_with("mcp__company-knowledge-base__search_every"));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }
    assert_ne!(a, b);
    // The same tool gets the same name in every run.
    assert_eq!(a, tool_name(server, &long("title")));
    // A name that fits is left as it is.
    let fits = tool_name("s", &"t".repeat(64 - "mcp__s__".len()));
    assert_eq!(fits.len(), 64);
    assert!(fits.ends_with("tttt"));
}

#[test]
fn a_command_is_found_on_path_or_by_its_path_and_otherwise_named() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "x").unwrap();

    assert_eq!(
        find_command("./server.sh", dir.path()).unwrap(),
        dir.path().join("./server.sh")
    );
    assert_eq!(
        find_command(script.to_str().unwrap(), dir.path()).unwrap(),
        script
    );
    assert!(find_command("sh", dir.path()).unwrap().is_absolute());

    let missing = find_command("no-such-mcp-server-here", dir.path()).unwrap_err();
    assert_eq!(
        missing,
        "command `no-such-mcp-server-here` was not found on PATH"
    );
    let not_executable = find_command("./notes.txt", dir.path()).unwrap_err();
    assert!(
        not_executable.ends_with("notes.txt` is not executable"),
        "{not_executable}"
    );
    let absent = find_command("./gone.sh", dir.path()).unwrap_err();
    assert!(absent.ends_with("gone.sh` does not exist"), "{absent}");
    assert_eq!(
        find_command("", dir.path()).unwrap_err(),
        "its `command` is empty"
    );
}

#[test]
fn text_parts_are_joined_and_other_kinds_summarized() {
    let result = CallToolResult::success(vec![
        ContentBlock::text("first"),
        ContentBlock::image("aGVsbG8=", "image/png"),
        ContentBlock::text("second"),
    ]);
    assert_eq!(
        render("srv", "tool", result).unwrap(),
        "first\n[image: image/png, 8 bytes of base64 left out]\nsecond"
    );
}

#[test]
fn structured_content_stands_in_for_missing_content() {
    let result: CallToolResult =
        serde_json::from_value(json!({"content": [], "structuredContent": {"hour": 7}})).unwrap();
    assert_eq!(render("srv", "tool", result).unwrap(), r#"{"hour":7}"#);
}

#[test]
fn a_result_marked_as_error_is_a_tool_error_naming_server_and_tool() {
    let result = CallToolResult::error(vec![ContentBlock::text("no such zone")]);
    let error = render("time", "convert_time", result).unwrap_err();
    assert_eq!(
        error.0,
        "MCP server `time` reported an error from `convert_time`: no such zone"
    );
}

#[test]
fn long_output_is_cut_on_a_character_boundary_and_says_so() {
    let text = "é".repeat(MCP_OUTPUT_MAX_BYTES);
    let out = render(
        "srv",
        "tool",
        CallToolResult::success(vec![ContentBlock::text(text)]),
    )
    .unwrap();
    let (kept, note) = out.split_once("\n[… ").unwrap();
    assert!(kept.len() <= MCP_OUTPUT_MAX_BYTES);
    assert!(kept.chars().all(|c| c == 'é'));
    assert_eq!(
        note,
        format!(
            "{} more bytes cut: MCP output is limited to {MCP_OUTPUT_MAX_BYTES} bytes]",
            2 * MCP_OUTPUT_MAX_BYTES - kept.len()
        )
    );
}
