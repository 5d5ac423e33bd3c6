//! Reading one pod's session logs in order, and telling a run left open at a segment's end
//! whether a later segment of its pod was started.

use crate::document::LogIntegrity;
use crate::error::ExportError;
use crate::scan::{RunAcc, SegmentScan, empty_integrity, scan_segment};

use super::Progress;
use super::pods::PodEntry;

/// Gets each run of a pod, with its segment.
pub(super) type OnRun<'a> = dyn FnMut(&SegmentEnd<'_>, RunAcc) -> Result<(), ExportError> + 'a;

/// A segment at the end of its scan, with whether a later segment of its pod exists.
pub(super) struct SegmentEnd<'a> {
    pub(super) scan: &'a SegmentScan,
    pub(super) later_segment: bool,
}

/// What reading one pod's logs left: a scan per segment log (its runs handed out), and
/// integrity entries for what could not be listed at all (an unreadable `sessions` directory).
pub(super) struct PodScan {
    pub(super) segments: Vec<SegmentScan>,
    pub(super) unlisted: Vec<LogIntegrity>,
}

/// Read every segment log of `pod`, in order. Runs go to `on_run` in log order: each as soon
/// as it is final, then at a segment's end those still open. Nothing here fails the export but
/// `on_run`: a log or directory that cannot be read is recorded in its integrity entry and the
/// rest is read.
pub(super) fn scan_pod(
    pod: &PodEntry,
    progress: &mut dyn FnMut(Progress),
    on_run: &mut OnRun<'_>,
) -> Result<PodScan, ExportError> {
    let sessions = pod.dir.join("sessions");
    let mut logs = Vec::new();
    let mut unlisted = Vec::new();
    let mut unreadable = |error: String| {
        progress(Progress::LogUnreadable {
            pod_id: pod.id.clone(),
            log: "sessions".to_owned(),
            error: error.clone(),
        });
        let mut integrity = empty_integrity(&pod.id, "sessions".to_owned(), false);
        integrity.read_error = Some(error);
        unlisted.push(integrity);
    };
    match std::fs::read_dir(&sessions) {
        Ok(read_dir) => {
            for entry in read_dir {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(error) => {
                        unreadable(format!("listing stopped: {error}"));
                        break;
                    }
                };
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(segment) = name.strip_suffix(".jsonl")
                    && !segment.ends_with(".trace")
                {
                    logs.push(segment.to_owned());
                }
            }
        }
        // A pod that never ran has no logs: nothing is missing.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => unreadable(format!("could not list the session logs: {error}")),
    }
    // Segment ids are UUIDv7: sorting by name is sorting by creation.
    logs.sort();
    let open =
        |segment: &str,
         probe: bool,
         on_run: &mut dyn FnMut(&SegmentScan, RunAcc) -> Result<(), ExportError>| {
            let path = sessions.join(format!("{segment}.jsonl"));
            let trace = sessions.join(format!("{segment}.trace.jsonl")).is_file();
            let rel = format!("sessions/{segment}.jsonl");
            scan_segment(
                &pod.id,
                &path,
                rel,
                segment.to_owned(),
                trace,
                probe,
                on_run,
            )
        };
    // Whether log `i` counts as a segment, probed (read up to its `segment_started`) only when
    // an earlier segment ends with open runs.
    let mut is_segment: Vec<Option<bool>> = vec![None; logs.len()];
    let mut segments = Vec::with_capacity(logs.len());
    for i in 0..logs.len() {
        let scan = open(&logs[i], false, &mut |seg, acc| {
            // Final: the liveness facts of the segment's end are not needed.
            let end = SegmentEnd {
                scan: seg,
                later_segment: false,
            };
            on_run(&end, acc)
        })?;
        match &scan.integrity.read_error {
            Some(error) => progress(Progress::LogUnreadable {
                pod_id: pod.id.clone(),
                log: scan.log_rel.clone(),
                error: error.clone(),
            }),
            None => progress(Progress::LogScanned {
                pod_id: pod.id.clone(),
                log: scan.log_rel.clone(),
                bytes: scan.integrity.bytes,
            }),
        }
        is_segment[i] = Some(scan.is_a_segment());
        let mut scan = scan;
        let leftover: Vec<RunAcc> = scan.runs.drain(..).collect();
        if !leftover.is_empty() {
            let mut later_segment = false;
            // Only a run without a terminal entry ends as a later segment says.
            let open_runs = leftover.iter().any(|run| !run.is_final());
            let later = if open_runs { i + 1..logs.len() } else { 0..0 };
            for j in later {
                let known = match is_segment[j] {
                    Some(known) => known,
                    None => {
                        let probe = open(&logs[j], true, &mut |_, _| Ok(()))?;
                        let known = probe.is_a_segment();
                        is_segment[j] = Some(known);
                        known
                    }
                };
                if known {
                    later_segment = true;
                    break;
                }
            }
            let end = SegmentEnd {
                scan: &scan,
                later_segment,
            };
            for acc in leftover {
                on_run(&end, acc)?;
            }
        }
        segments.push(scan);
    }
    Ok(PodScan { segments, unlisted })
}
