//! The coordinator (feature `client`): the PC side that manages LA4 nodes.
//!
//! A [`Coordinator`] listens for events on its advertised port, sends a heartbeat to every
//! managed node every [`CoordinatorConfig::heartbeat_interval`], sends commands and sequences
//! and answers each with the node's `output` event (and boardio's verdict, for a confirmed
//! sequence), and publishes everything it hears as a stream of [`Event`]s.
//!
//! Every rule lives in the sans-IO [`NodeTable`] (node reachability, heartbeats due, each
//! node's command queue, output and verdict matching, re-synchronisation), driven by method
//! calls that take `now` and answer with [`Effect`]s. The `Coordinator` is its tokio shell:
//! the listener, the request hand-overs and one timer. Another runtime, or a test, can drive
//! the table directly.
//!
//! # Correlation
//! An `output` event names no command, and a boardio verdict (`BOARDIO_READY` /
//! `BOARDIO_ERROR…`) is a separate `message` event whose order relative to the output is not
//! documented. So, per node (the IP events come from and the `port` in them):
//! - **One command at a time.** The next command is handed over only when the current one is
//!   finished: its output has come and, when the output shows boardiocli sent something to
//!   boardio (`Sent:` lines), boardio's verdicts too (or [`CoordinatorConfig::verdict_wait`]
//!   passed). So an output, and a verdict, belong to the command in flight.
//! - **Re-synchronisation.** A command that ends without its output (timeout, a dropped call,
//!   a hand-over that failed part-way) may still be answered later, and pycom does not say
//!   which command an output is for. Before the next command goes, the coordinator sends a
//!   marker command, `echo labwire-sync-<16 hex digits>` (the node runs it in `sh`; its output
//!   is the token and a newline), and discards every output until that token comes back
//!   ([`Event::Resync`] announces it). The late output of an abandoned command is thus never
//!   given to another command: one lost output costs one command, not every later one. An
//!   output that arrives while no command is waiting (a duplicate, say) also triggers a
//!   marker before the next command. A marker whose output does not come within
//!   [`CoordinatorConfig::resync_timeout`] is followed by another when a command is waiting
//!   (a late output of an earlier marker is recognised and discarded).
//! - **Verdicts in any order.** A verdict that arrives before the output is kept for the
//!   command in flight. A sequence's verdict is its first `ERROR` if any came (a `READY` that
//!   a node sends for loading the file never hides an `ERROR` for running it), else `READY`
//!   once as many `READY`s came as boardio commands were sent, or
//!   [`CoordinatorConfig::verdict_settle`] after the first `READY` when fewer come (nodes
//!   differ in whether loading is reported).
//! - **Late verdicts.** A call that ends before its verdicts came (a confirmed sequence whose
//!   deadline passes after its output, a call dropped, a command whose output never came but
//!   that may have reached boardio: a confirmed sequence, or a line naming `boardiocli`) leaves
//!   them owed. The next command to the node waits until they came, or for
//!   [`CoordinatorConfig::verdict_wait`] from the end of the call when they do not (how many a
//!   command without its output sent is unknown, so then it waits the whole time), and every
//!   verdict meanwhile is dropped as the ended command's. So a late verdict is never credited
//!   to the next command; one that is lost costs the node one verdict wait, not every later
//!   answer.
//!
//! What it cannot see: pycom gives outputs no id, so an event duplicated by the network *after*
//! the next command was handed over, or a verdict that comes more than
//! [`CoordinatorConfig::verdict_wait`] after its command's call ended (or after the settle,
//! once its first verdict came), cannot be told from the next command's. Events from one IP are handled in the order their
//! connections were accepted (they are still read in parallel), so a short event cannot
//! overtake a longer one the node sent before it. That holds for every event complete within
//! 250 ms of its connection's accept (a node writes each event in one write right after
//! connecting); a connection still incomplete then gives up its place, and its event is handled
//! once complete. So connections that stall, however many, delay the events behind them by
//! 250 ms at most (not by the read deadline).
//!
//! # Events and lag
//! [`Coordinator::events`] is a `tokio::sync::broadcast` receiver with room for
//! [`CoordinatorConfig::event_capacity`] events. A receiver that falls further behind gets
//! `RecvError::Lagged(n)` and misses the `n` oldest events; nobody else is slowed down, and
//! command results are not affected (they do not travel through the stream).

