//! Profile discovery, layering, provenance, validation, child materialization and manifest
//! files, exercised through the public API on real files in temporary directories.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pod_profile::{
    Catalog, Discovery, InheritPolicy, Origin, Overrides, POLICIES, Permission, ProfileError,
    ResolvedManifest, ScopeRequest, SourceKind, SpawnRequest, explain, manifest_digest,
    materialize_child, policy, read_manifest_files, reread_manifest_files, schema,
    write_manifest_files,
};

/// A temporary layout: `user/` (user config dir), `work/` (cwd, project in `work/.pods`),
/// and any number of extra profile dirs.
struct Fixture {
    dir: tempfile::TempDir,
    profile_dirs: Vec<PathBuf>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work/deep/er")).unwrap();
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        Fixture {
            dir,
            profile_dirs: Vec::new(),
        }
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Write a profile into `--profile-dir` number `n` (created and registered on first use).
    fn dir_profile(&mut self, n: usize, name: &str, text: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("dir{n}"));
        if !self.profile_dirs.contains(&dir) {
            self.profile_dirs.push(dir.clone());
        }
        self.write(&format!("dir{n}/{name}.toml"), text)
    }

    fn catalog(&self) -> Catalog {
        self.try_catalog().unwrap()
    }

    fn try_catalog(&self) -> Result<Catalog, ProfileError> {
        Catalog::discover(&Discovery {
            // A subdirectory: the project dir is found walking up.
            cwd: self.dir.path().join("work/deep/er"),
            user_config_dir: Some(self.dir.path().join("user")),
            profile_dirs: self.profile_dirs.clone(),
        })
    }
}

fn sets(items: &[&str]) -> Overrides {
    Overrides {
        sets: items.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        model: None,
    }
}

fn resolve(catalog: &Catalog, name: &str) -> ResolvedManifest {
    catalog.resolve(name, &Overrides::default()).unwrap()
}

// ---------- discovery and extends ----------

#[test]
fn builtins_are_embedded_and_coder_inherits_tracing_through_debug() {
    let fixture = Fixture::new();
    let catalog = fixture.catalog();
    for name in ["default", "debug", "coder", "reviewer"] {
        let entry = catalog.get(name).unwrap();
        assert_eq!(entry.source.origin, Origin::Builtin);
        assert_eq!(
            entry.source.path,
            PathBuf::from(format!("profiles/{name}.toml"))
        );
        assert!(entry.description().is_some(), "{name} has a description");
    }
    let resolution = catalog
        .resolve_with_history("coder", &Overrides::default())
        .unwrap();
    let explanation = explain(&resolution, "session.record_event_trace").unwrap();
    assert_eq!(explanation.value, Some(toml::Value::Boolean(true)));
    assert_eq!(explanation.provenance.kind, SourceKind::Builtin);
    assert_eq!(
        explanation.provenance.detail,
        "profiles/debug.toml:5: session.record_event_trace (extended by coder.toml)"
    );
    // The compiled default (false) was overridden.
    assert_eq!(explanation.overridden.len(), 1);
    assert_eq!(
        explanation.overridden[0].provenance.kind,
        SourceKind::Default
    );
    assert_eq!(explanation.overridden[0].value, toml::Value::Boolean(false));
}

#[test]
fn every_leaf_key_has_provenance_including_unset_optionals() {
    let catalog = Fixture::new().catalog();
    let resolved = resolve(&catalog, "default");
    for key in schema::leaf_keys() {
        assert!(
            resolved.provenance.contains_key(&key),
            "{key} has no provenance"
        );
    }
    let cassette = &resolved.provenance["model.cassette"];
    assert_eq!(cassette.kind, SourceKind::Default);
    assert!(cassette.detail.contains("unset"), "{}", cassette.detail);
    assert_eq!(resolved.provenance["agent.tools"].kind, SourceKind::Default);
    assert_eq!(
        resolved.provenance["agent.max_turns"].kind,
        SourceKind::Builtin
    );
}

#[test]
fn three_level_extends_chain_names_every_extender() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "base",
        "[agent]\nmax_turns = 3\n[limits]\nmax_attempts = 2\n",
    );
    fixture.dir_profile(1, "mid", "extends = \"base\"\n[agent]\nmax_turns = 5\n");
    fixture.dir_profile(
        1,
        "top",
        "extends = \"mid\"\n[session]\ntrace_raw_sse = true\n",
    );
    let catalog = fixture.catalog();
    let resolution = catalog
        .resolve_with_history("top", &Overrides::default())
        .unwrap();
    let m = &resolution.resolved.manifest;
    assert_eq!(m.agent.max_turns, 5);
    assert_eq!(m.limits.max_attempts, 2);
    assert!(m.session.trace_raw_sse);
    let p = &resolution.resolved.provenance;
    assert_eq!(p["limits.max_attempts"].kind, SourceKind::Profile);
    assert!(
        p["limits.max_attempts"].detail.ends_with(
            "base.toml:4: limits.max_attempts (extended by mid.toml, extended by top.toml)"
        ),
        "{}",
        p["limits.max_attempts"].detail
    );
    let max_turns = explain(&resolution, "agent.max_turns").unwrap();
    assert!(max_turns.provenance.detail.contains("mid.toml"));
    let losers: Vec<i64> = max_turns
        .overridden
        .iter()
        .map(|v| v.value.as_integer().unwrap())
        .collect();
    assert_eq!(losers, vec![3, 16], "highest loser first, then the default");
}

#[test]
fn extends_cycle_names_the_whole_chain() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(1, "a", "extends = \"b\"\n");
    fixture.dir_profile(1, "b", "extends = \"c\"\n");
    fixture.dir_profile(1, "c", "extends = \"a\"\n");
    fixture.dir_profile(1, "selfish", "extends = \"selfish\"\n");
    let catalog = fixture.catalog();
    let err = catalog.resolve("a", &Overrides::default()).unwrap_err();
    assert!(
        matches!(&err, ProfileError::ExtendsCycle { chain } if chain == &["a", "b", "c", "a"]),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "`extends` cycle: a -> b -> c -> a");
    let err = catalog
        .resolve("selfish", &Overrides::default())
        .unwrap_err();
    assert!(matches!(&err, ProfileError::ExtendsCycle { chain } if chain.len() == 2));
}

#[test]
fn missing_parent_names_the_chain() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(1, "a", "extends = \"b\"\n");
    fixture.dir_profile(1, "b", "extends = \"nowhere\"\n");
    let err = fixture
        .catalog()
        .resolve("a", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::MissingParent { missing, chain } if missing == "nowhere" && chain == &["a", "b"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("a -> b"), "{err}");
}

