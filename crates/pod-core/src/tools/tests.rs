use serde_json::json;

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
    assert_eq!(
        tools.names(),
        vec![
            "edit_file",
            "list_dir",
            "read_file",
            "search",
            "shell",
            "write_file"
        ]
    );
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

#[tokio::test]
async fn known_secrets_are_scrubbed_from_tool_arguments_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let key = "tool-layer-secret-0123456789";
    pod_trace::scrub::register_secret(key);
    std::fs::write(work.join(".env"), format!("KEY={key}\n")).unwrap();
    let ctx = ctx(&work);
    let tools = ToolRegistry::builtin(&Manifest::default().agent.tools);
    let read = tools.get("read_file").unwrap();
    let text = read.call(&ctx, json!({"path": ".env"})).await.unwrap();
    assert_eq!(text, "KEY=[redacted]\n");
    let error = read
        .call(&ctx, json!({"path": format!("missing-{key}")}))
        .await
        .unwrap_err();
    assert!(!error.0.contains(key), "{error:?}");
    let write = tools.get("write_file").unwrap();
    write
        .call(
            &ctx,
            json!({"path": "out.txt", "content": format!("[{key}]")}),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(work.join("out.txt")).unwrap(),
        "[[redacted]]"
    );
}

/// Run a tool call that must not block on `fifo`; if it does, open the FIFO from this side
/// so the blocked open returns and the test can end, then fail.
async fn unblocked<T>(what: &str, fifo: &std::path::Path, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(std::time::Duration::from_secs(30), call).await {
        Ok(value) => value,
        Err(_) => {
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(fifo);
            panic!("{what} blocked on a FIFO inside the scope");
        }
    }
}

#[tokio::test]
async fn fifos_sockets_and_devices_are_refused_without_opening_them_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let fifo = work.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let _socket = std::os::unix::net::UnixListener::bind(work.join("sock")).unwrap();
    let mut ctx = ctx(&work);
    ctx.scope = Arc::new(Scope::new(
        &ScopeSection {
            allow: vec![".".into(), "/dev/null".into()],
            deny: Vec::new(),
        },
        &work,
    ));
    let tools = ToolRegistry::builtin(&Manifest::default().agent.tools);
    let read = tools.get("read_file").unwrap();
    let write = tools.get("write_file").unwrap();

    let error = unblocked("read_file", &fifo, read.call(&ctx, json!({"path": "pipe"})))
        .await
        .unwrap_err();
    assert!(error.0.contains("named pipe (FIFO)"), "{error:?}");
    assert!(error.0.contains("only regular files"), "{error:?}");
    let error = unblocked(
        "write_file",
        &fifo,
        write.call(&ctx, json!({"path": "pipe", "content": "x"})),
    )
    .await
    .unwrap_err();
    assert!(error.0.contains("named pipe (FIFO)"), "{error:?}");

    let error = read.call(&ctx, json!({"path": "sock"})).await.unwrap_err();
    assert!(error.0.contains("a socket"), "{error:?}");
    let error = read
        .call(&ctx, json!({"path": "/dev/null"}))
        .await
        .unwrap_err();
    assert!(error.0.contains("character device"), "{error:?}");
    let error = write
        .call(&ctx, json!({"path": "/dev/null", "content": "x"}))
        .await
        .unwrap_err();
    assert!(error.0.contains("character device"), "{error:?}");
    // Regular files still work both ways, and a shorter write replaces a longer file.
    write
        .call(&ctx, json!({"path": "f.txt", "content": "long content"}))
        .await
        .unwrap();
    write
        .call(&ctx, json!({"path": "f.txt", "content": "short"}))
        .await
        .unwrap();
    assert_eq!(
        read.call(&ctx, json!({"path": "f.txt"})).await.unwrap(),
        "short"
    );
}

