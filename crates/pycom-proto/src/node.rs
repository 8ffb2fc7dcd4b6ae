//! The node side (feature `server`): receive requests with your own [`Service`], send events
//! back with an [`EventSender`].
//!
//! A pycom node never answers on the request connection. It reads the request, closes the
//! connection, and later opens a new connection to the IP it observed and the port the request
//! advertised ([`Request::reply_addr`]) for each event. So a node is a [`Service`] whose
//! `Request` is a [`Request`] and whose `Response` is `()`, served by the same loop as every
//! labwire server ([`labwire_net::service::serve`], one exchange per connection, through
//! [`PycomCodec`]).
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use pycom_proto::node::{self, EventSender, NodeConfig, Request, Service};
//! use pycom_proto::{Body, Identity};
//!
//! struct Echo(EventSender);
//!
//! impl Service for Echo {
//!     type Request = Request;
//!     type Response = ();
//!
//!     async fn call(&self, _peer: SocketAddr, request: Request) {
//!         if let Body::Cmd { command } = &request.message.body {
//!             let sender = self.0.clone();
//!             let to = request.reply_addr();
//!             let output = Body::Output { output: format!("you said: {command}\n") };
//!             // Slow work goes to its own task: the request connection closes when
//!             // `call` returns, and coordinators wait for that close.
//!             tokio::spawn(async move { sender.send(to, output).await });
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let me = Identity::new("81639cd4", "my-node", "127.0.0.1", 5000, "0.1.0", false);
//! let handle = node::serve(
//!     NodeConfig::new("127.0.0.1:5000".parse().unwrap()),
//!     Echo(EventSender::new(me)),
//! )
//! .await?;
//! println!("listening on {}", handle.local_addr());
//! # handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
pub use labwire_net::Service;
use labwire_net::service::{ConnectionEnd, Exchange};
use labwire_net::{CancellationToken, Server, ServerConfig, ServerHandle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::PycomCodec;
use crate::message::{Body, Identity, Message};
use crate::transport::{self, DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT, SendError};
use crate::wire::{DecodeError, Limits};

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

/// Binds `config.server.addr` and serves requests with `service` until the returned handle is
/// shut down (or dropped). Each connection carries one request; requests are handled as they
/// arrive, in parallel (a coordinator waits for the close of one command's connection before it
/// sends the next, which keeps its commands in order).
///
/// Use [`NodeListener::bind`] instead to learn the bound port (for the node's identity) before
/// serving.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve<S>(config: NodeConfig, service: S) -> io::Result<ServerHandle>
where
    S: Service<Request = Request, Response = ()>,
{
    Ok(NodeListener::bind(config).await?.serve(service))
}

/// Like [`serve`], stopping also when `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_until<S>(
    config: NodeConfig,
    service: S,
    shutdown: CancellationToken,
) -> io::Result<ServerHandle>
where
    S: Service<Request = Request, Response = ()>,
{
    Ok(NodeListener::bind(config)
        .await?
        .serve_until(service, shutdown))
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

    /// Starts serving requests with `service` (see [`serve`]).
    pub fn serve<S>(self, service: S) -> ServerHandle
    where
        S: Service<Request = Request, Response = ()>,
    {
        self.serve_until(service, CancellationToken::new())
    }

    /// Like [`NodeListener::serve`], stopping also when `shutdown` is cancelled.
    pub fn serve_until<S>(self, service: S, shutdown: CancellationToken) -> ServerHandle
    where
        S: Service<Request = Request, Response = ()>,
    {
        let limits = self.limits;
        labwire_net::service::serve(
            self.server,
            shutdown,
            WithPeer(service),
            move || NodeCodec(PycomCodec::with_limits(limits)),
            exchange(self.read_timeout),
        )
    }
}

/// One request per connection, read within `read_timeout`.
fn exchange(read_timeout: Duration) -> Exchange {
    Exchange {
        once: true,
        read_timeout,
        // A connection that sends nothing is a probe or a stalled peer: it gets the same
        // deadline as one that sends slowly.
        idle_timeout: Some(read_timeout),
        ..Exchange::new()
    }
}

