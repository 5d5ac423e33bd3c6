//! The pod directories of a pods home, read the way the tests check them.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every entry of `dir`, sorted; none when it does not exist (yet).
pub fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(listing) => listing
            .map(|e| e.expect("read directory entry").path())
            .collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    entries
}

/// Every entry of `home`'s `pods` directory, sorted; none when it does not exist yet.
pub fn pod_dirs(home: &Path) -> Vec<PathBuf> {
    sorted_entries(&home.join("pods"))
}

/// The one pod directory of `home`; the test fails if there is not exactly one.
#[track_caller]
pub fn only_pod(home: &Path) -> PathBuf {
    let dirs = pod_dirs(home);
    assert_eq!(dirs.len(), 1, "expected one pod: {dirs:?}");
    dirs.into_iter().next().expect("one pod")
}

/// A pod's `pod.json`.
#[track_caller]
pub fn pod_info(dir: &Path) -> Value {
    let path = dir.join("pod.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pods of `home` whose `pod.json` names `parent` as their parent (`None`: the pods that
/// have none); a pod whose `pod.json` is not written yet is not one of them.
pub fn pods_with_parent(home: &Path, parent: Option<&str>) -> Vec<PathBuf> {
    pod_dirs(home)
        .into_iter()
        .filter(|dir| {
            std::fs::read_to_string(dir.join("pod.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .is_some_and(|info| info["parent_id"].as_str() == parent)
        })
        .collect()
}

/// The first pod of `home` that has no parent, once its `pod.json` exists.
pub fn root_pod(home: &Path) -> Option<PathBuf> {
    pods_with_parent(home, None).into_iter().next()
}

/// The pods of `home` whose parent is `parent`.
pub fn children_of(home: &Path, parent: &Path) -> Vec<PathBuf> {
    pods_with_parent(home, Some(&id_of(parent)))
}

/// The pod among `dirs` named `name`; the test fails if there is none.
#[track_caller]
pub fn named(dirs: &[PathBuf], name: &str) -> PathBuf {
    dirs.iter()
        .find(|dir| pod_info(dir)["name"] == name)
        .unwrap_or_else(|| panic!("no pod named {name} among {dirs:?}"))
        .clone()
}

/// A pod's id: the name of its directory.
pub fn id_of(dir: &Path) -> String {
    dir.file_name()
        .expect("a pod directory has a name")
        .to_string_lossy()
        .into_owned()
}

/// Every file under `dir`, at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in listing {
            let path = entry.expect("read directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
