//! The coordinator (feature `client`): the PC side that manages LA4 nodes.
//!
//! A [`Coordinator`] listens for events on its advertised port, sends a heartbeat to every
//! managed node every [`CoordinatorConfig::heartbeat_interval`], sends commands and sequences
//! and resolves each with the node's `output` event, and publishes everything it hears as a
//! stream of [`Event`]s.
//!
//! # Correlation
//! Events carry no request id. An `output` event is matched to the oldest command still waiting
//! for one from the same node (the node is identified by the IP its event came from and the
//! `port` in the event, which is the node's listen port). To make that order the node's order,
//! commands to one node are sent one at a time: the next command is sent only after the node has
//! closed the previous request connection (which it does once it has read it). Commands to
//! different nodes run in parallel. On the way back, events from one IP are handled in the order
//! their connections were accepted (they are still read in parallel), so a short event cannot
//! overtake a longer one the node sent before it; a peer that stalls delays the events behind
//! it by at most the read deadline.
//!
//! A command that times out (or whose future is dropped) keeps its place for
//! [`CoordinatorConfig::late_output_grace`], so that its late output is not mistaken for the
//! answer to the next command; after that it is forgotten.
//!
//! # Events and lag
//! [`Coordinator::events`] is a `tokio::sync::broadcast` receiver with room for
//! [`CoordinatorConfig::event_capacity`] events. A receiver that falls further behind gets
//! `RecvError::Lagged(n)` and misses the `n` oldest events; nobody else is slowed down, and
//! command results are not affected (they do not travel through the stream).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labwire_net::{CancellationToken, Server, ServerConfig, ServerHandle};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::TaskTracker;

use crate::message::{Body, Identity, Message, UnitInfo};
use crate::sequence::{Sequence, Slot, Verdict};
use crate::transport::{self, DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT, ReceiveError, SendError};
use crate::wire::Limits;

/// How often a heartbeat goes to each managed node, as the vendor asks.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Silence after which a node counts as offline, as the node itself does for coordinators.
pub const DEFAULT_OFFLINE_AFTER: Duration = Duration::from_secs(15);
/// How long a command waits for its output when no timeout is given.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Nodes tracked on the listener's initiative when no limit is configured.
pub const DEFAULT_MAX_NODES: usize = 4096;
/// Events kept for slow [`Coordinator::events`] receivers.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// How a coordinator runs. Public fields; start from [`CoordinatorConfig::new`].
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The event listener: address (port 0 picks one), backlog, connection limit, `TCP_NODELAY`.
    pub server: ServerConfig,
    /// The identity sent in every request. `coordinator` is forced to `true`; `port` is replaced
    /// by the listener's bound port unless [`CoordinatorConfig::advertise_port`] is set.
    pub identity: Identity,
    /// The port to advertise instead of the bound one (behind port forwarding).
    pub advertise_port: Option<u16>,
    /// Heartbeat period, 5 s by default.
    pub heartbeat_interval: Duration,
    /// A node not heard from (no event, no delivered request) for this long is offline; 15 s by
    /// default. Checked at every heartbeat round.
    pub offline_after: Duration,
    /// Default deadline for a command's output.
    pub command_timeout: Duration,
    /// How long a timed-out command keeps its place in its node's queue (see the module docs);
    /// the command timeout by default.
    pub late_output_grace: Duration,
    /// Deadline for connecting to a node and handing it one request.
    pub send_timeout: Duration,
    /// Deadline for a peer to deliver one event.
    pub read_timeout: Duration,
    /// Size limit for requests and events.
    pub limits: Limits,
    /// Capacity of the event stream.
    pub event_capacity: usize,
    /// Start managing (heartbeating) a node that probes this coordinator; `true` by default.
    /// Either way the node is listed and announced once with [`Event::NodeDiscovered`].
    pub manage_discovered: bool,
    /// Most nodes tracked on the listener's initiative (discovered nodes, senders of events);
    /// beyond it the events of unknown senders are still published but the senders are not
    /// tracked. Nodes given to [`Coordinator::add_node`] or sent commands are always tracked.
    /// [`DEFAULT_MAX_NODES`] by default.
    pub max_nodes: usize,
}

