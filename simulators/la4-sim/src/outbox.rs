//! Outgoing events, in order per destination, with destinations independent of each other.
//!
//! Each destination address gets its own queue and its own delivery task, created on demand
//! and ended once the queue has been empty for [`IDLE_AFTER`]: a destination that never answers
//! holds up only its own events, never another's. Both the queue of one destination and the
//! number of destinations are bounded; what does not fit is dropped (and reported to the
//! caller, which counts and logs it).
//!
//! Destinations that never accept cannot take the slots of live ones:
//! - a delivery that times out (connecting or writing) makes its destination **unreachable**:
//!   the rest of its queue is dropped, its slot freed, and events for it are dropped at once for
//!   [`UNREACHABLE_BACKOFF`] (remembered for at most as many addresses as there are slots);
//! - when every slot is taken, a new destination **evicts** one: an idle one (nothing queued or
//!   on its way) first, else, among those with no delivery yet, the one whose delivery has been
//!   on its way longest (its queue is dropped, and it is unreachable for the backoff). A
//!   destination that has delivered is never evicted; when all are such, the new one is
//!   dropped. A live coordinator's delivery takes a millisecond, so holding every slot against
//!   it takes that many new never-answering destinations within its delivery time, each then
//!   barred for the backoff.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A destination task whose queue stays empty this long (real time) ends.
pub(crate) const IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long events for a destination whose delivery timed out (or that was evicted while
/// stuck) are dropped at once, without a slot (real time).
pub(crate) const UNREACHABLE_BACKOFF: Duration = Duration::from_secs(5);

/// How one delivery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Delivered.
    Yes,
    /// Failed at once (refused, reset): the destination keeps its queue.
    Failed,
    /// Timed out: the destination is unreachable (see the module docs).
    TimedOut,
}

/// Delivers one item to one destination.
pub(crate) trait Deliver: Send + Sync + 'static {
    /// What is queued.
    type Item: Send + 'static;

    /// Delivers `item` to `to`, however long that takes (the delivery deadline is its own).
    fn deliver(&self, to: SocketAddr, item: Self::Item) -> impl Future<Output = Delivered> + Send;

    /// `count` items queued for `to` were dropped, undelivered, for `why`
    /// ([`Dropped::Unreachable`] or [`Dropped::Evicted`]).
    fn dropped(&self, to: SocketAddr, count: usize, why: Dropped);
}

/// Why items were not queued (or were dropped from a queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The destination's queue is full.
    QueueFull,
    /// As many destinations as allowed have events on their way, and none could be evicted.
    TooManyDestinations,
    /// The outbox is shut down.
    ShutDown,
    /// The destination is busy and the item was only to be sent to an idle one.
    Busy,
    /// A delivery to the destination timed out within the backoff.
    Unreachable,
    /// The destination made room for a new one.
    Evicted,
}

struct Destination<T> {
    /// Tells this destination's task from an earlier one at the same address.
    serial: u64,
    queue: VecDeque<T>,
    /// Since when the task has been delivering an item, if it is.
    delivering: Option<Instant>,
    /// An item was delivered to it.
    delivered: bool,
    wake: Arc<Notify>,
    task: Option<AbortHandle>,
}

struct Inner<T> {
    destinations: HashMap<SocketAddr, Destination<T>>,
    /// Unreachable destinations, until when.
    unreachable: HashMap<SocketAddr, Instant>,
    next_serial: u64,
}

impl<T> Inner<T> {
    /// The destination `to` if it is still the one of task `serial`.
    fn current(&mut self, to: SocketAddr, serial: u64) -> Option<&mut Destination<T>> {
        self.destinations
            .get_mut(&to)
            .filter(|destination| destination.serial == serial)
    }

