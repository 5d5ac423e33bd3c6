//! The pods home and pod directories, exactly as laid out on disk:
//!
//! ```text
//! <home>/pods/<pod_id>/pod.json, manifest.toml, provenance.json, keys.json,
//!                      sessions/<segment_id>.jsonl, sessions/<segment_id>.trace.jsonl,
//!                      control.sock
//! ```
//!
//! The home, `pods/`, every pod directory and `sessions/` are private to the user (0700), and
//! so are the files pods write here (0600: pod.json, keys.json, session logs, traces). A pod's tools can never reach any of it
//! (`pod_core::scope` refuses every home this process opened: [`opened_homes`]).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pod_protocol::record::{LogBody, PodInfo, PodState};

use crate::error::HomeError;
use crate::files::{read_regular, sync_dir, write_atomic};
use crate::log_read::{LogItem, LogReader};

/// Every home this process opened, so that no tool of a pod it runs can reach one.
static OPENED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The homes this process opened ([`PodHome::at`], [`PodHome::resolve`]), as given.
pub fn opened_homes() -> Vec<PathBuf> {
    crate::locked(&OPENED).clone()
}

/// The directory holding every pod (`--home`, `PODS_HOME`, or the platform state dir).
#[derive(Debug, Clone)]
pub struct PodHome {
    root: PathBuf,
}

impl PodHome {
    /// `explicit` (from `--home` / `PODS_HOME`), else `$XDG_STATE_HOME/pods`, else
    /// `~/.local/state/pods`. Nothing is created yet.
    pub fn resolve(explicit: Option<&Path>) -> Result<PodHome, HomeError> {
        let non_empty = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty());
        let root = match explicit {
            Some(path) => path.to_owned(),
            None => match (non_empty("XDG_STATE_HOME"), non_empty("HOME")) {
                (Some(state), _) => PathBuf::from(state).join("pods"),
                (None, Some(home)) => PathBuf::from(home).join(".local/state/pods"),
                (None, None) => return Err(HomeError::NoHome),
            },
        };
        Ok(PodHome::at(root))
    }

    /// The home at `root`, recorded in [`opened_homes`]: no tool of a pod this process runs may
    /// touch it.
    pub fn at(root: impl Into<PathBuf>) -> PodHome {
        let root = root.into();
        let absolute = std::path::absolute(&root).unwrap_or_else(|_| root.clone());
        let mut opened = crate::locked(&OPENED);
        if !opened.contains(&absolute) {
            opened.push(absolute);
        }
        drop(opened);
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
    ) -> Result<PodDir, HomeError> {
        let cwd = std::env::current_dir()
            .map_err(HomeError::io("read the working directory", Path::new(".")))?;
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
    ) -> Result<PodDir, HomeError> {
        let work_dir = std::path::absolute(work_dir)
            .map_err(HomeError::io("resolve the working directory", work_dir))?;
        let id = uuid::Uuid::now_v7().to_string();
        let pods = self.pods_dir();
        self.create_private_dirs()?;
        let path = pods.join(&id);
        // Private to the user: the logs hold prompts and outputs, and the control socket is
        // never reachable by others, not even before its own mode is set.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(HomeError::io("create pod directory", &path))?;
        let dir = PodDir {
            path,
            id: id.clone(),
        };
        let sessions = dir.sessions_dir();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&sessions)
            .map_err(HomeError::io("create sessions directory", &sessions))?;
        let info = PodInfo {
            name: name.map_or_else(|| default_name(profile, &id), str::to_owned),
            id,
            profile: profile.to_owned(),
            parent_id: parent_id.map(str::to_owned),
            created: crate::now_rfc3339(),
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
    fn create_private_dirs(&self) -> Result<(), HomeError> {
        let pods = self.pods_dir();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&pods)
            .map_err(HomeError::io("create pods directory", &pods))?;
        for dir in [self.root.as_path(), pods.as_path()] {
            let meta = std::fs::metadata(dir).map_err(HomeError::io("inspect", dir))?;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(HomeError::io("make private (mode 0700)", dir))?;
            }
        }
        Ok(())
    }

    /// Every pod directory, oldest first (ids are time-ordered).
    pub fn pod_dirs(&self) -> Result<Vec<PodDir>, HomeError> {
        let pods = self.pods_dir();
        let listing = match std::fs::read_dir(&pods) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(HomeError::io("list pods in", &pods)(error)),
        };
        let mut dirs = Vec::new();
        for entry in listing {
            let entry = entry.map_err(HomeError::io("list pods in", &pods))?;
            let path = entry.path();
            if path.is_dir() {
                dirs.push(PodDir::open(&path));
            }
        }
        dirs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(dirs)
    }

    /// Find a pod by full id, unique id prefix, or name (the newest pod with that name); see
    /// [`PodIndex::find`](crate::PodIndex::find).
    pub fn find(&self, query: &str) -> Result<PodDir, HomeError> {
        // A full id names its directory: no need to read every pod of the home.
        let exact = self.pods_dir().join(query);
        if !query.is_empty()
            && !query.contains(['/', '.'])
            && exact.join("pod.json").symlink_metadata().is_ok()
        {
            return Ok(PodDir::open(&exact));
        }
        let index = crate::PodIndex::load(self)?;
        index.find(query).map(|pod| pod.dir.clone())
    }
}

fn default_name(profile: &str, id: &str) -> String {
    // The tail of a UUIDv7 is random; the head is the (shared) timestamp.
    let tail = &id[id.len().saturating_sub(6)..];
    format!("{profile}-{tail}")
}

/// The largest `pod.json` read (it is a few hundred bytes; anything larger is not one).
pub(crate) const POD_JSON_MAX_BYTES: u64 = 1 << 20;

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

    pub fn read_info(&self) -> Result<PodInfo, HomeError> {
        let path = self.info_path();
        let bytes =
            read_regular(&path, POD_JSON_MAX_BYTES).map_err(HomeError::io("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| HomeError::Parse {
            what: "pod.json",
            path,
            source,
        })
    }

    /// Replace `pod.json` atomically.
    pub fn write_info(&self, info: &PodInfo) -> Result<(), HomeError> {
        let mut bytes = serde_json::to_vec_pretty(info).map_err(|source| HomeError::Parse {
            what: "pod.json",
            path: self.info_path(),
            source,
        })?;
        bytes.push(b'\n');
        write_atomic(&self.info_path(), &bytes)
    }

    /// Read, change and atomically rewrite `pod.json`.
    pub fn update_info(&self, change: impl FnOnce(&mut PodInfo)) -> Result<PodInfo, HomeError> {
        let mut info = self.read_info()?;
        change(&mut info);
        self.write_info(&info)?;
        Ok(info)
    }

    /// The pod's session segments, oldest first.
    pub fn segments(&self) -> Result<Vec<SegmentFiles>, HomeError> {
        let dir = self.sessions_dir();
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(HomeError::io("list segments in", &dir)(error)),
        };
        let mut segments = Vec::new();
        for entry in listing {
            let entry = entry.map_err(HomeError::io("list segments in", &dir))?;
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
    pub fn last_manifest_digest(&self) -> Result<Option<String>, HomeError> {
        for segment in self.segments()?.iter().rev() {
            let reader = LogReader::open(&segment.log)?;
            for item in reader.take(1) {
                if let LogItem::Entry(entry) = item?
                    && let LogBody::SegmentStarted(started) = entry.body
                {
                    return Ok(Some(started.manifest_digest));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
