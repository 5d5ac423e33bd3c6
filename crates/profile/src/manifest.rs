//! The runtime manifest: the fully resolved settings a pod runs with.
//!
//! The key names here are the public configuration schema (profiles, `--set`, `PODS_*` env vars,
//! `manifest.toml`). Every struct denies unknown fields so a typo is an error, never ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use pod_protocol::record::SideEffectClass;

/// The fully resolved settings of one pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Manifest {
    pub model: ModelSection,
    pub agent: AgentSection,
    pub scope: ScopeSection,
    pub session: SessionSection,
    pub spawn: SpawnSection,
    pub limits: LimitsSection,
    pub permissions: PermissionsSection,
    pub mcp: McpSection,
    pub telemetry: TelemetrySection,
}

/// The wire scheme a pod talks to its provider with: one of the provider wire schemes
/// (`pod_protocol::WireScheme`), or `replay`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Default,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Scheme {
    #[default]
    OpenaiResponses,
    OpenaiChat,
    AnthropicMessages,
    Gemini,
    /// Serve recorded responses from `model.cassette` over a loopback HTTP server; the cassette
    /// names the wire scheme it speaks.
    Replay,
}

impl Scheme {
    /// The name as in manifests (`openai-chat`, …).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Whether a pod authenticates to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// An API key is required: read from `model.api_key_env` (else the scheme's variable) and
    /// sent the scheme's way.
    #[default]
    Key,
    /// No key: none is read, required or sent (Ollama, llama.cpp's server, vLLM, …).
    None,
}

impl Auth {
    pub fn is_key(&self) -> bool {
        *self == Auth::Key
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    pub scheme: Scheme,
    pub model: String,
    /// Provider base URL; when absent the scheme's public endpoint is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (never the key itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// `"none"`: the provider takes no key (a local server); none is read or sent.
    #[serde(skip_serializing_if = "Auth::is_key")]
    pub auth: Auth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// For `scheme = "replay"`: the cassette to serve. A relative path is resolved against the
    /// directory of the profile file that set it; `builtin:NAME` names a cassette shipped with
    /// pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cassette: Option<String>,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            scheme: Scheme::OpenaiResponses,
            model: "gpt-4.1-mini".to_owned(),
            base_url: None,
            api_key_env: None,
            auth: Auth::Key,
            temperature: None,
            max_output_tokens: None,
            cassette: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// System instructions given to the model.
    pub instructions: String,
    /// Upper bound on model requests within one run.
    pub max_turns: u32,
    /// Tools the pod may offer the model, by name.
    pub tools: Vec<String>,
    /// Time one `shell` command may run before its process group is killed.
    pub shell_timeout_ms: u64,
    /// Bytes of a `shell` command's output (stdout and stderr together) the model gets: the
    /// head and the tail are kept, the middle is cut and its length stated.
    pub shell_output_bytes: u64,
    /// Whether `shell` commands may use the network. Off: the sandbox denies TCP connects and
    /// binds where the kernel supports it (see `pods doctor`).
    pub shell_network: bool,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            instructions: "You are a careful software agent. Use tools when they help.".to_owned(),
            max_turns: 16,
            tools: vec![
                "read_file".to_owned(),
                "list_dir".to_owned(),
                "write_file".to_owned(),
                "edit_file".to_owned(),
                "search".to_owned(),
                "shell".to_owned(),
            ],
            shell_timeout_ms: 120_000,
            shell_output_bytes: 64 * 1024,
            shell_network: false,
        }
    }
}

/// Filesystem scope. Paths are directories; relative ones resolve against the pod's working
/// directory. A path is inside the scope when it is under some `allow` entry and under no `deny`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeSection {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Default for ScopeSection {
    fn default() -> Self {
        ScopeSection {
            allow: vec![".".to_owned()],
            deny: Vec::new(),
        }
    }
}

