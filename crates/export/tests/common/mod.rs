//! Pod homes built with the runtime's own record types and serializer: the same bytes the
//! runtime writes, arranged into each situation an export must explain.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use pod_protocol::record::*;
use pod_protocol::{ErrorClass, ProviderError};

pub struct Home {
    _temp: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl Home {
    pub fn new() -> Home {
        let temp = tempfile::Builder::new()
            .prefix("export-test-")
            .tempdir()
            .unwrap();
        Home {
            root: temp.path().to_path_buf(),
            _temp: Some(temp),
        }
    }

    /// A home at a fixed place (fixture generation).
    pub fn at(root: &Path) -> Home {
        Home {
            _temp: None,
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Create a pod directory with `pod.json`, a small manifest and provenance.
    pub fn pod(&self, id: &str, name: &str, parent: Option<&str>) -> Pod {
        let dir = self.path().join("pods").join(id);
        std::fs::create_dir_all(dir.join("sessions")).unwrap();
        let info = PodInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            profile: "coder".to_owned(),
            parent_id: parent.map(str::to_owned),
            created: "2026-11-23T01:00:00.000Z".to_owned(),
            pid: None,
            state: PodState::Stopped,
            work_dir: None,
        };
        std::fs::write(
            dir.join("pod.json"),
            serde_json::to_vec_pretty(&info).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join("manifest.toml"),
            "[model]\nscheme = \"replay\"\nmodel = \"gpt-test\"\napi_key_env = \"TEST_POD_KEY\"\n\
             cassette = \"/secret/cassettes/run.json\"\n\n[agent]\ninstructions = \"Be terse.\"\n\n\
             [scope]\nallow = [\"/home/alice/project\"]\ndeny = []\n\n[session]\nrecord_event_trace = true\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("provenance.json"),
            r#"{"session.record_event_trace":{"kind":"parent","detail":"parent pod P","from":{"kind":"profile","detail":"/home/alice/.config/pods/profiles/debug.toml:3 session.record_event_trace"}},"model.model":{"kind":"default","detail":"compiled-in default"}}"#,
        )
        .unwrap();
        Pod {
            id: id.to_owned(),
            dir,
        }
    }
}

pub struct Pod {
    pub id: String,
    pub dir: PathBuf,
}

impl Pod {
    /// Start a segment log owned by `pid`.
    pub fn segment(&self, segment_id: &str, pid: u32) -> Log {
        let path = self
            .dir
            .join("sessions")
            .join(format!("{segment_id}.jsonl"));
        let mut log = Log {
            path,
            seq: 0,
            pod_id: self.id.clone(),
        };
        log.push(LogBody::SegmentStarted(SegmentStarted {
            pod_id: self.id.clone(),
            segment_id: segment_id.to_owned(),
            profile: "coder".to_owned(),
            manifest_digest: "sha256:00".to_owned(),
            pid,
            format_version: LOG_FORMAT_VERSION,
            writer: "pods 0.1.0".to_owned(),
        }));
        log
    }

    pub fn set_pid(&self, pid: u32, state: PodState) {
        let path = self.dir.join("pod.json");
        let mut info: PodInfo = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        info.pid = Some(pid);
        info.state = state;
        std::fs::write(path, serde_json::to_vec(&info).unwrap()).unwrap();
    }
}

pub struct Log {
    pub path: PathBuf,
    pub seq: u64,
    pub pod_id: String,
}

pub const TS: &str = "2026-11-23T01:02:03.456Z";

impl Log {
    pub fn push(&mut self, body: LogBody) -> &mut Log {
        self.seq += 1;
        let entry = LogEntry {
            seq: self.seq,
            ts: TS.to_owned(),
            body,
        };
        self.raw(&format!("{}\n", serde_json::to_string(&entry).unwrap()));
        self
    }

    /// Append raw bytes (torn lines, garbage).
    pub fn raw(&mut self, text: &str) -> &mut Log {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
        self
    }

    pub fn skip_seq(&mut self, n: u64) -> &mut Log {
        self.seq += n;
        self
    }

    pub fn run_started(&mut self, run: &str, input: &str) -> &mut Log {
        self.push(LogBody::RunStarted(RunStarted {
            run_id: run.to_owned(),
            trigger: RunTrigger::Cli,
            request_id: Some(format!("req-{run}")),
            input: input.to_owned(),
            traceparent: None,
        }))
    }

    pub fn request(&mut self, run: &str) -> &mut Log {
        self.push(LogBody::ProviderRequestStarted(ProviderRequestStarted {
            run_id: run.to_owned(),
            turn: 1,
            attempt: 1,
            scheme: "openai-responses".to_owned(),
            model: "gpt-test".to_owned(),
            retry_of: None,
        }))
    }

    pub fn message(&mut self, run: &str, text: &str) -> &mut Log {
        self.push(LogBody::AssistantMessage(AssistantMessage {
            run_id: run.to_owned(),
            turn: 1,
            text: text.to_owned(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
        }))
    }

    pub fn tool_started(
        &mut self,
        run: &str,
        call: &str,
        tool: &str,
        class: SideEffectClass,
        input: serde_json::Value,
    ) -> &mut Log {
        self.push(LogBody::ToolCallStarted(ToolCallStarted {
            run_id: run.to_owned(),
            call_id: call.to_owned(),
            tool: tool.to_owned(),
            side_effect: class,
            input,
        }))
    }

    pub fn tool_finished(
        &mut self,
        run: &str,
        call: &str,
        tool: &str,
        class: SideEffectClass,
        output: &str,
    ) -> &mut Log {
        self.push(LogBody::ToolCallFinished(ToolCallFinished {
            run_id: run.to_owned(),
            call_id: call.to_owned(),
            tool: tool.to_owned(),
            side_effect: class,
            outcome: ToolOutcome::Ok,
            output: output.to_owned(),
        }))
    }

    pub fn completed(&mut self, run: &str, text: &str) -> &mut Log {
        self.push(LogBody::RunCompleted(RunCompleted {
            run_id: run.to_owned(),
            turns: 1,
            text: text.to_owned(),
            reason: "end_turn".to_owned(),
            stop_reason: Some(pod_protocol::record::StopReason::EndTurn),
        }))
    }

    pub fn errored(
        &mut self,
        run: &str,
        class: ErrorClass,
        code: &str,
        phase: RunPhase,
    ) -> &mut Log {
        self.push(LogBody::RunErrored(RunErrored {
            run_id: run.to_owned(),
            error: ProviderError {
                class,
                code: Some(code.to_owned()),
                http_status: Some(400),
                provider_request_id: Some("req_prov_1".to_owned()),
                retry_after_ms: None,
                retryable: false,
                message:
                    "This model's maximum context length is 128000 tokens at /home/alice/project"
                        .to_owned(),
            },
            phase,
        }))
    }

    pub fn interrupted(
        &mut self,
        run: &str,
        reason: &str,
        action: Option<LifecycleAction>,
        phase: RunPhase,
    ) -> &mut Log {
        self.push(LogBody::RunInterrupted(RunInterrupted {
            run_id: run.to_owned(),
            reason: reason.to_owned(),
            action,
            phase,
        }))
    }

    pub fn action(&mut self, action: LifecycleAction, active_run: Option<&str>) -> &mut Log {
        self.push(LogBody::LifecycleAction(LifecycleActionRecorded {
            action,
            active_run_id: active_run.map(str::to_owned),
        }))
    }

    pub fn child_exited(&mut self, child: &str, signal: Option<i32>, expected: bool) -> &mut Log {
        self.push(LogBody::ChildExited(ChildExited {
            child_pod_id: child.to_owned(),
            exit_code: None,
            signal,
            expected,
        }))
    }

    pub fn closed(&mut self, reason: &str) -> &mut Log {
        self.push(LogBody::SegmentClosed(SegmentClosed {
            reason: reason.to_owned(),
        }))
    }
}

pub fn action(id: &str, kind: LifecycleKind, affects: &[&str], origin: Origin) -> LifecycleAction {
    LifecycleAction {
        action_id: id.to_owned(),
        kind,
        started_at: TS.to_owned(),
        started_mono_ms: 5,
        affects: affects.iter().map(|s| (*s).to_owned()).collect(),
        origin,
        reason: None,
        caused_by: None,
    }
}

pub fn cli_origin(request_id: &str) -> Origin {
    Origin::Cli {
        command: "pods stop POD --reason \"cleanup of /home/alice/project\"".to_owned(),
        request_id: request_id.to_owned(),
    }
}

pub fn phase(output: bool, tool: ToolExecutionPhase, effects: &[SideEffectClass]) -> RunPhase {
    RunPhase {
        provider_progress_seen: true,
        visible_output_seen: output,
        tool_execution: tool,
        side_effects_started: effects.to_vec(),
    }
}

/// A pid that belonged to a process that has exited and been reaped.
pub fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}
