//! The node side (feature `server`): receive requests with your own [`Handler`], send events
//! back with an [`EventSender`].
//!
//! A pycom node never answers on the request connection. It reads the request, closes the
//! connection, and later opens a new connection to the IP it observed and the port the request
//! advertised ([`Request::reply_addr`]) for each event.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pycom_proto::node::{self, EventSender, Handler, NodeConfig, Request};
//! use pycom_proto::{Body, Identity};
//!
//! struct Echo(EventSender);
//!
//! impl Handler for Echo {
//!     async fn handle(&self, request: Request) {
//!         if let Body::Cmd { command } = &request.message.body {
//!             let sender = self.0.clone();
//!             let to = request.reply_addr();
//!             let output = Body::Output { output: format!("you said: {command}\n") };
//!             // Slow work goes to its own task: the request connection closes when
//!             // `handle` returns, and coordinators wait for that close.
//!             tokio::spawn(async move { sender.send(to, output).await });
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let me = Identity::new("81639cd4", "my-node", "127.0.0.1", 5000, "0.1.0", false);
//! let handle = node::serve(
//!     NodeConfig::new("127.0.0.1:5000".parse().unwrap()),
//!     Arc::new(Echo(EventSender::new(me))),
//! )
//! .await?;
//! println!("listening on {}", handle.local_addr());
//! # handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use labwire_net::{CancellationToken, Server, ServerConfig, ServerHandle};

use crate::message::{Body, Identity, Message};
use crate::transport::{self, DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT, ReceiveError, SendError};
use crate::wire::Limits;

/// Default port a pycom node listens on.
pub const DEFAULT_NODE_PORT: u16 = 5000;

/// How a node listens. Public fields; start from [`NodeConfig::new`].
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Listener settings: address, listen backlog (large by default, for bursts of short-lived
    /// connections), connection limit, `TCP_NODELAY`.
    pub server: ServerConfig,
    /// Size limit for each request.
    pub limits: Limits,
    /// Deadline for a peer to send its whole request and close its side.
    pub read_timeout: Duration,
}

impl NodeConfig {
    /// Defaults for a node listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            server: ServerConfig::new(listen),
            limits: Limits::default(),
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// A message as a node received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The message.
    pub message: Message,
    /// The address the request came from.
    pub peer: SocketAddr,
}

impl Request {
    /// Where events about this request go: the IP observed on the request connection and the
    /// port the sender advertised in its `port` field.
    pub fn reply_addr(&self) -> SocketAddr {
        SocketAddr::new(self.peer.ip().to_canonical(), self.message.identity.port)
    }
}

/// Your node logic.
pub trait Handler: Send + Sync + 'static {
    /// Called with each valid message received. The request connection stays open until this
    /// returns, and a coordinator waits for it to close before it sends its next command to the
    /// node; so queue slow work (keeping the order) instead of doing it here.
    fn handle(&self, request: Request) -> impl Future<Output = ()> + Send;

    /// Called for a connection that did not carry a valid message (logged at debug level by
    /// default). The connection is closed afterwards; nothing else is affected.
    fn rejected(&self, peer: SocketAddr, error: &ReceiveError) {
        tracing::debug!(%peer, %error, "rejected request");
    }
}

/// Binds `config.server.addr` and serves requests with `handler` until the returned handle is
/// shut down (or dropped). Requests are read in parallel; those from one IP are handed to the
/// handler in the order their connections were accepted.
///
/// Use [`NodeListener::bind`] instead to learn the bound port (for the node's identity) before
/// serving.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve<H: Handler>(config: NodeConfig, handler: Arc<H>) -> io::Result<ServerHandle> {
    Ok(NodeListener::bind(config).await?.serve(handler))
}

/// Like [`serve`], stopping also when `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_with_token<H: Handler>(
    config: NodeConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> io::Result<ServerHandle> {
    Ok(NodeListener::bind(config)
        .await?
        .serve_with_token(handler, shutdown))
}

/// A bound node listener, not serving yet: learn its address, then [`NodeListener::serve`].
#[derive(Debug)]
pub struct NodeListener {
    server: Server,
    limits: Limits,
    read_timeout: Duration,
}

