//! One fault vocabulary for every simulator: what can go wrong with an answer, queued for a
//! number of requests or set until cleared, for every request or only for those a simulator's
//! [`Matcher`] picks, from the next request on or from the N-th.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Something that goes wrong with one request's answer. `P` is the simulator's own faults
/// (a wrong `request_id`, a silent start, a dropped event, …); [`NoDeviceFault`] when it has
/// none.
///
/// With feature `serde`, it reads and writes in snake case: `no_reply`, `close`, `truncate`,
/// `garbage`, `{delay: 200ms}` (a duration with its unit, see [`crate::duration`]),
/// `{device: <the simulator's fault>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Fault<P = NoDeviceFault> {
    /// The answer comes this much later (real time).
    Delay(#[cfg_attr(feature = "serde", serde(with = "crate::duration::humane"))] Duration),
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

/// Picks the requests a scheduled fault applies to ("GetTestData", "every `ping`"): each
/// simulator has its own, serde-derived for scenario files and the control channel. `R` is
/// the request as the device receives it.
pub trait Matcher<R: ?Sized> {
    /// Whether `request` is one of those this matcher picks.
    fn matches(&self, request: &R) -> bool;
}

/// The matcher of a simulator that has none: there is no value of it, so a schedule entry
/// can only apply to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoMatcher {}

impl<R: ?Sized> Matcher<R> for NoMatcher {
    fn matches(&self, _request: &R) -> bool {
        match *self {}
    }
}

/// `Fault`'s text form, read by hand: a YAML reader takes a one-key map for an enum only as a
/// tag (`!delay 200ms`), and `{delay: 200ms}` is what people write.
#[cfg(feature = "serde")]
mod fault_serde {
    use super::Fault;
    use crate::duration::Humane;
    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};
    use std::fmt;
    use std::marker::PhantomData;

    const VARIANTS: &[&str] = &[
        "delay", "no_reply", "close", "truncate", "garbage", "device",
    ];

    struct FaultVisitor<P>(PhantomData<P>);

    impl<'de, P: Deserialize<'de>> Visitor<'de> for FaultVisitor<P> {
        type Value = Fault<P>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a fault: no_reply, close, truncate, garbage, {delay: <duration>} or \
                 {device: <the simulator's fault>}",
            )
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<Fault<P>, E> {
            match name {
                "no_reply" => Ok(Fault::NoReply),
                "close" => Ok(Fault::Close),
                "truncate" => Ok(Fault::Truncate),
                "garbage" => Ok(Fault::Garbage),
                "delay" | "device" => {
                    Err(E::custom(format!("`{name}` needs a value: {{{name}: ..}}")))
                }
                other => Err(E::unknown_variant(other, VARIANTS)),
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fault<P>, A::Error> {
            let Some(key) = map.next_key::<String>()? else {
                return Err(de::Error::custom("an empty map is not a fault"));
            };
            let fault = match key.as_str() {
                "delay" => Fault::Delay(map.next_value::<Humane>()?.0),
                "device" => Fault::Device(map.next_value()?),
                "no_reply" | "close" | "truncate" | "garbage" => {
                    map.next_value::<de::IgnoredAny>()?;
                    self.visit_str(&key)?
                }
                other => return Err(de::Error::unknown_variant(other, VARIANTS)),
            };
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom("a fault is a map with one key"));
            }
            Ok(fault)
        }
    }

    impl<'de, P: Deserialize<'de>> Deserialize<'de> for Fault<P> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(FaultVisitor(PhantomData))
        }
    }
}

#[cfg(feature = "serde")]
mod no_serde {
    use super::{NoDeviceFault, NoMatcher};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for NoMatcher {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            match *self {}
        }
    }

    impl<'de> Deserialize<'de> for NoMatcher {
        fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(D::Error::custom(
                "this simulator has no request matcher: leave `matching` out",
            ))
        }
    }

    impl Serialize for NoDeviceFault {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            match *self {}
        }
    }

    impl<'de> Deserialize<'de> for NoDeviceFault {
        fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(D::Error::custom("this simulator has no device faults"))
        }
    }
}

