//! The replay server: serves a cassette of recorded responses over loopback HTTP so the real
//! client path runs without network or API key.
//!
//! `cassette` is the format (and reading it from a cassette file, a response capture or a bare
//! SSE body), `capture` reads HTTP response captures, `server` serves a cassette.

mod capture;
mod cassette;
mod server;

pub use capture::{HttpCapture, parse_http_capture};
pub use cassette::{
    CASSETTE_VERSION, Cassette, CassetteResponse, KeepaliveAfterEvents, PauseAfterEvents,
    ReplayFile, load_replay_file, sse_body,
};
pub use server::{ReceivedRequest, ReplayServer};
