//! `pods profile …`: list, show, explain, child and validate. Presentation only; the logic is
//! in `pod-profile`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use pod_profile::{
    Catalog, Overrides, ProfileError, Provenance, ResolvedManifest, ScopeRequest, SourceKind,
    SpawnRequest,
};
use serde::Serialize;

use crate::failure::{CmdResult, Exit, Failure, error_text, out};
use crate::global::{GlobalArgs, config_env};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List every profile found, which file won and what it shadows.
    ///
    /// Profiles are TOML files shaped like a manifest (sections model, agent, scope, session,
    /// spawn, limits) plus `extends` and `description`. A name found in several places resolves
    /// to, highest first: a later --profile-dir, an earlier --profile-dir, the project's
    /// .pods/profiles (nearest above the working directory), the user's
    /// $XDG_CONFIG_HOME/pods/profiles, the builtins shipped with pods.
    List(ListArgs),
    /// Show the manifest a profile resolves to, with the source of every key.
    ///
    /// Layers, lowest first: compiled defaults < user config ($XDG_CONFIG_HOME/pods/config.toml)
    /// < project config (.pods/config.toml) < the profile chain (base first) <
    /// PODS_SECTION__KEY environment variables (e.g. PODS_SESSION__RECORD_EVENT_TRACE=true) <
    /// --set section.key=value < -m/--model. A model.base_url or model.api_key_env no layer
    /// sets is shown as the scheme's own default (what a run uses), marked scheme_default.
    Show(ShowArgs),
    /// Explain one key: its value, where it was set and which layers it overrode.
    ///
    /// Example: pods profile explain coder session.record_event_trace
    Explain(ExplainArgs),
    /// Show the manifest a child spawned with profile CHILD by a pod running profile PARENT
    /// would get, and where each key came from (the parent, the child profile, the request).
    Child(ChildArgs),
    /// Check profiles (files or names; all discovered profiles when none is given). Exits 2
    /// when any is invalid.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON: an array of {name, description, origin, path, shadows: [{origin, path}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Set a key on top of every other layer, e.g. --set session.record_event_trace=true. The
    /// value is TOML (true, 3, "text", ["a", "b"]); a bare word is a string. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Set model.model as `pods run -m MODEL` does (provenance `command_line`, over --set).
    #[arg(short = 'm', long = "model", value_name = "MODEL")]
    model: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The profile name.
    name: String,
    #[command(flatten)]
    set: SetArgs,
    /// Print JSON: {"manifest": {section: {...}}, "provenance": {"section.key": {kind, detail, from?}}}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The profile name.
    name: String,
    /// The dotted key, e.g. session.record_event_trace.
    key: String,
    #[command(flatten)]
    set: SetArgs,
    /// Print JSON: {key, value, provenance, overridden: [{value, provenance}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ChildArgs {
    /// The parent's profile.
    parent: String,
    /// The child's profile (must be in the parent's spawn.allowed_profiles).
    child: String,
    /// --set KEY=VALUE applies to the parent's resolution, as for `pods run`. Repeatable.
    #[command(flatten)]
    set: SetArgs,
    /// A spawn-request override, e.g. --override session.record_event_trace=false (only keys
    /// whose policy allows it: session.*, agent.max_turns, agent.instructions). Repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Narrow the child's scope to this path (must be inside the parent's scope). Repeatable.
    #[arg(long = "scope-allow", value_name = "PATH")]
    scope_allow: Vec<String>,
    /// Add a denied path to the child's scope. Repeatable.
    #[arg(long = "scope-deny", value_name = "PATH")]
    scope_deny: Vec<String>,
    /// The parent pod id shown in the child's provenance.
    #[arg(long = "parent-id", value_name = "POD", default_value = "<parent>")]
    parent_id: String,
    /// Print JSON, in the same shape as `pods profile show --json`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Profile files (a path) or names; all discovered profiles when none is given.
    targets: Vec<String>,
    /// Print JSON: an array of {target, path, ok, error?, hint?}.
    #[arg(long)]
    json: bool,
}

pub fn run(global: &GlobalArgs, command: ProfileCommand) -> CmdResult {
    let catalog = Catalog::discover(&global.discovery()).map_err(config_failure)?;
    match command {
        ProfileCommand::List(args) => list(&catalog, args),
        ProfileCommand::Show(args) => show(&catalog, args),
        ProfileCommand::Explain(args) => explain(&catalog, args),
        ProfileCommand::Child(args) => child(&catalog, args),
        ProfileCommand::Validate(args) => validate(&catalog, args),
    }
}

/// A configuration error as a failure: exit 2, with the error's hint.
pub(crate) fn config_failure(error: ProfileError) -> Failure {
    let hint = error.hint();
    let failure = Failure::usage(error);
    match hint {
        Some(hint) => failure.with_hint(hint),
        None => failure,
    }
}

