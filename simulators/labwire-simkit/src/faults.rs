//! One fault vocabulary for every simulator: what can go wrong with an answer, queued for a
//! number of requests or set until cleared.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Something that goes wrong with one request's answer. `P` is the simulator's own faults
/// (a wrong `request_id`, a silent start, a dropped event, …); [`NoDeviceFault`] when it has
/// none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault<P = NoDeviceFault> {
    /// The answer comes this much later (real time).
    Delay(Duration),
    /// No answer; the connection stays open (the client's deadline decides).
    NoReply,
    /// The connection is closed instead of answering.
    Close,
    /// Half of the answer, then the connection is closed (a close mid-answer).
    Truncate,
    /// Bytes that are not an answer instead of it; the connection stays open.
    Garbage,
    /// The simulator's own fault.
    Device(P),
}

/// The device fault type of a simulator that has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoDeviceFault {}

/// A simulator's faults, shared with it: what is queued applies to the next requests, one each,
/// in order; when the queue is empty, the fault [`set`](Faults::set) (if any) applies to every
/// request. Clones share the same faults.
#[derive(Debug)]
pub struct Faults<P = NoDeviceFault> {
    inner: Arc<Mutex<Inner<P>>>,
}

impl<P> Clone for Faults<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct Inner<P> {
    queue: VecDeque<(Fault<P>, u64)>,
    standing: Option<Fault<P>>,
    applied: u64,
}

impl<P> Default for Faults<P> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                queue: VecDeque::new(),
                standing: None,
                applied: 0,
            })),
        }
    }
}

impl<P: Clone> Faults<P> {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner<P>> {
        // A test thread that panicked while holding it leaves nothing half-changed here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `fault` for the next request (after those already queued).
    pub fn push(&self, fault: Fault<P>) {
        self.push_n(fault, 1);
    }

    /// `fault` for the next `count` requests (after those already queued).
    pub fn push_n(&self, fault: Fault<P>, count: u64) {
        if count > 0 {
            self.lock().queue.push_back((fault, count));
        }
    }

    /// `fault` for every request once the queue is empty, until [`Faults::clear`] (replaces the
    /// one set before; `None` removes it).
    pub fn set(&self, fault: Option<Fault<P>>) {
        self.lock().standing = fault;
    }

    /// Removes every fault, queued or set.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.queue.clear();
        inner.standing = None;
    }

    /// Requests still to be hit by a queued fault.
    pub fn queued(&self) -> u64 {
        self.lock().queue.iter().map(|(_, n)| n).sum()
    }

    /// The fault set until cleared, if any.
    pub fn standing(&self) -> Option<Fault<P>> {
        self.lock().standing.clone()
    }

    /// Faults applied so far.
    pub fn applied(&self) -> u64 {
        self.lock().applied
    }

    /// The fault for the request being answered now, if any (consumes one queued).
    pub fn take(&self) -> Option<Fault<P>> {
        let mut inner = self.lock();
        let fault = match inner.queue.front_mut() {
            Some((fault, count)) => {
                let fault = fault.clone();
                *count -= 1;
                if *count == 0 {
                    inner.queue.pop_front();
                }
                Some(fault)
            }
            None => inner.standing.clone(),
        };
        if fault.is_some() {
            inner.applied += 1;
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_go_first_one_request_each_then_the_standing_one() {
        let faults: Faults = Faults::new();
        faults.push_n(Fault::NoReply, 2);
        faults.push(Fault::Close);
        faults.set(Some(Fault::Delay(Duration::from_millis(5))));
        assert_eq!(faults.queued(), 3);
        let taken: Vec<_> = (0..5).map(|_| faults.take()).collect();
        assert_eq!(
            taken,
            [
                Some(Fault::NoReply),
                Some(Fault::NoReply),
                Some(Fault::Close),
                Some(Fault::Delay(Duration::from_millis(5))),
                Some(Fault::Delay(Duration::from_millis(5))),
            ]
        );
        assert_eq!(faults.applied(), 5);
        faults.clear();
        assert_eq!(faults.take(), None);
        assert_eq!(faults.applied(), 5);
    }

    #[test]
    fn clones_share_the_faults_and_a_zero_count_queues_nothing() {
        let faults: Faults<&'static str> = Faults::new();
        let other = faults.clone();
        other.push_n(Fault::Device("wrong id"), 0);
        assert_eq!(faults.queued(), 0);
        other.push(Fault::Device("wrong id"));
        assert_eq!(faults.take(), Some(Fault::Device("wrong id")));
        assert_eq!(other.take(), None);
    }
}
