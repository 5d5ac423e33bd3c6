use clap::Subcommand;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List every profile found, which file won and what it shadows.
    List,
}

pub fn run(_global: &GlobalArgs, _command: ProfileCommand) -> CmdResult {
    Err(Failure::usage("`pods profile` is not available yet"))
}