impl CoordinatorConfig {
    /// Defaults for a coordinator listening for events on `listen` as `identity`.
    pub fn new(listen: SocketAddr, identity: Identity) -> Self {
        Self {
            server: ServerConfig::new(listen),
            identity,
            advertise_port: None,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            offline_after: DEFAULT_OFFLINE_AFTER,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            late_output_grace: DEFAULT_COMMAND_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            limits: Limits::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            manage_discovered: true,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

/// Something the coordinator heard or noticed. `node` is always the node's address as
/// commands are sent to it: the IP its connection came from and the port in its message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// An unknown node probed this coordinator (a base message with `coordinator: false`).
    NodeDiscovered {
        /// The node.
        node: SocketAddr,
        /// How it introduced itself.
        identity: Identity,
    },
    /// A node became reachable: first contact, or contact again after [`Event::NodeOffline`].
    NodeOnline {
        /// The node.
        node: SocketAddr,
    },
    /// A managed node has not been heard from (events or delivered requests) for
    /// [`CoordinatorConfig::offline_after`].
    NodeOffline {
        /// The node.
        node: SocketAddr,
    },
    /// The node's hardware description (sent once per coordinator).
    UnitInfo {
        /// The node.
        node: SocketAddr,
        /// Its identity.
        identity: Identity,
        /// The description.
        info: UnitInfo,
    },
    /// A text message, e.g. `BOARDIO_READY` or `BOARDIO_ERROR: …`.
    Message {
        /// The node.
        node: SocketAddr,
        /// Its identity.
        identity: Identity,
        /// The text.
        message: String,
    },
    /// A command's output (also delivered to the waiting [`Coordinator::send_command`]).
    Output {
        /// The node.
        node: SocketAddr,
        /// Its identity.
        identity: Identity,
        /// The output text.
        output: String,
    },
    /// Any other valid message: an unknown `type_`, or a request from another coordinator.
    Other {
        /// The sender.
        node: SocketAddr,
        /// The message.
        message: Message,
    },
    /// A connection to the listener that did not carry a valid message. It was closed; nothing
    /// else was affected.
    Rejected {
        /// The peer.
        peer: SocketAddr,
        /// What was wrong.
        error: Arc<ReceiveError>,
    },
}

/// Why a coordinator call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be delivered to the node.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The node's output did not arrive in time.
    #[error("no output from {node} within {after:?}")]
    Timeout {
        /// The node.
        node: SocketAddr,
        /// The deadline.
        after: Duration,
    },
    /// The coordinator was shut down.
    #[error("the coordinator is shut down")]
    Shutdown,
}

impl Error {
    /// Whether a deadline passed (sending, or waiting for the output).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Send(error) => error.is_timeout(),
            Error::Shutdown => false,
        }
    }
}

/// What the coordinator knows about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node's address.
    pub addr: SocketAddr,
    /// Whether it receives heartbeats.
    pub managed: bool,
    /// Whether it is reachable (contact within the offline delay).
    pub online: bool,
    /// The identity from its latest message, if any.
    pub identity: Option<Identity>,
    /// Its `unit_info`, once received.
    pub unit_info: Option<UnitInfo>,
}

/// What [`Coordinator::run_sequence_confirmed`] learnt about a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SequenceReport {
    /// The command's output (boardiocli's lines).
    pub output: String,
    /// boardio's verdict; `None` when the output shows boardio was not reached.
    pub verdict: Option<Verdict>,
}

impl SequenceReport {
    /// Whether boardio accepted the sequence.
    pub fn is_ready(&self) -> bool {
        self.verdict == Some(Verdict::Ready)
    }
}

/// A running coordinator. Cheap to clone; every clone drives the same listener and nodes.
/// The listener and heartbeats stop at [`Coordinator::shutdown`] or when the last clone drops.
#[derive(Debug, Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// Stops the background work when the last [`Coordinator`] clone is dropped.
#[derive(Debug)]
struct Owner {
    shutdown: CancellationToken,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug)]
