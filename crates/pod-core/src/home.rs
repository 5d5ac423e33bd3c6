//! The pods home and pod directories, exactly as laid out on disk:
//!
//! ```text
//! <home>/pods/<pod_id>/pod.json, manifest.toml, provenance.json, keys.json,
//!                      sessions/<segment_id>.jsonl, sessions/<segment_id>.trace.jsonl,
//!                      control.sock
//! ```
//!
//! The home, `pods/`, every pod directory and `sessions/` are private to the user (0700), and
//! so are the files `pod-core` writes here (0600: pod.json, keys.json, session logs, traces). A pod's tools can never reach any of it (see
//! [`crate::scope`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::error::CoreError;
use crate::record::{PodInfo, PodState};

/// The directory holding every pod (`--home`, `PODS_HOME`, or the platform state dir).
#[derive(Debug, Clone)]
pub struct PodHome {
    root: PathBuf,
}

impl PodHome {
    /// `explicit` (from `--home` / `PODS_HOME`), else `$XDG_STATE_HOME/pods`, else
    /// `~/.local/state/pods`. Nothing is created yet.
    pub fn resolve(explicit: Option<&Path>) -> Result<PodHome, CoreError> {
        let non_empty = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty());
        let root = match explicit {
            Some(path) => path.to_owned(),
            None => match (non_empty("XDG_STATE_HOME"), non_empty("HOME")) {
                (Some(state), _) => PathBuf::from(state).join("pods"),
                (None, Some(home)) => PathBuf::from(home).join(".local/state/pods"),
                (None, None) => return Err(CoreError::NoHome),
            },
        };
        Ok(PodHome::at(root))
    }

    /// The home at `root`. Its tools may never touch it (see [`crate::scope`]).
    pub fn at(root: impl Into<PathBuf>) -> PodHome {
        let root = root.into();
        crate::scope::protect_home(&root);
        PodHome { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// Create a new pod directory with a fresh UUIDv7 id and its `pod.json` (state `created`),
    /// working in this process's current directory.
    pub fn create_pod(
        &self,
        name: Option<&str>,
        profile: &str,
        parent_id: Option<&str>,
    ) -> Result<PodDir, CoreError> {
        let cwd = std::env::current_dir()
            .map_err(CoreError::io("read the working directory", Path::new(".")))?;
        self.create_pod_in(name, profile, parent_id, &cwd)
    }

    /// Create a new pod directory whose working directory is `work_dir` (made absolute and
    /// recorded in `pod.json`: every later run of the pod resolves its scope against it).
    pub fn create_pod_in(
        &self,
        name: Option<&str>,
        profile: &str,
        parent_id: Option<&str>,
        work_dir: &Path,
    ) -> Result<PodDir, CoreError> {
        let work_dir = std::path::absolute(work_dir)
            .map_err(CoreError::io("resolve the working directory", work_dir))?;
        let id = uuid::Uuid::now_v7().to_string();
        let pods = self.pods_dir();
        self.create_private_dirs()?;
        let path = pods.join(&id);
        // Private to the user: the logs hold prompts and outputs, and the control socket is
        // never reachable by others, not even before its own mode is set.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(CoreError::io("create pod directory", &path))?;
        let dir = PodDir {
            path,
            id: id.clone(),
        };
        let sessions = dir.sessions_dir();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&sessions)
            .map_err(CoreError::io("create sessions directory", &sessions))?;
        let info = PodInfo {
            name: name.map_or_else(|| default_name(profile, &id), str::to_owned),
            id,
            profile: profile.to_owned(),
            parent_id: parent_id.map(str::to_owned),
            created: crate::lifecycle::now_rfc3339(),
            pid: None,
            state: PodState::Created,
            work_dir: Some(work_dir),
        };
        dir.write_info(&info)?;
        sync_dir(&pods)?;
        Ok(dir)
    }

    /// The home and its `pods/` directory, created if missing and private to the user (0700):
    /// group and other bits of existing ones (older versions made them 0755) are removed.
    fn create_private_dirs(&self) -> Result<(), CoreError> {
        let pods = self.pods_dir();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&pods)
            .map_err(CoreError::io("create pods directory", &pods))?;
        for dir in [self.root.as_path(), pods.as_path()] {
            let meta = std::fs::metadata(dir).map_err(CoreError::io("inspect", dir))?;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(CoreError::io("make private (mode 0700)", dir))?;
            }
        }
        Ok(())
    }

    /// Every pod directory, oldest first (ids are time-ordered).
    pub fn pod_dirs(&self) -> Result<Vec<PodDir>, CoreError> {
        let pods = self.pods_dir();
        let listing = match std::fs::read_dir(&pods) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(CoreError::io("list pods in", &pods)(error)),
        };
        let mut dirs = Vec::new();
        for entry in listing {
            let entry = entry.map_err(CoreError::io("list pods in", &pods))?;
            let path = entry.path();
            if path.is_dir() {
                dirs.push(PodDir::open(&path));
            }
        }
        dirs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(dirs)
    }

    /// Find a pod by full id, unique id prefix, or name (the newest pod with that name).
    pub fn find(&self, query: &str) -> Result<PodDir, CoreError> {
        let dirs = self.pod_dirs()?;
        if let Some(dir) = dirs.iter().find(|d| d.id == query) {
            return Ok(dir.clone());
        }
        let mut matches: Vec<&PodDir> = dirs.iter().filter(|d| d.id.starts_with(query)).collect();
        if matches.is_empty() {
            // Names need not be unique (a model names its children): the newest pod with the
            // name wins. `dirs` is oldest first.
            matches = dirs
                .iter()
                .rev()
                .find(|d| d.read_info().is_ok_and(|info| info.name == query))
                .into_iter()
                .collect();
        }
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(CoreError::PodNotFound {
                query: query.to_owned(),
                home: self.root.clone(),
            }),
            many => Err(CoreError::AmbiguousPod {
                query: query.to_owned(),
                candidates: many.iter().map(|d| d.id.clone()).collect(),
            }),
        }
    }
}