/// One entry of a fault schedule: which requests get `fault`, and how many.
///
/// In a scenario file or a control request (feature `serde`; unknown fields are refused):
///
/// | field | meaning |
/// |---|---|
/// | `fault` | the [`Fault`] (required) |
/// | `matching` | only requests the simulator's matcher picks (default: every request) |
/// | `request` | from the N-th request on (counting from 1, from when the entry was scheduled: the start for a scenario; with `matching`, the N-th matching one); default: the next |
/// | `count` | for this many requests (default 1) |
/// | `until_cleared` | `true`: for every such request until the faults are cleared (instead of `count`) |
///
/// ```yaml
/// - { request: 3, fault: no_reply }                 # the 3rd request gets no answer
/// - { matching: { command: GetTestData }, fault: { delay: 200ms }, count: 1 }
/// - { fault: { device: wrong_request_id } }         # the next request
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        try_from = "RawScheduledFault<P, M>",
        into = "RawScheduledFault<P, M>",
        bound(
            serialize = "P: serde::Serialize + Clone, M: serde::Serialize + Clone",
            deserialize = "P: serde::Deserialize<'de>, M: serde::Deserialize<'de>"
        )
    )
)]
pub struct ScheduledFault<P = NoDeviceFault, M = NoMatcher> {
    /// What goes wrong.
    pub fault: Fault<P>,
    /// Only requests this picks; `None`: every request.
    pub matching: Option<M>,
    /// From the N-th request (or N-th matching request) on, counted from 1 from when the entry
    /// is scheduled; `None` is the next one.
    pub request: Option<u64>,
    /// How many requests; `None`: until cleared.
    pub count: Option<u64>,
}

impl<P, M> ScheduledFault<P, M> {
    /// `fault` for the next request.
    pub fn next(fault: Fault<P>) -> Self {
        Self {
            fault,
            matching: None,
            request: None,
            count: Some(1),
        }
    }

    /// Only for requests `matcher` picks.
    #[must_use]
    pub fn matching(mut self, matcher: M) -> Self {
        self.matching = Some(matcher);
        self
    }

    /// From the `n`-th request on (1 is the next).
    #[must_use]
    pub fn from_request(mut self, n: u64) -> Self {
        self.request = Some(n);
        self
    }

    /// For `count` requests.
    #[must_use]
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// For every request it applies to, until cleared.
    #[must_use]
    pub fn until_cleared(mut self) -> Self {
        self.count = None;
        self
    }
}

/// The text form of [`ScheduledFault`], checked on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "ScheduledFault",
    bound(
        serialize = "P: serde::Serialize, M: serde::Serialize",
        deserialize = "P: serde::Deserialize<'de>, M: serde::Deserialize<'de>"
    )
)]
struct RawScheduledFault<P, M> {
    fault: Fault<P>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    matching: Option<M>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    until_cleared: bool,
}

#[cfg(feature = "serde")]
impl<P, M> TryFrom<RawScheduledFault<P, M>> for ScheduledFault<P, M> {
    type Error = String;

    fn try_from(raw: RawScheduledFault<P, M>) -> Result<Self, String> {
        if raw.request == Some(0) {
            return Err("`request` counts from 1".to_owned());
        }
        let count = match (raw.count, raw.until_cleared) {
            (Some(_), true) => {
                return Err("give `count` or `until_cleared: true`, not both".to_owned());
            }
            (Some(0), false) => return Err("`count` must be 1 or more".to_owned()),
            (Some(n), false) => Some(n),
            (None, false) => Some(1),
            (None, true) => None,
        };
        Ok(Self {
            fault: raw.fault,
            matching: raw.matching,
            request: raw.request,
            count,
        })
    }
}

#[cfg(feature = "serde")]
impl<P, M> From<ScheduledFault<P, M>> for RawScheduledFault<P, M> {
    fn from(s: ScheduledFault<P, M>) -> Self {
        Self {
            fault: s.fault,
            matching: s.matching,
            request: s.request,
            until_cleared: s.count.is_none(),
            count: s.count,
        }
    }
}

/// Entries a [`Faults`] holds at most (queued and standing together), so that a control
/// channel cannot grow a simulator's memory without bound.
pub const MAX_SCHEDULED: usize = 1024;

/// Why a fault could not be scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleError {
    /// [`MAX_SCHEDULED`] entries are already waiting.
    Full {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { max } => write!(
                f,
                "{max} faults are already scheduled; clear them before scheduling more"
            ),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// What a [`Faults`] holds now (feature `serde`: the control channel's `GET /faults`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(serialize = "P: serde::Serialize + Clone, M: serde::Serialize + Clone"))
)]
pub struct FaultsSnapshot<P = NoDeviceFault, M = NoMatcher> {
    /// Counted entries, in order, each with the requests it still has to hit as `count`.
    pub queued: Vec<ScheduledFault<P, M>>,
    /// Entries until cleared: those with a matcher or a start, then the one
    /// [`set`](Faults::set) (if any).
    pub standing: Vec<ScheduledFault<P, M>>,
    /// Faults applied so far.
    pub applied: u64,
}

/// A simulator's faults, shared with it. For each request, the first queued entry that applies
/// to it (its matcher picks it, its start has come) gives the fault and counts down; if none
/// does, the first standing entry that applies; if none does, the fault [`set`](Faults::set)
/// (if any). Plain [`push`](Faults::push)es therefore hit the next requests, one each, in
/// order. Clones share the same faults.
///
/// `M` is the simulator's [`Matcher`] ([`NoMatcher`] when it has none; [`Faults::new`] makes
/// those, [`Faults::default`] any).
#[derive(Debug)]
pub struct Faults<P = NoDeviceFault, M = NoMatcher> {
    inner: Arc<Mutex<Inner<P, M>>>,
}