struct Inner {
    config: CoordinatorConfig,
    identity: Identity,
    events: broadcast::Sender<Event>,
    nodes: Mutex<HashMap<SocketAddr, NodeEntry>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    listener: ServerHandle,
}

#[derive(Debug)]
struct NodeEntry {
    managed: bool,
    state: Reach,
    /// When the node was first known; the offline delay counts from here until first contact.
    since: Instant,
    last_contact: Option<Instant>,
    identity: Option<Identity>,
    unit_info: Option<UnitInfo>,
    pending: VecDeque<Pending>,
    /// Sequences whose output has come, waiting for boardio's verdict, oldest first.
    verdicts: VecDeque<oneshot::Sender<Verdict>>,
    /// Held while one command is being handed to the node, so commands reach it in queue order.
    send_lock: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Unknown,
    Online,
    Offline,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    reply: Option<oneshot::Sender<String>>,
    /// For a sequence: where boardio's verdict goes, once the output has come.
    verdict: Option<oneshot::Sender<Verdict>>,
    abandoned_at: Option<Instant>,
}

impl NodeEntry {
    fn new(now: Instant, managed: bool) -> Self {
        Self {
            managed,
            state: Reach::Unknown,
            since: now,
            last_contact: None,
            identity: None,
            unit_info: None,
            pending: VecDeque::new(),
            verdicts: VecDeque::new(),
            send_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Queues a sequence waiting for boardio's verdict, first forgetting waiters whose call has
    /// ended (otherwise a node that never reports a verdict would grow the queue with every
    /// sequence).
    fn await_verdict(&mut self, waiter: oneshot::Sender<Verdict>) {
        self.verdicts.retain(|w| !w.is_closed());
        self.verdicts.push_back(waiter);
    }

    /// Queues a command waiting for its output, first forgetting abandoned commands whose grace
    /// period is over (otherwise a node that never answers would grow the queue with every
    /// command). They would be skipped anyway once at the front, so the order is unchanged.
    fn await_output(&mut self, pending: Pending, now: Instant, grace: Duration) {
        self.pending.retain(|p| {
            p.abandoned_at
                .is_none_or(|at| now.saturating_duration_since(at) < grace)
        });
        self.pending.push_back(pending);
    }

    /// Removes the answer slot the next output belongs to, skipping abandoned commands whose
    /// grace period is over.
    fn next_pending(&mut self, now: Instant, grace: Duration) -> Option<Pending> {
        while let Some(front) = self.pending.front() {
            let expired = front
                .abandoned_at
                .is_some_and(|at| now.saturating_duration_since(at) >= grace);
            if !expired {
                return self.pending.pop_front();
            }
            self.pending.pop_front();
        }
        None
    }
}

impl Coordinator {
    /// Binds the event listener and starts the heartbeat loop.
    ///
    /// # Errors
    /// When the listen address cannot be bound.
    pub async fn start(config: CoordinatorConfig) -> io::Result<Self> {
        let server = Server::bind(config.server.clone()).await?;
        let bound = server.local_addr()?;
        let mut identity = config.identity.clone();
        identity.coordinator = true;
        identity.port = config.advertise_port.unwrap_or(bound.port());
        let shutdown = CancellationToken::new();
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let limits = config.limits;
            let read_timeout = config.read_timeout;
            let listener = transport::serve_messages(
                server,
                shutdown.child_token(),
                limits,
                read_timeout,
                move |peer, received| {
                    if let Some(inner) = weak.upgrade() {
                        inner.on_received(peer, received);
                    }
                    std::future::ready(())
                },
            );
            Inner {
                config,
                identity,
                events,
                nodes: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                shutdown: shutdown.clone(),
                tasks: TaskTracker::new(),
                listener,
            }
        });
        inner
            .tasks
            .spawn(heartbeat_loop(Arc::downgrade(&inner), shutdown.clone()));
        tracing::debug!(listen = %bound, port = inner.identity.port, "coordinator started");
        Ok(Self {
            inner,
            _owner: Arc::new(Owner { shutdown }),
        })
    }

