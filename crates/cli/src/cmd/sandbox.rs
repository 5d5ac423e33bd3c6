//! `pods sandbox-exec` (hidden): confine this process with Landlock, then become the command.
//! The `shell` tool runs its commands through it (see `pod_core::tools::shell::sandbox`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use pod_core::tools::shell::sandbox::{self, Confinement};

use crate::failure::{CmdResult, Failure};

/// Run a command confined: writes only beneath the `--write` paths, and no TCP with
/// `--no-network` (as far as the kernel's Landlock supports).
#[derive(Debug, Args)]
pub struct SandboxExecArgs {
    /// A directory the command may write beneath, or a file it may write (repeatable).
    #[arg(long = "write", value_name = "PATH")]
    pub write: Vec<PathBuf>,
    /// Deny TCP bind and connect.
    #[arg(long)]
    pub no_network: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Returns only when the command could not be confined or started.
pub fn run(args: SandboxExecArgs) -> CmdResult {
    let confinement = Confinement {
        write: args.write,
        network: !args.no_network,
    };
    Err(Failure::run_failed(sandbox::exec(
        &confinement,
        &args.command,
    )))
}
