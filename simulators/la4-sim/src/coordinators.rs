//! Which coordinators a node knows, when their `unit_info` is due, and when they go offline:
//! without sockets or clocks (every method takes `now`).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pycom_proto::Identity;

/// A coordinator as the node tracks it: keyed by the IP it connects from and the port it
/// advertises. One that comes back from another port is tracked anew, but `unit_info` follows
/// its `id`: it is not sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorStatus {
    /// Where events for it go.
    pub addr: SocketAddr,
    /// Its identity from its latest request.
    pub identity: Identity,
    /// Heard from within the offline delay.
    pub online: bool,
    /// `unit_info` has been sent to it, or to a coordinator with the same `id` from another
    /// address (once per `id`, as long as the node remembers it: see the
    /// [`Coordinators`]).
    pub unit_info_sent: bool,
}

#[derive(Debug, Clone)]
struct Tracked {
    identity: Identity,
    last_heard: Instant,
    online: bool,
    unit_info_sent: bool,
}

/// Most coordinators a node tracks at once; a new one beyond it takes the place of the one
/// heard from longest ago.
pub const MAX_COORDINATORS: usize = 1024;

/// Most hashes in one generation of the served memory (two per served coordinator); see the
/// [`Coordinators`].
pub const SERVED_GENERATION: usize = 8192;

/// Which coordinators the node knows, when their `unit_info` is due, and when they go offline.
///
/// `unit_info` goes once per coordinator `id` (the protocol: not re-sent on reconnection), so a
/// coordinator restarted on a new port does not get it twice. Two bounded memories:
/// Two bounded memories:
/// - the **table** of tracked coordinators ([`MAX_COORDINATORS`] entries, keyed by observed IP
///   and advertised port): when it is full, a new coordinator takes the place of the one heard
///   from longest ago (an offline one first, as those are the oldest), so a new coordinator is
///   always tracked, however many came before;
/// - the **served** memory, which says who already had `unit_info`: two 64-bit keyed hashes
///   per served coordinator (one of its `id`, one of its address), kept in two generations of at
///   most [`SERVED_GENERATION`] hashes each. A hash is refreshed (moved to the newest generation)
///   whenever its coordinator is heard from; when the newest generation is full, the oldest is
///   forgotten. So a served coordinator is remembered as long as fewer than
///   `SERVED_GENERATION / 2` (4 096) other coordinators were served or heard from since it was
///   last heard from; past that it may be forgotten, and then gets `unit_info` once more when it
///   comes back. At most `2 * SERVED_GENERATION` hashes (16 384, some 300 KiB) are kept,
///   whatever the number of coordinators. Two different coordinators whose hashes collide
///   (chance about 2^-64 per pair, with keys random per node) would be taken for one.
#[derive(Debug, Clone)]
pub struct Coordinators {
    ready_at: Instant,
    boot_time: Duration,
    offline_after: Duration,
    tracked: BTreeMap<SocketAddr, Tracked>,
    served: Served,
}

impl Coordinators {
    /// A node started at `started` whose hardware info is available `boot_time` later.
    pub fn new(started: Instant, boot_time: Duration, offline_after: Duration) -> Self {
        Self {
            ready_at: started + boot_time,
            boot_time,
            offline_after,
            tracked: BTreeMap::new(),
            served: Served::new(SERVED_GENERATION),
        }
    }

    /// The node reboots at `now`: boardio is ready `boot_time` later again. The coordinators
    /// stay tracked, with their `unit_info` sent or not as before (a real node would forget
    /// them; keeping them keeps the simulator simple and `unit_info` once per coordinator).
    pub fn reboot(&mut self, now: Instant) {
        self.ready_at = now + self.boot_time;
    }

    /// Whether boardio has finished initialising.
    pub fn hardware_ready(&self, now: Instant) -> bool {
        now >= self.ready_at
    }

