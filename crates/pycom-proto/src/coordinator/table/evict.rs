//! Room for new senders: the table of nodes heard from is bounded, and never full for good.

use super::NodeTable;

impl NodeTable {
    /// The table is full (`max_nodes`) and a sender it does not know wants in: removes the node
    /// known only from the listener (not given to `add_node`, never sent a command) that was
    /// heard from longest ago, with no command queued or in flight. Returns whether one was
    /// removed; nodes given to `add_node` or sent commands are never removed.
    pub(super) fn make_room(&mut self) -> bool {
        let victim = self
            .nodes
            .iter()
            .filter(|(_, n)| n.heard_only && !n.pipeline.busy() && n.pipeline.queued() == 0)
            .min_by_key(|(addr, n)| (n.last_contact.unwrap_or(n.since), **addr))
            .map(|(addr, _)| *addr);
        let Some(victim) = victim else {
            return false;
        };
        tracing::debug!(node = %victim, "node table full: the node heard from longest ago makes room");
        self.nodes.remove(&victim);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use crate::coordinator::config::{PipelineTimings, TableConfig};
    use crate::coordinator::effects::{Delivery, Effect, Expect};
    use crate::coordinator::types::Event;
    use crate::message::{Identity, Message};

    use super::NodeTable;

    const MS: Duration = Duration::from_millis(1);

    fn table(max_nodes: usize, now: Instant) -> NodeTable {
        let config = TableConfig {
            heartbeat_interval: Duration::from_secs(3600),
            offline_after: Duration::from_secs(3 * 3600),
            timings: PipelineTimings {
                resync_timeout: 1000 * MS,
                verdict_settle: 250 * MS,
                verdict_wait: 2000 * MS,
            },
            manage_discovered: true,
            max_nodes,
        };
        let me = Identity::new("c0ffee00", "coordinator", "127.0.0.1", 5001, "0.1.0", true);
        NodeTable::new(config, me, now)
    }

    fn node(port: u16) -> (SocketAddr, Identity) {
        let identity = Identity::new(
            format!("{port:08x}"),
            "node",
            "127.0.0.1",
            port,
            "0.14.0",
            false,
        );
        (SocketAddr::from(([127, 0, 0, 1], port)), identity)
    }

    /// `port`'s node probes the table (a discovery heartbeat) at `now`.
    fn probe(table: &mut NodeTable, port: u16, now: Instant) {
        let (addr, identity) = node(port);
        table.on_message(addr, Message::heartbeat(identity), now);
    }

    fn discovered(table: &mut NodeTable) -> Vec<SocketAddr> {
        std::iter::from_fn(|| table.poll_effect())
            .filter_map(|effect| match effect {
                Effect::Publish(Event::NodeDiscovered { node, .. }) => Some(node),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn past_max_nodes_a_new_sender_is_still_discovered_in_place_of_the_longest_silent() {
        let t0 = Instant::now();
        let mut table = table(4, t0);
        for port in 1..=4 {
            probe(&mut table, port, t0 + u32::from(port) * MS);
        }
        // Node 1 speaks again: node 2 is now the one heard from longest ago.
        probe(&mut table, 1, t0 + 10 * MS);
        let _ = discovered(&mut table);
        for port in 5..=1000 {
            probe(&mut table, port, t0 + u32::from(port) * 10 * MS);
            assert_eq!(
                discovered(&mut table),
                [node(port).0],
                "{port} is discovered"
            );
            assert!(table.node(node(port).0).is_some());
            assert!(table.nodes().len() <= 4);
        }
    }

    #[test]
    fn a_heartbeat_delivered_after_its_node_made_room_does_not_bring_it_back() {
        let t0 = Instant::now();
        let mut table = table(3, t0);
        let mut heartbeats = Vec::new();
        for port in 1..=5 {
            probe(&mut table, port, t0 + u32::from(port) * MS);
            // Discovered nodes are managed: each is sent a heartbeat at once.
            heartbeats.extend(
                std::iter::from_fn(|| table.poll_effect()).filter_map(|effect| match effect {
                    Effect::Send { request, .. } if request.is_heartbeat() => Some(request),
                    _ => None,
                }),
            );
        }
        assert_eq!(heartbeats.len(), 5);
        // Nodes 1 and 2 made room; their heartbeats are reported delivered only now.
        for request in heartbeats {
            table.on_sent(request, Delivery::Delivered, t0 + 10 * MS);
        }
        assert_eq!(table.nodes().len(), 3);
        assert!(table.node(node(1).0).is_none() && table.node(node(2).0).is_none());
        // The table is still not full for good.
        probe(&mut table, 6, t0 + 20 * MS);
        assert_eq!(discovered(&mut table), [node(6).0]);
        assert_eq!(table.nodes().len(), 3);
    }

    #[test]
    fn nodes_added_or_sent_commands_are_never_evicted() {
        let t0 = Instant::now();
        let mut table = table(2, t0);
        let (added, _) = node(1);
        let (commanded, _) = node(2);
        table.add_node(added, t0);
        table.submit(
            commanded,
            "echo".into(),
            Expect::Output,
            t0 + 3600 * 1000 * MS,
            t0,
        );
        probe(&mut table, 3, t0 + MS);
        // Full of nodes the user asked for: a new sender is published but not tracked.
        assert!(table.node(node(3).0).is_none());
        assert!(table.node(added).is_some() && table.node(commanded).is_some());
        // A node first heard, then given to add_node, stays too.
        let mut table = self::table(2, t0);
        probe(&mut table, 1, t0);
        table.add_node(node(1).0, t0);
        probe(&mut table, 2, t0 + MS);
        probe(&mut table, 3, t0 + 2 * MS);
        assert!(table.node(node(1).0).is_some());
        assert!(table.node(node(3).0).is_some(), "2 made room");
        assert!(table.node(node(2).0).is_none());
    }
}
