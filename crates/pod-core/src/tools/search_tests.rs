use std::sync::Arc;

use pod_profile::manifest::ScopeSection;
use serde_json::json;

use super::*;

fn scope(work: &Path) -> Arc<Scope> {
    Arc::new(Scope::new(&ScopeSection::default(), work))
}

fn run(work: &Path, input: Value) -> Result<String, ToolError> {
    Query::from_input(&input)?.run(&scope(work))
}

/// A tree with a `.gitignore`d directory, a hidden file and a binary file, all of which hold
/// the needle, and two text files that hold it too.
fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::create_dir_all(work.join("src/deep")).unwrap();
    std::fs::create_dir_all(work.join("target")).unwrap();
    std::fs::write(work.join(".gitignore"), "target/\n").unwrap();
    std::fs::write(work.join("src/lib.rs"), "fn a() {}\nlet needle = 1;\n").unwrap();
    std::fs::write(work.join("src/deep/x.txt"), "NEEDLE upper\nnothing\n").unwrap();
    std::fs::write(work.join("target/out.rs"), "needle in ignored\n").unwrap();
    std::fs::write(work.join(".hidden"), "needle hidden\n").unwrap();
    std::fs::write(work.join("blob.bin"), b"needle\0\x01\x02").unwrap();
    tmp
}

#[test]
fn matches_come_with_path_and_line_and_skip_ignored_hidden_and_binary_files() {
    let tmp = tree();
    let text = run(tmp.path(), json!({"pattern": "needle"})).unwrap();
    assert_eq!(text, "src/lib.rs:2: let needle = 1;");
    let text = run(
        tmp.path(),
        json!({"pattern": "needle", "case_insensitive": true, "path": "src"}),
    )
    .unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "src/deep/x.txt:1: NEEDLE upper",
            "src/lib.rs:2: let needle = 1;"
        ]
    );
}

#[test]
fn results_are_bounded_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let many = "hit\n".repeat(50);
    std::fs::write(tmp.path().join("a.txt"), &many).unwrap();
    let text = run(tmp.path(), json!({"pattern": "hit", "max_results": 3})).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..3],
        ["a.txt:1: hit", "a.txt:2: hit", "a.txt:3: hit"]
    );
    assert!(lines[3].contains("stopped at 3 matching lines"), "{text}");
    let long = format!("{}x\n", "é".repeat(400));
    std::fs::write(tmp.path().join("long.txt"), long).unwrap();
    let text = run(tmp.path(), json!({"pattern": "x$", "path": "long.txt"})).unwrap();
    assert!(text.ends_with('…'), "{text}");
    assert!(text.len() < 400, "{}", text.len());
}

#[test]
fn bad_arguments_and_paths_outside_the_scope_are_refused_with_a_reason() {
    let tmp = tree();
    let work = tmp.path().join("src");
    let error = run(&work, json!({"pattern": "("})).unwrap_err();
    assert!(
        error.0.contains("not a valid regular expression"),
        "{error:?}"
    );
    let error = run(&work, json!({"pattern": "a", "max_results": 0})).unwrap_err();
    assert!(error.0.contains("`max_results`"), "{error:?}");
    let error = run(&work, json!({"pattern": "needle", "path": ".."})).unwrap_err();
    assert!(error.0.contains("outside"), "{error:?}");
    assert_eq!(
        run(&work, json!({"pattern": "absent-word"})).unwrap(),
        "no matches in 2 file(s)"
    );
}

#[test]
fn a_key_cut_by_the_line_bound_is_scrubbed_before_the_cut() {
    let key = "k3y-straddles-the-cut-0123456789";
    pod_trace::scrub::register_secret(key);
    let tmp = tempfile::tempdir().unwrap();
    let line = format!("{}api_key={key}\n", "x".repeat(LINE_MAX_BYTES - 12));
    std::fs::write(tmp.path().join("conf.txt"), line).unwrap();
    let text = run(tmp.path(), json!({"pattern": "api_key"})).unwrap();
    assert!(text.starts_with("conf.txt:1: xxx"), "{text}");
    assert!(
        !text.contains("k3y-str"),
        "no piece of the key survives: {text}"
    );
}