#[test]
fn unknown_profile_suggests_a_name() {
    let err = Fixture::new()
        .catalog()
        .resolve("debgu", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::ProfileNotFound { suggestion: Some(s), .. } if s == "debug"),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("default"));
}

#[test]
fn shadowing_follows_precedence_and_lists_what_lost() {
    let mut fixture = Fixture::new();
    let user = fixture.write("user/profiles/shared.toml", "[agent]\nmax_turns = 1\n");
    let project = fixture.write(
        "work/.pods/profiles/shared.toml",
        "[agent]\nmax_turns = 2\n",
    );
    let first = fixture.dir_profile(1, "shared", "[agent]\nmax_turns = 3\n");
    let second = fixture.dir_profile(2, "shared", "[agent]\nmax_turns = 4\n");
    fixture.write("user/profiles/default.toml", "[agent]\nmax_turns = 9\n");
    let catalog = fixture.catalog();

    let entry = catalog.get("shared").unwrap();
    assert_eq!(entry.source.origin, Origin::ProfileDir);
    assert_eq!(entry.source.path, second);
    let shadowed: Vec<&Path> = entry.shadows.iter().map(|s| s.path.as_path()).collect();
    assert_eq!(
        shadowed,
        vec![first.as_path(), project.as_path(), user.as_path()]
    );
    assert_eq!(resolve(&catalog, "shared").manifest.agent.max_turns, 4);

    // A user profile shadows the builtin of the same name.
    let default = catalog.get("default").unwrap();
    assert_eq!(default.source.origin, Origin::User);
    assert_eq!(default.shadows[0].origin, Origin::Builtin);
    assert_eq!(resolve(&catalog, "default").manifest.agent.max_turns, 9);
}

#[test]
fn a_profile_extending_its_own_name_extends_what_it_shadows() {
    let mut fixture = Fixture::new();
    fixture.write(
        "user/profiles/debug.toml",
        "extends = \"debug\"\n[agent]\nmax_turns = 7\n",
    );
    fixture.dir_profile(
        1,
        "debug",
        "extends = \"debug\"\n[limits]\nmax_attempts = 1\n",
    );
    let resolved = resolve(&fixture.catalog(), "debug");
    assert_eq!(resolved.manifest.limits.max_attempts, 1);
    assert_eq!(resolved.manifest.agent.max_turns, 7);
    assert!(
        resolved.manifest.session.record_event_trace,
        "from the builtin debug"
    );
    let p = &resolved.provenance["session.record_event_trace"];
    assert_eq!(p.kind, SourceKind::Builtin);
    assert!(
        p.detail
            .ends_with("(extended by debug.toml, extended by debug.toml)"),
        "{}",
        p.detail
    );
}

#[test]
fn a_missing_profile_dir_is_an_error_naming_it() {
    let mut fixture = Fixture::new();
    fixture.profile_dirs.push(fixture.dir.path().join("absent"));
    let err = fixture.try_catalog().unwrap_err();
    assert!(matches!(&err, ProfileError::MissingDir { path } if path.ends_with("absent")));
}

// ---------- layers ----------

#[test]
fn layers_apply_in_order_config_files_profile_env_set() {
    let mut fixture = Fixture::new();
    fixture.write(
        "user/config.toml",
        "[limits]\nmax_attempts = 7\nidle_timeout_ms = 1000\n[agent]\nmax_turns = 2\n",
    );
    fixture.write(
        "work/.pods/config.toml",
        "[limits]\nidle_timeout_ms = 2000\n[agent]\nmax_turns = 3\n",
    );
    fixture.dir_profile(1, "p", "[agent]\nmax_turns = 4\n");
    let catalog = fixture.catalog();

    let plain = resolve(&catalog, "p");
    assert_eq!(plain.manifest.limits.max_attempts, 7);
    assert_eq!(
        plain.provenance["limits.max_attempts"].kind,
        SourceKind::User
    );
    assert_eq!(plain.manifest.limits.idle_timeout_ms, 2000);
    assert_eq!(
        plain.provenance["limits.idle_timeout_ms"].kind,
        SourceKind::Project
    );
    assert!(
        plain.provenance["limits.idle_timeout_ms"]
            .detail
            .contains(".pods/config.toml")
    );
    assert_eq!(plain.manifest.agent.max_turns, 4);
    assert_eq!(
        plain.provenance["agent.max_turns"].kind,
        SourceKind::Profile
    );

    let env = Overrides {
        sets: Vec::new(),
        env: vec![
            ("PODS_AGENT__MAX_TURNS".into(), "5".into()),
            ("PODS_HOME".into(), "/ignored".into()),
            ("PODS_SESSION__RECORD_EVENT_TRACE".into(), "true".into()),
        ],
        model: None,
    };
    let with_env = catalog.resolve("p", &env).unwrap();
    assert_eq!(with_env.manifest.agent.max_turns, 5);
    assert_eq!(with_env.provenance["agent.max_turns"].kind, SourceKind::Env);
    assert_eq!(
        with_env.provenance["agent.max_turns"].detail,
        "PODS_AGENT__MAX_TURNS"
    );
    assert!(with_env.manifest.session.record_event_trace);

    let both = Overrides {
        sets: vec!["agent.max_turns=6".into(), "model.model=local-llm".into()],
        env: env.env.clone(),
        model: None,
    };
    let with_set = catalog.resolve("p", &both).unwrap();
    assert_eq!(with_set.manifest.agent.max_turns, 6);
    assert_eq!(with_set.provenance["agent.max_turns"].kind, SourceKind::Cli);
    assert_eq!(
        with_set.provenance["agent.max_turns"].detail,
        "--set agent.max_turns=6"
    );
    assert_eq!(
        with_set.manifest.model.model, "local-llm",
        "a bare word is a string"
    );
}

#[test]
fn relative_cassette_resolves_against_the_file_that_set_it() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(
        1,
        "replayed",
        "[model]\nscheme = \"replay\"\ncassette = \"tapes/one.json\"\n",
    );
    fixture.dir_profile(
        1,
        "shipped",
        "[model]\nscheme = \"replay\"\ncassette = \"builtin:demo\"\n",
    );
    let expected = file.parent().unwrap().join("tapes/one.json");
    fixture.write("dir1/tapes/one.json", "{}");
    let catalog = fixture.catalog();
    let resolved = resolve(&catalog, "replayed");
    assert_eq!(
        resolved.manifest.model.cassette.as_deref(),
        Some(expected.to_str().unwrap())
    );
    assert_eq!(
        resolve(&catalog, "shipped")
            .manifest
            .model
            .cassette
            .as_deref(),
        Some("builtin:demo")
    );
}

