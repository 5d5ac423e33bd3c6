//! Cassettes for the replay provider, whatever the wire scheme, and the project profiles that
//! replay them.

use serde_json::{Value, json};

use crate::support::Sandbox;

/// Where project profiles live, below the sandbox root.
pub const PROJECT_PROFILES: &str = "work/.pods/profiles";

/// Named SSE events, one per value (named after its `type`).
pub fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            let name = e["type"].as_str().expect("event has a type");
            format!("event: {name}\ndata: {e}\n\n")
        })
        .collect()
}

/// One `200 text/event-stream` cassette response with `body`.
pub fn stream(body: String) -> Value {
    json!({"status": 200, "headers": {"content-type": "text/event-stream"}, "body": body})
}

/// A cassette of `responses` in wire scheme `scheme`.
pub fn cassette(scheme: &str, responses: Vec<Value>) -> String {
    json!({"scheme": scheme, "responses": responses}).to_string()
}

/// Write profile `name` into `dir` (a profile directory below the sandbox root): a replay model
/// named `model` serving the cassette text `cassette`, with `body` after its `[model]` section.
pub fn replay_profile_in(
    sandbox: &Sandbox,
    dir: &str,
    name: &str,
    model: &str,
    cassette: &str,
    body: &str,
) {
    sandbox.write(&format!("{dir}/{name}.json"), cassette);
    sandbox.write(
        &format!("{dir}/{name}.toml"),
        &format!(
            "[model]\nscheme = \"replay\"\nmodel = \"{model}\"\ncassette = \"{name}.json\"\n\n{body}\n"
        ),
    );
}

/// Project profile `name` replaying `responses` in `scheme` (model `m`); `body` goes after
/// `[model]`.
pub fn scheme_profile(
    sandbox: &Sandbox,
    name: &str,
    scheme: &str,
    body: &str,
    responses: Vec<Value>,
) {
    replay_profile_in(
        sandbox,
        PROJECT_PROFILES,
        name,
        "m",
        &cassette(scheme, responses),
        body,
    );
}
