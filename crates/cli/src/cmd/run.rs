use clap::Args;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct RunArgs {}

#[derive(Debug, Args)]
pub struct ResumeArgs {}

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub fn run(_global: &GlobalArgs, _args: RunArgs) -> CmdResult {
    Err(Failure::usage("`pods run` is not available yet"))
}

pub fn resume(_global: &GlobalArgs, _args: ResumeArgs) -> CmdResult {
    Err(Failure::usage("`pods resume` is not available yet"))
}

pub fn serve(_global: &GlobalArgs, _args: ServeArgs) -> CmdResult {
    Err(Failure::usage("`pods serve` is not available yet"))
}
