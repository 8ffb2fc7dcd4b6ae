//! How a coordinator runs: [`CoordinatorConfig`] and its defaults.

use std::net::SocketAddr;
use std::time::Duration;

use labwire_net::ServerConfig;

use crate::message::Identity;
use crate::transport::{DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT};
use crate::wire::Limits;

/// How often a heartbeat goes to each managed node, as the vendor asks.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Silence after which a node counts as offline, as the node itself does for coordinators.
pub const DEFAULT_OFFLINE_AFTER: Duration = Duration::from_secs(15);
/// How long a call may take when no timeout is given: 10 s, waiting for its turn, the
/// hand-over and the answer (the output, and boardio's verdict for a sequence) included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The former name of [`DEFAULT_CALL_TIMEOUT`] (which was 30 s).
#[deprecated(since = "0.2.0", note = "use DEFAULT_CALL_TIMEOUT")]
pub const DEFAULT_COMMAND_TIMEOUT: Duration = DEFAULT_CALL_TIMEOUT;
/// How long connecting to a node may take: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Nodes tracked on the listener's initiative when no limit is configured.
pub const DEFAULT_MAX_NODES: usize = 4096;
/// Events kept for slow [`Coordinator::events`](super::Coordinator::events) receivers.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// How long a re-synchronisation marker's output is awaited before another is tried (an
/// `echo` answers within milliseconds; a node that went away meanwhile is then noticed by the
/// next marker's connection).
pub const DEFAULT_RESYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// After boardio's first `READY` for a command, how long further verdicts are awaited when
/// fewer came than boardio commands were sent.
pub const DEFAULT_VERDICT_SETTLE: Duration = Duration::from_millis(250);
/// After a plain command's output shows boardio was reached, or a call ended before boardio's
/// verdicts came, how long its verdicts are awaited before the next command to the node goes
/// anyway.
pub const DEFAULT_VERDICT_WAIT: Duration = Duration::from_secs(2);

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
    /// Default deadline of a call: its output (and its verdict, for a sequence), counted from
    /// the call: waiting for its turn, handing it over, the output. [`DEFAULT_CALL_TIMEOUT`]
    /// (was `command_timeout`, 30 s).
    pub call_timeout: Duration,
    /// Deadline for connecting to a node ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// After a command ended without its output, the node is re-synchronised with a marker
    /// command (`echo labwire-sync-…`) before the next command goes; this is how long the
    /// marker's output is awaited before another marker is tried (see the
    /// [module docs](super#correlation)).
    pub resync_timeout: Duration,
    /// After boardio's first `READY` for a command, how long further verdicts of the same
    /// command are awaited when fewer came than boardio commands were sent (a node may report
    /// `uSeq` as well as `runSeq`; an `ERROR` after the `READY` must not be missed).
    pub verdict_settle: Duration,
    /// After a plain command's output shows boardio was reached, or after a call ended before
    /// boardio's verdicts came (timed out, dropped), how long its verdicts are awaited (so that
    /// they are not taken for the next sequence's) before the next command to the same node
    /// goes anyway (see the [module docs](super#correlation)).
    pub verdict_wait: Duration,
    /// Deadline for handing a node one request once connected: writing it and, for a command,
    /// the node closing the connection (it has read the request).
    pub send_timeout: Duration,
    /// Deadline for a peer to deliver one event.
    pub read_timeout: Duration,
    /// Size limit for requests and events.
    pub limits: Limits,
    /// Capacity of the event stream.
    pub event_capacity: usize,
    /// Start managing (heartbeating) a node that probes this coordinator; `true` by default.
    /// Either way the node is listed and announced once with
    /// [`Event::NodeDiscovered`](super::Event::NodeDiscovered).
    pub manage_discovered: bool,
    /// Most nodes tracked (discovered nodes, senders of events). When it is full, a new sender
    /// takes the place of the node known only from the listener that was heard from longest
    /// ago (none of its commands queued or in flight), so new nodes are still discovered
    /// however many came before; if there is no such node, the events of the new sender are
    /// still published but the sender is not tracked. Nodes given to
    /// [`Coordinator::add_node`](super::Coordinator::add_node) or sent commands are always
    /// tracked, and never make room.
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
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            resync_timeout: DEFAULT_RESYNC_TIMEOUT,
            verdict_settle: DEFAULT_VERDICT_SETTLE,
            verdict_wait: DEFAULT_VERDICT_WAIT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            limits: Limits::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            manage_discovered: true,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

/// Timings the pipeline needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineTimings {
    /// How long a marker's output is awaited before another marker is tried.
    pub resync_timeout: Duration,
    /// After the first `READY`, how long further verdicts of the same command are awaited when
    /// fewer came than boardio commands were sent.
    pub verdict_settle: Duration,
    /// After an output that shows boardio was reached, or after a call ended before boardio's
    /// verdicts came, how long its verdicts are awaited before the next command is handed over
    /// anyway.
    pub verdict_wait: Duration,
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
    /// Most nodes tracked; a new sender beyond it takes the place of the node known only from
    /// the listener heard from longest ago (see [`CoordinatorConfig::max_nodes`]).
    pub max_nodes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_vendors_intervals_and_a_burst_ready_listener() {
        let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
        let config = CoordinatorConfig::new("127.0.0.1:0".parse().unwrap(), me);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.offline_after, Duration::from_secs(15));
        assert_eq!(config.call_timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        // Well above tokio's 128, which collapses under bursts of short-lived connections.
        assert!(config.server.backlog >= 1024, "{}", config.server.backlog);
        assert!(config.server.nodelay);
    }
}
