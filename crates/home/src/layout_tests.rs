#![allow(clippy::unwrap_used)]

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
        matches!(home.find(&common), Err(HomeError::AmbiguousPod { candidates, .. }) if candidates.len() == 2)
    );
    let unique = &b.id()[..common.len() + 1];
    assert_eq!(home.find(unique).unwrap(), b);
    assert!(matches!(
        home.find("nope"),
        Err(HomeError::PodNotFound { .. })
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
