//! [`NodeTable`]: every rule of the coordinator, without sockets, clocks or channels.
//!
//! The table is driven by method calls that each take `now` (what was received, what was
//! delivered, what the caller wants, time passing) and answers with [`Effect`]s, taken with
//! [`NodeTable::poll_effect`]: hand this request to that node, answer command N with this
//! reply, publish this event. [`NodeTable::poll_timeout`] says when it next needs
//! [`NodeTable::handle_timeout`]. The [`Coordinator`](super::Coordinator) is one shell around
//! it (tokio sockets and timers); a test or another runtime can drive it directly, the way
//! quinn-proto's `Connection` is driven.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::config::TableConfig;
use super::effects::{CommandId, Delivery, Effect, Expect, Failure, RequestId};
use super::pipeline::{Out, Pipeline, Queued, later};
use super::types::{Event, NodeStatus};
use crate::message::{Body, Identity, Message, UnitInfo};
use crate::sequence::Verdict;

mod evict;
mod reach;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Unknown,
    Online,
    Offline,
}

#[derive(Debug)]
struct Node {
    managed: bool,
    /// Known only because the listener heard from it (not given to `add_node`, never sent a
    /// command): it may make room for a new sender when the table is full.
    heard_only: bool,
    reach: Reach,
    /// When the node was first known; the offline delay counts from here until first contact.
    since: Instant,
    last_contact: Option<Instant>,
    identity: Option<Identity>,
    unit_info: Option<UnitInfo>,
    pipeline: Pipeline,
}

/// The coordinator's state machine: node reachability, heartbeats, each node's command queue,
/// output and verdict matching, re-synchronisation. See the [module docs](crate::coordinator).
#[derive(Debug)]
pub struct NodeTable {
    config: TableConfig,
    identity: Identity,
    nodes: HashMap<SocketAddr, Node>,
    next_command: u64,
    next_seed: u64,
    next_round: Instant,
    effects: VecDeque<Effect>,
    shut_down: bool,
}

impl NodeTable {
    /// A table sending requests as `identity` (whose `port` must be the listener's advertised
    /// port), started at `now`.
    pub fn new(config: TableConfig, identity: Identity, now: Instant) -> Self {
        Self {
            next_round: later(now, config.heartbeat_interval.max(Duration::from_millis(1))),
            config,
            identity,
            nodes: HashMap::new(),
            next_command: 0,
            next_seed: 0,
            effects: VecDeque::new(),
            shut_down: false,
        }
    }

