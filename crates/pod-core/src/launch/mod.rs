//! Launching a hosted pod, for `pods run` / `pods resume` and for `pods serve` alike: connect
//! its model, create its directory (a new pod), open its segment, give it its children, start
//! its MCP servers ([`McpServers`], stopped when hosting ends), bind its control socket and, for a pod its parent spawned, announce readiness ([`ReadyLine`]).
//! A step that fails undoes what the launch did: a started segment is closed as `failed`, and
//! the directory of a pod the launch created is removed, so no half-made pod stays in the home.
//! The launched pod is then hosted for one command-line run ([`Launched::run_once`]) or until
//! it is told to end ([`Launched::serve`]).

mod children;
mod ready;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pod_profile::ResolvedManifest;

use crate::approval::{Approvals, Approver};
use crate::children::ChildError;
use crate::children::Children;
use crate::control::ControlServer;
use crate::home::{PodDir, PodHome};
use crate::host::{Host, HostOptions};
use crate::model::ModelConnection;
use crate::record::PodInfo;
use crate::runtime::{Pod, PodOptions, RunInput, RunObserver};
use crate::telemetry::LiveTelemetry;
use crate::tools::mcp::McpServers;
use crate::{CoreError, RunControl, error_chain};

pub use crate::host::{HostAbort, HostEnd};
pub use children::ChildSetup;
pub use pod_protocol::ready::{Ready, ReadyLine};

/// A pod to launch and what it runs with.
pub struct Launch {
    pub pod: PodSource,
    /// The manifest it runs with: written to a new pod's directory, read from an existing one's.
    pub resolved: ResolvedManifest,
    /// The directory it works in: its scope resolves there, and a reload connects there.
    pub work_dir: PathBuf,
    /// What it needs to spawn children; its manifest decides whether it gets any.
    pub children: Option<ChildSetup>,
    /// Hosted for the parent pod that spawned it (`pods serve`): it announces readiness on
    /// stdout once its socket is bound, ends when the parent closes its stdin, and asks its
    /// parent to approve the tool calls `[permissions]` says to ask about.
    pub for_parent: bool,
    /// Decides the asks of a pod not hosted for a parent (a terminal prompt, `--approve`), and
    /// the asks its children forward.
    pub approver: Arc<dyn Approver>,
    /// The W3C trace context the process was started in (its `TRACEPARENT`, checked by the
    /// caller): recorded on the pod's runs and handed on to its children.
    pub traceparent: Option<String>,
}

/// Where the pod to launch comes from.
pub enum PodSource {
    /// A new pod in `home` from `profile`, named `name` (default: `PROFILE-<id tail>`).
    New {
        home: PodHome,
        name: Option<String>,
        profile: String,
    },
    /// A pod whose directory exists: one resumed, or a child its parent wrote.
    Existing(PodDir),
}

/// Why a launch failed.
#[derive(Debug)]
pub enum LaunchError {
    /// The model cannot be used as configured (a missing API key variable, a bad cassette):
    /// nothing was created or started.
    Connect(CoreError),
    /// The pod could not be created, started or hosted. What was started is closed again; a
    /// directory this launch created is removed, unless `leftover` says why it could not be.
    Start {
        error: StartError,
        leftover: Option<Leftover>,
    },
}

/// The step of a launch that failed after the model was connected.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pod(#[from] CoreError),
    #[error(transparent)]
    Socket(#[from] ChildError),
    #[error("cannot report readiness on stdout: {0}")]
    Ready(std::io::Error),
}

/// The directory of a pod whose launch failed, which could not be removed.
#[derive(Debug)]
pub struct Leftover {
    pub dir: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Connect(error) => error.fmt(f),
            LaunchError::Start { error, .. } => error.fmt(f),
        }
    }
}

impl std::error::Error for LaunchError {
    /// The causes of the underlying error: a launch error reads as the error of its step.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Connect(error) => error.source(),
            LaunchError::Start { error, .. } => error.source(),
        }
    }
}

