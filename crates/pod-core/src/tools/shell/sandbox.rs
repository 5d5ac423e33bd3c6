//! Confining a `shell` command with Landlock (Linux).
//!
//! The workspace allows no `unsafe`, so the command cannot be confined between `fork` and
//! `exec` in this process. Instead the tool runs `pods sandbox-exec --write PATH… [--no-network]
//! -- PROGRAM ARGS…`: that process restricts itself with [`Confinement::apply`] and then
//! replaces itself with the command ([`exec`]), which inherits the restrictions, as do all of
//! its children.
//!
//! What is confined, where the kernel supports it:
//! - **writes** (creating, writing, truncating, removing, renaming, linking files) only beneath
//!   the `--write` paths: the scope's allowed roots, a private temporary directory and
//!   `/dev/null`. Landlock only grants: it cannot take back a right below a granted directory,
//!   so `scope.deny` entries and protected directories (a project's `.pods`, a pods home) that
//!   lie inside an allowed root are writable by a command;
//! - **TCP** `bind` and `connect` (Landlock ABI 4) unless the network is allowed, and then also
//!   connections to abstract UNIX sockets made outside the sandbox (ABI 6);
//! - **signals** to processes outside the sandbox, such as the pod itself (ABI 6).
//!
//! Not confined: reads (programs need the system's files; the scope's read limits bind the
//! file tools only), UDP, pathname UNIX sockets, and anything the kernel's Landlock predates
//! ([`Support`] says which).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, AccessFs, AccessNet, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The newest Landlock ABI whose restrictions the sandbox uses (Linux 6.12). A kernel with
/// an older one enforces part of them, which [`Support`] names.
const TARGET_ABI: ABI = ABI::V6;

/// The first Landlock ABI that restricts TCP (Linux 6.7).
const NETWORK_ABI: u32 = 4;
/// The first Landlock ABI that restricts signals and abstract UNIX sockets (Linux 6.12).
const SCOPE_ABI: u32 = 6;
/// The first Landlock ABI that restricts truncating files (Linux 6.2).
const TRUNCATE_ABI: u32 = 3;

/// What a command may do once confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// Directories the command may write beneath, and single files it may write.
    pub write: Vec<PathBuf>,
    /// Whether TCP `bind` and `connect` stay allowed.
    pub network: bool,
}

/// Why a command could not be confined or started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot confine the command with Landlock")]
    Landlock(#[source] landlock::RulesetError),
    #[error("cannot open {} to allow writes beneath it", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: landlock::PathFdError,
    },
    #[error("no command to run")]
    NoCommand,
    #[error("cannot run `{}`", program.to_string_lossy())]
    Exec {
        program: OsString,
        #[source]
        source: std::io::Error,
    },
}

impl Confinement {
    /// The arguments of `pods sandbox-exec` that apply this confinement, up to the `--` that
    /// precedes the command.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = vec![OsString::from("sandbox-exec")];
        for path in &self.write {
            args.push("--write".into());
            args.push(path.into());
        }
        if !self.network {
            args.push("--no-network".into());
        }
        args.push("--".into());
        args
    }

    /// Restrict this thread (and whatever it executes afterwards) to this confinement, as far
    /// as the kernel supports. Paths that do not exist are skipped: nothing can be written
    /// beneath them anyway.
    pub fn apply(&self) -> Result<Support, SandboxError> {
        let write = AccessFs::from_write(TARGET_ABI);
        let mut ruleset = Ruleset::default()
            .handle_access(write)
            .map_err(SandboxError::Landlock)?
            .scope(Scope::Signal)
            .map_err(SandboxError::Landlock)?;
        if !self.network {
            ruleset = ruleset
                .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
                .map_err(SandboxError::Landlock)?
                .scope(Scope::AbstractUnixSocket)
                .map_err(SandboxError::Landlock)?;
        }
        let mut created = ruleset.create().map_err(SandboxError::Landlock)?;
        for path in &self.write {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            // A rule on a file may only grant what applies to files.
            let access = if meta.is_dir() {
                write
            } else {
                write & AccessFs::from_file(TARGET_ABI)
            };
            let fd = PathFd::new(path).map_err(|source| SandboxError::Open {
                path: path.clone(),
                source,
            })?;
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(SandboxError::Landlock)?;
        }
        let status = created.restrict_self().map_err(SandboxError::Landlock)?;
        Ok(Support::from_status(status.landlock, &status.ruleset))
    }
}