/// Diagnostics. Every key here is sticky down the pod tree (see child materialization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    /// Write the trace sidecar (`<segment>.trace.jsonl`) with every normalized stream event and
    /// lifecycle marker.
    pub record_event_trace: bool,
    /// Also write raw SSE frames into the trace (bounded per frame).
    pub trace_raw_sse: bool,
    /// Bytes kept of one raw SSE frame's data in the trace.
    pub trace_max_frame_bytes: u32,
    /// Entries the trace writer queue holds before it sheds (and records how many it shed).
    pub trace_queue_capacity: u32,
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            record_event_trace: false,
            trace_raw_sse: false,
            trace_max_frame_bytes: 16 * 1024,
            // A burst of 200,000 deltas arriving at once stays within it while the writer
            // thread catches up.
            trace_queue_capacity: 65536,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpawnSection {
    /// Profiles this pod may spawn children from; empty means none.
    pub allowed_profiles: Vec<String>,
    /// How many more generations may be spawned below this pod (0: no children).
    pub max_depth: u32,
    /// Live children at once.
    pub max_children: u32,
}

impl Default for SpawnSection {
    fn default() -> Self {
        SpawnSection {
            allowed_profiles: Vec::new(),
            max_depth: 2,
            max_children: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Time allowed from sending a request to the first stream event.
    pub first_event_timeout_ms: u64,
    /// Time allowed between two stream events.
    pub idle_timeout_ms: u64,
    /// Attempts per model request, the first included.
    pub max_attempts: u32,
    /// Total time retries of one request may take.
    pub retry_budget_ms: u64,
    /// Time a spawned child has to report ready.
    pub spawn_ready_timeout_ms: u64,
    /// The pod's idle watchdog: a run that shows no progress (no stream event, no tool result;
    /// time inside a tool call does not count) for this long is interrupted with a `watchdog`
    /// lifecycle action and the pod stops. 0 turns the watchdog off.
    pub watchdog_ms: u64,
    /// Bytes of response body one provider request may stream before it is ended with a
    /// classified `response_too_large` error (a stream that never finishes cannot grow memory or
    /// the log without bound).
    pub max_response_bytes: u64,
    /// Wall time one provider request may stream, from sending it to its last event; past it
    /// the response is ended with a classified error. 0 means no limit.
    pub max_response_ms: u64,
    /// Time a stopping pod waits for its children to end before it kills their process groups.
    pub shutdown_grace_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            first_event_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            max_attempts: 4,
            retry_budget_ms: 120_000,
            spawn_ready_timeout_ms: 10_000,
            watchdog_ms: 0,
            max_response_bytes: 128 * 1024 * 1024,
            max_response_ms: 0,
            shutdown_grace_ms: 5_000,
        }
    }
}

/// What happens when the model calls a tool: it runs, it is refused, or somebody is asked.
/// Ordered from the most to the least permissive, so the stricter of two is their maximum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Permission {
    Allow,
    /// Ask the user at the root pod's terminal; without one, `--approve` decides, else deny.
    Ask,
    Deny,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The approval policy: a permission per side-effect class, and per tool. A tool's own entry
/// can only tighten its class's (the stricter of the two applies), so a child whose entries are
/// each at least as strict as its parent's is never more permissive than the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionsSection {
    pub read_only: Permission,
    pub local_write: Permission,
    pub process: Permission,
    pub network: Permission,
    pub spawn: Permission,
    /// Tools whose side effect is not known (MCP tools unless their server says otherwise).
    pub unknown: Permission,
    /// Tool name → permission, applied on top of the tool's class.
    pub tools: BTreeMap<String, Permission>,
}

impl Default for PermissionsSection {
    fn default() -> Self {
        PermissionsSection {
            read_only: Permission::Allow,
            local_write: Permission::Allow,
            process: Permission::Ask,
            network: Permission::Ask,
            spawn: Permission::Allow,
            unknown: Permission::Ask,
            tools: BTreeMap::new(),
        }
    }
}

impl PermissionsSection {
    /// The permission for a call of `tool`, whose side effect is `class`, and the key that
    /// set it (`permissions.process`, or `permissions.tools.NAME` when that entry is stricter).
    pub fn for_tool(&self, tool: &str, class: SideEffectClass) -> Ruling {
        let (by_class, class_key) = match class {
            SideEffectClass::ReadOnly => (self.read_only, "read_only"),
            SideEffectClass::LocalWrite => (self.local_write, "local_write"),
            SideEffectClass::Process => (self.process, "process"),
            SideEffectClass::Network => (self.network, "network"),
            SideEffectClass::Spawn => (self.spawn, "spawn"),
            SideEffectClass::Unknown => (self.unknown, "unknown"),
        };
        match self.tools.get(tool) {
            Some(own) if *own > by_class => Ruling {
                permission: *own,
                key: format!("permissions.tools.{tool}"),
            },
            _ => Ruling {
                permission: by_class,
                key: format!("permissions.{class_key}"),
            },
        }
    }
}