    /// The address the event listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.listener.local_addr()
    }

    /// The identity sent with every request (with the advertised port).
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// A receiver of every event from now on (see the module docs on lag).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Starts managing the node at `addr`: it gets a heartbeat now and at every interval.
    pub fn add_node(&self, addr: SocketAddr) {
        let addr = canonical(addr);
        let newly = {
            let mut nodes = self.inner.lock_nodes();
            let entry = nodes
                .entry(addr)
                .or_insert_with(|| NodeEntry::new(Instant::now(), false));
            !std::mem::replace(&mut entry.managed, true)
        };
        if newly {
            self.inner.spawn_heartbeat(addr);
        }
    }

    /// Stops managing the node at `addr` (no more heartbeats; it will consider this coordinator
    /// offline after its own delay). Commands waiting for its output keep waiting.
    pub fn remove_node(&self, addr: SocketAddr) {
        if let Some(entry) = self.inner.lock_nodes().get_mut(&canonical(addr)) {
            entry.managed = false;
        }
    }

    /// What is known about every node heard from or managed, in address order.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let mut list: Vec<NodeStatus> = self
            .inner
            .lock_nodes()
            .iter()
            .map(|(addr, entry)| status(*addr, entry))
            .collect();
        list.sort_by_key(|s| s.addr);
        list
    }

    /// What is known about the node at `addr`.
    pub fn node(&self, addr: SocketAddr) -> Option<NodeStatus> {
        let addr = canonical(addr);
        self.inner.lock_nodes().get(&addr).map(|e| status(addr, e))
    }

    /// Sends one heartbeat to `node` now (managed nodes get one every interval anyway) and
    /// resolves once the node has read it (closed the connection), or the send deadline passed.
    ///
    /// # Errors
    /// When it cannot be delivered.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn heartbeat(&self, node: SocketAddr) -> Result<(), Error> {
        let node = canonical(node);
        self.inner
            .deliver_confirmed(node, &Message::heartbeat(self.inner.identity.clone()))
            .await
    }

    /// Sends `command` to `node` and resolves with the node's `output` event, within the
    /// configured command timeout (see [`Coordinator::send_command_timeout`]).
    ///
    /// # Errors
    /// [`Error::Send`] when the node cannot be reached, [`Error::Timeout`] when no output comes.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call is treated like a timed-out one (its output, if it comes,
    /// is consumed and not given to the next command).
    pub async fn send_command(
        &self,
        node: SocketAddr,
        command: impl Into<String>,
    ) -> Result<String, Error> {
        self.send_command_timeout(node, command, self.inner.config.command_timeout)
            .await
    }

    /// [`Coordinator::send_command`] with its own deadline. The deadline covers the whole call:
    /// waiting for earlier commands to the same node to be handed over, delivering this one,
    /// and its output.
    ///
    /// # Errors
    /// As [`Coordinator::send_command`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::send_command`].
    pub async fn send_command_timeout(
        &self,
        node: SocketAddr,
        command: impl Into<String>,
        timeout: Duration,
    ) -> Result<String, Error> {
        self.command(
            node,
            command.into(),
            transport::deadline_after(timeout),
            timeout,
            None,
        )
        .await
    }

    async fn command(
        &self,
        node: SocketAddr,
        command: String,
        deadline: Instant,
        timeout: Duration,
        verdict: Option<oneshot::Sender<Verdict>>,
    ) -> Result<String, Error> {
        let node = canonical(node);
        let message = Message::cmd(self.inner.identity.clone(), command);
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let send_lock = {
            let mut nodes = inner.lock_nodes();
            let entry = nodes
                .entry(node)
                .or_insert_with(|| NodeEntry::new(Instant::now(), false));
            Arc::clone(&entry.send_lock)
        };
        let mut guard = PendingGuard {
            inner,
            node,
            id,
            settled: false,
        };
        let timed_out = || Error::Timeout {
            node,
            after: timeout,
        };
        {
            let Ok(_turn) = tokio::time::timeout_at(deadline, send_lock.lock()).await else {
                // Never queued: nothing to forget.
                return Err(timed_out());
            };
            if let Some(entry) = inner.lock_nodes().get_mut(&node) {
                let pending = Pending {
                    id,
                    reply: Some(reply),
                    verdict,
                    abandoned_at: None,
                };
                entry.await_output(pending, Instant::now(), inner.config.late_output_grace);
            }
            match tokio::time::timeout_at(deadline, inner.deliver_confirmed(node, &message)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    guard.forget();
                    return Err(error);
                }
                // Perhaps delivered: the guard keeps its place for a late output.
                Err(_) => return Err(timed_out()),
            }
        }
        let outcome = tokio::select! {
            () = inner.shutdown.cancelled() => Err(Error::Shutdown),
            received = tokio::time::timeout_at(deadline, answer) => match received {
                Ok(Ok(output)) => Ok(output),
                // The sender vanished: the slot was dropped without an answer (coordinator gone).
                Ok(Err(_)) => Err(Error::Shutdown),
                Err(_) => Err(timed_out()),
            },
        };
        if outcome.is_ok() {
            guard.settled = true;
        }
        outcome
    }

    /// Writes `sequence` to the node's normal sequence file, loads and runs it; resolves with
    /// the command's output. The node reports the result as a message event (`BOARDIO_READY` or
    /// `BOARDIO_ERROR`) on [`Coordinator::events`].
    ///
    /// # Errors
    /// As [`Coordinator::send_command`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::send_command`].
    pub async fn run_sequence(
        &self,
        node: SocketAddr,
        sequence: &Sequence,
    ) -> Result<String, Error> {
        self.send_command(node, sequence.command(Slot::Normal))
            .await
    }

    /// Writes `sequence` to the node's boot-time (standalone) sequence file and loads it.
    ///
    /// # Errors
    /// As [`Coordinator::send_command`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::send_command`].
    pub async fn store_standalone_sequence(
        &self,
        node: SocketAddr,
        sequence: &Sequence,
    ) -> Result<String, Error> {
        self.send_command(node, sequence.command(Slot::Standalone))
            .await
    }

    /// Writes and loads `sequence` into `slot` (and runs it, for [`Slot::Normal`]), then also
    /// waits for boardio's verdict: the first `BOARDIO_READY` / `BOARDIO_ERROR…` message from the
    /// node after the command's output. The configured command timeout covers both.
    ///
    /// When the output does not show boardiocli sending anything (`Sent:`), boardio was not
    /// reached (not booted, say) and no verdict is awaited: [`SequenceReport::verdict`] is
    /// `None`.
    ///
    /// # Errors
    /// As [`Coordinator::send_command`]; [`Error::Timeout`] also when the verdict does not come.
    ///
    /// # Cancel safety
    /// As [`Coordinator::send_command`].
    pub async fn run_sequence_confirmed(
        &self,
        node: SocketAddr,
        sequence: &Sequence,
        slot: Slot,
    ) -> Result<SequenceReport, Error> {
        let timeout = self.inner.config.command_timeout;
        let deadline = transport::deadline_after(timeout);
        let (verdict, answer) = oneshot::channel();
        let output = self
            .command(
                node,
                sequence.command(slot),
                deadline,
                timeout,
                Some(verdict),
            )
            .await?;
        if !output.contains("Sent:") {
            // Dropping the receiver makes the coordinator skip this waiter.
            return Ok(SequenceReport {
                output,
                verdict: None,
            });
        }
        let verdict = tokio::select! {
            () = self.inner.shutdown.cancelled() => return Err(Error::Shutdown),
            received = tokio::time::timeout_at(deadline, answer) => match received {
                Ok(Ok(verdict)) => verdict,
                Ok(Err(_)) => return Err(Error::Shutdown),
                Err(_) => return Err(Error::Timeout { node: canonical(node), after: timeout }),
            },
        };
        Ok(SequenceReport {
            output,
            verdict: Some(verdict),
        })
    }

    /// Stops the listener and the heartbeats, fails waiting commands with [`Error::Shutdown`],
    /// and waits until every connection is closed. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.listener.shutdown().await;
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

