//! Options every command accepts.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Where pods keep their directories [default: the platform state dir, e.g.
    /// ~/.local/state/pods].
    #[arg(long, global = true, env = "PODS_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Extra directory to find profiles in; takes precedence over project, user and builtin
    /// profiles. Repeatable: a later directory wins over an earlier one.
    #[arg(long = "profile-dir", global = true, value_name = "DIR")]
    pub profile_dirs: Vec<PathBuf>,
}
