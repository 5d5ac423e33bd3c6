//! `pods serve`: host a child pod for the parent that spawned it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use pod_core::launch::{HostAbort, Launch, PodSource};
use pod_core::{PodDir, PodHome};

use super::outcome::PodFailed;
use super::{
    MANIFEST_EDITED_HINT, existing_pod_children, finish_runtime, launch_failure, pod_work_dir,
    profile_failure, runtime,
};
use crate::failure::{CmdResult, Exit, Failure};
use crate::global::GlobalArgs;

/// Serve one pod from a directory its parent wrote (manifest.toml, provenance.json, pod.json):
/// bind its control socket, print a readiness line on stdout, run the tasks it is sent, and stop
/// when told to, on SIGTERM/SIGINT/SIGHUP, or when the parent closes this process's stdin.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The pod directory to serve.
    #[arg(long, value_name = "DIR")]
    pub pod_dir: PathBuf,
}

pub fn serve(global: &GlobalArgs, args: ServeArgs) -> CmdResult {
    pod_core::lifecycle::start_process_clock();
    let dir = PodDir::open(&args.pod_dir);
    let info = dir.read_info().map_err(Failure::usage)?;
    let resolved = pod_profile::read_manifest_files(dir.path()).map_err(profile_failure)?;
    pod_core::vouch_manifest(&dir, &resolved.manifest)
        .map_err(|e| Failure::usage(e).with_hint(MANIFEST_EDITED_HINT))?;
    let cwd = pod_work_dir(&dir, info.work_dir.as_deref())?;
    // The pod dir is `<home>/pods/<id>`; children go next to it.
    let home = args
        .pod_dir
        .parent()
        .and_then(std::path::Path::parent)
        .map(PodHome::at)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{} is not inside a pods home",
                args.pod_dir.display()
            ))
        })?;
    // A served pod's parent hears of its children through the control socket.
    let children = existing_pod_children(global, &cwd, &resolved, home, Arc::new(pod_core::Quiet))?;
    let key_var = pod_core::api_key_var(&resolved.manifest);
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let launch = Launch {
            pod: PodSource::Existing(dir),
            resolved,
            work_dir: cwd,
            children,
            for_parent: true,
            // A served pod asks its parent; this is never used.
            approver: Arc::new(pod_core::approval::Unattended::default()),
            traceparent: super::trace_context::traceparent_from_env(),
        };
        let launched = launch
            .start()
            .await
            .map_err(|error| launch_failure(error, key_var))?;
        let end = launched.serve().await.map_err(Failure::run_failed)?;
        tracing::debug!(action = ?end.action.as_ref().map(|a| a.kind), "pod served");
        match end.abort {
            Some(HostAbort::TaskFailed { detail }) => Err(Failure::run_failed(PodFailed(detail))),
            Some(HostAbort::Forced { .. }) => Ok(Exit::Interrupted),
            None => Ok(Exit::Success),
        }
    });
    finish_runtime(runtime);
    result
}