    /// A request from `identity`, whose events go to `reply_to`. Returns whether `unit_info`
    /// is due to it now (first time both conditions hold).
    pub fn on_request(&mut self, now: Instant, reply_to: SocketAddr, identity: &Identity) -> bool {
        if !identity.coordinator {
            return false;
        }
        if !self.tracked.contains_key(&reply_to) && self.tracked.len() >= MAX_COORDINATORS {
            // Full: the one heard from longest ago makes room (it is tracked again, and not
            // served again, if it comes back).
            let oldest = self
                .tracked
                .iter()
                .min_by_key(|(_, t)| t.last_heard)
                .map(|(addr, _)| *addr);
            if let Some(oldest) = oldest {
                self.tracked.remove(&oldest);
            }
        }
        let ready = self.hardware_ready(now);
        let tracked = self.tracked.entry(reply_to).or_insert_with(|| Tracked {
            identity: identity.clone(),
            last_heard: now,
            online: true,
            unit_info_sent: false,
        });
        tracked.identity = identity.clone();
        tracked.last_heard = now;
        tracked.online = true;
        if self.served.heard(reply_to, &identity.id) {
            // It had it, maybe under another address (a coordinator restarted on a new port)
            // or before it was evicted from the table.
            tracked.unit_info_sent = true;
        }
        ready && unit_info_due(reply_to, tracked, &mut self.served)
    }

    /// Advances time: returns the coordinators `unit_info` is now due to (boot just finished)
    /// and those that just went offline.
    pub fn poll(&mut self, now: Instant) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let ready = self.hardware_ready(now);
        let mut due = Vec::new();
        let mut offline = Vec::new();
        // In address order, so that of two addresses with one id the lower gets `unit_info`.
        for (addr, tracked) in &mut self.tracked {
            if tracked.online
                && now.saturating_duration_since(tracked.last_heard) >= self.offline_after
            {
                tracked.online = false;
                offline.push(*addr);
            }
            // Only a coordinator seen online since boot finished gets it now; one that went
            // silent before boot gets it when it comes back.
            if ready && tracked.online && unit_info_due(*addr, tracked, &mut self.served) {
                due.push(*addr);
            }
        }
        (due, offline)
    }

    /// Whether any coordinator is online (otherwise the node scans for one).
    pub fn any_online(&self) -> bool {
        self.tracked.values().any(|t| t.online)
    }

    /// Every tracked coordinator, in address order.
    pub fn list(&self) -> Vec<CoordinatorStatus> {
        self.tracked
            .iter()
            .map(|(addr, t)| CoordinatorStatus {
                addr: *addr,
                identity: t.identity.clone(),
                online: t.online,
                unit_info_sent: t.unit_info_sent,
            })
            .collect()
    }
}

/// Whether `unit_info` is due to `tracked` (at `addr`) now that it may have it: not if it, or
/// its `id` under another address, already had it. Marks it (its address and its id) as served.
fn unit_info_due(addr: SocketAddr, tracked: &mut Tracked, served: &mut Served) -> bool {
    if tracked.unit_info_sent {
        return false;
    }
    tracked.unit_info_sent = true;
    let had_it = served.heard(addr, &tracked.identity.id);
    served.insert(addr, &tracked.identity.id);
    !had_it
}

/// Who had `unit_info`: keyed hashes of coordinator ids and addresses, in two generations.
#[derive(Debug, Clone)]
struct Served {
    keys: RandomState,
    /// Hashes served or heard from since the last rotation.
    newest: HashSet<u64>,
    /// The generation before; forgotten at the next rotation.
    older: HashSet<u64>,
    generation: usize,
}

/// What a hash stands for, so that an id never takes the place of an address.
#[derive(Hash)]
enum Key<'a> {
    Id(&'a str),
    Addr(SocketAddr),
}

impl Served {
    fn new(generation: usize) -> Self {
        Self {
            keys: RandomState::new(),
            newest: HashSet::new(),
            older: HashSet::new(),
            generation: generation.max(2),
        }
    }

    fn hash(&self, key: &Key<'_>) -> u64 {
        self.keys.hash_one(key)
    }

    /// Whether the coordinator at `addr` or with `id` was served; refreshes what is known.
    fn heard(&mut self, addr: SocketAddr, id: &str) -> bool {
        let mut known = false;
        for key in [self.hash(&Key::Addr(addr)), self.hash(&Key::Id(id))] {
            if self.newest.contains(&key) {
                known = true;
            } else if self.older.remove(&key) {
                known = true;
                self.keep(key);
            }
        }
        known
    }