// ---------- validation ----------

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(1, "typo", "[session]\nrecord_event_trac = true\n");
    fixture.dir_profile(1, "badsection", "[sesion]\nrecord_event_trace = true\n");
    let catalog = fixture.catalog();
    let err = catalog.resolve("typo", &Overrides::default()).unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { file: f, line: Some(2), key, suggestion: Some(s) }
            if f == &file.display().to_string() && key == "session.record_event_trac" && s == "session.record_event_trace"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: unknown key `session.record_event_trac` (did you mean `session.record_event_trace`?)",
            file.display()
        )
    );
    let err = catalog
        .resolve("badsection", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { key, suggestion: Some(s), line: Some(1), .. } if key == "sesion" && s == "session"),
        "{err:?}"
    );
    let err = catalog
        .resolve("default", &sets(&["agent.max_turn=3"]))
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { suggestion: Some(s), .. } if s == "agent.max_turns"),
        "{err:?}"
    );
    let env = Overrides {
        sets: Vec::new(),
        env: vec![("PODS_SESSION__RECORD_EVENT_TRAC".into(), "1".into())],
        model: None,
    };
    let err = catalog.resolve("default", &env).unwrap_err();
    assert!(
        err.to_string().contains("PODS_SESSION__RECORD_EVENT_TRAC"),
        "{err}"
    );
}

#[test]
fn type_errors_name_file_key_and_expected_type() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(1, "wrong", "[agent]\nmax_turns = \"many\"\n");
    fixture.dir_profile(1, "scheme", "[model]\nscheme = \"openai-chatt\"\n");
    let catalog = fixture.catalog();
    let err = catalog.resolve("wrong", &Overrides::default()).unwrap_err();
    let ProfileError::Type {
        file: f,
        line,
        key,
        message,
    } = &err
    else {
        panic!("expected a type error, got {err:?}");
    };
    assert_eq!(f, &file.display().to_string());
    assert_eq!(*line, Some(2));
    assert_eq!(key, "agent.max_turns");
    assert!(
        message.contains("string") && message.contains("u32"),
        "{message}"
    );

    let err = catalog
        .resolve("default", &sets(&["session.record_event_trace=yes"]))
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::Type { file, key, .. }
            if file == "--set session.record_event_trace=yes" && key == "session.record_event_trace"),
        "{err:?}"
    );
    let err = catalog
        .resolve("scheme", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::Type { key, message, .. } if key == "model.scheme" && message.contains("openai-chat")),
        "{err:?}"
    );
}

#[test]
fn syntax_errors_give_file_and_line() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(
        1,
        "broken",
        "[agent]\nmax_turns = 3\ninstructions = \"unterminated\n",
    );
    let err = fixture
        .catalog()
        .resolve("broken", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::Syntax { file: f, line: 3, .. } if f == &file.display().to_string()),
        "{err:?}"
    );
    assert!(err.to_string().contains("at line 3"), "{err}");
}

#[test]
fn value_checks_name_the_source() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(1, "zero", "[agent]\nmax_turns = 0\n");
    fixture.dir_profile(1, "replay", "[model]\nscheme = \"replay\"\n");
    fixture.dir_profile(
        1,
        "nochildren",
        "[spawn]\nallowed_profiles = [\"default\"]\nmax_children = 0\n",
    );
    let catalog = fixture.catalog();
    let err = catalog.resolve("zero", &Overrides::default()).unwrap_err();
    assert!(
        matches!(&err, ProfileError::InvalidValue { origin, key, .. }
            if origin.contains(&file.display().to_string()) && key == "agent.max_turns"),
        "{err:?}"
    );
    let err = catalog
        .resolve("replay", &Overrides::default())
        .unwrap_err();
    assert!(err.to_string().contains("model.cassette"), "{err}");
    let err = catalog
        .resolve("nochildren", &Overrides::default())
        .unwrap_err();
    assert!(matches!(&err, ProfileError::InvalidValue { key, .. } if key == "spawn.max_children"));
    let err = catalog
        .resolve("default", &sets(&["limits.idle_timeout_ms=0"]))
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::InvalidValue { key, origin, .. }
        if key == "limits.idle_timeout_ms" && origin == "--set limits.idle_timeout_ms=0")
    );
    let err = catalog
        .resolve("default", &sets(&["session.trace_max_frame_bytes=1"]))
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::InvalidValue { key, .. } if key == "session.trace_max_frame_bytes")
    );
    let err = catalog
        .resolve("default", &sets(&["no-equals-sign"]))
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::BadAssignment { .. }),
        "{err:?}"
    );
}

#[test]
fn extends_must_be_a_string_and_files_must_exist() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(1, "numeric", "extends = 3\n");
    let catalog = fixture.catalog();
    let err = catalog
        .resolve("numeric", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::Type { file: f, key, message, .. }
            if f == &file.display().to_string() && key == "extends" && message.contains("integer")),
        "{err:?}"
    );
    let missing = fixture.dir.path().join("nope.toml");
    let err = catalog
        .resolve_file(&missing, &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::Read { path, .. } if path == &missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.toml"));
}

#[test]
fn config_files_may_not_use_extends() {
    let fixture = Fixture::new();
    let path = fixture.write("user/config.toml", "extends = \"debug\"\n");
    let err = fixture
        .catalog()
        .resolve("default", &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { file, key, .. } if file == &path.display().to_string() && key == "extends"),
        "{err:?}"
    );
}

// ---------- child materialization ----------

fn request() -> SpawnRequest {
    SpawnRequest {
        task: "review the change".into(),
        ..SpawnRequest::default()
    }
}

#[test]
fn every_leaf_key_has_a_policy() {
    let keys = schema::leaf_keys();
    for key in &keys {
        assert!(
            policy(key).is_some(),
            "manifest key `{key}` has no inheritance policy: add a row to POLICIES"
        );
    }
    // No row names a key the manifest does not have (a renamed field would leave one behind).
    for (key, _) in POLICIES {
        assert!(
            keys.iter().any(|k| k == key),
            "POLICIES names unknown key `{key}`"
        );
    }
    assert_eq!(
        policy("session.record_event_trace"),
        Some(InheritPolicy::Sticky)
    );
    assert_eq!(policy("spawn.max_depth"), Some(InheritPolicy::Decrement));
    assert_eq!(policy("scope.allow"), Some(InheritPolicy::NarrowOnly));
    // Policies are per key, not per section: an unlisted key in a sticky section has none.
    assert_eq!(policy("session.no_such_key"), None);
    assert_eq!(policy("spawn.unlisted"), None);
}

