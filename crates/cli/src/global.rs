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

impl GlobalArgs {
    /// Where to look for profiles: the working directory (for `.pods/`), the user config dir
    /// (`$XDG_CONFIG_HOME/pods`, else `~/.config/pods`) and the `--profile-dir`s.
    pub fn discovery(&self) -> pod_profile::Discovery {
        pod_profile::Discovery {
            cwd: std::env::current_dir().unwrap_or_default(),
            user_config_dir: pod_profile::Discovery::user_config_dir_from_env(),
            profile_dirs: self.profile_dirs.clone(),
        }
    }
}

/// The environment layer of profile resolution: every `PODS_*` variable of this process except
/// the reserved `PODS_HOME` (pod-profile itself only reads `PODS_SECTION__KEY` names).
pub fn config_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| name.starts_with("PODS_") && name != "PODS_HOME")
        .collect()
}