/// Marks a command abandoned if its call ends without an answer, or removes it if it was never
/// delivered.
struct PendingGuard<'a> {
    inner: &'a Inner,
    node: SocketAddr,
    id: u64,
    settled: bool,
}

impl PendingGuard<'_> {
    fn forget(&mut self) {
        if let Some(entry) = self.inner.lock_nodes().get_mut(&self.node) {
            entry.pending.retain(|p| p.id != self.id);
        }
        self.settled = true;
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(entry) = self.inner.lock_nodes().get_mut(&self.node)
            && let Some(pending) = entry.pending.iter_mut().find(|p| p.id == self.id)
        {
            pending.reply = None;
            pending.abandoned_at = Some(Instant::now());
        }
    }
}

impl Inner {
    fn lock_nodes(&self) -> MutexGuard<'_, HashMap<SocketAddr, NodeEntry>> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters more than stopping every coordinator call would.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, event: Event) {
        // No receiver is not an error: nobody is listening right now.
        let _ = self.events.send(event);
    }

    async fn deliver(&self, node: SocketAddr, message: &Message) -> Result<(), Error> {
        self.deliver_with(node, message, false).await
    }

    async fn deliver_confirmed(&self, node: SocketAddr, message: &Message) -> Result<(), Error> {
        self.deliver_with(node, message, true).await
    }

    async fn deliver_with(
        &self,
        node: SocketAddr,
        message: &Message,
        confirm: bool,
    ) -> Result<(), Error> {
        let sent = transport::send_message(
            node,
            message,
            &self.config.limits,
            self.config.send_timeout,
            confirm,
        )
        .await;
        match sent {
            Ok(()) => {
                self.contact(node, None);
                Ok(())
            }
            Err(error) => {
                tracing::debug!(%node, %error, "request not delivered");
                Err(error.into())
            }
        }
    }

    fn spawn_heartbeat(self: &Arc<Self>, node: SocketAddr) {
        let inner = Arc::clone(self);
        let token = self.shutdown.clone();
        self.tasks.spawn(async move {
            let heartbeat = Message::heartbeat(inner.identity.clone());
            tokio::select! {
                () = token.cancelled() => {}
                _ = inner.deliver(node, &heartbeat) => {}
            }
        });
    }

    /// Records that `node` was heard from (or reached); announces it if it was not online.
    fn contact(&self, node: SocketAddr, identity: Option<&Identity>) {
        let now = Instant::now();
        let came_online = {
            let mut nodes = self.lock_nodes();
            let entry = nodes
                .entry(node)
                .or_insert_with(|| NodeEntry::new(now, false));
            entry.last_contact = Some(now);
            if let Some(identity) = identity {
                entry.identity = Some(identity.clone());
            }
            std::mem::replace(&mut entry.state, Reach::Online) != Reach::Online
        };
        if came_online {
            tracing::debug!(%node, "node online");
            self.emit(Event::NodeOnline { node });
        }
    }

    fn on_received(self: &Arc<Self>, peer: SocketAddr, received: Result<Message, ReceiveError>) {
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%peer, %error, "rejected event");
                self.emit(Event::Rejected {
                    peer,
                    error: Arc::new(error),
                });
                return;
            }
        };
        let node = SocketAddr::new(peer.ip().to_canonical(), message.identity.port);
        if message.identity.coordinator {
            // Another coordinator's request: not a node's event.
            self.emit(Event::Other { node, message });
            return;
        }
        let now = Instant::now();
        let (known, room) = {
            let nodes = self.lock_nodes();
            (
                nodes.contains_key(&node),
                nodes.len() < self.config.max_nodes,
            )
        };
        if known || room {
            if !known && matches!(message.body, Body::Heartbeat) {
                tracing::debug!(%node, id = %message.identity.id, "node discovered");
                self.lock_nodes()
                    .insert(node, NodeEntry::new(now, self.config.manage_discovered));
                self.emit(Event::NodeDiscovered {
                    node,
                    identity: message.identity.clone(),
                });
            }
            self.contact(node, Some(&message.identity));
        } else {
            tracing::debug!(%node, "node table full: sender not tracked");
        }
        let Message { identity, body } = message;
        match body {
            Body::Heartbeat => {
                // A node that probes us has lost us (or just booted): answer at once so it does
                // not wait a whole interval.
                let managed = self.lock_nodes().get(&node).is_some_and(|e| e.managed);
                if managed {
                    self.spawn_heartbeat(node);
                }
            }
            Body::Output { output } => {
                let reply = {
                    let mut nodes = self.lock_nodes();
                    let entry = nodes.get_mut(&node);
                    entry.and_then(|entry| {
                        let slot = entry.next_pending(now, self.config.late_output_grace)?;
                        // The verdict, if awaited, is the next boardio message from now on.
                        if let (Some(_), Some(verdict)) = (&slot.reply, slot.verdict) {
                            entry.await_verdict(verdict);
                        }
                        Some(slot.reply)
                    })
                };
                match reply {
                    Some(Some(reply)) => {
                        let _ = reply.send(output.clone());
                    }
                    Some(None) => tracing::debug!(%node, "late output of an abandoned command"),
                    None => tracing::debug!(%node, "output with no command waiting"),
                }
                self.emit(Event::Output {
                    node,
                    identity,
                    output,
                });
            }
            Body::Message { message } => {
                if let Some(verdict) = Verdict::from_message(&message) {
                    self.deliver_verdict(node, verdict);
                }
                self.emit(Event::Message {
                    node,
                    identity,
                    message,
                });
            }
            Body::UnitInfo(info) => {
                if let Some(entry) = self.lock_nodes().get_mut(&node) {
                    entry.unit_info = Some(info.clone());
                }
                self.emit(Event::UnitInfo {
                    node,
                    identity,
                    info,
                });
            }
            body => self.emit(Event::Other {
                node,
                message: Message { identity, body },
            }),
        }
    }

    /// Gives `verdict` to the oldest sequence of `node` still waiting for one.
    fn deliver_verdict(&self, node: SocketAddr, verdict: Verdict) {
        let mut nodes = self.lock_nodes();
        let Some(entry) = nodes.get_mut(&node) else {
            return;
        };
        // Waiters whose call has ended (timed out, cancelled, or not expecting a verdict) are
        // skipped.
        while let Some(waiter) = entry.verdicts.pop_front() {
            if waiter.send(verdict.clone()).is_ok() {
                return;
            }
        }
    }

    /// Managed nodes, and marks offline those silent for too long.
    fn heartbeat_round(&self, now: Instant) -> Vec<SocketAddr> {
        let mut targets = Vec::new();
        let mut went_offline = Vec::new();
        {
            let mut nodes = self.lock_nodes();
            for (addr, entry) in nodes.iter_mut() {
                if !entry.managed {
                    continue;
                }
                targets.push(*addr);
                let heard = entry.last_contact.unwrap_or(entry.since);
                if entry.state != Reach::Offline
                    && now.saturating_duration_since(heard) >= self.config.offline_after
                {
                    entry.state = Reach::Offline;
                    went_offline.push(*addr);
                }
            }
        }
        for node in went_offline {
            tracing::debug!(%node, "node offline");
            self.emit(Event::NodeOffline { node });
        }
        targets
    }
}

