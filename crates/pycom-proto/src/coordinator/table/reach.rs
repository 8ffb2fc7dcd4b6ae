//! Node reachability: contact, heartbeat rounds, going offline.

use std::net::SocketAddr;
use std::time::Instant;

use super::{NodeTable, Reach};
use crate::coordinator::types::Event;
use crate::message::Identity;

impl NodeTable {
    /// Records that `node` was heard from (or reached); announces it if it was not online.
    pub(super) fn contact(&mut self, node: SocketAddr, identity: Option<&Identity>, now: Instant) {
        let entry = self.entry(node, now);
        entry.last_contact = Some(now);
        if let Some(identity) = identity {
            entry.identity = Some(identity.clone());
        }
        if std::mem::replace(&mut entry.reach, Reach::Online) != Reach::Online {
            tracing::debug!(%node, "node online");
            self.publish(Event::NodeOnline { node });
        }
    }

    /// Heartbeats every managed node, and marks offline those silent for too long.
    pub(super) fn heartbeat_round(&mut self, now: Instant) {
        let mut targets = Vec::new();
        let mut went_offline = Vec::new();
        for (addr, node) in &mut self.nodes {
            if !node.managed {
                continue;
            }
            targets.push(*addr);
            let heard = node.last_contact.unwrap_or(node.since);
            if node.reach != Reach::Offline
                && now.saturating_duration_since(heard) >= self.config.offline_after
            {
                node.reach = Reach::Offline;
                went_offline.push(*addr);
            }
        }
        went_offline.sort();
        targets.sort();
        for node in went_offline {
            tracing::debug!(%node, "node offline");
            self.publish(Event::NodeOffline { node });
        }
        for node in targets {
            self.heartbeat(node);
        }
    }
}
