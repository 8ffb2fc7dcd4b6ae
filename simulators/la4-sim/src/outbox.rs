//! Outgoing events, in order per destination, with destinations independent of each other.
//!
//! Each destination address gets its own queue and its own delivery task, created on demand
//! and ended once the queue has been empty for [`IDLE_AFTER`]: a destination that never answers
//! holds up only its own events, never another's. Both the queue of one destination and the
//! number of destinations are bounded; what does not fit is dropped (and reported to the
//! caller, which counts and logs it).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A destination task whose queue stays empty this long (real time) ends.
pub(crate) const IDLE_AFTER: Duration = Duration::from_secs(1);

/// Delivers one item to one destination.
pub(crate) trait Deliver: Send + Sync + 'static {
    /// What is queued.
    type Item: Send + 'static;

    /// Delivers `item` to `to`, however long that takes (the delivery deadline is its own).
    fn deliver(&self, to: SocketAddr, item: Self::Item) -> impl Future<Output = ()> + Send;
}

/// Why items were not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The destination's queue is full.
    QueueFull,
    /// As many destinations as allowed have events on their way already.
    TooManyDestinations,
    /// The outbox is shut down.
    ShutDown,
    /// The destination is busy and the item was only to be sent to an idle one.
    Busy,
}

struct Destination<T> {
    queue: VecDeque<T>,
    /// The task has taken an item and is delivering it.
    delivering: bool,
    wake: Arc<Notify>,
}

struct Inner<T> {
    destinations: HashMap<SocketAddr, Destination<T>>,
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
        let mut inner = lock(&self.inner);
        // Checked under the lock, so that no task is spawned once shutdown has begun.
        if self.shutdown.is_cancelled() {
            return Err(Dropped::ShutDown);
        }
        let count = inner.destinations.len();
        if let Some(destination) = inner.destinations.get_mut(&to) {
            if only_if_idle && (destination.delivering || !destination.queue.is_empty()) {
                return Err(Dropped::Busy);
            }
            if destination.queue.len() + items.len() > self.max_queued {
                return Err(Dropped::QueueFull);
            }
            destination.queue.extend(items);
            destination.wake.notify_one();
            return Ok(());
        }
        if count >= self.max_destinations {
            return Err(Dropped::TooManyDestinations);
        }
        if items.len() > self.max_queued {
            return Err(Dropped::QueueFull);
        }
        let wake = Arc::new(Notify::new());
        inner.destinations.insert(
            to,
            Destination {
                queue: items.into(),
                delivering: false,
                wake: Arc::clone(&wake),
            },
        );
        let outbox = self.clone();
        let deliver = Arc::clone(deliver);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = outbox.run(deliver, to, wake) => {}
            }
        });
        Ok(())
    }

    /// Delivers the queue of `to` in order until it has been empty for [`IDLE_AFTER`], then
    /// removes the destination.
    async fn run<D: Deliver<Item = T>>(self, deliver: Arc<D>, to: SocketAddr, wake: Arc<Notify>) {
        loop {
            let next = {
                let mut inner = lock(&self.inner);
                let Some(destination) = inner.destinations.get_mut(&to) else {
                    return;
                };
                let next = destination.queue.pop_front();
                destination.delivering = next.is_some();
                next
            };
            match next {
                Some(item) => deliver.deliver(to, item).await,
                None => {
                    if tokio::time::timeout(IDLE_AFTER, wake.notified())
                        .await
                        .is_err()
                    {
                        // Under the lock: nothing can be queued between the check and the
                        // removal, and whatever is queued after it starts a new task.
                        let mut inner = lock(&self.inner);
                        if inner
                            .destinations
                            .get(&to)
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

    /// Records deliveries; deliveries to `stuck` never finish.
    #[derive(Default)]
    struct Recorder {
        stuck: Option<SocketAddr>,
        delivered: Mutex<Vec<(SocketAddr, u32)>>,
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

        async fn deliver(&self, to: SocketAddr, item: u32) {
            if Some(to) == self.stuck {
                std::future::pending::<()>().await;
            }
            lock(&self.delivered).push((to, item));
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
        assert_eq!(
            outbox.push(&recorder, addr(3), vec![1]),
            Err(Dropped::TooManyDestinations)
        );
        assert_eq!(outbox.destinations(), 2);
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