async fn heartbeat_loop(inner: std::sync::Weak<Inner>, shutdown: CancellationToken) {
    let period = match inner.upgrade() {
        Some(inner) => inner
            .config
            .heartbeat_interval
            .max(Duration::from_millis(1)),
        None => return,
    };
    // No round at start: nodes get their first heartbeat when added.
    let mut ticks = tokio::time::interval_at(transport::deadline_after(period), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let targets = strong.heartbeat_round(Instant::now());
        let heartbeat = Message::heartbeat(strong.identity.clone());
        let mut sends = JoinSet::new();
        for node in targets {
            let inner = Arc::clone(&strong);
            let heartbeat = heartbeat.clone();
            sends.spawn(async move { inner.deliver(node, &heartbeat).await });
        }
        drop(strong);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async { while sends.join_next().await.is_some() {} } => {}
        }
    }
}

fn status(addr: SocketAddr, entry: &NodeEntry) -> NodeStatus {
    NodeStatus {
        addr,
        managed: entry.managed,
        online: entry.state == Reach::Online,
        identity: entry.identity.clone(),
        unit_info: entry.unit_info.clone(),
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: u64, abandoned_at: Option<Instant>) -> Pending {
        Pending {
            id,
            reply: None,
            verdict: None,
            abandoned_at,
        }
    }

    /// A node that reads every request and never sends anything back.
    async fn silent_node() -> SocketAddr {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn commands_to_a_node_that_never_answers_do_not_pile_up() {
        let node = silent_node().await;
        let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
        let mut config = CoordinatorConfig::new("127.0.0.1:0".parse().unwrap(), me);
        config.late_output_grace = Duration::from_millis(1);
        let coordinator = Coordinator::start(config).await.unwrap();
        for i in 0..8 {
            let sent = coordinator
                .send_command_timeout(node, format!("echo {i}"), Duration::from_millis(30))
                .await;
            assert!(matches!(sent, Err(Error::Timeout { .. })), "{sent:?}");
        }
        let waiting = coordinator
            .inner
            .lock_nodes()
            .get(&node)
            .unwrap()
            .pending
            .len();
        // The last two may still be within their grace period; the others are forgotten.
        assert!(waiting <= 2, "{waiting} commands still queued");
        coordinator.shutdown().await;
    }

    #[tokio::test]
    async fn timeouts_without_a_limit_do_not_overflow() {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
        let mut config = CoordinatorConfig::new("127.0.0.1:0".parse().unwrap(), me);
        // `Duration::MAX` for "no limit".
        config.send_timeout = Duration::MAX;
        config.command_timeout = Duration::MAX;
        config.heartbeat_interval = Duration::MAX;
        let coordinator = Coordinator::start(config).await.unwrap();
        let limit = Duration::from_secs(10);
        let sent = tokio::time::timeout(
            limit,
            coordinator.send_command_timeout(closed, "true", Duration::MAX),
        )
        .await
        .unwrap();
        assert!(matches!(sent, Err(Error::Send(_))), "{sent:?}");
        let sequence = Sequence::new([crate::Row::LedFan { on: true }]).unwrap();
        let confirmed = tokio::time::timeout(
            limit,
            coordinator.run_sequence_confirmed(closed, &sequence, Slot::Normal),
        )
        .await
        .unwrap();
        assert!(matches!(confirmed, Err(Error::Send(_))), "{confirmed:?}");
        assert!(matches!(
            coordinator.heartbeat(closed).await,
            Err(Error::Send(_))
        ));
        coordinator.shutdown().await;
    }

    #[test]
    fn defaults_are_the_vendors_intervals_and_a_burst_ready_listener() {
        let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
        let config = CoordinatorConfig::new("127.0.0.1:0".parse().unwrap(), me);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.offline_after, Duration::from_secs(15));
        // Well above tokio's 128, which collapses under bursts of short-lived connections.
        assert!(config.server.backlog >= 1024, "{}", config.server.backlog);
        assert!(config.server.nodelay);
    }

    #[test]
    fn verdict_waiters_whose_call_ended_are_not_kept() {
        let mut entry = NodeEntry::new(Instant::now(), true);
        for _ in 0..8 {
            let (waiter, call) = oneshot::channel::<Verdict>();
            drop(call);
            entry.await_verdict(waiter);
        }
        assert!(entry.verdicts.len() <= 1, "{}", entry.verdicts.len());
        let (waiter, _call) = oneshot::channel::<Verdict>();
        entry.await_verdict(waiter);
        assert_eq!(entry.verdicts.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn next_pending_skips_abandoned_commands_past_their_grace() {
        let now = Instant::now();
        let mut entry = NodeEntry::new(now, true);
        entry.pending.push_back(pending(1, Some(now)));
        entry.pending.push_back(pending(2, None));
        let grace = Duration::from_secs(10);
        // Within the grace period the abandoned command still owns the next output.
        let first = entry.next_pending(now + Duration::from_secs(1), grace);
        assert_eq!(first.map(|p| p.id), Some(1));
        entry.pending.push_front(pending(1, Some(now)));
        assert_eq!(
            entry.next_pending(now + grace, grace).map(|p| p.id),
            Some(2)
        );
        assert!(entry.next_pending(now + grace, grace).is_none());
    }
}