#[test]
fn leaf_keys_are_every_field_of_every_section() {
    let keys = schema::leaf_keys();
    // Read from the types' serde field lists, so optional fields count as much as required ones.
    for key in [
        "model.scheme",
        "model.cassette",
        "model.temperature",
        "agent.tools",
        "scope.deny",
        "session.record_event_trace",
        "session.trace_queue_capacity",
        "spawn.max_children",
        "limits.watchdog_ms",
    ] {
        assert!(keys.iter().any(|k| k == key), "missing {key} in {keys:?}");
    }
    // Every section the manifest declares contributes keys.
    for section in schema::sections() {
        assert!(keys.iter().any(|k| k.starts_with(&format!("{section}."))));
    }
    assert_eq!(
        schema::sections(),
        [
            "agent",
            "limits",
            "mcp",
            "model",
            "permissions",
            "scope",
            "session",
            "spawn",
            "telemetry"
        ]
    );
    // A fully set manifest serializes to exactly these keys, no more.
    let full = schema::flatten(&pod_profile::Manifest::default()).unwrap();
    for key in full.keys() {
        assert!(keys.contains(key), "{key} serializes but is not a leaf key");
    }
}

#[test]
fn silent_child_keeps_the_parents_trace_setting_with_its_source() {
    let catalog = Fixture::new().catalog();
    let parent = resolve(&catalog, "coder");
    let child = materialize_child(&catalog, &parent, "pod-1", "reviewer", &request(), &[]).unwrap();
    assert!(child.manifest.session.record_event_trace);
    assert!(child.manifest.session.trace_raw_sse);
    let p = &child.provenance["session.record_event_trace"];
    assert_eq!(p.kind, SourceKind::Parent);
    assert_eq!(p.detail, "inherited from parent pod-1");
    let from = p.from.as_deref().unwrap();
    assert_eq!(from, &parent.provenance["session.record_event_trace"]);
    assert!(from.detail.starts_with("profiles/debug.toml"));
    // agent.* is the child's own.
    assert_eq!(child.manifest.agent.max_turns, 8);
    assert_eq!(
        child.provenance["agent.max_turns"].kind,
        SourceKind::Builtin
    );
}

#[test]
fn env_and_config_never_override_a_sticky_parent_value() {
    let fixture = Fixture::new();
    fixture.write(
        "user/config.toml",
        "[session]\nrecord_event_trace = false\n",
    );
    let catalog = fixture.catalog();
    let parent = catalog.resolve("coder", &Overrides::default()).unwrap();
    assert!(
        parent.manifest.session.record_event_trace,
        "profile beats user config"
    );
    let env = vec![(
        "PODS_SESSION__RECORD_EVENT_TRACE".to_owned(),
        "false".to_owned(),
    )];
    let child = materialize_child(&catalog, &parent, "p", "reviewer", &request(), &env).unwrap();
    assert!(child.manifest.session.record_event_trace);
    assert_eq!(
        child.provenance["session.record_event_trace"].kind,
        SourceKind::Parent
    );
}

#[test]
fn child_profile_that_switches_tracing_off_wins() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "quiet",
        "extends = \"default\"\n[session]\nrecord_event_trace = false\n",
    );
    fixture.dir_profile(
        1,
        "lead",
        "extends = \"coder\"\n[spawn]\nallowed_profiles = [\"quiet\"]\n",
    );
    let catalog = fixture.catalog();
    let parent = resolve(&catalog, "lead");
    assert!(parent.manifest.session.record_event_trace);
    let child = materialize_child(&catalog, &parent, "p", "quiet", &request(), &[]).unwrap();
    assert!(!child.manifest.session.record_event_trace);
    let p = &child.provenance["session.record_event_trace"];
    assert_eq!(p.kind, SourceKind::Profile);
    assert!(p.detail.contains("quiet.toml"), "{}", p.detail);
    // trace_raw_sse was not set by quiet: still the parent's.
    assert!(child.manifest.session.trace_raw_sse);
}

#[test]
fn spawn_request_override_switches_tracing_off() {
    let catalog = Fixture::new().catalog();
    let parent = resolve(&catalog, "coder");
    let mut req = request();
    req.overrides.insert(
        "session.record_event_trace".into(),
        serde_json::json!(false),
    );
    req.overrides
        .insert("agent.max_turns".into(), serde_json::json!(3));
    let child = materialize_child(&catalog, &parent, "pod-9", "reviewer", &req, &[]).unwrap();
    assert!(!child.manifest.session.record_event_trace);
    let p = &child.provenance["session.record_event_trace"];
    assert_eq!(p.kind, SourceKind::SpawnRequest);
    assert!(p.detail.contains("pod-9"));
    assert_eq!(child.manifest.agent.max_turns, 3);
}

#[test]
fn grandchild_keeps_the_grandparents_trace_setting() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(1, "middle", "[spawn]\nallowed_profiles = [\"leaf\"]\n");
    fixture.dir_profile(1, "leaf", "[agent]\nmax_turns = 2\n");
    let catalog = fixture.catalog();
    let top = catalog
        .resolve(
            "default",
            &sets(&[
                "session.record_event_trace=true",
                "spawn.allowed_profiles=[\"middle\"]",
            ]),
        )
        .unwrap();
    let child = materialize_child(&catalog, &top, "top", "middle", &request(), &[]).unwrap();
    let grandchild = materialize_child(&catalog, &child, "mid", "leaf", &request(), &[]).unwrap();
    assert!(grandchild.manifest.session.record_event_trace);
    let p = &grandchild.provenance["session.record_event_trace"];
    assert_eq!(p.detail, "inherited from parent mid");
    let via = p.from.as_deref().unwrap();
    assert_eq!(via.detail, "inherited from parent top");
    let origin = via.from.as_deref().unwrap();
    assert_eq!(origin.kind, SourceKind::Cli);
    assert_eq!(origin.detail, "--set session.record_event_trace=true");
    // Depth: default 2 → 1 → 0.
    assert_eq!(child.manifest.spawn.max_depth, 1);
    assert_eq!(grandchild.manifest.spawn.max_depth, 0);
    let err =
        materialize_child(&catalog, &grandchild, "leaf", "leaf", &request(), &[]).unwrap_err();
    assert!(
        matches!(&err, ProfileError::SpawnDepthExhausted { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("parent may not spawn: max_depth 0"),
        "{err}"
    );
}

#[test]
fn child_profile_cannot_raise_depth_or_children() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "greedy",
        "[spawn]\nmax_depth = 9\nmax_children = 50\nallowed_profiles = [\"greedy\"]\n",
    );
    fixture.dir_profile(1, "modest", "[spawn]\nmax_depth = 0\n");
    let catalog = fixture.catalog();
    let parent = resolve(&catalog, "coder");
    let parent = ResolvedManifest {
        manifest: {
            let mut m = parent.manifest.clone();
            m.spawn.allowed_profiles = vec!["greedy".into(), "modest".into()];
            m
        },
        provenance: parent.provenance.clone(),
    };
    let child = materialize_child(&catalog, &parent, "p", "greedy", &request(), &[]).unwrap();
    assert_eq!(child.manifest.spawn.max_depth, 1);
    assert_eq!(child.provenance["spawn.max_depth"].kind, SourceKind::Parent);
    assert!(
        child.provenance["spawn.max_depth"]
            .detail
            .contains("decremented to 1")
    );
    assert_eq!(child.manifest.spawn.max_children, 2, "capped at coder's 2");
    assert_eq!(child.manifest.spawn.allowed_profiles, vec!["greedy"]);
    let child = materialize_child(&catalog, &parent, "p", "modest", &request(), &[]).unwrap();
    assert_eq!(
        child.manifest.spawn.max_depth, 0,
        "a child profile may lower it"
    );
    assert_eq!(
        child.provenance["spawn.max_depth"].kind,
        SourceKind::Profile
    );
}

