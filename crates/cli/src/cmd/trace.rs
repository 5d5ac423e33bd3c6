use clap::Args;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct TraceArgs {}

pub fn run(_global: &GlobalArgs, _args: TraceArgs) -> CmdResult {
    Err(Failure::usage("`pods trace` is not available yet"))
}