fn default_name(profile: &str, id: &str) -> String {
    // The tail of a UUIDv7 is random; the head is the (shared) timestamp.
    let tail = &id[id.len().saturating_sub(6)..];
    format!("{profile}-{tail}")
}

/// One pod's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDir {
    path: PathBuf,
    id: String,
}

/// The files of one session segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFiles {
    pub segment_id: String,
    pub log: PathBuf,
    /// The trace sidecar, when one exists.
    pub trace: Option<PathBuf>,
}

impl PodDir {
    /// A pod directory at `path`; its id is the directory name.
    pub fn open(path: &Path) -> PodDir {
        PodDir {
            path: path.to_owned(),
            id: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn info_path(&self) -> PathBuf {
        self.path.join("pod.json")
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.path.join("manifest.toml")
    }

    pub fn provenance_path(&self) -> PathBuf {
        self.path.join("provenance.json")
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.path.join("sessions")
    }

    pub fn control_socket_path(&self) -> PathBuf {
        self.path.join("control.sock")
    }

    pub fn segment_log_path(&self, segment_id: &str) -> PathBuf {
        self.sessions_dir().join(format!("{segment_id}.jsonl"))
    }

    pub fn segment_trace_path(&self, segment_id: &str) -> PathBuf {
        self.sessions_dir()
            .join(format!("{segment_id}.trace.jsonl"))
    }

    pub fn read_info(&self) -> Result<PodInfo, CoreError> {
        let path = self.info_path();
        let bytes = read_regular(&path, POD_JSON_MAX_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|source| CoreError::Parse {
            what: "pod.json",
            path,
            source,
        })
    }

    /// Replace `pod.json` atomically.
    pub fn write_info(&self, info: &PodInfo) -> Result<(), CoreError> {
        let mut bytes = serde_json::to_vec_pretty(info).map_err(|source| CoreError::Parse {
            what: "pod.json",
            path: self.info_path(),
            source,
        })?;
        bytes.push(b'\n');
        write_atomic(&self.info_path(), &bytes)
    }

    /// Read, change and atomically rewrite `pod.json`.
    pub fn update_info(&self, change: impl FnOnce(&mut PodInfo)) -> Result<PodInfo, CoreError> {
        let mut info = self.read_info()?;
        change(&mut info);
        self.write_info(&info)?;
        Ok(info)
    }

    /// The pod's session segments, oldest first.
    pub fn segments(&self) -> Result<Vec<SegmentFiles>, CoreError> {
        let dir = self.sessions_dir();
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(CoreError::io("list segments in", &dir)(error)),
        };
        let mut segments = Vec::new();
        for entry in listing {
            let entry = entry.map_err(CoreError::io("list segments in", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(segment_id) = name.strip_suffix(".jsonl") else {
                continue;
            };
            if segment_id.ends_with(".trace") {
                continue;
            }
            let trace = self.segment_trace_path(segment_id);
            segments.push(SegmentFiles {
                segment_id: segment_id.to_owned(),
                log: entry.path(),
                trace: trace.exists().then_some(trace),
            });
        }
        segments.sort_by(|a, b| a.segment_id.cmp(&b.segment_id));
        Ok(segments)
    }
}

impl PodDir {
    /// The manifest digest the pod last ran with: the `manifest_digest` of the newest segment
    /// that recorded a `segment_started` (a `reload` opens a segment, so an edit it accepted is
    /// the newest). `None` when no segment ever started (a child its parent has just prepared).
    pub fn last_manifest_digest(&self) -> Result<Option<String>, CoreError> {
        for segment in self.segments()?.iter().rev() {
            let reader = crate::session_log::LogReader::open(&segment.log)?;
            for item in reader.take(1) {
                if let crate::session_log::LogItem::Entry(entry) = item?
                    && let crate::record::LogBody::SegmentStarted(started) = entry.body
                {
                    return Ok(Some(started.manifest_digest));
                }
            }
        }
        Ok(None)
    }

    /// Refuse to run `manifest` (read from this pod's `manifest.toml`) unless it is the one the
    /// pod last ran with. The recorded digest is of the manifest's canonical text, which is
    /// what `manifest.toml` holds as written; it is accepted when it matches the file's bytes
    /// (so a manifest written by an older version, whose canonical form lacked fields added
    /// since, still resumes) or the canonical text of what the file says now (so reformatting
    /// the file is not an edit). Any changed value is refused.
    pub fn vouch_manifest(&self, manifest: &pod_profile::Manifest) -> Result<(), CoreError> {
        let Some(recorded) = self.last_manifest_digest()? else {
            return Ok(());
        };
        let path = self.manifest_path();
        let bytes = read_regular(&path, MANIFEST_MAX_BYTES)?;
        let as_written = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        let found = pod_profile::manifest_digest(manifest)?;
        if recorded == as_written || recorded == found {
            return Ok(());
        }
        Err(CoreError::config(format!(
            "{} was changed since pod {} last ran with it (recorded {recorded}, now {found}); \
             a pod only runs with the manifest it was given or one a `reload` accepted",
            path.display(),
            self.id
        )))
    }
}

pub use pod_trace::{LineRead, open_regular, read_line_bounded};

/// [`read_regular`] with the plain I/O error (for callers that tell "absent" from "unreadable").
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    pod_trace::read_regular(path, max)
}

/// The largest `pod.json` read (it is a few hundred bytes; anything larger is not one).
const POD_JSON_MAX_BYTES: u64 = 1 << 20;

/// Read the regular file `path`, at most `max` bytes: a FIFO, socket or device (also behind a
/// symlink) is refused without blocking, and so is a larger file, with an error naming it.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, CoreError> {
    pod_trace::read_regular(path, max).map_err(CoreError::io("read", path))
}

/// The largest `manifest.toml` read to vouch for it.
const MANIFEST_MAX_BYTES: u64 = 16 << 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `bytes` to `path` atomically: a temp file in the same directory, fsync, rename, then
/// fsync the directory. The file is private to the user (0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CoreError> {
    // A bare file name has the empty path as its parent: that is the current directory.
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?
        };
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(error) = result {
        // Best effort: the original file is untouched either way.
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::io("write", path)(error));
    }
    sync_dir(dir)
}

