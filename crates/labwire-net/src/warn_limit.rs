//! One rate limit for warnings about misbehaving peers, the same in every labwire server.
//!
//! A client that sends garbage, trickles a request past its deadline, stalls a frame or is
//! refused at the connection cap is worth a `WARN` line: it is usually a client bug under test.
//! But a flood of such clients must not flood the log (10 000 garbage connections once wrote
//! 2.2 MB of stderr). So every server has one [`WarnLimit`]: the first [`WarnLimit::burst`]
//! warnings of each [`WarnLimit::interval`] are logged, the rest are counted, and the next
//! warning logged after them is preceded by one line `suppressed K similar warnings`.
//!
//! The policy, the same in all servers built on labwire-net: a connection ended by its peer's
//! misbehaviour is a rate-limited `WARN` ([`peer_warn!`](crate::peer_warn)); a normal end
//! (the client closed, an idle connection timed out, an injected fault) is `trace`/`debug`.
//!
//! ```
//! use std::time::Duration;
//! use labwire_net::warn_limit::WarnLimit;
//!
//! static WARNINGS: WarnLimit = WarnLimit::new(10, Duration::from_secs(10));
//! let peer = "127.0.0.1:9";
//! labwire_net::peer_warn!(WARNINGS, %peer, "undecodable request");
//! ```

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use tracing as __tracing;

/// Warnings logged per interval by [`WarnLimit::default`].
pub const DEFAULT_BURST: u32 = 10;

/// The interval of [`WarnLimit::default`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// A fixed-window limit on warnings: at most `burst` per `interval`, the rest counted.
/// Shared by reference (a `static`, or an `Arc` per server); cheap when nothing is logged.
#[derive(Debug)]
pub struct WarnLimit {
    burst: u32,
    interval: Duration,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// When the current window began; `None` before the first warning.
    start: Option<Instant>,
    /// Warnings logged in the current window.
    logged: u32,
    /// Warnings suppressed since the last one logged.
    suppressed: u64,
}

/// What [`WarnLimit::admit`] decided for one warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Admit {
    /// Log it; `suppressed` warnings were dropped since the last one logged (say so first).
    Log {
        /// Warnings dropped since the last one logged.
        suppressed: u64,
    },
    /// Drop it (it is counted for the next summary).
    Suppress,
}

impl WarnLimit {
    /// At most `burst` warnings per `interval` (a `burst` of 0 suppresses every warning, and
    /// counts them all).
    pub const fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst,
            interval,
            window: Mutex::new(Window {
                start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Warnings logged per interval.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The length of one window.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether a warning happening now is to be logged.
    pub fn admit(&self) -> Admit {
        self.admit_at(Instant::now())
    }

    /// Whether a warning happening at `now` is to be logged (sans-IO: the caller reads the
    /// clock).
    pub fn admit_at(&self, now: Instant) -> Admit {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = window
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if expired {
            window.start = Some(now);
            window.logged = 0;
        }
        if window.logged < self.burst {
            window.logged += 1;
            let suppressed = std::mem::take(&mut window.suppressed);
            Admit::Log { suppressed }
        } else {
            window.suppressed = window.suppressed.saturating_add(1);
            Admit::Suppress
        }
    }

    /// Warnings suppressed since the last one logged.
    pub fn suppressed(&self) -> u64 {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .suppressed
    }
}

impl Default for WarnLimit {
    /// [`DEFAULT_BURST`] warnings per [`DEFAULT_INTERVAL`].
    fn default() -> Self {
        Self::new(DEFAULT_BURST, DEFAULT_INTERVAL)
    }
}

/// Logs a `tracing` warning about a misbehaving peer through a [`WarnLimit`]
/// (`peer_warn!(limit, fields.., "message")`, the arguments of `tracing::warn!`), preceded by
/// `suppressed K similar warnings` when warnings were dropped since the last one logged.
#[macro_export]
macro_rules! peer_warn {
    ($limit:expr, $($arg:tt)+) => {
        if let $crate::warn_limit::Admit::Log { suppressed } =
            $crate::warn_limit::WarnLimit::admit(&$limit)
        {
            if suppressed > 0 {
                $crate::warn_limit::__tracing::warn!(
                    suppressed,
                    "suppressed {} similar warnings",
                    suppressed
                );
            }
            $crate::warn_limit::__tracing::warn!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_burst_of_a_window_then_counts_and_reports_the_rest() {
        let limit = WarnLimit::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let admits: Vec<Admit> = (0..5).map(|_| limit.admit_at(t0)).collect();
        assert_eq!(
            admits,
            [
                Admit::Log { suppressed: 0 },
                Admit::Log { suppressed: 0 },
                Admit::Log { suppressed: 0 },
                Admit::Suppress,
                Admit::Suppress,
            ]
        );
        assert_eq!(limit.suppressed(), 2);
        // Still the same window: still suppressed.
        let later = t0 + Duration::from_secs(9);
        assert_eq!(limit.admit_at(later), Admit::Suppress);
        // A new window: the first warning carries the count, once.
        let next = t0 + Duration::from_secs(10);
        assert_eq!(limit.admit_at(next), Admit::Log { suppressed: 3 });
        assert_eq!(limit.admit_at(next), Admit::Log { suppressed: 0 });
        assert_eq!(limit.suppressed(), 0);
    }

    #[test]
    fn ten_thousand_warnings_in_a_burst_log_the_burst_only() {
        let limit = WarnLimit::default();
        let now = Instant::now();
        let logged = (0..10_000)
            .filter(|_| matches!(limit.admit_at(now), Admit::Log { .. }))
            .count();
        assert_eq!(logged, DEFAULT_BURST as usize);
        assert_eq!(limit.suppressed(), 10_000 - u64::from(DEFAULT_BURST));
    }

    #[test]
    fn a_zero_burst_suppresses_everything() {
        let limit = WarnLimit::new(0, Duration::from_secs(1));
        assert_eq!(limit.admit(), Admit::Suppress);
        assert_eq!(limit.suppressed(), 1);
    }

    #[test]
    fn the_macro_compiles_with_fields_and_a_static_limit() {
        static LIMIT: WarnLimit = WarnLimit::new(1, Duration::from_secs(60));
        let peer = "127.0.0.1:1";
        crate::peer_warn!(LIMIT, %peer, bytes = 3, "first");
        crate::peer_warn!(LIMIT, %peer, "second, suppressed");
        assert_eq!(LIMIT.suppressed(), 1);
    }
}