/// Serves the one request of a connection opened elsewhere, over any transport (a TLS stream,
/// an SSH channel, the far end of a [`tokio::io::duplex`] whose near end a coordinator
/// writes to, see [`CoordinatorBuilder::connector`](crate::CoordinatorBuilder::connector)),
/// with `config`'s limits and read deadline; `peer` stands for the sender (events go to its IP
/// and the advertised port, [`Request::reply_addr`]). Returns once the request is handled
/// (then drop or shut down the stream: the sender waits for the close).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::net::SocketAddr;
/// use pycom_proto::node::{self, NodeConfig, Request, Service};
/// use pycom_proto::{Identity, Limits, Message, transport};
/// use tokio::sync::mpsc;
///
/// struct Forward(mpsc::UnboundedSender<Request>);
///
/// impl Service for Forward {
///     type Request = Request;
///     type Response = ();
///
///     async fn call(&self, _peer: SocketAddr, request: Request) {
///         let _ = self.0.send(request);
///     }
/// }
///
/// let (tx, mut rx) = mpsc::unbounded_channel();
/// let (mut near, mut far) = tokio::io::duplex(4096);
/// let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
/// let config = NodeConfig::new("127.0.0.1:0".parse().unwrap());
/// let node = tokio::spawn(async move {
///     node::serve_stream(&mut far, peer, Forward(tx), &config).await;
/// });
/// let me = Identity::new("c0ffee00", "me", "127.0.0.1", 5001, "0.1.0", true);
/// let bytes = pycom_proto::wire::encode(&Message::cmd(me, "ls"), &Limits::default()).unwrap();
/// tokio::io::AsyncWriteExt::write_all(&mut near, &bytes).await.unwrap();
/// tokio::io::AsyncWriteExt::shutdown(&mut near).await.unwrap();
/// let request = rx.recv().await.unwrap();
/// assert_eq!(request.reply_addr(), "127.0.0.1:5001".parse().unwrap());
/// node.await.unwrap();
/// # }
/// ```
///
/// # Cancel safety
/// Not cancel safe: a request read part-way is lost with the future (drop the stream then).
pub async fn serve_stream<T, S>(
    stream: &mut T,
    peer: SocketAddr,
    service: S,
    config: &NodeConfig,
) -> ConnectionEnd
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request = Request, Response = ()>,
{
    labwire_net::service::serve_connection(
        stream,
        peer,
        &WithPeer(service),
        NodeCodec(PycomCodec::with_limits(config.limits)),
        &exchange(config.read_timeout),
    )
    .await
}

/// The node's service as the serve loop calls it: with the message alone.
struct WithPeer<S>(S);

impl<S> Service for WithPeer<S>
where
    S: Service<Request = Request, Response = ()>,
{
    type Request = Message;
    type Response = ();

    async fn call(&self, peer: SocketAddr, message: Message) {
        tracing::debug!(%peer, type_ = ?message.body.type_name(), "request");
        self.0.call(peer, Request { message, peer }).await;
    }
}

/// Requests in through [`PycomCodec`]; nothing out (a node answers with events, elsewhere).
struct NodeCodec(PycomCodec);

impl Decoder for NodeCodec {
    type Item = Message;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        self.0.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        self.0.decode_eof(src)
    }
}

impl Encoder<()> for NodeCodec {
    type Error = DecodeError;

    fn encode(&mut self, (): (), _dst: &mut BytesMut) -> Result<(), DecodeError> {
        Ok(())
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

    impl Service for Forward {
        type Request = Request;
        type Response = ();

        async fn call(&self, _peer: SocketAddr, request: Request) {
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
        let handle = serve(NodeConfig::new("127.0.0.1:0".parse().unwrap()), Forward(tx))
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
    async fn a_stalled_connection_does_not_hold_up_the_next_request_from_the_same_ip() {
        use tokio::io::AsyncWriteExt;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = serve(NodeConfig::new("127.0.0.1:0".parse().unwrap()), Forward(tx))
            .await
            .unwrap();
        let addr = handle.local_addr();
        let me = Identity::new("c", "coord", "127.0.0.1", 1, "v", true);
        let encode = |command: &str| {
            crate::wire::encode(&Message::cmd(me.clone(), command), &Limits::default()).unwrap()
        };
        let timeout = Duration::from_secs(5);
        let mut stalled = labwire_net::connect(addr, timeout).await.unwrap();
        stalled
            .write_all(&encode("never finished")[..5])
            .await
            .unwrap();
        let mut quick = labwire_net::connect(addr, timeout).await.unwrap();
        quick.write_all(&encode("second")).await.unwrap();
        quick.shutdown().await.unwrap();
        let request = tokio::time::timeout(timeout, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(request.message, Message::cmd(me.clone(), "second"));
        drop(stalled);
        handle.shutdown().await;
    }
}