/// Make a directory's entries (new or renamed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), CoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CoreError::io("sync directory", dir))
}

/// A pod named in what `rm` and `prune` removed, would remove or kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodRef {
    pub id: String,
    /// `None` when `pod.json` is unreadable.
    pub name: Option<String>,
    /// The state `pod.json` records (`unknown` when unreadable).
    pub state: String,
    /// Why it was kept, for pods left in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a pod cannot be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("pod {id} is running (pid {pid}): stop it first (`pods stop {id}`)")]
    Running { id: String, pid: String },
    #[error(
        "pod {id} has {count} child pod(s) ({children}): remove them with it (`--tree`) or first"
    )]
    HasChildren {
        id: String,
        count: usize,
        children: String,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// What `prune` removes (or would remove) and what it keeps.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PrunePlan {
    /// Pods to remove, each tree's children before its root.
    pub remove: Vec<PodRef>,
    /// Pods kept, with the reason (running, too new, among the newest `--keep`, unreadable).
    pub keep: Vec<PodRef>,
}

/// What `prune` may remove: trees of finished pods (`older_than` their root's creation,
/// beyond the newest `keep` trees). Nothing of a tree is removed while one of its pods may
/// still be running.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneRule {
    pub older_than: Option<std::time::Duration>,
    pub keep: usize,
}