    /// Bars `to` until `until`, within a bound of `max` addresses (the one barred soonest to
    /// end makes room).
    fn bar(&mut self, to: SocketAddr, until: Instant, max: usize, now: Instant) {
        if self.unreachable.len() >= max && !self.unreachable.contains_key(&to) {
            self.unreachable.retain(|_, until| *until > now);
            if self.unreachable.len() >= max {
                let soonest = self
                    .unreachable
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(addr, _)| *addr);
                if let Some(soonest) = soonest {
                    self.unreachable.remove(&soonest);
                }
            }
        }
        if max > 0 {
            self.unreachable.insert(to, until);
        }
    }

    /// The destination to evict for a new one (see the module docs).
    fn victim(&self) -> Option<SocketAddr> {
        let idle = self
            .destinations
            .iter()
            .find(|(_, d)| d.delivering.is_none() && d.queue.is_empty());
        if let Some((addr, _)) = idle {
            return Some(*addr);
        }
        self.destinations
            .iter()
            .filter(|(_, d)| !d.delivered)
            .filter_map(|(addr, d)| d.delivering.map(|since| (since, *addr)))
            .min()
            .map(|(_, addr)| addr)
    }
}

/// Queues and delivery tasks per destination. Cheap to clone (shared).
pub(crate) struct Outbox<T> {
    inner: Arc<Mutex<Inner<T>>>,
    max_queued: usize,
    max_destinations: usize,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            max_queued: self.max_queued,
            max_destinations: self.max_destinations,
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + 'static> Outbox<T> {
    /// An outbox with at most `max_queued` items waiting per destination
    /// and at most `max_destinations` destinations at once. Its tasks run on `tasks` and stop
    /// when `shutdown` is cancelled.
    pub(crate) fn new(
        max_queued: usize,
        max_destinations: usize,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                destinations: HashMap::new(),
                unreachable: HashMap::new(),
                next_serial: 0,
            })),
            max_queued,
            max_destinations,
            shutdown,
            tasks,
        }
    }

    /// Queues `items` for `to`, after anything already queued for it, all or none. A new
    /// destination's task delivers with `deliver`.
    pub(crate) fn push<D: Deliver<Item = T>>(
        &self,
        deliver: &Arc<D>,
        to: SocketAddr,
        items: Vec<T>,
    ) -> Result<(), Dropped> {
        self.enqueue(deliver, to, items, false)
    }

    /// Queues `item` for `to` only when nothing is queued for or being delivered to `to`.
    pub(crate) fn push_if_idle<D: Deliver<Item = T>>(
        &self,
        deliver: &Arc<D>,
        to: SocketAddr,
        item: T,
    ) -> Result<(), Dropped> {
        self.enqueue(deliver, to, vec![item], true)
    }

    /// Destinations with a task right now.
    #[cfg(test)]
    pub(crate) fn destinations(&self) -> usize {
        lock(&self.inner).destinations.len()
    }

    fn enqueue<D: Deliver<Item = T>>(
        &self,
        deliver: &Arc<D>,
        to: SocketAddr,
        items: Vec<T>,
        only_if_idle: bool,
    ) -> Result<(), Dropped> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        // Checked under the lock, so that no task is spawned once shutdown has begun.
        if self.shutdown.is_cancelled() {
            return Err(Dropped::ShutDown);
        }
        if let Some(until) = inner.unreachable.get(&to).copied() {
            if now < until {
                return Err(Dropped::Unreachable);
            }
            inner.unreachable.remove(&to);
        }
        if let Some(destination) = inner.destinations.get_mut(&to) {
            if only_if_idle && (destination.delivering.is_some() || !destination.queue.is_empty()) {
                return Err(Dropped::Busy);
            }
            if destination.queue.len() + items.len() > self.max_queued {
                return Err(Dropped::QueueFull);
            }
            destination.queue.extend(items);
            destination.wake.notify_one();
            return Ok(());
        }
        if items.len() > self.max_queued {
            return Err(Dropped::QueueFull);
        }
        let mut evicted = None;
        if inner.destinations.len() >= self.max_destinations {
            let victim = inner.victim().and_then(|addr| {
                inner
                    .destinations
                    .remove(&addr)
                    .map(|destination| (addr, destination))
            });
            let Some((addr, victim)) = victim else {
                return Err(Dropped::TooManyDestinations);
            };
            if let Some(task) = &victim.task {
                task.abort();
            }
            let lost = victim.queue.len() + usize::from(victim.delivering.is_some());
            if victim.delivering.is_some() {
                // Stuck in a delivery: as if it had timed out.
                inner.bar(addr, now + UNREACHABLE_BACKOFF, self.max_destinations, now);
            }
            evicted = Some((addr, lost));
        }
        let wake = Arc::new(Notify::new());
        let serial = inner.next_serial;
        inner.next_serial += 1;
        inner.destinations.insert(
            to,
            Destination {
                serial,
                queue: items.into(),
                delivering: None,
                delivered: false,
                wake: Arc::clone(&wake),
                task: None,
            },
        );
        let outbox = self.clone();
        let task_deliver = Arc::clone(deliver);
        let shutdown = self.shutdown.clone();
        let task = self.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = outbox.run(task_deliver, to, serial, wake) => {}
            }
        });
        if let Some(destination) = inner.current(to, serial) {
            destination.task = Some(task.abort_handle());
        }
        drop(inner);
        if let Some((addr, lost)) = evicted {
            tracing::debug!(evicted = %addr, lost, for_ = %to, "event destination evicted");
            if lost > 0 {
                deliver.dropped(addr, lost, Dropped::Evicted);
            }
        }
        Ok(())
    }

    /// Delivers the queue of `to` in order until it has been empty for [`IDLE_AFTER`], then
    /// removes the destination; or until a delivery times out, then drops the queue and bars
    /// the destination for [`UNREACHABLE_BACKOFF`].
    async fn run<D: Deliver<Item = T>>(
        self,
        deliver: Arc<D>,
        to: SocketAddr,
        serial: u64,
        wake: Arc<Notify>,
    ) {
        loop {
            let next = {
                let mut inner = lock(&self.inner);
                let Some(destination) = inner.current(to, serial) else {
                    return;
                };
                let next = destination.queue.pop_front();
                destination.delivering = next.is_some().then(Instant::now);
                next
            };
            match next {
                Some(item) => {
                    let delivered = deliver.deliver(to, item).await;
                    let mut inner = lock(&self.inner);
                    if delivered == Delivered::TimedOut {
                        let Some(lost) = inner.current(to, serial).map(|d| d.queue.len()) else {
                            return; // evicted meanwhile: already accounted for
                        };
                        inner.destinations.remove(&to);
                        let now = Instant::now();
                        inner.bar(to, now + UNREACHABLE_BACKOFF, self.max_destinations, now);
                        drop(inner);
                        if lost > 0 {
                            deliver.dropped(to, lost, Dropped::Unreachable);
                        }
                        return;
                    }
                    if let Some(destination) = inner.current(to, serial) {
                        destination.delivering = None;
                        destination.delivered |= delivered == Delivered::Yes;
                    }
                }
                None => {
                    if tokio::time::timeout(IDLE_AFTER, wake.notified())
                        .await
                        .is_err()
                    {
                        // Under the lock: nothing can be queued between the check and the
                        // removal, and whatever is queued after it starts a new task.
                        let mut inner = lock(&self.inner);
                        if inner
                            .current(to, serial)
                            .is_some_and(|d| d.queue.is_empty())
                        {
                            inner.destinations.remove(&to);
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records deliveries; deliveries to `stuck` never finish, those to `timing_out` time out
    /// after a second, those to `slow` take a second.
    #[derive(Default)]
    struct Recorder {
        stuck: Option<SocketAddr>,
        timing_out: Option<SocketAddr>,
        slow: Option<SocketAddr>,
        delivered: Mutex<Vec<(SocketAddr, u32)>>,
        dropped: Mutex<Vec<(SocketAddr, usize, Dropped)>>,
    }

    impl Recorder {
        /// A recorder whose deliveries to `to` never finish.
        fn stuck_on(to: SocketAddr) -> Self {
            Self {
                stuck: Some(to),
                ..Self::default()
            }
        }
    }

    impl Deliver for Recorder {
        type Item = u32;

        async fn deliver(&self, to: SocketAddr, item: u32) -> Delivered {
            if Some(to) == self.stuck {
                std::future::pending::<()>().await;
            }
            if Some(to) == self.timing_out {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Delivered::TimedOut;
            }
            if Some(to) == self.slow {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            lock(&self.delivered).push((to, item));
            Delivered::Yes
        }

        fn dropped(&self, to: SocketAddr, count: usize, why: Dropped) {
            lock(&self.dropped).push((to, count, why));
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn outbox(
        recorder: Recorder,
        max_queued: usize,
        max_destinations: usize,
    ) -> (Outbox<u32>, Arc<Recorder>, CancellationToken, TaskTracker) {
        let recorder = Arc::new(recorder);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let outbox = Outbox::new(
            max_queued,
            max_destinations,
            shutdown.clone(),
            tasks.clone(),
        );
        (outbox, recorder, shutdown, tasks)
    }

    /// Shuts the outbox down and waits (up to a second) until every task has ended, even one
    /// stuck in a delivery.
    async fn stop(shutdown: &CancellationToken, tasks: &TaskTracker) {
        shutdown.cancel();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(1), tasks.wait())
            .await
            .unwrap();
    }

    /// Lets every task run until it waits on time.
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_destination_holds_up_only_its_own_items_which_stay_in_order() {
        let stuck = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(Recorder::stuck_on(stuck), 8, 8);
        outbox.push(&recorder, stuck, vec![1, 2]).unwrap();
        outbox.push(&recorder, addr(2), vec![1, 2]).unwrap();
        outbox.push(&recorder, addr(3), vec![1]).unwrap();
        outbox.push(&recorder, addr(2), vec![3]).unwrap();
        settle().await;
        let mut delivered = lock(&recorder.delivered).clone();
        delivered.sort_by_key(|(to, _)| *to);
        assert_eq!(
            delivered,
            [(addr(2), 1), (addr(2), 2), (addr(2), 3), (addr(3), 1)]
        );
        // The per-destination order is the order pushed.
        let to_2: Vec<_> = lock(&recorder.delivered)
            .iter()
            .filter(|(to, _)| *to == addr(2))
            .map(|(_, item)| *item)
            .collect();
        assert_eq!(to_2, [1, 2, 3]);
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_whole_batches_and_the_number_of_destinations_is_capped() {
        let stuck = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(Recorder::stuck_on(stuck), 3, 2);
        outbox.push(&recorder, stuck, vec![1]).unwrap();
        settle().await; // 1 is being delivered (forever), the queue is empty again
        outbox.push(&recorder, stuck, vec![2, 3]).unwrap();
        assert_eq!(
            outbox.push(&recorder, stuck, vec![4, 5]),
            Err(Dropped::QueueFull)
        );
        outbox.push(&recorder, stuck, vec![4]).unwrap();
        assert_eq!(
            outbox.push(&recorder, stuck, vec![5]),
            Err(Dropped::QueueFull)
        );
        assert_eq!(
            outbox.push(&recorder, addr(2), vec![1; 4]),
            Err(Dropped::QueueFull)
        );
        outbox.push(&recorder, addr(2), vec![1]).unwrap();
        assert_eq!(outbox.destinations(), 2);
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn destinations_that_delivered_and_are_busy_are_never_evicted() {
        let slow = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(
            Recorder {
                slow: Some(slow),
                ..Recorder::default()
            },
            4,
            1,
        );
        outbox.push(&recorder, slow, vec![1, 2]).unwrap();
        settle().await;
        tokio::time::sleep(Duration::from_millis(1001)).await;
        settle().await; // 1 delivered, 2 on its way
        assert_eq!(
            outbox.push(&recorder, addr(2), vec![1]),
            Err(Dropped::TooManyDestinations)
        );
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_outbox_evicts_an_idle_destination_then_one_stuck_in_its_first_delivery() {
        let stuck = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(Recorder::stuck_on(stuck), 4, 1);
        outbox.push(&recorder, addr(2), vec![1]).unwrap();
        settle().await; // delivered, now idle
        // Full: the idle one makes room, nothing of it lost.
        outbox.push(&recorder, stuck, vec![1, 2]).unwrap();
        settle().await; // 1 on its way (forever), 2 queued
        assert!(lock(&recorder.dropped).is_empty());
        // Full again: the stuck one makes room; its two events are lost, and it is barred.
        outbox.push(&recorder, addr(3), vec![1]).unwrap();
        settle().await;
        assert_eq!(*lock(&recorder.dropped), [(stuck, 2, Dropped::Evicted)]);
        assert_eq!(
            outbox.push(&recorder, stuck, vec![3]),
            Err(Dropped::Unreachable)
        );
        assert_eq!(*lock(&recorder.delivered), [(addr(2), 1), (addr(3), 1)]);
        assert_eq!(outbox.destinations(), 1);
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_that_times_out_loses_its_queue_and_is_barred_for_the_backoff() {
        let dead = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(
            Recorder {
                timing_out: Some(dead),
                ..Recorder::default()
            },
            8,
            8,
        );
        outbox.push(&recorder, dead, vec![1, 2, 3]).unwrap();
        settle().await;
        tokio::time::sleep(Duration::from_millis(1001)).await;
        settle().await;
        assert_eq!(*lock(&recorder.dropped), [(dead, 2, Dropped::Unreachable)]);
        assert_eq!(outbox.destinations(), 0, "its slot is free");
        assert_eq!(
            outbox.push(&recorder, dead, vec![4]),
            Err(Dropped::Unreachable)
        );
        tokio::time::sleep(UNREACHABLE_BACKOFF).await;
        outbox.push(&recorder, dead, vec![5]).unwrap();
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn idle_destinations_end_and_come_back_on_demand() {
        let (outbox, recorder, shutdown, tasks) = outbox(Recorder::default(), 4, 1);
        outbox.push(&recorder, addr(2), vec![1]).unwrap();
        settle().await;
        assert_eq!(outbox.destinations(), 1);
        // Still within the idle time: the same task takes the next item.
        tokio::time::sleep(IDLE_AFTER / 2).await;
        outbox.push(&recorder, addr(2), vec![2]).unwrap();
        settle().await;
        assert_eq!(outbox.destinations(), 1);
        tokio::time::sleep(IDLE_AFTER * 2).await;
        assert_eq!(outbox.destinations(), 0, "the idle task has ended");
        // Its slot is free again for another destination, and for the same one.
        outbox.push(&recorder, addr(3), vec![1]).unwrap();
        tokio::time::sleep(IDLE_AFTER * 2).await;
        outbox.push(&recorder, addr(2), vec![3]).unwrap();
        settle().await;
        assert_eq!(
            *lock(&recorder.delivered),
            [(addr(2), 1), (addr(2), 2), (addr(3), 1), (addr(2), 3)]
        );
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn push_if_idle_skips_a_busy_destination() {
        let stuck = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(Recorder::stuck_on(stuck), 4, 4);
        outbox.push_if_idle(&recorder, stuck, 1).unwrap();
        settle().await;
        assert_eq!(outbox.push_if_idle(&recorder, stuck, 2), Err(Dropped::Busy));
        outbox.push_if_idle(&recorder, addr(2), 1).unwrap();
        assert_eq!(
            outbox.push_if_idle(&recorder, addr(2), 2),
            Err(Dropped::Busy)
        );
        stop(&shutdown, &tasks).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_every_task_even_a_stuck_one_and_refuses_more() {
        let stuck = addr(1);
        let (outbox, recorder, shutdown, tasks) = outbox(Recorder::stuck_on(stuck), 4, 4);
        outbox.push(&recorder, stuck, vec![1, 2]).unwrap();
        outbox.push(&recorder, addr(2), vec![1]).unwrap();
        settle().await;
        stop(&shutdown, &tasks).await;
        assert_eq!(
            outbox.push(&recorder, addr(2), vec![2]),
            Err(Dropped::ShutDown)
        );
    }
}
