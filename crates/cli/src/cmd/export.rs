//! `pods export`: one document for a pod (or a tree) — presentation only; the work is in
//! `pod-export`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use pod_export::{
    ExportError, ExportRequest, Format, Progress, key_env_names, merge_recorded, prepare,
    render_checked, sanitize, secrets_from, secrets_recorded, upgrade, write_file_atomically,
    write_stdout_checked,
};

use crate::failure::{CmdResult, Exit, Failure};
use crate::global::GlobalArgs;

/// Export what happened to a pod's runs: outcomes, incident chains (who or what interrupted a
/// run), crash evidence, retry safety and log integrity, as one versioned document. The
/// Markdown report adds each pod's transcript (as `pods log` shows it; under `--sanitize` only
/// its counts).
///
/// Works on any pod — running, stopped, failed or crashed — from its files alone. The export
/// refuses (exit 1, nothing written) if the document would contain the value of an API key
/// variable set in this environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, … and every manifest's
/// model.api_key_env), or a key any pod of the home ran with (recognised from the print in its
/// keys.json, so the check holds in a shell without the variable). `-o FILE` is written 0600.
///
/// Examples:
///   pods export 0193a1b2 --tree -o incident.json
///   pods export coder --sanitize --format markdown
///   pods export --upgrade old-export.json
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The pod: its id, a unique prefix of its id, or its name (the newest pod with that name).
    #[arg(required_unless_present = "upgrade", conflicts_with = "upgrade")]
    pod: Option<String>,

    /// Include every descendant pod (children, their children, …).
    #[arg(long, conflicts_with = "upgrade")]
    tree: bool,

    /// Replace prompts, model output, tool inputs, free-text messages and paths with stable
    /// placeholders ([redacted:<kind>:<n>]; paths hashed); ids, times, classes, codes, counts
    /// and tool names are kept.
    #[arg(long)]
    sanitize: bool,

    /// Write to FILE (atomically: complete or not at all) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Output format: the JSON document, or a Markdown report for people.
    #[arg(long, value_enum, default_value_t = FormatArg::Json)]
    format: FormatArg,

    /// Re-emit an export document written by an earlier pods (any known schema) in the
    /// current schema, instead of exporting a pod.
    #[arg(long, value_name = "FILE")]
    upgrade: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Json,
    Markdown,
    /// OpenTelemetry spans as an OTLP JSON `ExportTraceServiceRequest` (what `pods telemetry
    /// push` sends; content left out).
    Otlp,
}

pub fn run(global: &GlobalArgs, args: ExportArgs) -> CmdResult {
    let format = match args.format {
        FormatArg::Json => Format::Json,
        FormatArg::Markdown => Format::Markdown,
        FormatArg::Otlp => return otlp(global, &args),
    };
    enum Source {
        /// An older document, upgraded in memory (it was read whole anyway).
        Upgraded(Box<pod_export::ExportDocument>),
        /// Pod files, exported as they are read.
        Pods(pod_export::ExportPlan),
    }
    let (source, secrets) = if let Some(path) = &args.upgrade {
        let bytes = std::fs::read(path).map_err(|source| {
            Failure::usage(ExportError::ReadFile {
                path: path.clone(),
                source,
            })
        })?;
        let mut doc = upgrade(&bytes, path).map_err(failure)?;
        if args.sanitize {
            sanitize(&mut doc);
        }
        let mut secrets = secrets_from(&key_env_names(&doc), |name| std::env::var(name).ok());
        if let Ok(home) = pod_core::PodHome::resolve(global.home.as_deref()) {
            merge_recorded(
                &mut secrets,
                secrets_recorded(home.root()).map_err(failure)?,
            );
        }
        (Source::Upgraded(Box::new(doc)), secrets)
    } else {
        let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
        let request = ExportRequest {
            home: home.root().to_path_buf(),
            pod: args.pod.clone().unwrap_or_default(),
            tree: args.tree,
            sanitize: args.sanitize,
        };
        let plan = prepare(&request).map_err(failure)?;
        let mut secrets = secrets_from(&plan.key_env_names(), |name| std::env::var(name).ok());
        // The keys the pods ran with, recognised from their prints: the check does not depend
        // on this shell having the variables.
        merge_recorded(
            &mut secrets,
            secrets_recorded(home.root()).map_err(failure)?,
        );
        (Source::Pods(plan), secrets)
    };
    // The document goes through the secret check into a temporary file as it is built; it
    // reaches FILE or stdout only once it is complete and clean.
    let write = |out: &mut dyn Write| -> Result<(), ExportError> {
        match source {
            Source::Upgraded(mut doc) => {
                let bytes = render_checked(&mut doc, format, &secrets)?;
                out.write_all(&bytes).map_err(ExportError::Render)
            }
            Source::Pods(plan) => {
                let mut stderr = std::io::stderr();
                plan.write_to(format, &secrets, out, &mut |progress| {
                    report(&mut stderr, &progress)
                })?;
                Ok(())
            }
        }
    };
    let result = match &args.output {
        Some(path) => write_file_atomically(path, write),
        None => {
            let mut stdout = std::io::stdout().lock();
            match write_stdout_checked(&mut stdout, write) {
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                Err(ExportError::WriteFile { path, source })
                    if path.as_os_str() == "<stdout>"
                        && source.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    Ok(())
                }
                other => other,
            }
        }
    };
    result.map_err(|error| match error {
        ExportError::WriteFile { .. } | ExportError::Render(_) if args.output.is_some() => {
            failure(error).with_hint("the output file was not written")
        }
        other => failure(other),
    })?;
    Ok(Exit::Success)
}

