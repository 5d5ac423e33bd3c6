use clap::Subcommand;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Run a recorded SSE body or HTTP response through the real adapter.
    Replay,
}

pub fn run(_global: &GlobalArgs, _command: ProviderCommand) -> CmdResult {
    Err(Failure::usage("`pods provider` is not available yet"))
}