fn overrides(sets: &SetArgs) -> Overrides {
    Overrides {
        sets: sets.sets.clone(),
        env: config_env(),
        model: sets.model.clone(),
    }
}

#[derive(Serialize)]
struct ListedSource {
    origin: pod_profile::Origin,
    path: String,
}

#[derive(Serialize)]
struct Listed {
    name: String,
    description: Option<String>,
    origin: pod_profile::Origin,
    path: String,
    shadows: Vec<ListedSource>,
}

fn list(catalog: &Catalog, args: ListArgs) -> CmdResult {
    let listed: Vec<Listed> = catalog
        .entries()
        .map(|entry| Listed {
            name: entry.name.clone(),
            description: entry.description(),
            origin: entry.source.origin,
            path: entry.source.path.display().to_string(),
            shadows: entry
                .shadows
                .iter()
                .map(|s| ListedSource {
                    origin: s.origin,
                    path: s.path.display().to_string(),
                })
                .collect(),
        })
        .collect();
    if args.json {
        return emit(&to_json(&listed)?);
    }
    let mut out = String::new();
    let width = listed.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for item in &listed {
        out.push_str(&format!(
            "{:width$}  {:<11}  {}\n",
            item.name,
            origin_name(item.origin),
            item.path
        ));
        if let Some(description) = &item.description {
            out.push_str(&format!("{:width$}  {description}\n", ""));
        }
        for shadow in &item.shadows {
            out.push_str(&format!(
                "{:width$}  shadows {} {}\n",
                "",
                origin_name(shadow.origin),
                shadow.path
            ));
        }
    }
    emit(&out)
}

fn origin_name(origin: pod_profile::Origin) -> &'static str {
    match origin {
        pod_profile::Origin::Builtin => "builtin",
        pod_profile::Origin::User => "user",
        pod_profile::Origin::Project => "project",
        pod_profile::Origin::ProfileDir => "profile-dir",
    }
}

fn show(catalog: &Catalog, args: ShowArgs) -> CmdResult {
    let mut resolved = catalog
        .resolve(&args.name, &overrides(&args.set))
        .map_err(config_failure)?;
    pod_core::with_scheme_defaults(&mut resolved);
    if args.json {
        return emit(&to_json(&resolved)?);
    }
    emit(&render_manifest(&resolved)?)
}

fn explain(catalog: &Catalog, args: ExplainArgs) -> CmdResult {
    let mut resolution = catalog
        .resolve_with_history(&args.name, &overrides(&args.set))
        .map_err(config_failure)?;
    pod_core::with_scheme_defaults(&mut resolution.resolved);
    let explanation = pod_profile::explain(&resolution, &args.key).map_err(config_failure)?;
    if args.json {
        return emit(&to_json(&explanation)?);
    }
    let value = explanation
        .value
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "(unset)".to_owned());
    let mut out = format!(
        "{} = {value} — {}\n",
        explanation.key,
        describe(&explanation.provenance, &explanation.key)
    );
    if explanation.overridden.is_empty() {
        out.push_str("  no other layer sets it\n");
    }
    for loser in &explanation.overridden {
        out.push_str(&format!(
            "  overrides {} — {}\n",
            loser.value,
            describe(&loser.provenance, &explanation.key)
        ));
    }
    emit(&out)
}

fn child(catalog: &Catalog, args: ChildArgs) -> CmdResult {
    let parent = catalog
        .resolve(&args.parent, &overrides(&args.set))
        .map_err(config_failure)?;
    let mut request = SpawnRequest {
        task: String::new(),
        scope: None,
        overrides: BTreeMap::new(),
    };
    for text in &args.overrides {
        let Some((key, value)) = text.split_once('=') else {
            return Err(Failure::usage(format!(
                "invalid --override `{text}`: expected `section.key=value`"
            )));
        };
        let value = serde_json::to_value(pod_profile::schema::parse_value(value))
            .map_err(|err| Failure::usage(format!("invalid --override `{text}`: {err}")))?;
        request.overrides.insert(key.trim().to_owned(), value);
    }
    if !args.scope_allow.is_empty() || !args.scope_deny.is_empty() {
        request.scope = Some(ScopeRequest {
            allow: (!args.scope_allow.is_empty()).then(|| args.scope_allow.clone()),
            deny: args.scope_deny.clone(),
        });
    }
    let resolved = pod_profile::materialize_child(
        catalog,
        &parent,
        &args.parent_id,
        &args.child,
        &request,
        &config_env(),
    )
    .map_err(config_failure)?;
    if args.json {
        return emit(&to_json(&resolved)?);
    }
    emit(&render_manifest(&resolved)?)
}

