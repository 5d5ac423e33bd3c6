//! Whole-system tests: `pods profile …` run as a real process on profile directories created in
//! a sandbox, checking exit codes, JSON shapes and error messages.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Sandbox, assert_exit, stderr_text, stdout_json};

#[test]
fn list_shows_builtins_and_what_a_project_profile_shadows() {
    let sandbox = Sandbox::new();
    let project = sandbox.write("work/.pods/profiles/debug.toml", "extends = \"default\"\n");
    let user = sandbox.write(
        "config/pods/profiles/debug.toml",
        "description = \"mine\"\n",
    );
    let output = sandbox.run(&["profile", "list", "--json"]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    let items = json.as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    for name in ["coder", "debug", "default", "reviewer"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let debug = items.iter().find(|i| i["name"] == "debug").unwrap();
    assert_eq!(debug["origin"], "project");
    assert_eq!(debug["path"], project.display().to_string());
    let shadows = debug["shadows"].as_array().unwrap();
    assert_eq!(shadows.len(), 2);
    assert_eq!(shadows[0]["origin"], "user");
    assert_eq!(shadows[0]["path"], user.display().to_string());
    assert_eq!(shadows[1]["origin"], "builtin");
    assert_eq!(shadows[1]["path"], "profiles/debug.toml");

    let human = sandbox.run(&["profile", "list"]);
    assert_exit(&human, 0);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("shadows builtin profiles/debug.toml"),
        "{text}"
    );
}

#[test]
fn show_json_has_manifest_and_provenance_for_every_key() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "profile",
        "show",
        "coder",
        "--set",
        "agent.max_turns=5",
        "--json",
    ]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    let object = json.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        vec!["manifest", "provenance"]
    );
    assert_eq!(json["manifest"]["session"]["record_event_trace"], true);
    assert_eq!(json["manifest"]["agent"]["max_turns"], 5);
    let trace = &json["provenance"]["session.record_event_trace"];
    assert_eq!(trace["kind"], "builtin");
    assert_eq!(
        trace["detail"],
        "profiles/debug.toml:5: session.record_event_trace (extended by coder.toml)"
    );
    assert!(trace.get("from").is_none(), "from only for kind parent");
    assert_eq!(json["provenance"]["agent.max_turns"]["kind"], "cli");
    assert_eq!(json["provenance"]["model.cassette"]["kind"], "default");
    for section in ["model", "agent", "scope", "session", "spawn", "limits"] {
        assert!(json["manifest"][section].is_object(), "{section}");
    }
}

#[test]
fn env_layer_is_read_from_pods_variables() {
    let sandbox = Sandbox::new();
    let output = sandbox
        .pods()
        .args(["profile", "show", "default", "--json"])
        .env("PODS_LIMITS__MAX_ATTEMPTS", "2")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(json["manifest"]["limits"]["max_attempts"], 2);
    assert_eq!(json["provenance"]["limits.max_attempts"]["kind"], "env");
    assert_eq!(
        json["provenance"]["limits.max_attempts"]["detail"],
        "PODS_LIMITS__MAX_ATTEMPTS"
    );
}

#[test]
fn explain_answers_value_and_source() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["profile", "explain", "coder", "session.record_event_trace"]);
    assert_exit(&output, 0);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with(
            "session.record_event_trace = true — set by profiles/debug.toml:5 (extended by coder.toml)"
        ),
        "{text}"
    );
    assert!(
        text.contains("overrides false — compiled default"),
        "{text}"
    );

    let output = sandbox.run(&[
        "profile",
        "explain",
        "coder",
        "session.record_event_trace",
        "--set",
        "session.record_event_trace=false",
        "--json",
    ]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(json["value"], false);
    assert_eq!(json["provenance"]["kind"], "cli");
    let overridden = json["overridden"].as_array().unwrap();
    assert_eq!(overridden.len(), 2);
    assert_eq!(overridden[0]["provenance"]["kind"], "builtin");
    assert_eq!(overridden[1]["provenance"]["kind"], "default");

    let output = sandbox.run(&["profile", "explain", "coder", "session.record_event_trac"]);
    assert_exit(&output, 2);
    assert!(
        stderr_text(&output).contains("did you mean `session.record_event_trace`"),
        "{}",
        stderr_text(&output)
    );
}

