//! Shared by the integration tests: temp recording paths and a deadline.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use labwire_tap::{Protocol, Recording, TapConfig, TapHandle};

/// Bound on any one step of a test.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// `fut`, or a panic naming `what` when it takes longer than [`DEADLINE`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

/// A fresh file path under the temp directory.
pub fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "labwire-tap-{}-{name}-{n}.jsonl",
        std::process::id()
    ))
}

/// A tap in front of `upstream` that records to a fresh file; returns it and the file.
pub async fn recording_tap(
    protocol: impl Protocol,
    upstream: impl ToString,
    name: &str,
) -> (TapHandle, PathBuf) {
    let path = temp_path(name);
    let mut config = TapConfig::new(upstream.to_string());
    config.record = Some(path.clone());
    let tap = labwire_tap::start(Arc::new(protocol), config)
        .await
        .expect("tap starts");
    (tap, path)
}

/// Waits for `connections` to end, shuts the tap down and loads its recording.
pub async fn finish(tap: TapHandle, path: PathBuf, connections: u64) -> Recording {
    within("the tapped connections", tap.wait_finished(connections)).await;
    within("tap shutdown", tap.shutdown())
        .await
        .expect("recording written");
    let recording = Recording::load(&path).expect("recording loads");
    let _ = std::fs::remove_file(&path);
    recording
}