#[derive(Serialize)]
struct Checked {
    target: String,
    path: Option<String>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn validate(catalog: &Catalog, args: ValidateArgs) -> CmdResult {
    let targets: Vec<String> = if args.targets.is_empty() {
        catalog.entries().map(|e| e.name.clone()).collect()
    } else {
        args.targets.clone()
    };
    let plain = Overrides {
        sets: Vec::new(),
        env: config_env(),
        model: None,
    };
    let mut checked = Vec::new();
    for target in targets {
        let as_path = Path::new(&target);
        let is_path = target.ends_with(".toml") || target.contains(std::path::MAIN_SEPARATOR);
        let (path, result) = if is_path {
            (
                Some(target.clone()),
                catalog.resolve_file(as_path, &plain).map(|_| ()),
            )
        } else {
            let path = catalog
                .get(&target)
                .map(|e| e.source.path.display().to_string());
            (path, catalog.resolve(&target, &plain).map(|_| ()))
        };
        checked.push(match result {
            Ok(()) => Checked {
                target,
                path,
                ok: true,
                error: None,
                hint: None,
            },
            Err(err) => Checked {
                target,
                path,
                ok: false,
                hint: err.hint(),
                error: Some(error_text(&err)),
            },
        });
    }
    let failed = checked.iter().filter(|c| !c.ok).count();
    if args.json {
        emit(&to_json(&checked)?)?;
    } else {
        let mut out = String::new();
        for c in checked.iter().filter(|c| c.ok) {
            out.push_str(&format!(
                "ok  {}{}\n",
                c.target,
                c.path
                    .as_ref()
                    .filter(|p| *p != &c.target)
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ));
        }
        emit(&out)?;
        for c in checked.iter().filter(|c| !c.ok) {
            out::stderr(&format!(
                "error: {}: {}\n",
                c.target,
                c.error.as_deref().unwrap_or("")
            ));
            if let Some(hint) = &c.hint {
                out::stderr(&format!("hint: {hint}\n"));
            }
        }
    }
    if failed > 0 {
        return Err(Failure::usage(format!(
            "{failed} of {} profiles are invalid",
            checked.len()
        )));
    }
    Ok(Exit::Success)
}

/// A provenance for people: "set by profiles/debug.toml:5 (extended by coder.toml)",
/// "inherited from parent P ← set by …".
fn describe(provenance: &Provenance, key: &str) -> String {
    let detail = provenance.detail.replacen(&format!(": {key}"), "", 1);
    match provenance.kind {
        SourceKind::Default | SourceKind::SchemeDefault => detail,
        SourceKind::CommandLine => format!("set on the command line ({detail})"),
        SourceKind::Unknown => "unknown source (not recorded)".to_owned(),
        SourceKind::Env => format!("set by environment variable {detail}"),
        SourceKind::Parent => match &provenance.from {
            Some(from) => format!("{detail} ← {}", describe(from, key)),
            None => format!("{detail} ← unknown source"),
        },
        _ => format!("set by {detail}"),
    }
}

fn render_manifest(resolved: &ResolvedManifest) -> Result<String, Failure> {
    let leaves = pod_profile::schema::flatten(&resolved.manifest)
        .map_err(|err| Failure::run_failed(ProfileError::Render(err)))?;
    // Sections in the order the manifest declares them.
    let order = ["model", "agent", "scope", "session", "spawn", "limits"];
    let rank = |key: &str| {
        let section = key.split_once('.').map_or(key, |(s, _)| s);
        order
            .iter()
            .position(|s| *s == section)
            .unwrap_or(order.len())
    };
    let mut keys: Vec<(&String, &Provenance)> = resolved.provenance.iter().collect();
    keys.sort_by_key(|(key, _)| rank(key));
    let mut out = String::new();
    let mut section = "";
    for (key, provenance) in keys {
        let (this_section, name) = key.split_once('.').unwrap_or((key.as_str(), ""));
        if this_section != section {
            if !section.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{this_section}]\n"));
            section = this_section;
        }
        let value = leaves
            .get(key)
            .map(ToString::to_string)
            .unwrap_or_else(|| "(unset)".to_owned());
        out.push_str(&format!(
            "{name} = {value}\n    # {}: {}\n",
            kind_name(provenance.kind),
            describe(provenance, key)
        ));
    }
    Ok(out)
}

fn kind_name(kind: SourceKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|err| Failure::run_failed(format!("cannot render JSON: {err}")))
}

/// Write data to stdout; a closed pipe (`pods profile list | head`) ends quietly.
fn emit(text: &str) -> CmdResult {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(Exit::Success),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(err) => Err(Failure::run_failed(format!(
            "cannot write to stdout: {err}"
        ))),
    }
}
