//! The per-pod control socket: a Unix socket (mode 0600) in a private per-user directory,
//! JSON Lines in both directions.
//!
//! Where it lives: `$XDG_RUNTIME_DIR/pods/` when that is usable, else `/tmp/pods-<uid>/` (each
//! `0700` and owned by the user, checked before use), named after the pod id and a digest of the
//! pod directory's path, so the socket path stays within the kernel's `sun_path` limit
//! ([`MAX_SOCKET_PATH`]) however long the pods home is. The pod directory records where it is:
//! `control.sock` there is a symbolic link to the socket ([`locate_socket`]). Pods written by
//! older versions have the socket itself as `control.sock`; clients connect to that as before.
//! Sockets in the directory that nobody serves any more are removed when a pod binds its own.
//!
//! Wire format (one JSON object per line):
//! - request: `{"id": "…", "client": {"type": "cli", "command": "pods stop …"}, "method": "stop",
//!   "params": {"reason": "…"}}`; `client.type` is `cli`, `parent_pod` (`pod_id`, optional
//!   `tool_call_id`) or `other` (`name`);
//! - reply: `{"id": "…", "ok": true, "result": …}` or `{"id": "…", "ok": false, "error":
//!   {"code": "…", "message": "…"}}` (`id` is `null` when the request line had none);
//! - event (after a `subscribe`): `{"event": "run_started" | "turn_ended" | "run_ended" |
//!   "run_failed" | "exiting" | "approval_requested" | "lagged", …}`; `run_ended` carries the result (completed text,
//!   the structured provider error, or the interrupting action) and the `request_id` of the
//!   `run` request that started it.
//!
//! Methods: `run {input}`; the lifecycle actions `cancel`, `stop`, `stop_tree`, `shutdown`,
//! `parent_exit`, `reload` (each `{reason?, caused_by?}`; a parent cascading its own action sends
//! `caused_by`); `status`; `subscribe`; `approve {ask_id, allow, for_pod, source, detail}`, the
//! answer to an `approval_requested` event, taken only from the verified parent. The idle watchdog is internal to a pod and has no method.
//! A malformed line gets an error reply; the connection and the server go on.
//!
//! **Claims are checked.** A client saying it is this pod's parent (`parent_pod`), and any
//! request carrying a `caused_by` link, is believed only when the peer's credentials
//! (`SO_PEERCRED`) show the process `pod.json`'s `parent_id` names: same uid, and the pid the
//! parent's own `pod.json` records. Otherwise the action's origin is recorded as
//! [`Origin::Unverified`](crate::record::Origin::Unverified) with the claim, the peer's pid and
//! uid and what did not match, and a run it starts gets a `control_request` trigger saying the
//! claim is unverified.
//!
//! The parts: the messages are `pod_protocol::control` (data only), `location` is where the
//! socket lives,
//! `server` binds it and serves connections, `incoming` is a request as the pod receives it
//! (with the claim checks), and `client` is the other end.

mod client;
mod incoming;
mod location;
mod server;

use pod_protocol::control as wire;

pub use client::{ControlClient, StopOutcome, stop_pod};
pub(crate) use incoming::Incoming;
pub use location::{
    CONTROL_SOCKET, MAX_SOCKET_NAME, MAX_SOCKET_PATH, check_socket_dir, locate_socket, socket_dir,
    socket_name,
};
pub(crate) use server::ControlServer;
pub use wire::{
    ActionParams, ApprovalAnswer, ApprovalAsk, Call, ClientInfo, PodEvent, ReplyError, RunParams,
    RunResult,
};

/// The client the tests speak as: a command line.
#[cfg(test)]
fn cli_client() -> ClientInfo {
    ClientInfo::Cli {
        command: "pods stop test".into(),
    }
}
