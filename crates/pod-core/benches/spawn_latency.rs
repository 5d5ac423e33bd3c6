//! Spawn latency: from the `spawn_pod` call (limits, child materialization, pod directory) to a
//! child process that reported ready and accepted its task, with the real `pods serve`.
//!
//! Run: `cargo build -p pod-cli --release && cargo bench -p pod-core --bench spawn_latency`.
//! The `pods` executable is `PODS_BENCH_EXE`, else `target/release/pods`, else
//! `target/debug/pods`. Target: p50 under 50 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pod_core::PodHome;
use pod_core::children::{Children, Launcher, ProfileChildFactory, SpawnArgs};
use pod_profile::{Catalog, Discovery, Overrides};

const SPAWNS: usize = 40;

fn pods_exe() -> PathBuf {
    if let Some(exe) = std::env::var_os("PODS_BENCH_EXE") {
        return exe.into();
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    for profile in ["release", "debug"] {
        let exe = target.join(profile).join("pods");
        if exe.exists() {
            return exe;
        }
    }
    panic!("no pods binary: run `cargo build -p pod-cli --release` or set PODS_BENCH_EXE");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn main() {
    let exe = pods_exe();
    let root = tempfile::tempdir().expect("tempdir");
    let profiles = root.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let body = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"status\":\"in_progress\",\"output\":[]}}\n\n\
                event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"output\":[]}}\n\n";
    let cassette = serde_json::json!({"scheme": "openai-responses", "responses": [
        {"status": 200, "headers": {"content-type": "text/event-stream"}, "body": body}]});
    std::fs::write(profiles.join("bench-child.json"), cassette.to_string()).unwrap();
    std::fs::write(
        profiles.join("bench-child.toml"),
        "[model]\nscheme = \"replay\"\nmodel = \"bench\"\ncassette = \"bench-child.json\"\n\n[agent]\ntools = []\n",
    )
    .unwrap();
    std::fs::write(
        profiles.join("bench-parent.toml"),
        "[spawn]\nallowed_profiles = [\"bench-child\"]\nmax_children = 64\n",
    )
    .unwrap();
    let catalog = Catalog::discover(&Discovery {
        cwd: root.path().to_owned(),
        user_config_dir: None,
        profile_dirs: vec![profiles.clone()],
    })
    .expect("catalog");
    let parent = catalog
        .resolve("bench-parent", &Overrides::default())
        .expect("parent manifest");
    let home = PodHome::at(root.path().join("home"));
    let parent_dir = home
        .create_pod(None, "bench-parent", None)
        .expect("parent dir");
    let factory = ProfileChildFactory {
        catalog,
        parent: parent.clone(),
        parent_pod_id: parent_dir.id().to_owned(),
        parent_scope: Arc::new(pod_core::scope::Scope::new(
            &parent.manifest.scope,
            root.path(),
        )),
        home,
        env: Vec::new(),
    };
    let children = Children::new(
        parent_dir.id(),
        parent.manifest.spawn.clone(),
        Launcher::with_exe(&exe)
            .with_global_args(["--profile-dir".into(), profiles.into_os_string()]),
        Arc::new(factory),
        Arc::new(|_| {}),
        std::time::Duration::from_millis(parent.manifest.limits.shutdown_grace_ms),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    std::env::set_current_dir(root.path()).unwrap();
    let mut samples = Vec::with_capacity(SPAWNS);
    runtime.block_on(async {
        for i in 0..SPAWNS {
            let args = SpawnArgs {
                profile: "bench-child".into(),
                task: "hello".into(),
                scope: None,
                overrides: None,
                name: Some(format!("c{i}")),
            };
            let started = Instant::now();
            let spawned = children.spawn("run", &format!("call{i}"), args).await;
            samples.push(started.elapsed());
            let spawned = spawned.expect("spawn");
            let pod = spawned["pod_id"].as_str().unwrap().to_owned();
            children
                .stop(&pod, &format!("stop{i}"), None)
                .await
                .expect("stop");
        }
    });
    samples.sort();
    println!(
        "spawn_latency: {} spawns with {}\n  p50 {:.1} ms  p95 {:.1} ms  min {:.1} ms  max {:.1} ms",
        samples.len(),
        exe.display(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}