    /// Remembers that the coordinator at `addr`, with `id`, was served.
    fn insert(&mut self, addr: SocketAddr, id: &str) {
        for key in [self.hash(&Key::Addr(addr)), self.hash(&Key::Id(id))] {
            self.older.remove(&key);
            self.keep(key);
        }
    }

    fn keep(&mut self, key: u64) {
        if self.newest.len() >= self.generation {
            self.older = std::mem::take(&mut self.newest);
        }
        self.newest.insert(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newest.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A coordinator listening on `port`, with an id of its own.
    fn coordinator(port: u16) -> (SocketAddr, Identity) {
        let identity = Identity::new(format!("{port:08x}"), "coord", "127.0.0.1", port, "1", true);
        (SocketAddr::from(([127, 0, 0, 1], port)), identity)
    }

    /// The coordinator `id` restarted, now listening on `port`.
    fn restarted(id: &Identity, port: u16) -> (SocketAddr, Identity) {
        let mut identity = id.clone();
        identity.port = port;
        (SocketAddr::from(([127, 0, 0, 1], port)), identity)
    }

    #[test]
    fn unit_info_goes_once_when_the_coordinator_arrives_after_boot() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, 100 * MS, 1000 * MS);
        let (addr, id) = coordinator(9000);
        assert!(c.on_request(t0 + 200 * MS, addr, &id));
        assert!(!c.on_request(t0 + 300 * MS, addr, &id));
        assert_eq!(c.poll(t0 + 400 * MS), (vec![], vec![]));
    }