/// Confine this process as `confinement` says, then replace it with `command` (program and
/// arguments). Returns only when that failed.
pub fn exec(confinement: &Confinement, command: &[OsString]) -> SandboxError {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = command.split_first() else {
        return SandboxError::NoCommand;
    };
    if let Err(error) = confinement.apply() {
        return error;
    }
    let source = std::process::Command::new(program).args(args).exec();
    SandboxError::Exec {
        program: program.clone(),
        source,
    }
}

/// How much of the confinement this kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// The Landlock ABI in use (the kernel's, or the newest this build knows), `None` when
    /// the kernel has no Landlock or it is not enabled.
    pub abi: Option<u32>,
    /// Landlock is built into the kernel but switched off (boot parameter `lsm=`).
    pub disabled: bool,
}

impl Support {
    /// What this kernel supports. The `landlock` crate reports the kernel's Landlock only as
    /// the result of enforcing a ruleset, so one is enforced on a thread of its own that does
    /// nothing else and ends: the rest of the process stays unrestricted.
    pub fn probe() -> Support {
        let probe = std::thread::spawn(|| {
            Confinement {
                write: Vec::new(),
                network: false,
            }
            .apply()
        });
        match probe.join() {
            Ok(Ok(support)) => support,
            _ => Support {
                abi: None,
                disabled: false,
            },
        }
    }

    fn from_status(landlock: LandlockStatus, ruleset: &RulesetStatus) -> Support {
        match (landlock, ruleset) {
            (LandlockStatus::Available { effective_abi, .. }, status)
                if *status != RulesetStatus::NotEnforced =>
            {
                Support {
                    abi: Some(effective_abi as u32),
                    disabled: false,
                }
            }
            (LandlockStatus::NotEnabled, _) => Support {
                abi: None,
                disabled: true,
            },
            _ => Support {
                abi: None,
                disabled: false,
            },
        }
    }

    /// Whether writes outside the allowed paths are refused.
    pub fn confines_writes(&self) -> bool {
        self.abi.is_some()
    }

    /// Whether TCP can be denied.
    pub fn confines_network(&self) -> bool {
        self.abi.is_some_and(|abi| abi >= NETWORK_ABI)
    }

    /// Whether signals to processes outside the sandbox are refused.
    pub fn confines_signals(&self) -> bool {
        self.abi.is_some_and(|abi| abi >= SCOPE_ABI)
    }

    /// What a command run with `network` allowed or not is *not* confined in, for the tool
    /// result: `None` when everything the sandbox restricts is enforced.
    pub fn gaps(&self, network: bool) -> Option<String> {
        let Some(abi) = self.abi else {
            let why = if self.disabled {
                "Landlock is built into this kernel but not enabled"
            } else {
                "this kernel has no Landlock"
            };
            return Some(format!(
                "not confined: {why}; the command can write anywhere this user can{}",
                if network { "" } else { " and use the network" }
            ));
        };
        let mut missing = Vec::new();
        if abi < TRUNCATE_ABI {
            missing.push("truncating files outside the scope");
        }
        if !network && abi < NETWORK_ABI {
            missing.push("the network");
        }
        if abi < SCOPE_ABI {
            missing.push("signals to other processes");
        }
        (!missing.is_empty()).then(|| {
            format!(
                "partly confined (Landlock ABI {abi}): writes are confined to the scope, but not {}",
                missing.join(", ")
            )
        })
    }

    /// One line for `pods doctor`.
    pub fn describe(&self) -> String {
        match self.abi {
            None if self.disabled => "not available: Landlock is built into this kernel but not enabled (add `landlock` to the `lsm=` boot parameter); shell commands run unconfined".into(),
            None => "not available: this kernel has no Landlock; shell commands run unconfined".into(),
            Some(abi) => format!(
                "Landlock ABI {abi}: writes confined to the scope{}{}",
                if self.confines_network() {
                    ", network denied unless agent.shell_network"
                } else {
                    "; network not restricted (needs ABI 4, Linux 6.7)"
                },
                if self.confines_signals() {
                    ", signals to other processes refused"
                } else {
                    "; signals not restricted (needs ABI 6, Linux 6.12)"
                },
            ),
        }
    }
}

/// The paths a command may write: the scope's allowed roots `allow`, its private temporary
/// directory `tmp` and `/dev/null`.
pub(super) fn writable_paths(allow: &[PathBuf], tmp: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = allow.to_vec();
    paths.push(tmp.to_owned());
    paths.push(PathBuf::from("/dev/null"));
    paths
}