mod builder;
mod config;
mod effects;
mod listener;
mod matching;
mod pipeline;
mod shell;
mod table;
mod types;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use labwire_net::Server;
use tokio::sync::broadcast;
use tracing::Instrument as _;

pub use builder::CoordinatorBuilder;
#[allow(deprecated)]
pub use config::DEFAULT_COMMAND_TIMEOUT;
pub use config::{
    CoordinatorConfig, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EVENT_CAPACITY,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_NODES, DEFAULT_OFFLINE_AFTER, DEFAULT_RESYNC_TIMEOUT,
    DEFAULT_VERDICT_SETTLE, DEFAULT_VERDICT_WAIT, PipelineTimings, TableConfig,
};
pub use effects::{CommandId, Delivery, Effect, Expect, Failure, Reply, RequestId};
pub use matching::{MARKER_PREFIX, marker_token};
pub use table::NodeTable;
#[allow(deprecated)]
pub use types::SequenceReport;
pub use types::{Command, DeviceError, Error, Event, NodeStatus, Response};

use crate::message::Identity;
use crate::sequence::{Sequence, Slot, Verdict};
use shell::Inner;

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
    shutdown: labwire_net::CancellationToken,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Coordinator {
    /// A builder for a coordinator listening for events on `listen` (port 0 picks one) as
    /// `identity`: the same `connect_timeout`, `call_timeout` and `limits` as every labwire
    /// client, the coordinator's own settings, and [`CoordinatorBuilder::start`].
    pub fn builder(listen: SocketAddr, identity: Identity) -> CoordinatorBuilder {
        CoordinatorBuilder::new(listen, identity)
    }

    /// Binds the event listener and starts the heartbeats, configured by `config` (the same as
    /// `CoordinatorBuilder::from(config).start()`).
    ///
    /// # Errors
    /// When the listen address cannot be bound.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is left running.
    pub async fn start(config: CoordinatorConfig) -> io::Result<Self> {
        Self::start_with(config, None).await
    }

    async fn start_with(
        config: CoordinatorConfig,
        connector: Option<shell::NodeConnector>,
    ) -> io::Result<Self> {
        let server = Server::bind(config.server.clone()).await?;
        let bound = server.local_addr()?;
        let mut identity = config.identity.clone();
        identity.coordinator = true;
        identity.port = config.advertise_port.unwrap_or(bound.port());
        let inner = Inner::start(config, identity, server, connector);
        tracing::debug!(listen = %bound, port = inner.identity.port, "coordinator started");
        Ok(Self {
            _owner: Arc::new(Owner {
                shutdown: inner.shutdown.clone(),
            }),
            inner,
        })
    }

    /// The address the event listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        match self.inner.listener() {
            Some(listener) => listener.local_addr(),
            None => SocketAddr::from(([0, 0, 0, 0], self.inner.identity.port)),
        }
    }

    /// Connections to the event listener being served right now.
    pub fn connection_count(&self) -> usize {
        self.inner
            .listener()
            .map_or(0, labwire_net::ServerHandle::connection_count)
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
        self.inner
            .change_table(|table, now| table.add_node(addr, now));
    }

    /// Stops managing the node at `addr` (no more heartbeats; it will consider this coordinator
    /// offline after its own delay). Commands to it go on.
    pub fn remove_node(&self, addr: SocketAddr) {
        self.inner.change_table(|table, _| table.remove_node(addr));
    }

    /// What is known about every node heard from or managed, in address order.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.inner.with_table(NodeTable::nodes)
    }

    /// What is known about the node at `addr`.
    pub fn node(&self, addr: SocketAddr) -> Option<NodeStatus> {
        self.inner.with_table(|table| table.node(addr))
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
        self.inner.heartbeat(table::canonical(node)).await
    }

    /// Sends `request` to `node` and resolves with the node's answer: its `output` event, and
    /// boardio's verdict for a [`Command::sequence`] (see the [module docs](self#correlation)
    /// for how they are matched), within the call timeout
    /// ([`CoordinatorBuilder::call_timeout`]). The deadline covers the whole call: waiting
    /// for earlier commands to the same node, handing this one over, and its answer.
    ///
    /// # Errors
    /// [`Error::Device`] when boardio refused the sequence (`BOARDIO_ERROR…`);
    /// [`Error::Connect`] when the node cannot be reached, [`Error::Timeout`] when no answer
    /// comes in time, [`Error::Shutdown`]; see [`Error`].
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call is treated like a timed-out one (its output, if it comes,
    /// is given to no command; the node is re-synchronised first).
    pub async fn call(
        &self,
        node: SocketAddr,
        request: impl Into<Command>,
    ) -> Result<Response, Error> {
        self.call_with_timeout(node, request, self.inner.config.call_timeout)
            .await
    }

    /// [`Coordinator::call`] with its own deadline (the whole call, as there).
    ///
    /// # Errors
    /// As [`Coordinator::call`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    pub async fn call_with_timeout(
        &self,
        node: SocketAddr,
        request: impl Into<Command>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let response = self.call_response(node, request, timeout).await?;
        match response.verdict {
            Some(Verdict::Error(message)) => Err(Error::Device(DeviceError {
                node,
                message,
                output: response.output,
            })),
            _ => Ok(response),
        }
    }

    /// The raw path: like [`Coordinator::call_with_timeout`], but the answer comes back as it
    /// came, a `BOARDIO_ERROR` verdict included, never as [`Error::Device`].
    ///
    /// # Errors
    /// Transport failures, see [`Error`]; never [`Error::Device`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    pub async fn call_response(
        &self,
        node: SocketAddr,
        request: impl Into<Command>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let (line, expect) = request.into().into_parts();
        let reply = self.submit(node, line, expect, timeout).await?;
        Ok(Response {
            output: reply.output,
            verdict: reply.verdict,
        })
    }

    /// Runs `command` in the node's shell and resolves with its output
    /// ([`Coordinator::call`] with a [`Command::new`]).
    ///
    /// # Errors
    /// As [`Coordinator::call`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    pub async fn send_command(
        &self,
        node: SocketAddr,
        command: impl Into<String>,
    ) -> Result<String, Error> {
        let command = Command::new(command);
        Ok(self.call(node, command).await?.output)
    }

    /// [`Coordinator::send_command`] with its own deadline.
    ///
    /// # Errors
    /// As [`Coordinator::call`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    #[deprecated(
        since = "0.2.0",
        note = "use call_with_timeout(node, command, timeout), whose Response has the output"
    )]
    pub async fn send_command_timeout(
        &self,
        node: SocketAddr,
        command: impl Into<String>,
        timeout: Duration,
    ) -> Result<String, Error> {
        let command = Command::new(command);
        Ok(self.call_with_timeout(node, command, timeout).await?.output)
    }

    /// Writes `sequence` to the node's normal sequence file, loads and runs it; resolves with
    /// the command's output, without waiting for boardio's verdict (it comes as a message
    /// event, `BOARDIO_READY` or `BOARDIO_ERROR`, on [`Coordinator::events`]);
    /// [`Coordinator::run_sequence_confirmed`] waits for it.
    ///
    /// # Errors
    /// As [`Coordinator::call`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    pub async fn run_sequence(
        &self,
        node: SocketAddr,
        sequence: &Sequence,
    ) -> Result<String, Error> {
        self.send_command(node, sequence.command(Slot::Normal))
            .await
    }

    /// Writes `sequence` to the node's boot-time (standalone) sequence file, loads it and runs
    /// it at once, with the vendor's idiom (see [`Slot::Standalone`]); the node also runs it at
    /// every boot. Resolves with the output, without waiting for the verdict.
    ///
    /// # Errors
    /// As [`Coordinator::call`].
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    pub async fn store_standalone_sequence(
        &self,
        node: SocketAddr,
        sequence: &Sequence,
    ) -> Result<String, Error> {
        self.send_command(node, sequence.command(Slot::Standalone))
            .await
    }

    /// Writes, loads and runs `sequence` from `slot`, then also waits for boardio's verdict
    /// ([`Coordinator::call`] with a [`Command::sequence`]; see the module docs: whatever
    /// order the output and the verdicts come in, an `ERROR` wins). The call timeout covers
    /// both.
    ///
    /// When the output does not show boardiocli sending anything (`Sent:`), boardio was not
    /// reached (not booted, say) and no verdict is awaited: [`Response::verdict`] is `None`.
    ///
    /// # Errors
    /// As [`Coordinator::call`]: [`Error::Device`] when boardio refused the sequence,
    /// [`Error::Timeout`] also when the verdict does not come.
    ///
    /// # Cancel safety
    /// As [`Coordinator::call`].
    pub async fn run_sequence_confirmed(
        &self,
        node: SocketAddr,
        sequence: &Sequence,
        slot: Slot,
    ) -> Result<Response, Error> {
        self.call(node, Command::sequence(sequence, slot)).await
    }

    async fn submit(
        &self,
        node: SocketAddr,
        command: String,
        expect: Expect,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        // Fields are evaluated only when the span is enabled; a disabled span costs its level
        // check. `command` is the number the table gives the command.
        let span = tracing::debug_span!("pycom.call", %node, command = tracing::field::Empty);
        let (id, answer, handover) =
            span.in_scope(|| self.inner.submit(node, command, expect, timeout));
        span.record("command", id.0);
        let mut guard = CallGuard {
            inner: &self.inner,
            node,
            id,
            handover,
            done: false,
        };
        let answer = async {
            let mut answer = std::pin::pin!(answer);
            loop {
                tokio::select! {
                    () = self.inner.shutdown.cancelled() => break Err(Error::Shutdown),
                    // The sender only vanishes when the coordinator is gone.
                    answer = &mut answer => break answer.unwrap_or(Err(Error::Shutdown)),
                    // The command's own hand-over, driven here while it lasts.
                    () = async {
                        if let Some(handover) = guard.handover.as_mut() {
                            handover.await;
                        }
                    }, if guard.handover.is_some() => guard.handover = None,
                }
            }
        }
        .instrument(span.clone())
        .await;
        guard.done = true;
        match &answer {
            Ok(_) => span.in_scope(|| tracing::debug!("answered")),
            Err(error) => span.in_scope(|| tracing::debug!(%error, "failed")),
        }
        answer
    }

    /// Stops the listener and the heartbeats, fails waiting commands with [`Error::Shutdown`],
    /// and waits until every connection is closed. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

