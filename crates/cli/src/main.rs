//! `pods`: the command line of the pods agent runtime.
//!
//! This binary only parses arguments and presents results; the behaviour lives in the library
//! crates (`pod-profile`, `pod-provider`, `pod-trace`, `pod-core`, `pod-export`, `pod-telemetry`).

mod cmd;
mod failure;
mod global;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::global::GlobalArgs;

/// Run LLM agents ("pods") from profiles, with durable session logs, trace sidecars and
/// lifecycle-aware exports.
///
/// Exit codes: 0 success, 1 the run failed (for `pods run` / `resume`: also an answer that is
/// incomplete, e.g. cut at the output-token limit), 2 usage or configuration error, 130
/// interrupted. Set RUST_LOG (e.g. RUST_LOG=pod_core=debug) for diagnostic logging on stderr
/// (coloured only on a terminal, never with NO_COLOR set).
#[derive(Debug, Parser)]
#[command(name = "pods", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pod in the foreground from a profile and stream its output.
    Run(cmd::run::RunArgs),
    /// List pods as a tree (id, name, profile, state, last run outcome).
    Ls(cmd::pods::LsArgs),
    /// Show one pod: identity, manifest summary, runs.
    Show(cmd::pods::ShowArgs),
    /// Print a pod's conversation, run by run (with --tree its descendants' too).
    Log(cmd::log::LogArgs),
    /// Stop a pod (and with --tree its descendants), recording the stop's origin.
    Stop(cmd::pods::StopArgs),
    /// Remove a pod that is not running (and with --tree its descendants) from the home.
    Rm(cmd::pods::RmArgs),
    /// Remove finished pod trees from the home (--older-than, --keep, --dry-run).
    Prune(cmd::pods::PruneArgs),
    /// Start a new run in an existing pod.
    Resume(cmd::run::ResumeArgs),
    /// Render a pod's trace sidecars: stream events and lifecycle markers.
    Trace(cmd::trace::TraceArgs),
    /// Export a pod's (or a tree's) sessions to one document.
    Export(cmd::export::ExportArgs),
    /// Send a pod tree's runs to an OpenTelemetry backend as GenAI spans.
    #[command(subcommand)]
    Telemetry(cmd::telemetry::TelemetryCommand),
    /// Inspect and validate profiles and the manifests they resolve to.
    #[command(subcommand)]
    Profile(cmd::profile::ProfileCommand),
    /// Provider tools: run recorded streams through the real adapters, turn traced runs into cassettes.
    #[command(subcommand)]
    Provider(cmd::provider::ProviderCommand),
    /// Check the environment: home directory, profiles, API key variables, shell confinement.
    Doctor(cmd::doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::docs::CompletionsArgs),
    /// Print the man page, every command included (roff; e.g. `pods man > pods.1`).
    Man(cmd::docs::ManArgs),
    /// Serve one pod from its pod directory (used by a parent pod to launch a child).
    #[command(hide = true)]
    Serve(cmd::run::ServeArgs),
    /// Run a command confined with Landlock (used by the `shell` tool).
    #[command(hide = true)]
    SandboxExec(cmd::sandbox::SandboxExecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // No tool of a pod this process runs may touch where profiles and config come from.
    pod_core::scope::protect_discovery(&cli.global.discovery());
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(&cli.global, args),
        Command::Ls(args) => cmd::pods::ls(&cli.global, args),
        Command::Show(args) => cmd::pods::show(&cli.global, args),
        Command::Log(args) => cmd::log::run(&cli.global, args),
        Command::Stop(args) => cmd::pods::stop(&cli.global, args),
        Command::Rm(args) => cmd::pods::rm(&cli.global, args),
        Command::Prune(args) => cmd::pods::prune(&cli.global, args),
        Command::Resume(args) => cmd::run::resume(&cli.global, args),
        Command::Trace(args) => cmd::trace::run(&cli.global, args),
        Command::Export(args) => cmd::export::run(&cli.global, args),
        Command::Telemetry(command) => cmd::telemetry::run(&cli.global, command),
        Command::Profile(command) => cmd::profile::run(&cli.global, command),
        Command::Provider(command) => cmd::provider::run(&cli.global, command),
        Command::Doctor(args) => cmd::doctor::run(&cli.global, args),
        Command::Completions(args) => cmd::docs::completions(Cli::command(), args),
        Command::Man(_) => cmd::docs::man(Cli::command()),
        Command::Serve(args) => cmd::run::serve(&cli.global, args),
        Command::SandboxExec(args) => cmd::sandbox::run(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => failure.report(),
    }
}

/// Diagnostic logging goes to stderr, filtered by `RUST_LOG` (default: warnings only).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only for a person at a terminal, and never when NO_COLOR is set (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(true)
        .init();
}