#[test]
fn a_parent_without_recorded_provenance_hands_down_unknown_not_a_guess() {
    let catalog = Fixture::new().catalog();
    let mut parent = resolve(&catalog, "coder");
    parent.provenance.remove("session.record_event_trace");
    let child = materialize_child(&catalog, &parent, "old", "reviewer", &request(), &[]).unwrap();
    let p = &child.provenance["session.record_event_trace"];
    assert_eq!(p.kind, SourceKind::Parent);
    assert_eq!(p.from.as_deref().unwrap().kind, SourceKind::Unknown);
}

#[test]
fn child_must_be_allowed_by_the_parent() {
    let catalog = Fixture::new().catalog();
    let parent = resolve(&catalog, "coder");
    let err = materialize_child(&catalog, &parent, "p", "debug", &request(), &[]).unwrap_err();
    assert!(
        matches!(&err, ProfileError::ChildNotAllowed { child, allowed } if child == "debug" && allowed == &["reviewer"]),
        "{err:?}"
    );
}

#[test]
fn spawn_request_may_only_override_allowed_keys_with_the_right_type() {
    let catalog = Fixture::new().catalog();
    let parent = resolve(&catalog, "coder");
    let mut req = request();
    req.overrides
        .insert("model.model".into(), serde_json::json!("other"));
    let err = materialize_child(&catalog, &parent, "p", "reviewer", &req, &[]).unwrap_err();
    assert!(
        matches!(&err, ProfileError::OverrideNotAllowed { key, .. } if key == "model.model"),
        "{err:?}"
    );
    let mut req = request();
    req.overrides
        .insert("session.record_event_trac".into(), serde_json::json!(false));
    let err = materialize_child(&catalog, &parent, "p", "reviewer", &req, &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("did you mean `session.record_event_trace`"),
        "{err}"
    );
    let mut req = request();
    req.overrides
        .insert("session.record_event_trace".into(), serde_json::json!("no"));
    let err = materialize_child(&catalog, &parent, "p", "reviewer", &req, &[]).unwrap_err();
    assert!(
        matches!(&err, ProfileError::Type { key, .. } if key == "session.record_event_trace"),
        "{err:?}"
    );
}

#[test]
fn model_moves_as_a_group() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "local",
        "[model]\nscheme = \"openai-chat\"\nmodel = \"qwen\"\n",
    );
    fixture.dir_profile(
        1,
        "boss",
        "extends = \"coder\"\n[spawn]\nallowed_profiles = [\"local\", \"reviewer\"]\n",
    );
    let catalog = fixture.catalog();
    let parent = catalog
        .resolve(
            "boss",
            &sets(&["model.model=big-model", "model.base_url=http://127.0.0.1:9"]),
        )
        .unwrap();
    let silent = materialize_child(&catalog, &parent, "p", "reviewer", &request(), &[]).unwrap();
    assert_eq!(silent.manifest.model.model, "big-model");
    assert_eq!(
        silent.manifest.model.base_url.as_deref(),
        Some("http://127.0.0.1:9")
    );
    assert_eq!(silent.provenance["model.model"].kind, SourceKind::Parent);
    assert_eq!(
        silent.provenance["model.model"]
            .from
            .as_deref()
            .unwrap()
            .kind,
        SourceKind::Cli
    );

    let named = materialize_child(&catalog, &parent, "p", "local", &request(), &[]).unwrap();
    assert_eq!(named.manifest.model.model, "qwen");
    assert_eq!(
        named.manifest.model.base_url, None,
        "the parent's base_url does not leak"
    );
    assert_eq!(named.provenance["model.scheme"].kind, SourceKind::Profile);
}

