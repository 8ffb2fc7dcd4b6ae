//! Support shared by the workspace integration tests in `tests/tests/`.
#![deny(missing_docs)]

use std::time::Duration;

/// Default bound for anything a test waits for over loopback.
pub const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds or `within` passes: the way a test waits for a state
/// change instead of sleeping for a guessed time. Returns whether the condition held.
pub async fn eventually<F>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> bool,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Like [`eventually`] for an async condition.
pub async fn eventually_async<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