#[tokio::test]
async fn read_file_reads_only_up_to_its_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A sparse file of 1 TiB: reading it whole would need that much memory.
    let huge: u64 = 1 << 40;
    std::fs::File::create(work.join("huge.bin"))
        .unwrap()
        .set_len(huge)
        .unwrap();
    std::fs::write(work.join("big.txt"), "a".repeat(READ_FILE_MAX_BYTES + 10)).unwrap();
    let ctx = ctx(&work);
    let tools = ToolRegistry::builtin(&Manifest::default().agent.tools);
    let read = tools.get("read_file").unwrap();
    let text = read.call(&ctx, json!({"path": "huge.bin"})).await.unwrap();
    let note = format!("\n[truncated: {READ_FILE_MAX_BYTES} of {huge} bytes shown]");
    assert!(text.ends_with(&note), "{}", &text[text.len() - 80..]);
    assert_eq!(text.len(), READ_FILE_MAX_BYTES + note.len());
    let text = read.call(&ctx, json!({"path": "big.txt"})).await.unwrap();
    assert!(text.starts_with(&"a".repeat(READ_FILE_MAX_BYTES)));
    assert!(text.ends_with(&format!(
        "[truncated: {READ_FILE_MAX_BYTES} of {} bytes shown]",
        READ_FILE_MAX_BYTES + 10
    )));
}

#[test]
fn an_exact_replacement_needs_one_occurrence_unless_all_are_asked_for() {
    use super::files::{Edited, replace_exact};
    assert_eq!(
        replace_exact("a b a", "b", "c", false),
        Ok(Edited {
            text: "a c a".into(),
            replaced: 1
        })
    );
    let ambiguous = replace_exact("a b a", "a", "x", false).unwrap_err();
    assert!(ambiguous.contains("occurs 2 times"), "{ambiguous}");
    assert_eq!(
        replace_exact("a b a", "a", "x", true).unwrap().text,
        "x b x"
    );
    let missing = replace_exact("a b a", "z", "x", false).unwrap_err();
    assert!(missing.contains("not found"), "{missing}");
}

#[tokio::test]
async fn edit_file_changes_only_an_existing_file_in_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("a.rs"), "fn old() {}\n").unwrap();
    std::fs::write(tmp.path().join("outside.rs"), "fn old() {}\n").unwrap();
    let ctx = ctx(&work);
    let edit = files::EditFile;
    assert_eq!(edit.side_effect(), SideEffectClass::LocalWrite);
    let done = edit
        .call(
            &ctx,
            json!({"path": "a.rs", "old_text": "old", "new_text": "new"}),
        )
        .await
        .unwrap();
    assert_eq!(done, "replaced 1 occurrence in a.rs (12 bytes now)");
    assert_eq!(
        std::fs::read_to_string(work.join("a.rs")).unwrap(),
        "fn new() {}\n"
    );
    for (input, says) in [
        (
            json!({"path": "b.rs", "old_text": "x", "new_text": "y"}),
            "b.rs",
        ),
        (
            json!({"path": "../outside.rs", "old_text": "old", "new_text": "new"}),
            "outside",
        ),
        (
            json!({"path": "a.rs", "old_text": "", "new_text": "y"}),
            "empty",
        ),
        (
            json!({"path": "a.rs", "old_text": "x", "new_text": "y", "replace_all": "yes"}),
            "replace_all",
        ),
    ] {
        let error = edit.call(&ctx, input).await.unwrap_err();
        assert!(error.0.contains(says), "{error:?}");
    }
    assert!(!work.join("b.rs").exists(), "an edit never creates a file");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("outside.rs")).unwrap(),
        "fn old() {}\n"
    );
}

#[tokio::test]
async fn written_and_edited_files_keep_their_permissions_and_leave_no_temporary_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script = work.join("run.sh");
    std::fs::write(&script, "echo old\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
    let ctx = ctx(&work);
    files::EditFile
        .call(
            &ctx,
            json!({"path": "run.sh", "old_text": "old", "new_text": "new"}),
        )
        .await
        .unwrap();
    files::WriteFile
        .call(&ctx, json!({"path": "run.sh", "content": "echo newer\n"}))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&script).unwrap(), "echo newer\n");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o750);
    let names: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["run.sh"]);
}