impl NodeListener {
    /// Binds the listener described by `config`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(config: NodeConfig) -> io::Result<Self> {
        Ok(Self {
            server: Server::bind(config.server).await?,
            limits: config.limits,
            read_timeout: config.read_timeout,
        })
    }

    /// The bound address (with the real port when the configured one was 0).
    ///
    /// # Errors
    /// If the OS cannot report it.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Starts serving requests with `handler` (see [`serve`]).
    pub fn serve<H: Handler>(self, handler: Arc<H>) -> ServerHandle {
        self.serve_with_token(handler, CancellationToken::new())
    }

    /// Like [`NodeListener::serve`], stopping also when `shutdown` is cancelled.
    pub fn serve_with_token<H: Handler>(
        self,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> ServerHandle {
        transport::serve_messages(
            self.server,
            shutdown,
            self.limits,
            self.read_timeout,
            move |peer, received| {
                let handler = Arc::clone(&handler);
                async move {
                    match received {
                        Ok(message) => handler.handle(Request { message, peer }).await,
                        Err(error) => handler.rejected(peer, &error),
                    }
                }
            },
        )
    }
}

/// Sends events as one node: each call opens a connection, writes one message with this node's
/// identity, and closes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSender {
    identity: Arc<Identity>,
    limits: Limits,
    timeout: Duration,
}

impl EventSender {
    /// A sender signing events with `identity` (its `port` should be the node's listen port).
    pub fn new(identity: Identity) -> Self {
        Self {
            identity: Arc::new(identity),
            limits: Limits::default(),
            timeout: DEFAULT_SEND_TIMEOUT,
        }
    }

    /// Sets the deadline for connecting and writing each event.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the size limit for each event.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The identity events carry.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The message `body` would be sent as.
    pub fn message(&self, body: Body) -> Message {
        Message::new(Identity::clone(&self.identity), body)
    }

    /// Sends `body` to `to` (usually [`Request::reply_addr`]).
    ///
    /// # Errors
    /// [`SendError`] when the coordinator cannot be reached in time.
    ///
    /// # Cancel safety
    /// Cancel safe; the event may or may not have been delivered.
    pub async fn send(&self, to: SocketAddr, body: Body) -> Result<(), SendError> {
        transport::send_message(to, &self.message(body), &self.limits, self.timeout, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    struct Forward(mpsc::UnboundedSender<Request>);

    impl Handler for Forward {
        async fn handle(&self, request: Request) {
            let _ = self.0.send(request);
        }
    }

    #[test]
    fn replies_go_to_the_observed_ip_and_the_advertised_port() {
        let request = Request {
            message: Message::heartbeat(Identity::new("a", "b", "10.9.9.9", 7000, "v", true)),
            peer: "[::ffff:127.0.0.2]:45678".parse().unwrap(),
        };
        assert_eq!(request.reply_addr(), "127.0.0.2:7000".parse().unwrap());
    }

    #[tokio::test]
    async fn serves_requests_and_events_reach_the_reply_address() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = serve(
            NodeConfig::new("127.0.0.1:0".parse().unwrap()),
            Arc::new(Forward(tx)),
        )
        .await
        .unwrap();
        let coordinator = Identity::new("c", "coord", "127.0.0.1", 1, "v", true);
        transport::send_message(
            handle.local_addr(),
            &Message::cmd(coordinator.clone(), "ls"),
            &Limits::default(),
            Duration::from_secs(5),
            true,
        )
        .await
        .unwrap();
        let request = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(request.message, Message::cmd(coordinator, "ls"));
        assert_eq!(request.reply_addr(), "127.0.0.1:1".parse().unwrap());
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn requests_from_one_ip_are_handled_in_arrival_order() {
        use tokio::io::AsyncWriteExt;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = serve(
            NodeConfig::new("127.0.0.1:0".parse().unwrap()),
            Arc::new(Forward(tx)),
        )
        .await
        .unwrap();
        let addr = handle.local_addr();
        let me = Identity::new("c", "coord", "127.0.0.1", 1, "v", true);
        let encode = |command: &str| {
            crate::wire::encode(&Message::cmd(me.clone(), command), &Limits::default()).unwrap()
        };
        let (first, second) = (encode("first"), encode("second"));
        let timeout = Duration::from_secs(5);
        let mut slow = labwire_net::connect(addr, timeout).await.unwrap();
        slow.write_all(&first[..5]).await.unwrap();
        let mut quick = labwire_net::connect(addr, timeout).await.unwrap();
        quick.write_all(&second).await.unwrap();
        quick.shutdown().await.unwrap();
        slow.write_all(&first[5..]).await.unwrap();
        slow.shutdown().await.unwrap();
        for expected in ["first", "second"] {
            let request = tokio::time::timeout(timeout, rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                request.message.body,
                Body::Cmd {
                    command: expected.into()
                }
            );
        }
        handle.shutdown().await;
    }
}
