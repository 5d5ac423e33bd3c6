use super::*;

fn scope(allow: &[&str], deny: &[&str], work: &Path) -> Scope {
    Scope::new(
        &ScopeSection {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        },
        work,
    )
}

#[test]
fn a_child_scope_through_a_symlink_is_not_covered() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::create_dir_all(work.join("secret")).unwrap();
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside"), work.join("lnk")).unwrap();
    std::os::unix::fs::symlink(work.join("secret"), work.join("src/peek")).unwrap();
    let parent = scope(&["."], &["secret"], &work);
    assert_eq!(parent.covers(&scope(&["src"], &[], &work)), Ok(()));
    let err = parent.covers(&scope(&["lnk"], &[], &work)).unwrap_err();
    assert!(err.contains("outside the parent's scope"), "{err}");
    assert!(err.contains("outside"), "{err}");
    let err = parent
        .covers(&scope(&["src/peek"], &[], &work))
        .unwrap_err();
    assert!(err.contains("inside the parent's denied"), "{err}");
}

#[test]
fn the_home_pod_dirs_and_profile_dirs_are_refused_whatever_the_scope_allows() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let home = work.join("state");
    let elsewhere = tmp.path().join("elsewhere-pod");
    std::fs::create_dir_all(home.join("pods")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("manifest.toml"), "x").unwrap();
    // A pod directory that is a symlink out of the home is protected where it points.
    std::os::unix::fs::symlink(&elsewhere, home.join("pods/p1")).unwrap();
    std::fs::create_dir_all(work.join("profiles")).unwrap();
    std::fs::create_dir_all(work.join(".pods/profiles")).unwrap();
    std::fs::write(work.join("ok.txt"), "x").unwrap();
    std::os::unix::fs::symlink(&home, work.join("alias")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, work.join("pod-alias")).unwrap();
    protect_home(&home);
    protect(&work.join("profiles"));
    let s = scope(&["/"], &[], &work);
    assert!(s.check("ok.txt", Access::Read).is_ok());
    for (path, access) in [
        ("state/pods", Access::Read),
        ("state/pods/p1/manifest.toml", Access::Write),
        ("alias/pods/new.toml", Access::Write),
        ("pod-alias/manifest.toml", Access::Read),
        ("profiles/new.toml", Access::Write),
        (".pods/profiles/x.toml", Access::Write),
    ] {
        let err = s.check(path, access).unwrap_err();
        assert!(err.contains("holds pod state or profiles"), "{path}: {err}");
    }
}

#[test]
fn inside_outside_deny_and_dotdot() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::create_dir_all(work.join("secret")).unwrap();
    std::fs::write(work.join("src/a.rs"), "x").unwrap();
    std::fs::write(work.join("secret/k"), "x").unwrap();
    std::fs::write(tmp.path().join("outside.txt"), "x").unwrap();
    let s = scope(&["."], &["secret"], &work);
    assert!(s.check("src/a.rs", Access::Read).is_ok());
    assert!(s.check("src/new.rs", Access::Write).is_ok());
    let err = s.check("../outside.txt", Access::Read).unwrap_err();
    assert!(err.contains("outside this pod's scope"), "{err}");
    assert!(s.check("src/../../outside.txt", Access::Read).is_err());
    assert!(
        s.check(
            &tmp.path().join("outside.txt").display().to_string(),
            Access::Read
        )
        .is_err()
    );
    assert!(
        s.check("secret/k", Access::Read)
            .unwrap_err()
            .contains("denied")
    );
    assert!(s.check("../new.txt", Access::Write).is_err());
    assert!(s.check("missing/dir/f", Access::Write).is_err());
}

#[test]
fn symlink_escapes_are_refused_for_read_and_write() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(tmp.path().join("target.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("target.txt"), work.join("link")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), work.join("dirlink")).unwrap();
    let s = scope(&["."], &[], &work);
    assert!(s.check("link", Access::Read).is_err());
    assert!(s.check("link", Access::Write).is_err());
    assert!(s.check("dirlink/target.txt", Access::Read).is_err());
    assert!(s.check("dirlink/new.txt", Access::Write).is_err());
}
