use super::*;

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
    assert!(vouch_manifest(&pod, &edited).is_ok());
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
    assert!(vouch_manifest(&pod, &first).is_ok());
    write(&first, "# reformatted, same values\n");
    assert!(vouch_manifest(&pod, &first).is_ok());
    write(&edited, "");
    let error = vouch_manifest(&pod, &edited).unwrap_err().to_string();
    assert!(error.contains("manifest.toml was changed"), "{error}");
    // A reload that accepted the edit opened a newer segment with its digest.
    start("0002", &edited);
    assert!(vouch_manifest(&pod, &edited).is_ok());
    write(&first, "");
    assert!(vouch_manifest(&pod, &first).is_err());
    // A newest segment whose start is unreadable does not vouch; the one before does.
    write(&edited, "");
    std::fs::write(pod.segment_log_path("0003"), "{torn").unwrap();
    assert!(vouch_manifest(&pod, &edited).is_ok());
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
    let digest = format!(
        "sha256:{}",
        pod_home::keys::hex(&Sha256::digest(old_text.as_bytes()))
    );
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
        format!(
            "sha256:{}",
            pod_home::keys::hex(&Sha256::digest(old_text.as_bytes()))
        )
    );
    assert!(vouch_manifest(&pod, &parsed).is_ok());
    std::fs::write(pod.manifest_path(), "[model]\nmodel = \"other\"\n").unwrap();
    let parsed = pod_profile::read_manifest_files(pod.path())
        .unwrap()
        .manifest;
    assert!(vouch_manifest(&pod, &parsed).is_err());
}
