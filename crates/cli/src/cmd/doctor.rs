use clap::Args;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct DoctorArgs {}

pub fn run(_global: &GlobalArgs, _args: DoctorArgs) -> CmdResult {
    Err(Failure::usage("`pods doctor` is not available yet"))
}