/// A pod `pods run` created less than this long ago and that has no process yet is being set
/// up; it counts as running.
const STARTING_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a pod's process may still use its directory. `Running` and `Idle` pods are live
/// while their pid names a live process that started before the pod's newest session log was
/// last written (a later process only reuses the pid); a `Created` pod without a process is
/// live for a minute after its creation (its launcher is still setting it up). When that
/// cannot be told, the pod counts as live.
pub fn pod_is_live(dir: &PodDir, info: &PodInfo) -> bool {
    match (info.state, info.pid) {
        (PodState::Running | PodState::Idle | PodState::Created, Some(pid)) => {
            crate::summary::process_alive(pid) && !pid_reused(dir, pid)
        }
        (PodState::Created, None) => humantime::parse_rfc3339_weak(&info.created)
            .ok()
            .and_then(|created| created.elapsed().ok())
            .is_none_or(|age| age < STARTING_GRACE),
        (PodState::Running | PodState::Idle, None) => false,
        (PodState::Stopped | PodState::Failed, _) => false,
    }
}

/// Whether process `pid` started after the pod's newest session log was last written, so it
/// cannot be the pod's process. `false` when either time is unknown.
fn pid_reused(dir: &PodDir, pid: u32) -> bool {
    const SLACK: std::time::Duration = std::time::Duration::from_secs(2);
    let written = dir
        .segments()
        .ok()
        .and_then(|s| s.last().cloned())
        .and_then(|s| std::fs::metadata(&s.log).ok())
        .and_then(|m| m.modified().ok());
    match (written, process_started(pid)) {
        (Some(written), Some(started)) => started > written + SLACK,
        _ => false,
    }
}

/// When process `pid` started, from `/proc/<pid>/stat` (field 22, in clock ticks since boot);
/// `None` when `/proc` does not say. The pid-reuse guard of every liveness check.
pub fn process_started(pid: u32) -> Option<std::time::SystemTime> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(
        std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(boot)
            + std::time::Duration::from_millis(ticks * 1000 / USER_HZ),
    )
}