/// Tells the table when a call is dropped before its answer came.
struct CallGuard<'a> {
    inner: &'a Arc<Inner>,
    node: SocketAddr,
    id: CommandId,
    /// The command's hand-over while the call drives it; given a task of its own if the call
    /// ends (answered, or dropped) before it does.
    handover: Option<shell::Handover>,
    done: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(handover) = self.handover.take() {
            self.inner.spawn_handover(handover);
        }
        if !self.done {
            self.inner.cancel(self.node, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::Row;

    #[tokio::test]
    async fn timeouts_without_a_limit_do_not_overflow() {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
        let mut config = CoordinatorConfig::new("127.0.0.1:0".parse().unwrap(), me);
        // `Duration::MAX` for "no limit", everywhere.
        config.send_timeout = Duration::MAX;
        config.call_timeout = Duration::MAX;
        config.connect_timeout = Duration::MAX;
        config.heartbeat_interval = Duration::MAX;
        config.offline_after = Duration::MAX;
        config.resync_timeout = Duration::MAX;
        config.verdict_settle = Duration::MAX;
        config.verdict_wait = Duration::MAX;
        let coordinator = Coordinator::start(config).await.unwrap();
        let limit = Duration::from_secs(10);
        let sent = tokio::time::timeout(
            limit,
            coordinator.call_with_timeout(closed, "true", Duration::MAX),
        )
        .await
        .unwrap();
        assert!(matches!(sent, Err(Error::Connect { .. })), "{sent:?}");
        let sequence = Sequence::new([Row::LedFan { on: true }]).unwrap();
        let confirmed = tokio::time::timeout(
            limit,
            coordinator.run_sequence_confirmed(closed, &sequence, Slot::Normal),
        )
        .await
        .unwrap();
        assert!(
            matches!(confirmed, Err(Error::Connect { .. })),
            "{confirmed:?}"
        );
        assert!(matches!(
            coordinator.heartbeat(closed).await,
            Err(Error::Connect { .. })
        ));
        coordinator.add_node(closed);
        coordinator.shutdown().await;
    }

    #[tokio::test]
    async fn calls_after_shutdown_fail_at_once() {
        let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
        let config = CoordinatorConfig::new("127.0.0.1:0".parse().unwrap(), me);
        let coordinator = Coordinator::start(config).await.unwrap();
        coordinator.shutdown().await;
        let node = "127.0.0.1:9".parse().unwrap();
        let sent = coordinator.send_command(node, "true").await;
        assert!(matches!(sent, Err(Error::Shutdown)), "{sent:?}");
    }
}