impl<P, M> Clone for Faults<P, M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct Entry<P, M> {
    scheduled: ScheduledFault<P, M>,
    /// Requests it applied to (matching ones, with a matcher) since it was scheduled.
    seen: u64,
}

impl<P, M> Entry<P, M> {
    /// Counts `request` if the entry applies to it; whether its start has come.
    fn observe(&mut self, matches: &impl Fn(&M) -> bool) -> bool {
        let relevant = self.scheduled.matching.as_ref().is_none_or(matches);
        if relevant {
            self.seen = self.seen.saturating_add(1);
        }
        relevant && self.seen >= self.scheduled.request.unwrap_or(1)
    }
}

#[derive(Debug)]
struct Inner<P, M> {
    queue: VecDeque<Entry<P, M>>,
    standing_entries: Vec<Entry<P, M>>,
    standing: Option<Fault<P>>,
    applied: u64,
}

impl<P, M> Default for Faults<P, M> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                queue: VecDeque::new(),
                standing_entries: Vec::new(),
                standing: None,
                applied: 0,
            })),
        }
    }
}

impl<P: Clone> Faults<P> {
    /// No faults (for a simulator without a [`Matcher`]; [`Faults::default`] for one with).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<P: Clone, M: Clone> Faults<P, M> {
    fn lock(&self) -> MutexGuard<'_, Inner<P, M>> {
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
            self.lock().queue.push_back(Entry {
                scheduled: ScheduledFault::next(fault).count(count),
                seen: 0,
            });
        }
    }

    /// Schedules one entry: counted ones queue after those already queued; one until cleared
    /// without a matcher or start is the fault [`set`](Faults::set) (replacing the one before).
    /// A count of 0 schedules nothing.
    ///
    /// # Errors
    /// [`ScheduleError::Full`] when [`MAX_SCHEDULED`] entries already wait.
    pub fn schedule(&self, scheduled: ScheduledFault<P, M>) -> Result<(), ScheduleError> {
        let mut inner = self.lock();
        let plain = scheduled.matching.is_none() && scheduled.request.unwrap_or(1) <= 1;
        match scheduled.count {
            Some(0) => return Ok(()),
            None if plain => {
                inner.standing = Some(scheduled.fault);
                return Ok(());
            }
            _ => {}
        }
        if inner.queue.len() + inner.standing_entries.len() >= MAX_SCHEDULED {
            return Err(ScheduleError::Full { max: MAX_SCHEDULED });
        }
        let entry = Entry { scheduled, seen: 0 };
        if entry.scheduled.count.is_some() {
            inner.queue.push_back(entry);
        } else {
            inner.standing_entries.push(entry);
        }
        Ok(())
    }

    /// Clears every fault, then schedules `entries` in order (a scenario's fault schedule, at
    /// the start and on a reset). The applied count is kept.
    ///
    /// # Errors
    /// [`ScheduleError::Full`] when there are more than [`MAX_SCHEDULED`] entries (those that
    /// fit are scheduled).
    pub fn reschedule(&self, entries: &[ScheduledFault<P, M>]) -> Result<(), ScheduleError> {
        self.clear();
        entries
            .iter()
            .try_for_each(|entry| self.schedule(entry.clone()))
    }

    /// `fault` for every request no other entry claims, until [`Faults::clear`] (replaces the
    /// one set before; `None` removes it).
    pub fn set(&self, fault: Option<Fault<P>>) {
        self.lock().standing = fault;
    }

    /// Removes every fault, queued or standing.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.queue.clear();
        inner.standing_entries.clear();
        inner.standing = None;
    }

    /// Requests still to be hit by a queued fault (when each applies).
    pub fn queued(&self) -> u64 {
        self.lock()
            .queue
            .iter()
            .map(|e| e.scheduled.count.unwrap_or(0))
            .fold(0, u64::saturating_add)
    }

    /// The fault [`set`](Faults::set) until cleared, if any.
    pub fn standing(&self) -> Option<Fault<P>> {
        self.lock().standing.clone()
    }

    /// Faults applied so far.
    pub fn applied(&self) -> u64 {
        self.lock().applied
    }

    /// Everything scheduled now.
    pub fn snapshot(&self) -> FaultsSnapshot<P, M> {
        let inner = self.lock();
        let mut standing: Vec<_> = inner
            .standing_entries
            .iter()
            .map(|e| e.scheduled.clone())
            .collect();
        if let Some(fault) = &inner.standing {
            standing.push(ScheduledFault::next(fault.clone()).until_cleared());
        }
        FaultsSnapshot {
            queued: inner.queue.iter().map(|e| e.scheduled.clone()).collect(),
            standing,
            applied: inner.applied,
        }
    }

    /// The fault for a request no matcher picks, if any (consumes one queued).
    pub fn take(&self) -> Option<Fault<P>> {
        self.take_for(|_| false)
    }

    /// The fault for the request being answered now, if any: `matches` says whether an entry's
    /// matcher picks it. Consumes one queued; every entry that applies counts the request.
    pub fn take_for(&self, matches: impl Fn(&M) -> bool) -> Option<Fault<P>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut chosen = None;
        for (i, entry) in inner.queue.iter_mut().enumerate() {
            if entry.observe(&matches) && chosen.is_none() {
                chosen = Some(i);
            }
        }
        let mut standing = None;
        for (i, entry) in inner.standing_entries.iter_mut().enumerate() {
            if entry.observe(&matches) && standing.is_none() {
                standing = Some(i);
            }
        }
        let fault = if let Some(i) = chosen {
            let mut done = false;
            let fault = inner.queue.get_mut(i).map(|entry| {
                let left = entry.scheduled.count.unwrap_or(1).saturating_sub(1);
                entry.scheduled.count = Some(left);
                done = left == 0;
                entry.scheduled.fault.clone()
            });
            if done {
                inner.queue.remove(i);
            }
            fault
        } else if let Some(i) = standing {
            inner
                .standing_entries
                .get(i)
                .map(|e| e.scheduled.fault.clone())
        } else {
            inner.standing.clone()
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

    /// Requests are words; a matcher picks one word.
    type Words = Faults<NoDeviceFault, &'static str>;

    fn take(faults: &Words, request: &str) -> Option<Fault> {
        faults.take_for(|word| *word == request)
    }

    #[test]
    fn a_matching_entry_waits_for_its_request_and_lets_others_pass() {
        let faults = Words::default();
        faults
            .schedule(ScheduledFault::next(Fault::NoReply).matching("data"))
            .unwrap();
        faults.push(Fault::Close);
        assert_eq!(take(&faults, "status"), Some(Fault::Close));
        assert_eq!(take(&faults, "status"), None);
        assert_eq!(take(&faults, "data"), Some(Fault::NoReply));
        assert_eq!(take(&faults, "data"), None);
        assert_eq!(faults.applied(), 2);
    }

    #[test]
    fn the_nth_request_counts_every_request_or_every_matching_one() {
        let faults = Words::default();
        faults
            .schedule(ScheduledFault::next(Fault::NoReply).from_request(3))
            .unwrap();
        faults
            .schedule(
                ScheduledFault::next(Fault::Garbage)
                    .matching("data")
                    .from_request(2)
                    .count(2),
            )
            .unwrap();
        let seen: Vec<_> = ["a", "data", "b", "data", "data", "data"]
            .iter()
            .map(|r| take(&faults, r))
            .collect();
        assert_eq!(
            seen,
            [
                None,
                None,
                Some(Fault::NoReply),
                Some(Fault::Garbage),
                Some(Fault::Garbage),
                None
            ]
        );
    }

    #[test]
    fn until_cleared_entries_stand_after_the_queue_and_before_the_set_fault() {
        let faults = Words::default();
        faults
            .schedule(
                ScheduledFault::next(Fault::Truncate)
                    .matching("data")
                    .until_cleared(),
            )
            .unwrap();
        faults
            .schedule(ScheduledFault::next(Fault::Garbage).until_cleared())
            .unwrap();
        assert_eq!(faults.standing(), Some(Fault::Garbage));
        faults.push(Fault::Close);
        assert_eq!(take(&faults, "data"), Some(Fault::Close));
        assert_eq!(take(&faults, "data"), Some(Fault::Truncate));
        assert_eq!(take(&faults, "data"), Some(Fault::Truncate));
        assert_eq!(take(&faults, "ping"), Some(Fault::Garbage));
        let snapshot = faults.snapshot();
        assert!(snapshot.queued.is_empty());
        assert_eq!(snapshot.standing.len(), 2);
        assert_eq!(snapshot.applied, 4);
        faults.clear();
        assert_eq!(take(&faults, "data"), None);
    }

    #[test]
    fn the_schedule_is_bounded() {
        let faults = Words::default();
        for _ in 0..MAX_SCHEDULED {
            faults
                .schedule(ScheduledFault::next(Fault::Close).matching("x"))
                .unwrap();
        }
        assert_eq!(
            faults.schedule(ScheduledFault::next(Fault::Close)),
            Err(ScheduleError::Full { max: MAX_SCHEDULED })
        );
        // The plain standing fault replaces, so it always fits.
        faults
            .schedule(ScheduledFault::next(Fault::Close).until_cleared())
            .unwrap();
    }
}