fn state_word(state: PodState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// One pod directory with its `pod.json` as read (an error when unreadable).
struct Listed {
    dir: PodDir,
    info: Result<PodInfo, CoreError>,
}

impl Listed {
    fn parent(&self) -> Option<&str> {
        self.info.as_ref().ok().and_then(|i| i.parent_id.as_deref())
    }

    fn to_ref(&self, reason: Option<String>) -> PodRef {
        PodRef {
            id: self.dir.id.clone(),
            name: self.info.as_ref().ok().map(|i| i.name.clone()),
            state: self
                .info
                .as_ref()
                .map_or_else(|_| "unknown".into(), |i| state_word(i.state)),
            reason,
        }
    }

    /// Why this pod must stay, if it must.
    fn held(&self) -> Option<String> {
        match &self.info {
            Ok(info) if pod_is_live(&self.dir, info) => Some(format!(
                "running{}",
                info.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            )),
            Ok(_) => None,
            Err(error) => Some(format!("pod.json unreadable: {error}")),
        }
    }
}

impl PodHome {
    fn listed(&self) -> Result<Vec<Listed>, CoreError> {
        Ok(self
            .pod_dirs()?
            .into_iter()
            .map(|dir| {
                let info = dir.read_info();
                Listed { dir, info }
            })
            .collect())
    }

    /// `root` and its descendants in this home, each pod's descendants before it.
    fn subtree<'a>(all: &'a [Listed], root: &'a Listed) -> Vec<&'a Listed> {
        let mut out = Vec::new();
        for child in all
            .iter()
            .filter(|c| c.parent() == Some(root.dir.id.as_str()))
        {
            out.extend(Self::subtree(all, child));
        }
        out.push(root);
        out
    }

    /// Remove pod `dir` (with `tree`, and its descendants). Refused, removing nothing, when a
    /// pod to remove may be running, or when the pod has children and `tree` is false.
    pub fn remove(&self, dir: &PodDir, tree: bool) -> Result<Vec<PodRef>, RemoveError> {
        let all = self.listed()?;
        let Some(root) = all.iter().find(|l| l.dir == *dir) else {
            return Err(CoreError::PodNotFound {
                query: dir.id.clone(),
                home: self.root.clone(),
            }
            .into());
        };
        let children: Vec<&str> = all
            .iter()
            .filter(|c| c.parent() == Some(dir.id.as_str()))
            .map(|c| c.dir.id.as_str())
            .collect();
        if !tree && !children.is_empty() {
            return Err(RemoveError::HasChildren {
                id: dir.id.clone(),
                count: children.len(),
                children: children.join(", "),
            });
        }
        let doomed = if tree {
            Self::subtree(&all, root)
        } else {
            vec![root]
        };
        for pod in &doomed {
            match &pod.info {
                Ok(info) if pod_is_live(&pod.dir, info) => {
                    return Err(RemoveError::Running {
                        id: pod.dir.id.clone(),
                        pid: info
                            .pid
                            .map_or_else(|| "not yet recorded".into(), |p| p.to_string()),
                    });
                }
                Ok(_) => {}
                // A pod whose state cannot be read may be running: keep it.
                Err(_) => pod.dir.read_info().map(drop)?,
            }
        }
        let mut removed = Vec::new();
        for pod in doomed {
            remove_pod_dir(&pod.dir)?;
            removed.push(pod.to_ref(None));
        }
        Ok(removed)
    }

    /// What `prune` with `rule` would remove and keep; nothing is removed.
    pub fn plan_prune(&self, rule: PruneRule) -> Result<PrunePlan, CoreError> {
        let all = self.listed()?;
        let ids: Vec<&str> = all.iter().map(|l| l.dir.id.as_str()).collect();
        // Roots, newest first (ids are time-ordered; `all` is oldest first).
        let roots: Vec<&Listed> = all
            .iter()
            .rev()
            .filter(|l| l.parent().is_none_or(|p| !ids.contains(&p)))
            .collect();
        let mut plan = PrunePlan::default();
        for (index, root) in roots.into_iter().enumerate() {
            let tree = Self::subtree(&all, root);
            let young = rule.older_than.and_then(|limit| {
                let created = root.info.as_ref().ok().map(|i| i.created.as_str())?;
                let age = humantime::parse_rfc3339_weak(created).ok()?.elapsed().ok();
                // An unknown age is not old enough.
                age.is_none_or(|age| age < limit)
                    .then(|| format!("newer than {}", humantime::format_duration(limit)))
            });
            let reason = if index < rule.keep {
                Some(format!("among the newest {} tree(s) kept", rule.keep))
            } else if let Some(young) = young {
                Some(young)
            } else {
                tree.iter().find_map(|pod| {
                    pod.held().map(|why| {
                        if pod.dir == root.dir {
                            why
                        } else {
                            format!("pod {} in its tree is {why}", pod.dir.id)
                        }
                    })
                })
            };
            match reason {
                Some(reason) => plan
                    .keep
                    .extend(tree.iter().map(|pod| pod.to_ref(Some(reason.clone())))),
                None => plan.remove.extend(tree.iter().map(|pod| pod.to_ref(None))),
            }
        }
        Ok(plan)
    }

    /// Remove what [`PodHome::plan_prune`] plans, checking each pod's liveness again right
    /// before removing it; a pod that started meanwhile moves to `keep`.
    pub fn prune(&self, rule: PruneRule) -> Result<PrunePlan, CoreError> {
        let mut plan = self.plan_prune(rule)?;
        let mut removed = Vec::new();
        for pod in std::mem::take(&mut plan.remove) {
            let dir = PodDir::open(&self.pods_dir().join(&pod.id));
            let listed = Listed {
                info: dir.read_info(),
                dir: dir.clone(),
            };
            if let Some(why) = listed.held() {
                plan.keep.push(PodRef {
                    reason: Some(why),
                    ..pod
                });
                continue;
            }
            remove_pod_dir(&dir)?;
            removed.push(pod);
        }
        plan.remove = removed;
        Ok(plan)
    }
}

fn remove_pod_dir(dir: &PodDir) -> Result<(), CoreError> {
    std::fs::remove_dir_all(&dir.path).map_err(CoreError::io("remove pod directory", &dir.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_find_by_id_prefix_and_name() {
        let tmp = tempfile::tempdir().unwrap();
        let home = PodHome::at(tmp.path());
        let a = home.create_pod(Some("alpha"), "demo", None).unwrap();
        let b = home.create_pod(None, "demo", Some(a.id())).unwrap();
        assert!(uuid::Uuid::parse_str(a.id()).is_ok_and(|u| u.get_version_num() == 7));
        assert!(a.sessions_dir().is_dir());
        assert_eq!(home.find(a.id()).unwrap(), a);
        assert_eq!(home.find("alpha").unwrap(), a);
        let info_b = b.read_info().unwrap();
        assert_eq!(info_b.parent_id.as_deref(), Some(a.id()));
        assert_eq!(home.find(&info_b.name).unwrap(), b);
        // Both ids share their timestamp head, so a short prefix is ambiguous.
        let common: String = a
            .id()
            .chars()
            .zip(b.id().chars())
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| x)
            .collect();
        assert!(
            matches!(home.find(&common), Err(CoreError::AmbiguousPod { candidates, .. }) if candidates.len() == 2)
        );
        let unique = &b.id()[..common.len() + 1];
        assert_eq!(home.find(unique).unwrap(), b);
        assert!(matches!(
            home.find("nope"),
            Err(CoreError::PodNotFound { .. })
        ));
        assert_eq!(home.pod_dirs().unwrap(), vec![a, b]);
    }

    #[test]
    fn a_pod_directory_is_private_to_its_user() {
        let tmp = tempfile::tempdir().unwrap();
        let home = PodHome::at(tmp.path().to_owned());
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = home.create_pod(None, "p", None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.sessions_dir()), 0o700);
        assert_eq!(mode(&home.pods_dir()), 0o700);
        assert_eq!(mode(tmp.path()), 0o700);
        assert_eq!(mode(&dir.info_path()), 0o600);
        let info = dir.read_info().unwrap();
        assert_eq!(info.work_dir, Some(std::env::current_dir().unwrap()));
    }

    #[test]
    fn the_manifest_is_vouched_for_by_the_newest_segment_that_started() {
        use crate::record::{LogBody, SegmentStarted};
        let tmp = tempfile::tempdir().unwrap();
        let home = PodHome::at(tmp.path());
        let pod = home.create_pod(None, "demo", None).unwrap();
        let first = pod_profile::Manifest::default();
        let mut edited = first.clone();
        edited.agent.max_turns += 1;
        // Never started (a child its parent just prepared): nothing to vouch against.
        assert!(pod.vouch_manifest(&edited).is_ok());
        let start = |segment: &str, manifest: &pod_profile::Manifest| {
            let log = crate::SessionLog::create(&pod.segment_log_path(segment)).unwrap();
            log.append(LogBody::SegmentStarted(SegmentStarted {
                pod_id: pod.id().to_owned(),
                segment_id: segment.to_owned(),
                profile: "demo".into(),
                manifest_digest: pod_profile::manifest_digest(manifest).unwrap(),
                pid: 1,
                format_version: 1,
                writer: "test".into(),
            }))
            .unwrap();
        };
        // The file as written, or edited (the caller passes what the file says now).
        let write = |manifest: &pod_profile::Manifest, note: &str| {
            let text = pod_profile::manifest_toml(manifest).unwrap();
            std::fs::write(pod.manifest_path(), format!("{note}{text}")).unwrap();
        };
        write(&first, "");
        start("0001", &first);
        assert!(pod.vouch_manifest(&first).is_ok());
        write(&first, "# reformatted, same values\n");
        assert!(pod.vouch_manifest(&first).is_ok());
        write(&edited, "");
        let error = pod.vouch_manifest(&edited).unwrap_err().to_string();
        assert!(error.contains("manifest.toml was changed"), "{error}");
        // A reload that accepted the edit opened a newer segment with its digest.
        start("0002", &edited);
        assert!(pod.vouch_manifest(&edited).is_ok());
        write(&first, "");
        assert!(pod.vouch_manifest(&first).is_err());
        // A newest segment whose start is unreadable does not vouch; the one before does.
        write(&edited, "");
        std::fs::write(pod.segment_log_path("0003"), "{torn").unwrap();
        assert!(pod.vouch_manifest(&edited).is_ok());
    }

    #[test]
    fn a_manifest_written_before_fields_were_added_still_vouches_by_its_bytes() {
        use crate::record::{LogBody, SegmentStarted};
        let tmp = tempfile::tempdir().unwrap();
        let pod = PodHome::at(tmp.path())
            .create_pod(None, "demo", None)
            .unwrap();
        // An older writer's canonical text: fewer keys than this build writes.
        let old_text = "[model]\nmodel = \"m\"\n";
        std::fs::write(pod.manifest_path(), old_text).unwrap();
        let digest = format!("sha256:{}", hex(&Sha256::digest(old_text.as_bytes())));
        let log = crate::SessionLog::create(&pod.segment_log_path("0001")).unwrap();
        log.append(LogBody::SegmentStarted(SegmentStarted {
            pod_id: pod.id().to_owned(),
            segment_id: "0001".into(),
            profile: "demo".into(),
            manifest_digest: digest,
            pid: 1,
            format_version: 1,
            writer: "pods 0.0.1".into(),
        }))
        .unwrap();
        std::fs::write(pod.provenance_path(), "{}").unwrap();
        let parsed = pod_profile::read_manifest_files(pod.path())
            .unwrap()
            .manifest;
        assert_ne!(
            pod_profile::manifest_digest(&parsed).unwrap(),
            format!("sha256:{}", hex(&Sha256::digest(old_text.as_bytes())))
        );
        assert!(pod.vouch_manifest(&parsed).is_ok());
        std::fs::write(pod.manifest_path(), "[model]\nmodel = \"other\"\n").unwrap();
        let parsed = pod_profile::read_manifest_files(pod.path())
            .unwrap()
            .manifest;
        assert!(pod.vouch_manifest(&parsed).is_err());
    }

    #[test]
    fn update_info_rewrites_atomically_without_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let home = PodHome::at(tmp.path());
        let pod = home.create_pod(None, "demo", None).unwrap();
        pod.update_info(|i| i.state = PodState::Running).unwrap();
        assert_eq!(pod.read_info().unwrap().state, PodState::Running);
        let names: Vec<String> = std::fs::read_dir(pod.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_corrupt_pod_json_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let home = PodHome::at(tmp.path());
        let pod = home.create_pod(None, "demo", None).unwrap();
        std::fs::write(pod.info_path(), "{not json").unwrap();
        let error = pod.read_info().unwrap_err();
        assert!(error.to_string().contains("pod.json"), "{error}");
    }
}

#[cfg(test)]
mod liveness_tests {
    use super::*;

    fn pod(home: &PodHome, state: PodState, pid: Option<u32>, created: &str) -> (PodDir, PodInfo) {
        let dir = home
            .create_pod(Some("p"), "demo", None)
            .expect("create pod");
        let info = dir
            .update_info(|info| {
                info.state = state;
                info.pid = pid;
                info.created = created.to_owned();
            })
            .expect("write pod.json");
        (dir, info)
    }

    #[test]
    fn a_live_pid_counts_only_when_it_started_before_the_log_was_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = PodHome::at(tmp.path());
        let now = crate::lifecycle::now_rfc3339();
        let me = Some(std::process::id());
        let (dir, info) = pod(&home, PodState::Running, me, &now);
        assert!(
            pod_is_live(&dir, &info),
            "no log yet: this process may own it"
        );
        let log = dir.segment_log_path("01a00000-0000-7000-8000-000000000001");
        std::fs::write(&log, b"").expect("write log");
        assert!(
            pod_is_live(&dir, &info),
            "written now, by a process already running"
        );
        // A log last written long before this process started: the pid was reused.
        let file = std::fs::File::options()
            .write(true)
            .open(&log)
            .expect("open");
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000))
            .expect("set mtime");
        assert!(!pod_is_live(&dir, &info));
        let (stopped, info) = pod(&home, PodState::Stopped, me, &now);
        assert!(!pod_is_live(&stopped, &info));
    }

    #[test]
    fn a_created_pod_without_a_process_is_live_only_while_it_is_being_set_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = PodHome::at(tmp.path());
        let (fresh, info) = pod(
            &home,
            PodState::Created,
            None,
            &crate::lifecycle::now_rfc3339(),
        );
        assert!(pod_is_live(&fresh, &info));
        let (old, info) = pod(&home, PodState::Created, None, "2020-01-01T00:00:00.000Z");
        assert!(!pod_is_live(&old, &info));
        let (unknown, info) = pod(&home, PodState::Created, None, "not a time");
        assert!(pod_is_live(&unknown, &info), "an unknown age is not old");
    }
}