    #[test]
    fn unit_info_goes_when_boot_finishes_after_the_coordinator_arrived() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, 100 * MS, 1000 * MS);
        let (addr, id) = coordinator(9000);
        assert!(!c.on_request(t0, addr, &id));
        assert_eq!(c.poll(t0 + 50 * MS).0, vec![]);
        assert_eq!(c.poll(t0 + 100 * MS).0, vec![addr]);
        assert_eq!(c.poll(t0 + 150 * MS).0, vec![]);
    }

    #[test]
    fn non_coordinators_are_not_tracked() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 1000 * MS);
        let (addr, mut id) = coordinator(9000);
        id.coordinator = false;
        assert!(!c.on_request(t0, addr, &id));
        assert!(c.list().is_empty());
        // Saying `coordinator: true` later is what makes it one: unit_info then.
        id.coordinator = true;
        assert!(c.on_request(t0 + MS, addr, &id));
        assert_eq!(c.list().len(), 1);
    }

    #[test]
    fn a_silent_coordinator_goes_offline_and_unit_info_is_not_resent_on_return() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        let (addr, id) = coordinator(9000);
        assert!(c.on_request(t0, addr, &id));
        assert_eq!(c.poll(t0 + 149 * MS).1, vec![]);
        assert!(c.any_online());
        assert_eq!(c.poll(t0 + 150 * MS).1, vec![addr]);
        assert!(!c.any_online());
        assert!(!c.on_request(t0 + 200 * MS, addr, &id));
        assert!(c.any_online());
    }

    #[test]
    fn the_coordinator_table_is_bounded() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        for port in 0..=u16::try_from(MAX_COORDINATORS).unwrap() {
            let (addr, id) = coordinator(port);
            c.on_request(t0, addr, &id);
        }
        assert_eq!(c.list().len(), MAX_COORDINATORS);
        assert_eq!(c.served.len(), 2 * (MAX_COORDINATORS + 1));
        // Known ones are still refreshed, and not served again.
        let (addr, id) = coordinator(1);
        assert!(!c.on_request(t0, addr, &id));
        assert_eq!(c.list().len(), MAX_COORDINATORS);
    }

    #[test]
    fn the_served_memory_is_bounded_and_forgets_the_longest_silent_first() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        c.served = Served::new(8); // four coordinators a generation
        let (keep, keep_id) = coordinator(1);
        assert!(c.on_request(t0, keep, &keep_id));
        for port in 2..40 {
            let (addr, id) = coordinator(port);
            assert!(c.on_request(t0, addr, &id));
            // Heard from now and then: never forgotten.
            assert!(!c.on_request(t0, keep, &keep_id));
            assert!(c.served.len() <= 16);
        }
        // One silent while more than a generation of others were served is forgotten, and
        // served once more when it comes back (tracked, or evicted from the table alike).
        let (old, old_id) = coordinator(2);
        c.tracked.remove(&old);
        assert!(c.on_request(t0, old, &old_id));
        assert!(!c.on_request(t0, old, &old_id));
    }

    #[test]
    fn past_max_coordinators_a_new_coordinator_is_still_tracked_and_gets_unit_info() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        let count = u16::try_from(MAX_COORDINATORS + 8).unwrap();
        for port in 1..=count {
            let (addr, id) = coordinator(port);
            let at = t0 + u32::from(port) * MS;
            assert!(
                c.on_request(at, addr, &id),
                "coordinator {port} gets unit_info"
            );
            assert!(c.list().iter().any(|s| s.addr == addr), "{port} is tracked");
        }
        assert!(c.list().len() <= MAX_COORDINATORS);
        // The first ones were evicted from the table, but not forgotten as served.
        let (addr, id) = coordinator(1);
        assert!(!c.on_request(t0 + 5000 * MS, addr, &id));
        assert_eq!(c.poll(t0 + 5001 * MS).0, vec![]);
        assert!(c.list().iter().any(|s| s.addr == addr && s.unit_info_sent));
    }

    #[test]
    fn unit_info_is_not_resent_to_a_coordinator_reconnecting_from_a_new_port_with_the_same_id() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        let (old, id) = coordinator(9000);
        assert!(c.on_request(t0, old, &id));
        let (new, id) = restarted(&id, 9100);
        assert!(!c.on_request(t0 + MS, new, &id));
        assert_eq!(c.poll(t0 + 2 * MS).0, vec![]);
        let listed = c.list();
        assert_eq!(listed.len(), 2, "both addresses are tracked");
        assert!(listed.iter().all(|s| s.unit_info_sent), "{listed:?}");
        // A coordinator with another id still gets its own.
        let (other, other_id) = coordinator(9200);
        assert!(c.on_request(t0 + 3 * MS, other, &other_id));
    }

    #[test]
    fn two_addresses_with_one_id_waiting_for_boot_get_one_unit_info() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, 100 * MS, 1000 * MS);
        let (first, id) = coordinator(9000);
        let (second, id2) = restarted(&id, 9001);
        assert!(!c.on_request(t0, first, &id));
        assert!(!c.on_request(t0 + MS, second, &id2));
        assert_eq!(c.poll(t0 + 100 * MS).0, vec![first]);
        assert_eq!(c.poll(t0 + 200 * MS).0, vec![]);
        assert!(c.list().iter().all(|s| s.unit_info_sent));
    }

    #[test]
    fn reboot_delays_hardware_ready_by_boot_time_and_keeps_coordinators_served() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, 100 * MS, 10_000 * MS);
        let (addr, id) = coordinator(9000);
        assert!(!c.on_request(t0, addr, &id));
        assert_eq!(c.poll(t0 + 100 * MS).0, vec![addr]);
        c.reboot(t0 + 500 * MS);
        assert!(!c.hardware_ready(t0 + 599 * MS));
        assert!(c.hardware_ready(t0 + 600 * MS));
        assert_eq!(
            c.poll(t0 + 600 * MS).0,
            vec![],
            "not re-sent after a reboot"
        );
        assert_eq!(c.list().len(), 1);
        assert!(!c.on_request(t0 + 700 * MS, addr, &id));
    }

    #[test]
    fn coordinators_differ_by_advertised_port() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        let (a, ida) = coordinator(9000);
        let (b, idb) = coordinator(9001);
        assert!(c.on_request(t0, a, &ida));
        assert!(c.on_request(t0, b, &idb));
        assert_eq!(c.list().len(), 2);
    }
}