#[test]
fn scope_can_narrow_but_never_widen() {
    let catalog = Fixture::new().catalog();
    let parent = catalog
        .resolve(
            "coder",
            &sets(&["scope.allow=[\"work\"]", "scope.deny=[\"work/secrets\"]"]),
        )
        .unwrap();
    let silent = materialize_child(&catalog, &parent, "p", "reviewer", &request(), &[]).unwrap();
    assert_eq!(silent.manifest.scope, parent.manifest.scope);
    assert_eq!(silent.provenance["scope.allow"].kind, SourceKind::Parent);

    let narrow = |allow: &[&str], deny: &[&str]| SpawnRequest {
        task: "t".into(),
        scope: Some(ScopeRequest {
            allow: Some(allow.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }),
        overrides: BTreeMap::new(),
    };
    let child = materialize_child(
        &catalog,
        &parent,
        "p",
        "reviewer",
        &narrow(&["./work/src"], &["work/src/gen"]),
        &[],
    )
    .unwrap();
    assert_eq!(child.manifest.scope.allow, vec!["./work/src"]);
    assert_eq!(
        child.manifest.scope.deny,
        vec!["work/secrets", "work/src/gen"]
    );
    assert_eq!(
        child.provenance["scope.allow"].kind,
        SourceKind::SpawnRequest
    );

    // Deny only: the parent's allow stays, with its provenance.
    let json = serde_json::json!({"deny": ["work/tmp"]});
    let deny_only = SpawnRequest {
        task: "t".into(),
        scope: Some(serde_json::from_value(json).unwrap()),
        overrides: BTreeMap::new(),
    };
    let child = materialize_child(&catalog, &parent, "p", "reviewer", &deny_only, &[]).unwrap();
    assert_eq!(child.manifest.scope.allow, vec!["work"]);
    assert_eq!(child.provenance["scope.allow"].kind, SourceKind::Parent);
    assert_eq!(child.manifest.scope.deny, vec!["work/secrets", "work/tmp"]);
    let bad: Result<ScopeRequest, _> = serde_json::from_value(serde_json::json!({"alow": ["x"]}));
    assert!(bad.is_err(), "unknown scope fields are refused");

    for wider in [
        "other",
        "work/../other",
        "../work",
        "/etc",
        "work/secrets/keys",
    ] {
        let err = materialize_child(
            &catalog,
            &parent,
            "p",
            "reviewer",
            &narrow(&[wider], &[]),
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(&err, ProfileError::ScopeWidened { path, .. } if path == wider),
            "{wider}: {err:?}"
        );
    }
}

#[test]
fn a_child_profiles_own_scope_narrows_and_may_not_widen() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "narrow",
        "extends = \"reviewer\"\n[scope]\nallow = [\"work/src\"]\ndeny = [\"work/src/gen\"]\n",
    );
    fixture.dir_profile(
        1,
        "wide",
        "extends = \"reviewer\"\n[scope]\nallow = [\"elsewhere\"]\n",
    );
    let catalog = fixture.catalog();
    let parent = catalog
        .resolve(
            "coder",
            &sets(&["scope.allow=[\"work\"]", "scope.deny=[\"work/secrets\"]"]),
        )
        .unwrap();
    let allowed = SpawnRequest {
        task: "t".into(),
        scope: None,
        overrides: BTreeMap::new(),
    };

    // The profile's scope is used (not silently replaced by the parent's), with its source.
    let mut parent_allows = parent.clone();
    parent_allows.manifest.spawn.allowed_profiles = vec!["narrow".into(), "wide".into()];
    let child = materialize_child(&catalog, &parent_allows, "p", "narrow", &allowed, &[]).unwrap();
    assert_eq!(child.manifest.scope.allow, vec!["work/src"]);
    assert_eq!(
        child.manifest.scope.deny,
        vec!["work/secrets", "work/src/gen"]
    );
    assert_eq!(child.provenance["scope.allow"].kind, SourceKind::Profile);
    assert!(
        child.provenance["scope.allow"]
            .detail
            .contains("narrow.toml"),
        "{:?}",
        child.provenance["scope.allow"]
    );

    // A spawn request narrows within the profile's scope, not the parent's.
    let request = |allow: &str| SpawnRequest {
        task: "t".into(),
        scope: Some(ScopeRequest {
            allow: Some(vec![allow.into()]),
            deny: Vec::new(),
        }),
        overrides: BTreeMap::new(),
    };
    let child = materialize_child(
        &catalog,
        &parent_allows,
        "p",
        "narrow",
        &request("work/src/lib"),
        &[],
    )
    .unwrap();
    assert_eq!(child.manifest.scope.allow, vec!["work/src/lib"]);
    let err = materialize_child(
        &catalog,
        &parent_allows,
        "p",
        "narrow",
        &request("work/docs"),
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(&err, ProfileError::ScopeWidened { path, reason } if path == "work/docs" && reason.contains("spawn request")),
        "{err:?}"
    );

    // A profile asking for more than the parent has is refused, naming the profile.
    let err = materialize_child(&catalog, &parent_allows, "p", "wide", &allowed, &[]).unwrap_err();
    assert!(
        matches!(&err, ProfileError::ScopeWidened { path, reason } if path == "elsewhere" && reason.contains("child profile `wide`")),
        "{err:?}"
    );
}

#[test]
fn an_absolute_path_is_not_inside_a_relative_scope() {
    let catalog = Fixture::new().catalog();
    let parent = resolve(&catalog, "coder");
    assert_eq!(parent.manifest.scope.allow, vec!["."]);
    let request = SpawnRequest {
        task: "t".into(),
        scope: Some(ScopeRequest {
            allow: Some(vec!["/etc".into()]),
            deny: Vec::new(),
        }),
        overrides: BTreeMap::new(),
    };
    let err = materialize_child(&catalog, &parent, "p", "reviewer", &request, &[]).unwrap_err();
    assert!(
        matches!(&err, ProfileError::ScopeWidened { path, .. } if path == "/etc"),
        "{err:?}"
    );
    let inside = SpawnRequest {
        scope: Some(ScopeRequest {
            allow: Some(vec!["src/lib".into(), "./docs".into()]),
            deny: Vec::new(),
        }),
        ..request
    };
    let child = materialize_child(&catalog, &parent, "p", "reviewer", &inside, &[]).unwrap();
    assert_eq!(child.manifest.scope.allow, vec!["src/lib", "./docs"]);
}

// ---------- manifest files ----------

