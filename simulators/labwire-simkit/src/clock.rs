//! Simulated time: tokio's clock multiplied by a speed factor, plus manual advances.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A simulator's clock. Clones share the same time.
///
/// Simulated time is `elapsed × speed + advanced`, where `elapsed` is measured on tokio's clock
/// since the clock was created (so tests with paused tokio time drive it too). A speed of 1.0
/// runs in real time, 10.0 ten times faster, and 0.0 stops the clock so that only
/// [`SimClock::advance`] moves it — the deterministic choice for tests. Every computation
/// saturates: however absurd the speed or the advances, nothing panics.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    speed: f64,
    advanced: Mutex<Duration>,
    /// Wakes whoever waits on this clock when it is advanced by hand.
    advanced_notify: Notify,
}

/// Stands in for "the end of time" where an instant is needed: long enough for any test or
/// simulation, short enough that adding it to an instant never overflows in practice.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl SimClock {
    /// A clock starting now and running `speed` times faster than real time. Zero, negative,
    /// infinite or not-a-number speeds stop the clock (see [`SimClock::manual`]).
    ///
    /// Call it within a tokio runtime when the runtime's time is paused, so that the clock
    /// follows it.
    pub fn scaled(speed: f64) -> Self {
        Self::with_speed(if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            0.0
        })
    }

    /// A clock starting now that always runs: `speed` times faster than real time, where
    /// zero, negative, infinite or not-a-number speeds count as 1.0 (real time). For
    /// simulators whose delays must end on their own; [`SimClock::scaled`] stops the clock
    /// instead.
    pub fn new(speed: f64) -> Self {
        Self::with_speed(if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        })
    }

    /// A stopped clock that only [`SimClock::advance`] moves.
    pub fn manual() -> Self {
        Self::with_speed(0.0)
    }

    fn with_speed(speed: f64) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                speed,
                advanced: Mutex::new(Duration::ZERO),
                advanced_notify: Notify::new(),
            }),
        }
    }

    /// The speed factor: how many times faster than real time the clock runs (0 for a
    /// stopped clock).
    pub fn speed(&self) -> f64 {
        self.inner.speed
    }

    /// Whether the clock is stopped, so that only [`SimClock::advance`] moves it.
    pub fn is_manual(&self) -> bool {
        self.inner.speed == 0.0
    }

    /// Simulated time since the clock was created (saturating at [`Duration::MAX`]).
    pub fn now(&self) -> Duration {
        // `mul_f64` would panic on overflow (a huge speed): saturate instead.
        let scaled = self.inner.origin.elapsed().as_secs_f64() * self.inner.speed;
        let scaled = Duration::try_from_secs_f64(scaled).unwrap_or(Duration::MAX);
        scaled.saturating_add(*self.advanced())
    }

    /// Moves simulated time forward by `by` (saturating). Everything waiting on the clock
    /// notices at once: [`SimClock::sleep`] and the waiters of [`SimClock::advanced_by_hand`].
    pub fn advance(&self, by: Duration) {
        {
            let mut advanced = self.advanced();
            *advanced = advanced.saturating_add(by);
        }
        self.inner.advanced_notify.notify_waiters();
    }

    /// The real time it takes `simulated` time to pass on its own (saturating); `None` on a
    /// stopped clock, where it never does.
    pub fn real(&self, simulated: Duration) -> Option<Duration> {
        (self.inner.speed > 0.0).then(|| {
            let real = simulated.as_secs_f64() / self.inner.speed;
            Duration::try_from_secs_f64(real).unwrap_or(Duration::MAX)
        })
    }

    /// The current simulated time as an instant: the clock's creation instant plus
    /// [`SimClock::now`], which stops counting after a century so that the sum always exists.
    /// For code that keeps simulated deadlines as instants.
    pub fn instant(&self) -> std::time::Instant {
        let origin = self.inner.origin.into_std();
        origin
            .checked_add(self.now().min(CENTURY))
            .unwrap_or(origin)
    }

    /// Notified (with `notify_waiters`) each time [`SimClock::advance`] is called: a loop
    /// that polls simulated time can wait on it besides its real-time tick. Create and
    /// `enable` the `notified()` future before reading the time, so that no advance in
    /// between is missed.
    pub fn advanced_by_hand(&self) -> &Notify {
        &self.inner.advanced_notify
    }

    /// Waits until `simulated` time has passed: its real equivalent on a running clock, or
    /// sooner when [`SimClock::advance`] gets there first; on a stopped clock, until the
    /// advances add up to it.
    pub async fn sleep(&self, simulated: Duration) {
        let target = self.now().saturating_add(simulated);
        loop {
            let advanced = self.inner.advanced_notify.notified();
            tokio::pin!(advanced);
            // Armed before reading the time, so that an advance in between is not missed.
            advanced.as_mut().enable();
            let remaining = target.saturating_sub(self.now());
            if remaining.is_zero() {
                return;
            }
            match self.real(remaining) {
                Some(real) => tokio::select! {
                    // The time has passed at the clock's speed (up to rounding).
                    () = tokio::time::sleep(real) => return,
                    () = advanced => {}
                },
                None => advanced.await,
            }
        }
    }

    fn advanced(&self) -> MutexGuard<'_, Duration> {
        // A plain Duration: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .advanced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for SimClock {
    /// A real-time clock (speed 1.0).
    fn default() -> Self {
        Self::scaled(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_manual_clock_moves_only_when_advanced() {
        let clock = SimClock::manual();
        assert!(clock.is_manual());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.clone().now(), Duration::from_secs(3));
        assert_eq!(clock.real(Duration::from_secs(1)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scaled_clock_follows_tokio_time_times_the_speed_plus_advances() {
        let clock = SimClock::scaled(10.0);
        assert!(!clock.is_manual());
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
    fn a_scaled_clock_runs_faster_than_real_time_outside_a_runtime() {
        let clock = SimClock::scaled(1000.0);
        let start = std::time::Instant::now();
        while clock.now() < Duration::from_secs(1) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "clock does not run"
            );
            std::hint::spin_loop();
        }
        assert!(start.elapsed() < Duration::from_millis(900));
    }

    #[test]
    fn bad_speeds_stop_a_scaled_clock_and_run_a_new_one_in_real_time() {
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(SimClock::scaled(speed).speed(), 0.0, "{speed}");
            assert_eq!(SimClock::new(speed).speed(), 1.0, "{speed}");
        }
        assert_eq!(SimClock::new(2.5).speed(), 2.5);
        assert_eq!(SimClock::default().speed(), 1.0);
        assert_eq!(SimClock::manual().speed(), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_speed_or_advance_saturates_instead_of_panicking() {
        let clock = SimClock::scaled(f64::MAX);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::MAX);
        let _ = clock.instant();
        assert_eq!(clock.real(Duration::MAX), Some(Duration::ZERO));
        assert_eq!(
            SimClock::scaled(f64::MIN_POSITIVE).real(Duration::from_secs(1)),
            Some(Duration::MAX)
        );
        // Sleeping on a saturated clock is already over.
        tokio::time::timeout(Duration::from_millis(1), clock.sleep(Duration::MAX))
            .await
            .unwrap();
        let manual = SimClock::manual();
        manual.advance(Duration::MAX);
        manual.advance(Duration::MAX);
        assert_eq!(manual.now(), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn the_instant_moves_with_simulated_time() {
        let clock = SimClock::manual();
        let before = clock.instant();
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.instant() - before, Duration::from_secs(5));
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

    #[tokio::test(start_paused = true)]
    async fn sleep_takes_the_real_equivalent_on_a_scaled_clock() {
        let clock = SimClock::scaled(10.0);
        let start = Instant::now();
        clock.sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        clock.sleep(Duration::ZERO).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_on_a_manual_clock_ends_once_the_advances_add_up() {
        let clock = SimClock::manual();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        // Real time alone does nothing on a stopped clock.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(6));
        tokio::time::timeout(Duration::from_secs(1), sleeper)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_advance_shortens_sleep_on_a_scaled_clock() {
        let clock = SimClock::scaled(1.0);
        let start = Instant::now();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(100)).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(99));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        let waited = start.elapsed();
        assert!(waited <= Duration::from_secs(2), "{waited:?}");
    }
}
