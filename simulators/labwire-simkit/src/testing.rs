//! Helpers for tests that drive simulators (feature `testing`): waiting on a condition with a
//! deadline instead of sleeping for a guessed time.

use std::future::Future;
use std::time::Duration;

/// Default bound for anything a test waits for over loopback.
pub const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(5);

/// Polls `condition` until it holds or `within` passes; returns whether it held.
pub async fn eventually<F>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> bool,
{
    eventually_async(within, || std::future::ready(condition())).await
}

/// Like [`eventually`] for an async condition.
pub async fn eventually_async<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_never_holds_gives_up_at_the_deadline() {
        let started = tokio::time::Instant::now();
        assert!(!eventually(Duration::from_secs(1), || false).await);
        assert!(started.elapsed() >= Duration::from_secs(1));
        let mut calls = 0;
        assert!(
            eventually(Duration::from_secs(1), || {
                calls += 1;
                calls == 3
            })
            .await
        );
    }
}