/// `--format otlp`: the spans `pods telemetry push` would send, checked for keys like every
/// export, written whole or not at all.
fn otlp(global: &GlobalArgs, args: &ExportArgs) -> CmdResult {
    let Some(pod) = &args.pod else {
        return Err(Failure::usage(
            "--format otlp exports a pod's spans; it cannot re-emit a document given with --upgrade",
        )
        .with_hint("drop --upgrade and name the pod"));
    };
    let home = pod_core::PodHome::resolve(global.home.as_deref()).map_err(Failure::usage)?;
    let checked = super::telemetry::read_checked(home.root(), pod, args.tree, false)?;
    let write = |out: &mut dyn Write| -> Result<(), ExportError> {
        out.write_all(&checked.json).map_err(ExportError::Render)
    };
    let result = match &args.output {
        Some(path) => write_file_atomically(path, write),
        None => write_stdout_checked(&mut std::io::stdout().lock(), write),
    };
    match result {
        Err(ExportError::WriteFile { path, source })
            if path.as_os_str() == "<stdout>"
                && source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(Exit::Success)
        }
        other => other.map(|()| Exit::Success).map_err(failure),
    }
}

fn report(stderr: &mut std::io::Stderr, progress: &Progress) {
    // Progress is for people; failing to print it must not fail the export.
    let _ = match progress {
        Progress::Pods { total } => writeln!(stderr, "exporting {total} pod(s)"),
        Progress::LogScanned { pod_id, log, bytes } => {
            writeln!(stderr, "  read {pod_id}/{log} ({bytes} bytes)")
        }
        Progress::LogUnreadable { pod_id, log, error } => writeln!(
            stderr,
            "  could not read {pod_id}/{log}: {error} (recorded in the export's integrity)"
        ),
        _ => Ok(()),
    };
}

pub(crate) fn failure(error: ExportError) -> Failure {
    match error {
        ExportError::PodNotFound { .. } => {
            Failure::usage(error).with_hint("`pods ls` lists the pods in this home")
        }
        ExportError::NoPodsDir { .. } => {
            Failure::usage(error).with_hint("pass --home (or set PODS_HOME) to the pods home")
        }
        ExportError::AmbiguousPod { .. } => {
            Failure::usage(error).with_hint("give more of the pod id")
        }
        ExportError::NotADocument { .. }
        | ExportError::WrongFormat { .. }
        | ExportError::UnknownSchema { .. } => Failure::usage(error),
        ExportError::SecretInOutput { .. } => Failure::run_failed(error).with_hint(
            "a pod file holds an API key value; find it with `grep -r` under the pod directory \
             and remove it before exporting",
        ),
        other => Failure::run_failed(other),
    }
}