    /// The identity requests are sent with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The next thing to do, in the order it arose.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`NodeTable::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut_down {
            return None;
        }
        let nodes = self
            .nodes
            .values()
            .filter_map(|n| n.pipeline.next_deadline());
        nodes.chain([self.next_round]).min()
    }

    /// Starts managing `addr`: a heartbeat now and at every round.
    pub fn add_node(&mut self, addr: SocketAddr, now: Instant) {
        let addr = canonical(addr);
        let node = self.entry(addr, now);
        node.heard_only = false;
        if !std::mem::replace(&mut node.managed, true) {
            self.heartbeat(addr);
        }
    }

    /// Stops managing `addr` (no more heartbeats); its commands go on.
    pub fn remove_node(&mut self, addr: SocketAddr) {
        if let Some(node) = self.nodes.get_mut(&canonical(addr)) {
            node.managed = false;
        }
    }

    /// What is known about every node, in address order.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let mut list: Vec<NodeStatus> = self.nodes.iter().map(|(a, n)| status(*a, n)).collect();
        list.sort_by_key(|s| s.addr);
        list
    }

    /// What is known about `addr`.
    pub fn node(&self, addr: SocketAddr) -> Option<NodeStatus> {
        let addr = canonical(addr);
        self.nodes.get(&addr).map(|n| status(addr, n))
    }

    /// Queues `command` for `node`, to be answered by `deadline`; with [`Expect::Verdict`] the
    /// reply waits for boardio's verdict too.
    pub fn submit(
        &mut self,
        node: SocketAddr,
        command: String,
        expect: Expect,
        deadline: Instant,
        now: Instant,
    ) -> CommandId {
        let id = CommandId(self.next_command);
        self.next_command += 1;
        if self.shut_down {
            self.effects.push_back(Effect::Complete {
                command: id,
                result: Err(Failure::Shutdown),
            });
            return id;
        }
        let node = canonical(node);
        let timings = self.config.timings;
        let mut out = Vec::new();
        let queued = Queued {
            id,
            command,
            expect,
            deadline,
        };
        let entry = self.entry(node, now);
        entry.heard_only = false;
        entry.pipeline.submit(queued, now, &timings, &mut out);
        self.apply(node, out);
        id
    }

    /// The caller of `command` to `node` gave up; its output, if it comes, is given to no one.
    ///
    /// A command not answered yet, queued or in flight, is answered at once with
    /// [`Failure::Cancelled`], so every submitted command gets exactly one
    /// [`Effect::Complete`] whether or not it is cancelled (a shell whose caller is gone just
    /// drops it). One already answered, or unknown to `node`, gets nothing more. A command in
    /// flight is treated like a timed-out one: the node is re-synchronised before the next.
    pub fn cancel(&mut self, node: SocketAddr, command: CommandId, now: Instant) {
        let node = canonical(node);
        let timings = self.config.timings;
        let mut out = Vec::new();
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry.pipeline.cancel(command, &timings, now, &mut out);
        }
        self.apply(node, out);
    }

    /// How handing over `request` ended.
    pub fn on_sent(&mut self, request: RequestId, delivery: Delivery, now: Instant) {
        let node = request.node;
        // Only a node still tracked: one that made room meanwhile (its heartbeat was in
        // transit) must not come back, as a node that could never make room again.
        if delivery == Delivery::Delivered && self.nodes.contains_key(&node) {
            self.contact(node, None, now);
        }
        let Some(seq) = request.seq else {
            return;
        };
        let timings = self.config.timings;
        let mut out = Vec::new();
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry
                .pipeline
                .on_sent(seq, delivery, now, &timings, &mut out);
        }
        self.apply(node, out);
    }

    /// A request handed over by the shell on its own (an explicit heartbeat) reached `node`.
    pub fn reached(&mut self, node: SocketAddr, now: Instant) {
        self.contact(canonical(node), None, now);
    }

    /// A message received on the listener from `peer`.
    pub fn on_message(&mut self, peer: SocketAddr, message: Message, now: Instant) {
        let node = SocketAddr::new(peer.ip().to_canonical(), message.identity.port);
        if message.identity.coordinator {
            // Another coordinator's request: not a node's event.
            self.publish(Event::Other { node, message });
            return;
        }
        let known = self.nodes.contains_key(&node);
        if known || self.nodes.len() < self.config.max_nodes || self.make_room() {
            if !known && matches!(message.body, Body::Heartbeat) {
                tracing::debug!(%node, id = %message.identity.id, "node discovered");
                let managed = self.config.manage_discovered;
                let entry = self.entry(node, now);
                entry.managed = managed;
                entry.heard_only = true;
                self.publish(Event::NodeDiscovered {
                    node,
                    identity: message.identity.clone(),
                });
            }
            if !known && let Some(entry) = self.nodes.get_mut(&node) {
                entry.heard_only = true;
            }
            self.contact(node, Some(&message.identity), now);
        } else {
            tracing::debug!(%node, "node table full: sender not tracked");
        }
        let Message { identity, body } = message;
        let timings = self.config.timings;
        let mut out = Vec::new();
        match body {
            Body::Heartbeat => {
                // A node that probes us has lost us (or just booted): answer at once.
                if self.nodes.get(&node).is_some_and(|n| n.managed) {
                    self.heartbeat(node);
                }
            }
            Body::Output { output } => {
                if let Some(entry) = self.nodes.get_mut(&node) {
                    entry.pipeline.on_output(&output, now, &timings, &mut out);
                }
                self.publish(Event::Output {
                    node,
                    identity,
                    output,
                });
            }
            Body::Message { message } => {
                if let Some(verdict) = Verdict::from_message(&message)
                    && let Some(entry) = self.nodes.get_mut(&node)
                    && !entry.pipeline.on_verdict(verdict, now, &timings, &mut out)
                {
                    tracing::debug!(%node, %message, "verdict with no command in flight");
                }
                self.publish(Event::Message {
                    node,
                    identity,
                    message,
                });
            }
            Body::UnitInfo(info) => {
                if let Some(entry) = self.nodes.get_mut(&node) {
                    entry.unit_info = Some(info.clone());
                }
                self.publish(Event::UnitInfo {
                    node,
                    identity,
                    info,
                });
            }
            body => self.publish(Event::Other {
                node,
                message: Message { identity, body },
            }),
        }
        self.apply(node, out);
    }

    /// Deadlines that passed by `now`: commands, markers, verdict waits, heartbeat rounds.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        let timings = self.config.timings;
        let due: Vec<SocketAddr> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.pipeline.next_deadline().is_some_and(|d| d <= now))
            .map(|(a, _)| *a)
            .collect();
        for node in due {
            let mut out = Vec::new();
            if let Some(entry) = self.nodes.get_mut(&node) {
                entry.pipeline.handle_timeout(now, &timings, &mut out);
            }
            self.apply(node, out);
        }
        if now >= self.next_round {
            let period = self.config.heartbeat_interval.max(Duration::from_millis(1));
            // Missed rounds are not made up for: the next is a period after this one.
            self.next_round = later(now, period);
            self.heartbeat_round(now);
        }
    }

    /// Fails every command with [`Failure::Shutdown`]; nothing more is sent.
    pub fn shutdown(&mut self) {
        self.shut_down = true;
        let nodes: Vec<SocketAddr> = self.nodes.keys().copied().collect();
        for node in nodes {
            let mut out = Vec::new();
            if let Some(entry) = self.nodes.get_mut(&node) {
                entry.pipeline.fail_all(Failure::Shutdown, &mut out);
            }
            self.apply(node, out);
        }
    }

    fn entry(&mut self, addr: SocketAddr, now: Instant) -> &mut Node {
        let seed = &mut self.next_seed;
        self.nodes.entry(addr).or_insert_with(|| {
            *seed += 1;
            Node {
                managed: false,
                heard_only: false,
                reach: Reach::Unknown,
                since: now,
                last_contact: None,
                identity: None,
                unit_info: None,
                pipeline: Pipeline::new(token_seed(addr, *seed)),
            }
        })
    }

    fn publish(&mut self, event: Event) {
        self.effects.push_back(Effect::Publish(event));
    }

    fn heartbeat(&mut self, node: SocketAddr) {
        if self.shut_down {
            return;
        }
        self.effects.push_back(Effect::Send {
            request: RequestId { node, seq: None },
            message: Message::heartbeat(self.identity.clone()),
        });
    }

    /// Turns a pipeline's requests into effects.
    fn apply(&mut self, node: SocketAddr, out: Vec<Out>) {
        for item in out {
            match item {
                Out::Send {
                    request,
                    command,
                    id,
                } => {
                    tracing::debug!(%node, ?id, %command, "handing over");
                    let message = Message::cmd(self.identity.clone(), command);
                    self.effects.push_back(Effect::Send {
                        request: RequestId {
                            node,
                            seq: Some(request),
                        },
                        message,
                    });
                }
                Out::Complete(command, result) => {
                    tracing::debug!(%node, ?command, ok = result.is_ok(), "command finished");
                    self.effects.push_back(Effect::Complete { command, result });
                }
                Out::Resync { token } => {
                    tracing::debug!(%node, %token, "out of step: re-synchronising");
                    self.publish(Event::Resync { node });
                }
                Out::Discarded { why } => tracing::debug!(%node, why, "output discarded"),
            }
        }
    }
}

fn status(addr: SocketAddr, node: &Node) -> NodeStatus {
    NodeStatus {
        addr,
        managed: node.managed,
        online: node.reach == Reach::Online,
        identity: node.identity.clone(),
        unit_info: node.unit_info.clone(),
        in_step: node.pipeline.in_step(),
        busy: node.pipeline.busy(),
        queued: node.pipeline.queued(),
    }
}

/// The address as commands are sent to it (IPv4-mapped IPv6 as IPv4).
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A marker-token seed that differs between nodes and, through the address hash, between
/// coordinators' tables (so one coordinator never takes another's marker for its own).
fn token_seed(addr: SocketAddr, serial: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(serial);
    hasher.write(addr.to_string().as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod late;
#[cfg(test)]
mod tests;
