//! Simulated time: tokio's clock multiplied by a scale factor, plus manual advances.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The simulator's clock. Clones share the same time.
///
/// Simulated time is `elapsed × time_scale + advanced`, where `elapsed` is measured on tokio's
/// clock (so tests with paused tokio time drive it too). A scale of 1.0 runs in real time, 10.0
/// ten times faster, and 0.0 stops the clock so that only [`SimClock::advance`] moves it — the
/// deterministic choice for tests. The node's boot time, offline delay and discovery interval
/// are all measured in simulated time.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    scale: f64,
    advanced: Mutex<Duration>,
    /// Wakes the nodes using this clock when it is advanced by hand.
    advanced_notify: Notify,
}

impl SimClock {
    /// A clock running `scale` times faster than real time, starting now. Zero, negative or
    /// not-a-number scales stop the clock (see [`SimClock::manual`]).
    ///
    /// Call it within a tokio runtime when the runtime's time is paused, so that the clock
    /// follows it.
    pub fn scaled(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            0.0
        };
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                scale,
                advanced: Mutex::new(Duration::ZERO),
                advanced_notify: Notify::new(),
            }),
        }
    }

    /// A stopped clock that only [`SimClock::advance`] moves.
    pub fn manual() -> Self {
        Self::scaled(0.0)
    }

    /// The speed factor: how many times faster than real time it runs (0 for a manual
    /// clock). The same as [`SimConfig::time_scale`](crate::SimConfig::time_scale).
    pub fn speed(&self) -> f64 {
        self.inner.scale
    }

    /// Simulated time since the clock was created.
    pub fn now(&self) -> Duration {
        // `mul_f64` would panic on overflow (a huge scale): saturate instead.
        let real = self.inner.origin.elapsed().as_secs_f64() * self.inner.scale;
        let real = Duration::try_from_secs_f64(real).unwrap_or(Duration::MAX);
        real.saturating_add(*self.advanced())
    }

    /// Moves simulated time forward by `by`; nodes on this clock notice at once (a node that
    /// has finished booting, a coordinator gone offline, a discovery probe due).
    pub fn advance(&self, by: Duration) {
        {
            let mut advanced = self.advanced();
            *advanced = advanced.saturating_add(by);
        }
        self.inner.advanced_notify.notify_waiters();
    }

    /// Real time for `simulated` time to pass on its own; `None` on a stopped clock.
    pub fn real(&self, simulated: Duration) -> Option<Duration> {
        (self.inner.scale > 0.0).then(|| {
            let real = simulated.as_secs_f64() / self.inner.scale;
            Duration::try_from_secs_f64(real).unwrap_or(Duration::MAX)
        })
    }

    /// The current simulated time as an instant: the clock's origin plus [`SimClock::now`]
    /// (which stops counting after a century, so that the sum always exists).
    pub(crate) fn instant(&self) -> std::time::Instant {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let origin = self.inner.origin.into_std();
        origin
            .checked_add(self.now().min(CENTURY))
            .unwrap_or(origin)
    }

    /// Notified (`notify_waiters`) each time the clock is advanced by hand.
    pub(crate) fn advanced_by_hand(&self) -> &Notify {
        &self.inner.advanced_notify
    }

    fn advanced(&self) -> std::sync::MutexGuard<'_, Duration> {
        // A plain Duration: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .advanced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for SimClock {
    /// A real-time clock (scale 1.0).
    fn default() -> Self {
        Self::scaled(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn manual_clock_moves_only_when_advanced() {
        let clock = SimClock::manual();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.clone().now(), Duration::from_secs(3));
        assert_eq!(clock.real(Duration::from_secs(1)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn scaled_clock_follows_tokio_time_times_the_scale() {
        let clock = SimClock::scaled(10.0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(clock.now(), Duration::from_secs(20));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_secs(21));
        assert_eq!(
            clock.real(Duration::from_secs(5)),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn bad_scales_stop_the_clock() {
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(SimClock::scaled(scale).speed(), 0.0, "{scale}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_scale_saturates_instead_of_panicking() {
        let clock = SimClock::scaled(f64::MAX);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::MAX);
        let _ = clock.instant();
        assert_eq!(clock.real(Duration::from_secs(1)), Some(Duration::ZERO));
        assert_eq!(
            SimClock::scaled(f64::MIN_POSITIVE).real(Duration::from_secs(1)),
            Some(Duration::MAX)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn advancing_wakes_a_waiter() {
        let clock = SimClock::manual();
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.advanced_by_hand().notified().await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