/// A permission and the key it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub permission: Permission,
    pub key: String,
}

impl std::fmt::Display for Ruling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = \"{}\"", self.key, self.permission.as_str())
    }
}

/// MCP servers whose tools the pod offers its model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// By name; the model sees a server's tool `T` as `mcp__NAME__T`.
    pub servers: BTreeMap<String, McpServer>,
}

/// One MCP server, started over stdio with the pod and stopped with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServer {
    /// The program to start (looked up on `PATH` when it has no slash).
    pub command: String,
    pub args: Vec<String>,
    /// Names of environment variables passed through to the server; nothing else is (the key
    /// variables only when named here).
    pub env: Vec<String>,
    /// Working directory; relative to the pod's working directory. Default: that directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The server's tools the model may call; absent means all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// The side-effect class recorded for the server's tools (and judged by `[permissions]`
    /// and retry safety).
    pub side_effect: SideEffectClass,
    pub startup_timeout_ms: u64,
    pub call_timeout_ms: u64,
}

impl Default for McpServer {
    fn default() -> Self {
        McpServer {
            command: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            tools: None,
            side_effect: SideEffectClass::Unknown,
            startup_timeout_ms: 10_000,
            call_timeout_ms: 60_000,
        }
    }
}

/// OpenTelemetry export of the pod's runs, requests and tool calls while it runs (spans by the
/// GenAI semantic conventions). Every key is sticky down the pod tree, so a tree reports to one
/// place. The standard `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_SERVICE_NAME` and `OTEL_SDK_DISABLED` variables are honoured too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// The OTLP/HTTP traces endpoint, used as given (e.g. `http://localhost:4318/v1/traces`).
    /// Unset: `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended), else no export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    pub protocol: TelemetryProtocol,
    /// Names of environment variables holding request headers for the collector, each as
    /// `key=value,key2=value2` (the `OTEL_EXPORTER_OTLP_HEADERS` form); never the values.
    pub headers_env: Vec<String>,
    /// Also export prompts, outputs, tool arguments and results (bounded, keys removed).
    pub capture_content: bool,
}

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TelemetryProtocol {
    /// OTLP over HTTP with protobuf bodies, which every collector accepts.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The compiled-in default.
    Default,
    /// A profile shipped with pods (embedded from `profiles/`).
    Builtin,
    /// The user config (`$XDG_CONFIG_HOME/pods/config.toml`).
    User,
    /// The project config (`.pods/config.toml`).
    Project,
    /// A profile file (user, project or `--profile-dir`).
    Profile,
    /// A `PODS_SECTION__KEY` environment variable.
    Env,
    /// `--set section.key=value` on the command line.
    Cli,
    /// A command-line option of its own, e.g. `-m/--model` for `model.model`.
    CommandLine,
    /// The wire scheme's own default (its endpoint, its API key variable): what a run uses when
    /// no layer sets the key. Only `pods profile show` / `explain` state it; it is never stored.
    SchemeDefault,
    /// Handed down from the parent pod; `from` holds the parent's own provenance.
    Parent,
    /// An explicit override in the `spawn_pod` request.
    SpawnRequest,
    /// The source was not recorded (e.g. a parent manifest stored without provenance for this
    /// key). Stated as unknown, never guessed.
    Unknown,
}

/// The provenance of one leaf key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub kind: SourceKind,
    /// Human-readable detail: file path and key, env var name, `--set` text, parent pod id, …
    pub detail: String,
    /// For kind `parent`: the parent's own provenance of this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Box<Provenance>>,
}

/// Provenance of every leaf key, by dotted path (`session.record_event_trace`).
pub type ProvenanceMap = BTreeMap<String, Provenance>;

/// A manifest together with where each of its leaf values came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedManifest {
    pub manifest: Manifest,
    pub provenance: ProvenanceMap,
}

#[cfg(test)]
mod scheme_names {
    use strum::VariantArray;

    use super::Scheme;

    #[test]
    fn every_scheme_is_named_as_manifests_write_it() {
        for scheme in Scheme::VARIANTS {
            let written = toml::Value::try_from(scheme).map(|v| v.as_str().map(str::to_owned));
            assert_eq!(written.ok().flatten().as_deref(), Some(scheme.as_str()));
        }
    }
}