#[test]
fn child_json_shows_inherited_trace_with_the_parents_source() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "profile",
        "child",
        "coder",
        "reviewer",
        "--parent-id",
        "pod-7",
        "--json",
    ]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(json["manifest"]["session"]["record_event_trace"], true);
    let p = &json["provenance"]["session.record_event_trace"];
    assert_eq!(p["kind"], "parent");
    assert_eq!(p["detail"], "inherited from parent pod-7");
    assert_eq!(p["from"]["kind"], "builtin");
    assert!(
        p["from"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("profiles/debug.toml")
    );
    assert_eq!(json["manifest"]["spawn"]["max_depth"], 1);
    assert_eq!(json["manifest"]["agent"]["max_turns"], 8);

    let output = sandbox.run(&[
        "profile",
        "child",
        "coder",
        "reviewer",
        "--override",
        "session.record_event_trace=false",
        "--json",
    ]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(json["manifest"]["session"]["record_event_trace"], false);
    assert_eq!(
        json["provenance"]["session.record_event_trace"]["kind"],
        "spawn_request"
    );
}

#[test]
fn child_errors_exit_2_with_a_hint() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["profile", "child", "coder", "debug"]);
    assert_exit(&output, 2);
    let err = stderr_text(&output);
    assert!(
        err.contains("error: profile `debug` is not in the parent's spawn.allowed_profiles"),
        "{err}"
    );
    assert!(err.contains("hint: add \"debug\""), "{err}");

    let output = sandbox.run(&[
        "profile",
        "child",
        "coder",
        "reviewer",
        "--scope-allow",
        "../elsewhere",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr_text(&output).contains("`../elsewhere`"),
        "{}",
        stderr_text(&output)
    );

    let output = sandbox.run(&[
        "profile",
        "child",
        "coder",
        "reviewer",
        "--set",
        "spawn.max_depth=0",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr_text(&output).contains("parent may not spawn: max_depth 0"),
        "{}",
        stderr_text(&output)
    );

    let output = sandbox.run(&[
        "profile",
        "child",
        "coder",
        "reviewer",
        "--override",
        "model.model=x",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr_text(&output).contains("may not override `model.model`"),
        "{}",
        stderr_text(&output)
    );
}

#[test]
fn validate_reports_file_key_and_line_and_exits_2() {
    let sandbox = Sandbox::new();
    let typo = sandbox.write(
        "work/.pods/profiles/typo.toml",
        "[session]\nrecord_event_trac = true\n",
    );
    let broken = sandbox.write(
        "work/.pods/profiles/broken.toml",
        "[agent]\nmax_turns = 3\n= oops\n",
    );
    let wrong = sandbox.write(
        "profiles-extra/wrong.toml",
        "[agent]\nmax_turns = \"many\"\n",
    );

    let output = sandbox.run(&["profile", "validate"]);
    assert_exit(&output, 2);
    let err = stderr_text(&output);
    assert!(
        err.contains(&format!("{}:2: unknown key `session.record_event_trac` (did you mean `session.record_event_trace`?)", typo.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "TOML syntax error in {} at line 3",
            broken.display()
        )),
        "{err}"
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("ok  coder"), "{out}");

    let output = sandbox.run(&["profile", "validate", wrong.to_str().unwrap(), "--json"]);
    assert_exit(&output, 2);
    let json = stdout_json(&output);
    let first = &json[0];
    assert_eq!(first["ok"], false);
    let message = first["error"].as_str().unwrap();
    assert!(message.contains(&wrong.display().to_string()), "{message}");
    assert!(message.contains("`agent.max_turns`"), "{message}");

    let output = sandbox.run(&["profile", "validate", "default", "debug", "--json"]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(json.as_array().unwrap().iter().all(|c| c["ok"] == true));
}

#[test]
fn an_unreadable_profile_fails_only_the_commands_that_use_it() {
    let sandbox = Sandbox::new();
    let bad = sandbox.write("work/.pods/profiles/latin1.toml", "");
    // Not UTF-8: a Latin-1 "é" in a comment.
    std::fs::write(&bad, b"# caf\xe9\n[agent]\nmax_turns = 3\n").unwrap();

    // Other profiles still list, show and validate.
    let output = sandbox.run(&["profile", "show", "coder", "--json"]);
    assert_exit(&output, 0);
    let output = sandbox.run(&["profile", "list"]);
    assert_exit(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("latin1"));

    // Using it names the file and why it could not be read.
    let output = sandbox.run(&["profile", "show", "latin1"]);
    assert_exit(&output, 2);
    let err = stderr_text(&output);
    assert!(
        err.contains(&format!("cannot read {}", bad.display())),
        "{err}"
    );
    assert!(err.contains("valid UTF-8"), "{err}");

    let output = sandbox.run(&["profile", "validate", "--json"]);
    assert_exit(&output, 2);
    let json = stdout_json(&output);
    let checked = json.as_array().unwrap();
    let latin1 = checked.iter().find(|c| c["target"] == "latin1").unwrap();
    assert_eq!(latin1["ok"], false);
    assert!(
        latin1["error"].as_str().unwrap().contains("valid UTF-8"),
        "the cause is part of the message: {latin1}"
    );
    let coder = checked.iter().find(|c| c["target"] == "coder").unwrap();
    assert_eq!(coder["ok"], true);
}

#[test]
fn profile_dir_flag_wins_and_missing_profile_exits_2() {
    let sandbox = Sandbox::new();
    let dir = sandbox.root().join("extra");
    sandbox.write("extra/default.toml", "[agent]\nmax_turns = 3\n");
    let output = sandbox.run(&[
        "--profile-dir",
        dir.to_str().unwrap(),
        "profile",
        "show",
        "default",
        "--json",
    ]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(json["manifest"]["agent"]["max_turns"], 3);
    assert_eq!(json["provenance"]["agent.max_turns"]["kind"], "profile");

    let output = sandbox.run(&["profile", "show", "debgu"]);
    assert_exit(&output, 2);
    let err = stderr_text(&output);
    assert!(
        err.contains("error: no profile named `debgu` (did you mean `debug`?)"),
        "{err}"
    );
    assert!(err.contains("hint: available profiles:"), "{err}");
    assert!(output.stdout.is_empty(), "no partial output on stdout");

    let output = sandbox.run(&["--profile-dir", "/nonexistent-pods-dir", "profile", "list"]);
    assert_exit(&output, 2);
    assert!(stderr_text(&output).contains("/nonexistent-pods-dir"));
}

#[test]
fn child_scope_narrows_and_human_output_names_sources() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "profile",
        "child",
        "coder",
        "reviewer",
        "--scope-allow",
        "src",
        "--scope-deny",
        "src/gen",
        "--json",
    ]);
    assert_exit(&output, 0);
    let json = stdout_json(&output);
    assert_eq!(
        json["manifest"]["scope"]["allow"],
        serde_json::json!(["src"])
    );
    assert_eq!(
        json["manifest"]["scope"]["deny"],
        serde_json::json!(["src/gen"])
    );
    assert_eq!(json["provenance"]["scope.allow"]["kind"], "spawn_request");

    let output = sandbox.run(&["profile", "child", "coder", "reviewer"]);
    assert_exit(&output, 0);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(
            "record_event_trace = true\n    # parent: inherited from parent <parent> ← set by profiles/debug.toml:5 (extended by coder.toml)"
        ),
        "{text}"
    );
    let model = text.find("[model]").unwrap();
    let limits = text.find("[limits]").unwrap();
    assert!(model < limits, "sections in manifest order");
}