impl Launch {
    /// Launch the pod; a failed launch leaves nothing of it running.
    pub async fn start(self) -> Result<Launched, LaunchError> {
        crate::lifecycle::start_process_clock();
        let Launch {
            pod,
            resolved,
            work_dir,
            children,
            for_parent,
            approver,
            traceparent,
        } = self;
        let model = ModelConnection::connect(&resolved.manifest, &work_dir)
            .await
            .map_err(LaunchError::Connect)?;
        let (dir, undo) = match pod {
            PodSource::New {
                home,
                name,
                profile,
            } => {
                let dir = home
                    .create_pod_in(name.as_deref(), &profile, None, &work_dir)
                    .map_err(|error| Undo::default().failed(CoreError::from(error)))?;
                let undo = Undo {
                    created: Some(dir.path().to_owned()),
                };
                if let Err(error) = pod_profile::write_manifest_files(dir.path(), &resolved) {
                    return Err(undo.failed(CoreError::from(error)));
                }
                (dir, undo)
            }
            PodSource::Existing(dir) => (dir, Undo::default()),
        };
        // Bound before the segment starts: a pod another process serves is refused without a
        // segment of its own, and a child's approver asks through this socket.
        let server = match ControlServer::bind(dir.path()).await {
            Ok(server) => server,
            Err(error) => return Err(undo.failed(error)),
        };
        let info = match dir.read_info() {
            Ok(info) => info,
            Err(error) => return Err(undo.failed(CoreError::from(error))),
        };
        let approvals = match (for_parent, &info.parent_id) {
            (true, Some(parent_id)) => Approvals::new(Arc::new(server.ask_parent(parent_id))),
            _ => Approvals::new(approver),
        };
        // Before the segment starts, so its first entry is exported too.
        let trace = crate::telemetry::tree_trace(&dir, &info, traceparent.as_deref());
        let telemetry = LiveTelemetry::start(&info, &resolved.manifest, trace);
        let options = PodOptions {
            work_dir: work_dir.clone(),
            model,
            control: RunControl::new(),
            approvals,
            telemetry: telemetry.clone(),
            traceparent,
        };
        let mut pod = match Pod::start(dir, resolved.manifest, options) {
            Ok(pod) => pod,
            Err(error) => return Err(undo.failed(error)),
        };
        let children = children.and_then(|setup| children::attach_children(&mut pod, setup, trace));
        let mcp = McpServers::start(pod.manifest(), &work_dir, pod.dir().path()).await;
        for tool in mcp.tools() {
            pod.register_tool(tool.clone());
        }
        let info = match pod.dir().read_info() {
            Ok(info) => info,
            Err(error) => return Err(undo.close(pod, CoreError::from(error)).await),
        };
        if for_parent && let Err(error) = ready::announce(&ReadyLine::new(&info.id)) {
            return Err(undo.close(pod, StartError::Ready(error)).await);
        }
        Ok(Launched {
            pod,
            server,
            children,
            mcp,
            telemetry,
            work_dir,
            info,
            for_parent,
        })
    }
}

/// A launched pod, ready to be hosted.
pub struct Launched {
    pod: Pod,
    server: ControlServer,
    children: Option<Arc<Children>>,
    /// Its MCP servers, stopped once hosting ends.
    mcp: McpServers,
    /// Its live telemetry export, given its last spans once hosting ends.
    telemetry: Option<Arc<LiveTelemetry>>,
    work_dir: PathBuf,
    info: PodInfo,
    for_parent: bool,
}

impl Launched {
    /// The pod's `pod.json` as the launch left it.
    pub fn info(&self) -> &PodInfo {
        &self.info
    }

    /// The session log of the segment the launch opened.
    pub fn log_path(&self) -> &Path {
        self.pod.log().path()
    }

    /// Run `input` while serving the control socket; end when that run ends, or earlier when
    /// an action ends the pod.
    pub async fn run_once(
        self,
        input: RunInput,
        observer: Arc<dyn RunObserver>,
    ) -> Result<HostEnd, CoreError> {
        let (host, ending) = self.host();
        let end = host.run_once(input, observer).await;
        ending.finish().await;
        end
    }

    /// Serve requests until a lifecycle action ends the pod (or, hosted for a parent, until
    /// the parent is gone).
    pub async fn serve(self) -> Result<HostEnd, CoreError> {
        let (host, ending) = self.host();
        let end = host.serve().await;
        ending.finish().await;
        end
    }

    /// The pod hosted with its socket and children (SIGTERM/SIGINT/SIGHUP end it and its tree),
    /// and its MCP servers, to stop when hosting ends.
    fn host(self) -> (Host, Ending) {
        // A child's parent waits `limits.shutdown_grace_ms` for it to exit before it kills it:
        // the last spans get half of that at most.
        let mut grace = crate::telemetry::END_GRACE;
        if self.for_parent {
            let shutdown = self.pod.manifest().limits.shutdown_grace_ms;
            grace = grace.min(std::time::Duration::from_millis(shutdown / 2));
        }
        let host = Host::new(
            self.pod,
            self.server,
            self.children,
            HostOptions {
                watch_parent: self.for_parent,
                handle_signals: true,
                work_dir: Some(self.work_dir),
            },
        );
        let ending = Ending {
            mcp: self.mcp,
            telemetry: self.telemetry,
            grace,
        };
        (host, ending)
    }
}

/// What outlives hosting and ends after it: the MCP servers, and the live export's last spans.
struct Ending {
    mcp: McpServers,
    telemetry: Option<Arc<LiveTelemetry>>,
    /// The most the last spans may hold the process up.
    grace: std::time::Duration,
}

impl Ending {
    async fn finish(self) {
        self.mcp.stop().await;
        if let Some(live) = self.telemetry {
            // Waits for a collector at most `grace`: off the async workers.
            let grace = self.grace;
            let _ = tokio::task::spawn_blocking(move || live.finish(grace)).await;
        }
    }
}

/// What a failing launch undoes: the directory of the pod it created, if it did.
#[derive(Default)]
struct Undo {
    created: Option<PathBuf>,
}

impl Undo {
    /// Close the segment `pod` opened as `failed`, then undo the rest.
    async fn close(self, pod: Pod, error: impl Into<StartError>) -> LaunchError {
        if let Err(close) = pod.close("failed").await {
            tracing::warn!(error = %error_chain(&close), "cannot close the segment");
        }
        self.failed(error)
    }

    /// Remove the created directory: nothing ran in it, and `error` says why.
    fn failed(self, error: impl Into<StartError>) -> LaunchError {
        let leftover = self
            .created
            .and_then(|dir| match std::fs::remove_dir_all(&dir) {
                Ok(()) => None,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => Some(Leftover { dir, error }),
            });
        LaunchError::Start {
            error: error.into(),
            leftover,
        }
    }
}