#[test]
fn manifest_files_round_trip_atomically() {
    let catalog = Fixture::new().catalog();
    let parent = resolve(&catalog, "coder");
    let child = materialize_child(&catalog, &parent, "pod-1", "reviewer", &request(), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_manifest_files(dir.path(), &child).unwrap();
    assert_eq!(read_manifest_files(dir.path()).unwrap(), child);
    // Overwriting leaves exactly the two files, no temporaries.
    write_manifest_files(dir.path(), &parent).unwrap();
    assert_eq!(read_manifest_files(dir.path()).unwrap(), parent);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["manifest.toml", "provenance.json"]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(json["session.record_event_trace"]["kind"], "builtin");
}

#[test]
fn a_hand_edited_manifest_reread_marks_what_changed_as_unknown() {
    let parent = resolve(&Fixture::new().catalog(), "coder");
    let dir = tempfile::tempdir().unwrap();
    write_manifest_files(dir.path(), &parent).unwrap();
    // Unchanged: nothing is marked, provenance stays as materialized.
    let (same, changed) = reread_manifest_files(dir.path(), &parent.manifest).unwrap();
    assert!(changed.is_empty());
    assert_eq!(same, parent);

    let path = dir.path().join("manifest.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited_text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("max_turns = ") {
                "max_turns = 3".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(edited_text.trim(), text.trim(), "{text}");
    std::fs::write(&path, edited_text).unwrap();
    let (edited, changed) = reread_manifest_files(dir.path(), &parent.manifest).unwrap();
    assert_eq!(changed, ["agent.max_turns"]);
    assert_eq!(edited.manifest.agent.max_turns, 3);
    assert_eq!(
        edited.provenance["agent.max_turns"].kind,
        SourceKind::Unknown
    );
    // Keys the edit left alone keep their sources, and the file on disk says the same.
    assert_eq!(
        edited.provenance["session.record_event_trace"],
        parent.provenance["session.record_event_trace"]
    );
    assert_eq!(read_manifest_files(dir.path()).unwrap(), edited);
}

#[test]
fn manifest_file_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_manifest_files(dir.path()).unwrap_err();
    assert!(matches!(&err, ProfileError::Read { path, .. } if path.ends_with("manifest.toml")));
    let missing = dir.path().join("absent");
    let resolved = resolve(&Fixture::new().catalog(), "default");
    let err = write_manifest_files(&missing, &resolved).unwrap_err();
    assert!(
        matches!(&err, ProfileError::Write { path, .. } if path.starts_with(&missing)),
        "{err:?}"
    );
    write_manifest_files(dir.path(), &resolved).unwrap();
    std::fs::write(dir.path().join("provenance.json"), "{ torn").unwrap();
    let err = read_manifest_files(dir.path()).unwrap_err();
    assert!(matches!(&err, ProfileError::Json { path, .. } if path.ends_with("provenance.json")));
}

#[test]
fn digest_is_the_sha256_of_the_manifest_text() {
    let catalog = Fixture::new().catalog();
    let a = resolve(&catalog, "default").manifest;
    let b = resolve(&catalog, "debug").manifest;
    let da = manifest_digest(&a).unwrap();
    assert!(
        da.starts_with("sha256:") && da.len() == "sha256:".len() + 64,
        "{da}"
    );
    assert_eq!(da, manifest_digest(&a.clone()).unwrap());
    assert_ne!(da, manifest_digest(&b).unwrap());
}

#[test]
fn values_that_would_only_fail_at_run_time_are_refused_naming_file_and_key() {
    let mut fixture = Fixture::new();
    fixture.write("dir1/tapes/a-dir/keep", "");
    let dir_cassette = fixture.dir_profile(
        1,
        "dircassette",
        "[model]\nscheme = \"replay\"\ncassette = \"tapes/a-dir\"\n",
    );
    fixture.dir_profile(
        1,
        "nocassette",
        "[model]\nscheme = \"replay\"\ncassette = \"tapes/missing.json\"\n",
    );
    let empty_var = fixture.dir_profile(1, "emptyvar", "[model]\napi_key_env = \"\"\n");
    fixture.dir_profile(1, "assignvar", "[model]\napi_key_env = \"A=B\"\n");
    fixture.dir_profile(1, "dashvar", "[model]\napi_key_env = \"MY-KEY\"\n");
    let bad_url = fixture.dir_profile(1, "badurl", "[model]\nbase_url = \"not a url\"\n");
    let catalog = fixture.catalog();
    let check = |name: &str, key: &str, file: Option<&Path>, says: &str| {
        let err = catalog.resolve(name, &Overrides::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ProfileError::InvalidValue { key: k, .. } if k == key),
            "{name}: {err:?}"
        );
        if let Some(file) = file {
            assert!(text.contains(&file.display().to_string()), "{name}: {text}");
        }
        assert!(text.contains(says), "{name}: {text}");
    };
    check(
        "dircassette",
        "model.cassette",
        Some(&dir_cassette),
        "is not a regular file",
    );
    check(
        "nocassette",
        "model.cassette",
        None,
        "name an existing cassette",
    );
    check(
        "emptyvar",
        "model.api_key_env",
        Some(&empty_var),
        "name the environment variable",
    );
    check("assignvar", "model.api_key_env", None, "contains `=`");
    check(
        "dashvar",
        "model.api_key_env",
        None,
        "not an environment variable name",
    );
    check(
        "badurl",
        "model.base_url",
        Some(&bad_url),
        "not an http(s) URL",
    );
}

#[test]
fn credentials_in_base_url_are_refused_and_never_stored() {
    let mut fixture = Fixture::new();
    let file = fixture.dir_profile(
        1,
        "userinfo",
        "[model]\nbase_url = \"https://user:pa55word@proxy.example/v1\"\n",
    );
    let catalog = fixture.catalog();
    let err = catalog
        .resolve("userinfo", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.base_url") && err.contains(&file.display().to_string()),
        "{err}"
    );
    assert!(
        err.contains("credentials") && !err.contains("pa55word"),
        "{err}"
    );
    for set in [
        "model.base_url=https://proxy.example/v1?key=SEKRIT-1",
        "model.base_url=https://proxy.example/v1?api_key=SEKRIT-1",
        "model.base_url=https://tok:SEKRIT-1@proxy.example/v1",
    ] {
        let err = catalog.resolve("default", &sets(&[set])).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("SEKRIT-1"),
            "the credential is not repeated: {text}"
        );
        assert!(
            matches!(&err, ProfileError::InvalidValue { key, .. } if key == "model.base_url"),
            "{err:?}"
        );
    }
    // A clean URL resolves, and manifest.toml holds exactly it.
    let resolved = catalog
        .resolve(
            "default",
            &sets(&["model.base_url=https://proxy.example/v1"]),
        )
        .unwrap();
    let pod = fixture.dir.path().join("pod");
    std::fs::create_dir_all(&pod).unwrap();
    write_manifest_files(&pod, &resolved).unwrap();
    let stored = std::fs::read_to_string(pod.join("manifest.toml")).unwrap();
    assert!(
        stored.contains("base_url = \"https://proxy.example/v1\""),
        "{stored}"
    );
}

#[test]
fn dash_m_sets_model_model_over_set_with_command_line_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::discover(&Discovery {
        cwd: dir.path().to_owned(),
        user_config_dir: None,
        profile_dirs: Vec::new(),
    })
    .unwrap();
    let overrides = Overrides {
        sets: vec!["model.model=from-set".into()],
        env: Vec::new(),
        model: Some("from-flag".into()),
    };
    let resolution = catalog.resolve_with_history("default", &overrides).unwrap();
    let resolved = &resolution.resolved;
    assert_eq!(resolved.manifest.model.model, "from-flag");
    let provenance = &resolved.provenance["model.model"];
    assert_eq!(provenance.kind, SourceKind::CommandLine);
    assert_eq!(provenance.detail, "--model from-flag");
    let explained = pod_profile::explain(&resolution, "model.model").unwrap();
    assert_eq!(explained.overridden[0].provenance.kind, SourceKind::Cli);
    // Without -m the layer sets nothing.
    let plain = catalog.resolve("default", &Overrides::default()).unwrap();
    assert_ne!(
        plain.provenance["model.model"].kind,
        SourceKind::CommandLine
    );
}

// ---------- permissions, shell and MCP servers down the tree ----------

/// A parent profile `lead` with a permissive policy, one MCP server and network for `shell`,
/// and a child profile `helper` written by the test.
fn permission_fixture(helper: &str) -> (Catalog, ResolvedManifest) {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "lead",
        r#"
[agent]
shell_network = true
[permissions]
process = "allow"
network = "ask"
[permissions.tools]
write_file = "ask"
[mcp.servers.time]
command = "mcp-server-time"
side_effect = "read_only"
[spawn]
allowed_profiles = ["helper"]
"#,
    );
    fixture.dir_profile(1, "helper", helper);
    let catalog = fixture.catalog();
    let parent = resolve(&catalog, "lead");
    (catalog, parent)
}

