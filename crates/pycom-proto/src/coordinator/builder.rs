//! [`CoordinatorBuilder`]: the contract's builder (`docs/clients.md`) over a
//! [`CoordinatorConfig`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use labwire_net::Connector;

use super::Coordinator;
use super::config::CoordinatorConfig;
use super::shell::NodeConnector;
use crate::message::Identity;
use crate::wire::Limits;

/// Configures and starts a [`Coordinator`]; see [`Coordinator::builder`].
///
/// The settings every labwire client has — [`connect_timeout`](Self::connect_timeout),
/// [`call_timeout`](Self::call_timeout), [`limits`](Self::limits), any transport
/// ([`connector`](Self::connector)) — and the coordinator's own, each with the meaning of the
/// [`CoordinatorConfig`] field of the same name. [`start`](Self::start) is the only way to
/// build one: a coordinator is also a listener (the nodes' answers come to it as events on
/// connections of their own), so there is no lazy form; it binds at once.
#[derive(Clone)]
pub struct CoordinatorBuilder {
    config: CoordinatorConfig,
    connector: Option<NodeConnector>,
}

impl fmt::Debug for CoordinatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorBuilder")
            .field("config", &self.config)
            .field("connector", &self.connector.as_ref().map(|_| ".."))
            .finish()
    }
}

impl From<CoordinatorConfig> for CoordinatorBuilder {
    fn from(config: CoordinatorConfig) -> Self {
        Self {
            config,
            connector: None,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, $name: $ty) -> Self {
                self.config.$name = $name;
                self
            }
        )*
    };
}

impl CoordinatorBuilder {
    /// Defaults ([`CoordinatorConfig::new`]) for a coordinator listening for events on
    /// `listen` as `identity`.
    pub fn new(listen: SocketAddr, identity: Identity) -> Self {
        CoordinatorConfig::new(listen, identity).into()
    }

    setters! {
        /// Time connecting to a node may take ([`DEFAULT_CONNECT_TIMEOUT`](super::DEFAULT_CONNECT_TIMEOUT)).
        connect_timeout: Duration;
        /// Time a call may take, its turn, hand-over and answer included
        /// ([`DEFAULT_CALL_TIMEOUT`](super::DEFAULT_CALL_TIMEOUT)).
        call_timeout: Duration;
        /// Size limit for requests sent and events accepted ([`Limits::default`]), the same
        /// type the codec takes.
        limits: Limits;
        /// Time a request's hand-over may take once connected (writing it, the node closing).
        send_timeout: Duration;
        /// Time a peer has to deliver one event.
        read_timeout: Duration;
        /// Heartbeat period.
        heartbeat_interval: Duration;
        /// Silence after which a managed node is offline.
        offline_after: Duration;
        /// How long a re-synchronisation marker's output is awaited.
        resync_timeout: Duration;
        /// After boardio's first `READY`, how long further verdicts are awaited.
        verdict_settle: Duration;
        /// After a plain command's output shows boardio was reached, or a call ended before
        /// boardio's verdicts came, how long its verdicts are awaited.
        verdict_wait: Duration;
        /// Capacity of the event stream.
        event_capacity: usize;
        /// Whether nodes that probe this coordinator are managed (heartbeated).
        manage_discovered: bool;
        /// Most nodes tracked on the listener's initiative.
        max_nodes: usize;
    }

    /// The port to advertise in requests instead of the bound one (behind port forwarding).
    #[must_use]
    pub fn advertise_port(mut self, port: u16) -> Self {
        self.config.advertise_port = Some(port);
        self
    }

    /// Changes any other setting of the [`CoordinatorConfig`] (the listener's backlog or
    /// connection limit, say).
    #[must_use]
    pub fn configure(mut self, change: impl FnOnce(&mut CoordinatorConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Requests to a node go through the [`Connector`] `connector` makes for the node's
    /// address — a TLS stream, an SSH channel, a [`tokio::io::duplex`] end whose other side
    /// a node service serves ([`node::serve_stream`](crate::node::serve_stream)) — called for
    /// every request, as pycom opens a connection per message. TCP to the address by default.
    ///
    /// Only the requests: the nodes' events still come to the listener, over TCP (a node
    /// connects to the IP it observed and the advertised port).
    #[must_use]
    pub fn connector(
        mut self,
        connector: impl Fn(SocketAddr) -> Connector + Send + Sync + 'static,
    ) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Binds the event listener and starts the heartbeats: the eager form (and the only one,
    /// see the [type docs](Self)).
    ///
    /// # Errors
    /// When the listen address cannot be bound.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is left running.
    pub async fn start(self) -> io::Result<Coordinator> {
        Coordinator::start_with(self.config, self.connector).await
    }
}
