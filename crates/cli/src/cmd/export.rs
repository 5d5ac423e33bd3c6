use clap::Args;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct ExportArgs {}

pub fn run(_global: &GlobalArgs, _args: ExportArgs) -> CmdResult {
    Err(Failure::usage("`pods export` is not available yet"))
}