#[test]
fn a_child_profile_cannot_widen_its_parents_permissions_but_may_narrow_them() {
    let (catalog, parent) = permission_fixture(
        r#"
[agent]
shell_network = true
[permissions]
process = "deny"
network = "allow"
read_only = "ask"
[permissions.tools]
write_file = "allow"
search = "deny"
"#,
    );
    let child = materialize_child(&catalog, &parent, "pod-1", "helper", &request(), &[]).unwrap();
    let permissions = &child.manifest.permissions;
    // Narrowed by the child profile: its value and its own provenance.
    assert_eq!(permissions.process, Permission::Deny);
    assert_eq!(
        child.provenance["permissions.process"].kind,
        SourceKind::Profile
    );
    assert_eq!(permissions.read_only, Permission::Ask);
    // Widening refused: the parent's value, inherited.
    assert_eq!(permissions.network, Permission::Ask);
    assert_eq!(
        child.provenance["permissions.network"].kind,
        SourceKind::Parent
    );
    // Per tool, the stricter of each entry; the merged table says so.
    assert_eq!(permissions.tools["write_file"], Permission::Ask);
    assert_eq!(permissions.tools["search"], Permission::Deny);
    assert!(
        child.provenance["permissions.tools"]
            .detail
            .contains("stricter of each"),
        "{:?}",
        child.provenance["permissions.tools"]
    );
    // A switch that grants network stays on only when both say so.
    assert!(child.manifest.agent.shell_network);
}

#[test]
fn a_silent_child_inherits_permissions_mcp_servers_and_shell_settings() {
    let (catalog, parent) = permission_fixture("description = \"silent\"\n");
    let child = materialize_child(&catalog, &parent, "pod-1", "helper", &request(), &[]).unwrap();
    assert_eq!(child.manifest.permissions.process, Permission::Allow);
    assert_eq!(
        child.manifest.permissions.tools["write_file"],
        Permission::Ask
    );
    assert!(child.manifest.agent.shell_network);
    let time = &child.manifest.mcp.servers["time"];
    assert_eq!(time.command, "mcp-server-time");
    assert_eq!(time.side_effect, pod_profile::SideEffectClass::ReadOnly);
    let p = &child.provenance["mcp.servers"];
    assert_eq!(p.kind, SourceKind::Parent);
    assert_eq!(p.from.as_ref().unwrap().kind, SourceKind::Profile);
}

#[test]
fn a_child_profile_that_declares_mcp_servers_replaces_the_parents_and_can_turn_off_network() {
    let (catalog, parent) = permission_fixture(
        r#"
[agent]
shell_network = false
[mcp.servers.files]
command = "mcp-files"
"#,
    );
    let child = materialize_child(&catalog, &parent, "pod-1", "helper", &request(), &[]).unwrap();
    let servers: Vec<&String> = child.manifest.mcp.servers.keys().collect();
    assert_eq!(servers, ["files"]);
    assert_eq!(
        child.manifest.mcp.servers["files"].side_effect,
        pod_profile::SideEffectClass::Unknown,
        "a server's tools are of unknown effect unless it says otherwise"
    );
    assert!(!child.manifest.agent.shell_network);
    assert_eq!(
        child.provenance["agent.shell_network"].kind,
        SourceKind::Profile
    );
}

#[test]
fn a_tools_entry_only_tightens_its_class() {
    let permissions = pod_profile::PermissionsSection {
        tools: [
            ("shell".to_owned(), Permission::Allow),
            ("write_file".to_owned(), Permission::Deny),
        ]
        .into(),
        ..Default::default()
    };
    use pod_profile::SideEffectClass::{LocalWrite, Process, Unknown};
    let rule = |tool, class| permissions.for_tool(tool, class).to_string();
    assert_eq!(rule("shell", Process), "permissions.process = \"ask\"");
    assert_eq!(
        rule("write_file", LocalWrite),
        "permissions.tools.write_file = \"deny\""
    );
    assert_eq!(
        rule("edit_file", LocalWrite),
        "permissions.local_write = \"allow\""
    );
    assert_eq!(rule("mcp__x__y", Unknown), "permissions.unknown = \"ask\"");
}

#[test]
fn a_misspelled_permission_is_an_error_naming_the_key() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(1, "loose", "[permissions]\nprocess = \"alow\"\n");
    let err = fixture
        .catalog()
        .resolve("loose", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("permissions.process") || err.contains("process"),
        "{err}"
    );
    assert!(err.contains("alow"), "{err}");
}

#[test]
fn telemetry_settings_are_sticky_down_the_tree() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "lead",
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nheaders_env = [\"COLLECTOR_HEADERS\"]\n[spawn]\nallowed_profiles = [\"helper\"]\n",
    );
    fixture.dir_profile(1, "helper", "description = \"silent\"\n");
    let catalog = fixture.catalog();
    let parent = resolve(&catalog, "lead");
    let child = materialize_child(&catalog, &parent, "pod-1", "helper", &request(), &[]).unwrap();
    assert_eq!(
        child.manifest.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(child.manifest.telemetry.headers_env, ["COLLECTOR_HEADERS"]);
    for key in ["telemetry.otlp_endpoint", "telemetry.headers_env"] {
        assert_eq!(child.provenance[key].kind, SourceKind::Parent, "{key}");
    }
}

#[test]
fn a_telemetry_endpoint_with_credentials_or_another_protocol_is_refused_naming_the_key() {
    let mut fixture = Fixture::new();
    fixture.dir_profile(
        1,
        "leaky",
        "[telemetry]\notlp_endpoint = \"https://user:s3cret@collector.example/v1/traces\"\n",
    );
    fixture.dir_profile(1, "grpc", "[telemetry]\nprotocol = \"grpc\"\n");
    fixture.dir_profile(1, "badvar", "[telemetry]\nheaders_env = [\"A=B\"]\n");
    let catalog = fixture.catalog();
    let leaky = catalog
        .resolve("leaky", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(leaky.contains("telemetry.otlp_endpoint"), "{leaky}");
    assert!(!leaky.contains("s3cret"), "{leaky}");
    let grpc = catalog
        .resolve("grpc", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(grpc.contains("protocol") && grpc.contains("grpc"), "{grpc}");
    let badvar = catalog
        .resolve("badvar", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(badvar.contains("telemetry.headers_env"), "{badvar}");
}
