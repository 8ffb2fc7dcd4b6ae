//! Faults on demand, shared by every connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the simulator does wrong, on purpose. Clones share the same settings.
///
/// The counted faults apply to the next `n` requests (from any connection), in this order of
/// precedence: drop the connection, never answer, answer with a wrong `request_id`, send half
/// the reply and close, send a frame of garbage instead of the reply. The delay applies to every
/// reply until cleared.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    delay: Option<Duration>,
    drop: usize,
    silence: usize,
    wrong_id: usize,
    truncate: usize,
    garbage: usize,
}

/// What to do with one reply, decided by [`Faults::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Reply normally (after `delay`, if any).
    Reply,
    /// Close the connection without replying.
    Drop,
    /// Read the request, never answer it.
    Silence,
    /// Answer with another `request_id`.
    WrongId,
    /// Send the first half of the reply frame, then close the connection.
    Truncate,
    /// Send a well-framed payload that is not JSON instead of the reply.
    Garbage,
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delays every reply by `delay` (real time), or stops delaying with `None`.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.state().delay = delay;
    }

    /// Closes the connection instead of answering the next `n` requests.
    pub fn drop_next(&self, n: usize) {
        self.state().drop = n;
    }

    /// Never answers the next `n` requests (the connection stays open).
    pub fn silence_next(&self, n: usize) {
        self.state().silence = n;
    }

    /// Answers the next `n` requests with a `request_id` other than the one received.
    pub fn wrong_request_id_next(&self, n: usize) {
        self.state().wrong_id = n;
    }

    /// Sends only the first half of the reply frame to the next `n` requests, then closes the
    /// connection.
    pub fn truncate_next(&self, n: usize) {
        self.state().truncate = n;
    }

    /// Answers the next `n` requests with a correctly framed payload that is not JSON.
    pub fn garbage_next(&self, n: usize) {
        self.state().garbage = n;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *self.state() = State::default();
    }

    /// Decides the fate of one reply, consuming one count of the fault applied.
    pub(crate) fn take(&self) -> (Action, Option<Duration>) {
        let mut s = self.state();
        let action = if s.drop > 0 {
            s.drop -= 1;
            Action::Drop
        } else if s.silence > 0 {
            s.silence -= 1;
            Action::Silence
        } else if s.wrong_id > 0 {
            s.wrong_id -= 1;
            Action::WrongId
        } else if s.truncate > 0 {
            s.truncate -= 1;
            Action::Truncate
        } else if s.garbage > 0 {
            s.garbage -= 1;
            Action::Garbage
        } else {
            Action::Reply
        };
        (action, s.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_apply_to_the_next_requests_only() {
        let faults = Faults::default();
        faults.drop_next(1);
        faults.wrong_request_id_next(1);
        assert_eq!(faults.take().0, Action::Drop);
        assert_eq!(faults.take().0, Action::WrongId);
        assert_eq!(faults.take().0, Action::Reply);
        faults.garbage_next(1);
        faults.truncate_next(1);
        faults.silence_next(1);
        assert_eq!(faults.take().0, Action::Silence);
        assert_eq!(faults.take().0, Action::Truncate);
        assert_eq!(faults.take().0, Action::Garbage);
        assert_eq!(faults.take().0, Action::Reply);
    }

    #[test]
    fn delay_persists_until_cleared() {
        let faults = Faults::default();
        faults.set_delay(Some(Duration::from_millis(5)));
        assert_eq!(faults.take().1, Some(Duration::from_millis(5)));
        assert_eq!(faults.take().1, Some(Duration::from_millis(5)));
        faults.clear();
        assert_eq!(faults.take(), (Action::Reply, None));
    }
}
