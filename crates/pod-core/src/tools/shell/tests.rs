use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::scope::Scope;
use crate::session_log::SessionLog;
use crate::tools::tests::NullSink;
use pod_profile::manifest::ScopeSection;

fn manifest() -> Manifest {
    let mut manifest = Manifest::default();
    manifest.agent.shell_timeout_ms = 5_000;
    manifest.agent.shell_output_bytes = 1_000;
    manifest
}

fn request(input: Value) -> Result<Request, String> {
    Request::from_input(&input, &manifest()).map_err(|e| e.0)
}

#[test]
fn a_command_line_runs_under_bash_and_an_argv_runs_as_given() {
    let line = request(json!({"command": "echo hi | wc -c"})).unwrap();
    assert_eq!(line.argv, ["bash", "-c", "echo hi | wc -c"]);
    assert_eq!(line.cwd, ".");
    assert_eq!(line.timeout, Duration::from_millis(5_000));
    assert_eq!(line.output_bytes, 1_000);
    let argv = request(json!({"argv": ["ls", "-l"], "cwd": "src", "timeout_ms": 200})).unwrap();
    assert_eq!(argv.argv, ["ls", "-l"]);
    assert_eq!(argv.cwd, "src");
    assert_eq!(argv.timeout, Duration::from_millis(200));
}

#[test]
fn a_timeout_longer_than_the_pods_is_capped() {
    let capped = request(json!({"command": "true", "timeout_ms": 999_999})).unwrap();
    assert_eq!(capped.timeout, Duration::from_millis(5_000));
}

#[test]
fn bad_arguments_are_refused_with_what_to_give_instead() {
    let cases = [
        (json!({}), "give `command`"),
        (json!({"command": "  "}), "`command` is empty"),
        (json!({"command": 3}), "`command` must be a string"),
        (json!({"command": "ls", "argv": ["ls"]}), "not both"),
        (json!({"argv": []}), "must start with the program"),
        (json!({"argv": [""]}), "must start with the program"),
        (json!({"argv": ["ls", 1]}), "array of strings"),
        (json!({"argv": "ls -l"}), "array of strings"),
        (json!({"command": "ls", "cwd": 1}), "`cwd` must be a string"),
        (json!({"command": "ls", "timeout_ms": 0}), "from 1 to 5000"),
        (
            json!({"command": "ls", "timeout_ms": "soon"}),
            "from 1 to 5000",
        ),
    ];
    for (input, expected) in cases {
        let error = request(input.clone()).unwrap_err();
        assert!(error.contains(expected), "{input}: {error}");
    }
}

#[tokio::test]
async fn a_working_directory_outside_the_scope_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("file.txt"), "x").unwrap();
    let ctx = ToolContext {
        pod_id: "p".into(),
        pod_dir: work.clone(),
        scope: Arc::new(Scope::new(&ScopeSection::default(), &work)),
        manifest: Arc::new(manifest()),
        log: SessionLog::from_sink(std::path::Path::new("mem"), Box::new(NullSink)),
        run_id: "r".into(),
        call_id: "c".into(),
    };
    let outside = Shell
        .call(&ctx, json!({"command": "touch x", "cwd": ".."}))
        .await
        .unwrap_err();
    assert!(
        outside.0.contains("outside this pod's scope"),
        "{outside:?}"
    );
    let file = Shell
        .call(&ctx, json!({"command": "touch x", "cwd": "file.txt"}))
        .await
        .unwrap_err();
    assert!(file.0.contains("not a directory"), "{file:?}");
    assert!(!tmp.path().join("x").exists() && !work.join("x").exists());
}

#[test]
fn the_environment_has_no_key_variable_nor_a_copy_of_a_key() {
    let mut manifest = manifest();
    manifest.model.api_key_env = Some("PODS_SHELL_UNIT_KEY".into());
    let key = "sk-shell-unit-env-key-abcdefgh";
    pod_trace::scrub::register_secret(key);
    let env: Vec<(OsString, OsString)> = vec![
        ("PODS_SHELL_UNIT_KEY".into(), key.into()),
        ("COPY_OF_IT".into(), format!("Bearer {key}").into()),
        ("OPENAI_API_KEY".into(), "another".into()),
        ("PLAIN".into(), "kept".into()),
    ];
    let kept = without_keys(env, &manifest);
    assert_eq!(kept, [(OsString::from("PLAIN"), OsString::from("kept"))]);
}

#[test]
fn the_sandbox_is_asked_for_by_arguments_pods_sandbox_exec_reads() {
    let confinement = Confinement {
        write: vec!["/work".into(), "/dev/null".into()],
        network: false,
    };
    assert_eq!(
        confinement.to_args(),
        [
            "sandbox-exec",
            "--write",
            "/work",
            "--write",
            "/dev/null",
            "--no-network",
            "--"
        ]
    );
    let open = Confinement {
        write: Vec::new(),
        network: true,
    };
    assert_eq!(open.to_args(), ["sandbox-exec", "--"]);
}

#[test]
fn what_a_kernel_does_not_confine_is_named() {
    let none = Support {
        abi: None,
        disabled: false,
    };
    assert!(none.gaps(false).unwrap().starts_with("not confined:"));
    assert!(none.gaps(false).unwrap().contains("network"));
    let old = Support {
        abi: Some(3),
        disabled: false,
    };
    let gaps = old.gaps(false).unwrap();
    assert!(
        gaps.starts_with("partly confined (Landlock ABI 3)"),
        "{gaps}"
    );
    assert!(gaps.contains("the network"), "{gaps}");
    assert!(!old.gaps(true).unwrap().contains("network"));
    let current = Support {
        abi: Some(7),
        disabled: false,
    };
    assert_eq!(current.gaps(false), None);
}
