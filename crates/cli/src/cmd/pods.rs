use clap::Args;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct LsArgs {}

#[derive(Debug, Args)]
pub struct ShowArgs {}

#[derive(Debug, Args)]
pub struct StopArgs {}

pub fn ls(_global: &GlobalArgs, _args: LsArgs) -> CmdResult {
    Err(Failure::usage("`pods ls` is not available yet"))
}

pub fn show(_global: &GlobalArgs, _args: ShowArgs) -> CmdResult {
    Err(Failure::usage("`pods show` is not available yet"))
}

pub fn stop(_global: &GlobalArgs, _args: StopArgs) -> CmdResult {
    Err(Failure::usage("`pods stop` is not available yet"))
}
