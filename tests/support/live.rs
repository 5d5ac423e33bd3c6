//! Pods started in the background and held mid-run (their streams pause for a minute), for
//! tests that act on a running pod or tree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::control::wait_streaming;
use crate::support::{Background, Sandbox, home, wait_until};

/// Run project profile `solo` with `prompt` in the background and wait until it streams.
pub fn start_solo(sandbox: &Sandbox, prompt: &str) -> (Background, PathBuf) {
    let proc = sandbox.spawn(&["run", "-p", "solo", prompt], "solo");
    let dir = wait_until("the pod dir", Duration::from_secs(10), || {
        sandbox.root_pod()
    });
    wait_streaming(&dir);
    (proc, dir)
}

/// Run project profile `parent` (which spawns two holding children) with `cmd`, a `pods`
/// command using the pods home `home`, and wait until both children stream.
pub fn start_tree(
    sandbox: &Sandbox,
    cmd: Command,
    home: &Path,
) -> (Background, PathBuf, Vec<PathBuf>) {
    let proc = sandbox.spawn_command(cmd, &["run", "-p", "parent", "build a tree"], "parent");
    let parent = wait_until("the parent dir", Duration::from_secs(10), || {
        home::root_pod(home)
    });
    let kids = wait_until("two children", Duration::from_secs(20), || {
        let kids = home::children_of(home, &parent);
        (kids.len() == 2).then_some(kids)
    });
    for kid in &kids {
        wait_streaming(kid);
    }
    (proc, parent, kids)
}
