//! Simulated time: real time multiplied by a speed factor, plus manual advances.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The simulator's clock. Clones share the same time.
///
/// Simulated time is `real elapsed × speed + advanced`. A speed of 1.0 runs in real time, 10.0
/// ten times faster, and 0.0 stops the clock so that only [`SimClock::advance`] moves it — the
/// deterministic choice for tests.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    speed: f64,
    advanced: Mutex<Duration>,
}

impl SimClock {
    /// A clock running `speed` times faster than real time (negative or NaN counts as 0).
    pub fn scaled(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            0.0
        };
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                speed,
                advanced: Mutex::new(Duration::ZERO),
            }),
        }
    }

    /// A stopped clock that only [`SimClock::advance`] moves.
    pub fn manual() -> Self {
        Self::scaled(0.0)
    }

    /// The speed factor (0 for a manual clock).
    pub fn speed(&self) -> f64 {
        self.inner.speed
    }

    /// Simulated time since the clock was created (saturating at `Duration::MAX`, however
    /// absurd the speed or the advances).
    pub fn now(&self) -> Duration {
        let scaled = self.inner.origin.elapsed().as_secs_f64() * self.inner.speed;
        let real = Duration::try_from_secs_f64(scaled).unwrap_or(Duration::MAX);
        real.saturating_add(*self.advanced())
    }

    /// Moves simulated time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let mut advanced = self.advanced();
        *advanced = advanced.saturating_add(by);
    }

    fn advanced(&self) -> std::sync::MutexGuard<'_, Duration> {
        // The guarded value is a plain Duration: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .advanced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = SimClock::manual();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.clone().now(), Duration::from_secs(3));
    }

    #[test]
    fn an_absurd_speed_saturates_instead_of_panicking() {
        let clock = SimClock::scaled(1e300);
        let start = Instant::now();
        // The first real nanosecond is already past what a Duration can hold.
        while clock.now() == Duration::ZERO {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "clock does not run"
            );
            std::hint::spin_loop();
        }
        assert_eq!(clock.now(), Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::MAX);
    }

    #[test]
    fn scaled_clock_runs_faster_than_real_time() {
        let clock = SimClock::scaled(1000.0);
        let start = Instant::now();
        while clock.now() < Duration::from_secs(1) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "clock does not run"
            );
            std::hint::spin_loop();
        }
        assert!(start.elapsed() < Duration::from_millis(900));
    }
}
