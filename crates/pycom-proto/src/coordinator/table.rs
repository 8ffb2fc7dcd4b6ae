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

use super::pipeline::{Delivery, Expect, Out, Pipeline, PipelineTimings};
use super::types::{Event, NodeStatus};
use crate::message::{Body, Identity, Message, UnitInfo};
use crate::sequence::Verdict;

/// A command submitted to the table, answered by one [`Effect::Complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// One request the table asked to hand to a node; its outcome goes back to
/// [`NodeTable::on_sent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    node: SocketAddr,
    /// `None` for a heartbeat (not part of the node's command order).
    seq: Option<u64>,
}

impl RequestId {
    /// The node the request goes to.
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// Whether it is a heartbeat (outside the node's command order: nothing waits for it).
    pub fn is_heartbeat(&self) -> bool {
        self.seq.is_none()
    }
}

/// What a finished command got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The `output` event's text.
    pub output: String,
    /// boardio's verdict, for a command submitted with [`Expect::Verdict`] whose output shows
    /// boardio was reached.
    pub verdict: Option<Verdict>,
}

/// Why a command finished without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its deadline passed (queued, being handed over, or waiting for output or verdict).
    Timeout,
    /// It could not be handed to the node (the shell knows the transport error).
    NotDelivered,
    /// The caller gave up ([`NodeTable::cancel`]).
    Cancelled,
    /// The table was shut down.
    Shutdown,
}

/// What the table asks its shell to do.
#[derive(Debug)]
pub enum Effect {
    /// Hand `message` to `node` (connect, write, close) and report with
    /// [`NodeTable::on_sent`]. Requests of one node's command order are asked for one at a
    /// time; heartbeats may go alongside.
    Send {
        /// Identifies the request in [`NodeTable::on_sent`].
        request: RequestId,
        /// The message.
        message: Message,
    },
    /// Answer a command.
    Complete {
        /// The command.
        command: CommandId,
        /// What it got.
        result: Result<Reply, Failure>,
    },
    /// Publish an event to the coordinator's subscribers.
    Publish(Event),
}

/// The table's settings (the coordinator's, less those of its sockets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableConfig {
    /// Period of heartbeat rounds.
    pub heartbeat_interval: Duration,
    /// Silence after which a managed node is offline.
    pub offline_after: Duration,
    /// Marker, settle and verdict timings.
    pub timings: PipelineTimings,
    /// Manage (heartbeat) nodes that probe the coordinator.
    pub manage_discovered: bool,
    /// Most nodes tracked on the listener's initiative.
    pub max_nodes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Unknown,
    Online,
    Offline,
}

#[derive(Debug)]
struct Node {
    managed: bool,
    reach: Reach,
    /// When the node was first known; the offline delay counts from here until first contact.
    since: Instant,
    last_contact: Option<Instant>,
    identity: Option<Identity>,
    unit_info: Option<UnitInfo>,
    pipeline: Pipeline,
}

/// The coordinator's state machine: node reachability, heartbeats, each node's command queue,
/// output and verdict matching, re-synchronisation. See the [module docs](self).
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
            next_round: now + config.heartbeat_interval.max(Duration::from_millis(1)),
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
        self.entry(node, now)
            .pipeline
            .submit(id, command, expect, deadline, now, &timings, &mut out);
        self.apply(node, out);
        id
    }

    /// The caller of `command` to `node` gave up; its output, if it comes, is given to no one.
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
        if delivery == Delivery::Delivered {
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
        if known || self.nodes.len() < self.config.max_nodes {
            if !known && matches!(message.body, Body::Heartbeat) {
                tracing::debug!(%node, id = %message.identity.id, "node discovered");
                let managed = self.config.manage_discovered;
                let entry = self.entry(node, now);
                entry.managed = managed;
                self.publish(Event::NodeDiscovered {
                    node,
                    identity: message.identity.clone(),
                });
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
            self.next_round = now.checked_add(period).unwrap_or(now);
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

    /// Records that `node` was heard from (or reached); announces it if it was not online.
    fn contact(&mut self, node: SocketAddr, identity: Option<&Identity>, now: Instant) {
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
    fn heartbeat_round(&mut self, now: Instant) {
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
