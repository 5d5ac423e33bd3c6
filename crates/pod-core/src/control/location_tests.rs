use super::*;
use crate::control::{Call, ControlClient, ControlServer, cli_client};
use crate::lifecycle::new_id;

#[tokio::test]
async fn socket_is_private_and_removed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ControlServer::bind(dir.path()).await.expect("bind");
    let meta = std::fs::metadata(server.path()).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let path = server.path().to_owned();
    let link = dir.path().join(CONTROL_SOCKET);
    assert_eq!(std::fs::read_link(&link).expect("link"), path);
    drop(server);
    assert!(!path.exists());
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
}

/// A pods home so deep that `<home>/pods/<id>/control.sock` is far over `sun_path`.
fn deep_pod_dir(root: &Path) -> PathBuf {
    let mut dir = root.to_owned();
    for i in 0..4 {
        dir.push(format!(
            "a-rather-long-directory-name-as-ci-workspaces-have-{i:04}"
        ));
    }
    let dir = dir.join("pods").join(new_id());
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[tokio::test]
async fn socket_of_a_pod_in_a_deep_home_is_bound_where_its_path_is_short() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pod_dir = deep_pod_dir(tmp.path());
    assert!(pod_dir.join(CONTROL_SOCKET).as_os_str().len() > 250);
    let mut server = ControlServer::bind(&pod_dir).await.expect("bind");
    assert!(server.path().as_os_str().len() <= MAX_SOCKET_PATH);
    assert_eq!(
        server.path().parent(),
        Some(socket_dir().expect("dir").as_path())
    );
    assert_eq!(locate_socket(&pod_dir), server.path());
    let owner = tokio::spawn(async move {
        let req = server.incoming.recv().await.expect("request");
        req.respond(Ok(serde_json::json!({"state": "idle"})));
        server
    });
    let client = ControlClient::connect(&pod_dir, cli_client())
        .await
        .expect("connect");
    let reply = client.call(&Call::Status).await.expect("status");
    assert_eq!(reply["state"], "idle");
    let server = owner.await.expect("owner");
    let path = server.path().to_owned();
    drop(server);
    assert!(!path.exists());
}

#[tokio::test]
async fn socket_names_differ_for_the_same_pod_id_in_two_homes() {
    let a = socket_name(Path::new("/one/pods/0190aaaa-0000-7000-8000-000000000000"));
    let b = socket_name(Path::new("/two/pods/0190aaaa-0000-7000-8000-000000000000"));
    assert_ne!(a, b);
    assert!(
        a.starts_with("0190aaaa-0000-7000-8000-000000000000-"),
        "{a}"
    );
    let odd = socket_name(Path::new(&format!("/x/{}", "é/../".repeat(80))));
    assert!(odd.len() <= MAX_SOCKET_NAME, "{odd}");
    assert!(a.len() <= MAX_SOCKET_NAME);
}

#[tokio::test]
async fn a_pod_of_an_older_version_with_its_socket_in_the_directory_is_still_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = std::os::unix::net::UnixListener::bind(dir.path().join(CONTROL_SOCKET))
        .expect("old-style socket");
    assert_eq!(locate_socket(dir.path()), dir.path().join(CONTROL_SOCKET));
    let client = ControlClient::connect(dir.path(), cli_client()).await;
    assert!(client.is_ok(), "{:?}", client.err());
    assert!(old.accept().is_ok());
}

#[test]
fn a_socket_directory_that_is_not_private_to_the_user_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let uid = rustix::process::getuid().as_raw();
    let dir = tmp.path().join("sockets");
    private_dir(&dir, uid).expect("created");
    let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // Someone else's directory.
    let theirs = private_dir(&dir, uid.wrapping_add(1)).expect_err("not ours");
    assert!(theirs.contains("belongs to uid"), "{theirs}");
    // A symlink planted where the directory should be.
    let planted = tmp.path().join("planted");
    std::os::unix::fs::symlink(&dir, &planted).expect("symlink");
    let link = private_dir(&planted, uid).expect_err("symlink");
    assert!(link.contains("not a directory"), "{link}");
    // A directory of ours that others can enter is narrowed.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    private_dir(&dir, uid).expect("narrowed");
    let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test]
async fn stale_sockets_in_the_socket_directory_are_swept_and_live_ones_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let stale = tmp.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let live_path = tmp.path().join("live.sock");
    let _live = std::os::unix::net::UnixListener::bind(&live_path).expect("bind");
    let other = tmp.path().join("notes.txt");
    std::fs::write(&other, "x").expect("write");
    // Too young to be taken for stale: kept.
    sweep_stale(tmp.path(), std::time::Duration::from_secs(3600)).await;
    assert!(stale.exists());
    sweep_stale(tmp.path(), std::time::Duration::ZERO).await;
    assert!(!stale.exists(), "stale socket removed");
    assert!(live_path.exists(), "a served socket stays");
    assert!(other.exists(), "only sockets are swept");
}

#[test]
fn the_socket_check_reports_the_directory_and_the_path_length() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let deep = deep_pod_dir(tmp.path());
    let detail = check_socket_dir(&deep).expect("usable");
    let dir = socket_dir().expect("dir");
    assert!(detail.contains(&dir.display().to_string()), "{detail}");
    assert!(
        detail.contains(&format!("limit {MAX_SOCKET_PATH}")),
        "{detail}"
    );
}
