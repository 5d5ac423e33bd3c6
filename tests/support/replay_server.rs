//! The replay server on loopback, for profiles that speak a real wire scheme to a `base_url`.

use pod_provider::{Cassette, ReplayServer};

/// A replay server serving `cassette`, with the runtime it runs on (dropped after it).
pub struct Served {
    pub server: ReplayServer,
    _runtime: tokio::runtime::Runtime,
}

/// Start a replay server serving `cassette` on a runtime of its own.
pub fn serve(cassette: Cassette) -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("build a runtime");
    let server = runtime
        .block_on(async { ReplayServer::start(cassette) })
        .expect("start the replay server");
    Served {
        server,
        _runtime: runtime,
    }
}
