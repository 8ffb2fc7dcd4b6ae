//! The device side (feature `server`): your own ARKEO device — an emulator, a gateway, a test
//! double — as a [`Service`], served by the same loop as every labwire server
//! ([`labwire_net::service::serve`] through [`ServerCodec`]).
//!
//! The service sees only well-formed requests. A readable frame whose payload is not a request
//! is answered here with the error reply ([`BadRequest::response`]: code 100 for a payload
//! that is not JSON, 102 for JSON that is not a request, with the `request_id` echoed when it
//! could be read), and the connection goes on, as the ARKEO application does. A frame longer
//! than the limit (the stream cannot be resynchronised), a request not complete within the
//! read timeout, or an answer the client does not take within the write timeout closes that
//! connection; an answer that cannot be encoded within the limit closes it too.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use arkeo_proto::server::{self, Service};
//! use arkeo_proto::{Request, Response, codes};
//! use serde_json::json;
//!
//! struct Mux;
//!
//! impl Service for Mux {
//!     type Request = Request;
//!     type Response = Response;
//!
//!     async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
//!         match (request.target.as_str(), request.command.as_str()) {
//!             ("MUX", "GetStatus") => Response::ok(json!({"connected": true}), request.request_id),
//!             _ => Response::error(codes::UNKNOWN_COMMAND, "Unknown command", request.request_id),
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let handle = server::serve("127.0.0.1:6360".parse::<SocketAddr>().unwrap(), Mux).await?;
//! println!("listening on {}", handle.local_addr());
//! # handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use labwire_net::service::{ConnectionEnd, Exchange};
use labwire_net::{Server, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};

pub use labwire_net::{CancellationToken, ServerHandle, Service};

use crate::wire::Limits;
use crate::{BadRequest, Request, Response, ServerCodec};

/// How a device serves: where it listens, its limits and deadlines. Start from
/// [`ServerBuilder::new`] (or pass a plain address where one is taken: it converts).
///
/// The defaults: the listener's backlog and connection limit of [`labwire_net::ServerConfig`],
/// [`Limits::default`], 10 s for a request to arrive once its first byte has and for the client
/// to take an answer, and 5 minutes without a request before an idle connection is closed
/// ([`labwire_net::service::DEFAULT_IDLE_TIMEOUT`]); a 64 MiB budget for partial frames shared
/// by all connections ([`labwire_net::budget`]); a client past the connection limit is refused
/// at once.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    server: ServerConfig,
    limits: Limits,
    exchange: Exchange,
}

impl ServerBuilder {
    /// Listens on `listen` (port 0 picks a free one) with the defaults.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            server: ServerConfig::new(listen),
            limits: Limits::default(),
            exchange: Exchange::new(),
        }
    }

    /// Address to listen on.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.server.addr = addr;
        self
    }

    /// Listen backlog.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.server.backlog = backlog;
        self
    }

    /// Connections served at once; a client that connects while that many are live is
    /// refused at once (accepted and closed, with a rate-limited warning).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.server.max_connections = max;
        self
    }

    /// Frame limits for requests read and answers written.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Once a request's first byte has arrived, the whole request must arrive within this
    /// (`Duration::MAX`: no limit).
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.exchange.read_timeout = timeout;
        self
    }

    /// A connection with no request begun for this long is closed (`None`: never; 5 minutes by
    /// default, [`labwire_net::service::DEFAULT_IDLE_TIMEOUT`]).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.exchange.idle_timeout = timeout;
        self
    }

    /// The client must take each answer within this.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.exchange.write_timeout = timeout;
        self
    }

    /// Binds and serves `service` until the returned handle is shut down (or dropped).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve<S>(self, service: S) -> io::Result<ServerHandle>
    where
        S: Service<Request = Request, Response = Response>,
    {
        self.serve_until(service, CancellationToken::new()).await
    }

    /// Like [`ServerBuilder::serve`], stopping also when `shutdown` is cancelled.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve_until<S>(
        self,
        service: S,
        shutdown: CancellationToken,
    ) -> io::Result<ServerHandle>
    where
        S: Service<Request = Request, Response = Response>,
    {
        let server = Server::bind(self.server).await?;
        let budget = server
            .frame_budget()
            .clone()
            .with_claimed_length(crate::wire::claimed_length);
        let server = server.with_frame_budget(budget);
        let limits = self.limits;
        Ok(labwire_net::service::serve(
            server,
            shutdown,
            Answering(service),
            move || ServerCodec::with_limits(limits),
            self.exchange,
        ))
    }
}

impl From<SocketAddr> for ServerBuilder {
    fn from(listen: SocketAddr) -> Self {
        Self::new(listen)
    }
}

/// Binds `config` (a [`ServerBuilder`] or an address) and serves `service` until the returned
/// handle is shut down (or dropped). Connections are served concurrently, each one's requests
/// in order.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve<S>(config: impl Into<ServerBuilder>, service: S) -> io::Result<ServerHandle>
where
    S: Service<Request = Request, Response = Response>,
{
    config.into().serve(service).await
}

/// Like [`serve`], stopping also when `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_until<S>(
    config: impl Into<ServerBuilder>,
    service: S,
    shutdown: CancellationToken,
) -> io::Result<ServerHandle>
where
    S: Service<Request = Request, Response = Response>,
{
    config.into().serve_until(service, shutdown).await
}

/// Serves one connection over any transport (a TLS stream, an SSH channel,
/// `tokio::io::duplex` in tests) until it ends, with `config`'s limits and deadlines; returns
/// why it ended. Pass an `Arc` of a service shared with other connections.
pub async fn serve_connection<T, S>(
    stream: &mut T,
    peer: SocketAddr,
    service: S,
    config: &ServerBuilder,
) -> ConnectionEnd
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request = Request, Response = Response>,
{
    labwire_net::service::serve_connection(
        stream,
        peer,
        &Answering(service),
        ServerCodec::with_limits(config.limits),
        &config.exchange,
    )
    .await
}

/// A device service over the codec's items: bad requests are answered here.
struct Answering<S>(S);

impl<S> Service for Answering<S>
where
    S: Service<Request = Request, Response = Response>,
{
    type Request = Result<Request, BadRequest>;
    type Response = Response;

    async fn call(&self, peer: SocketAddr, request: Result<Request, BadRequest>) -> Response {
        match request {
            Ok(request) => self.0.call(peer, request).await,
            Err(bad) => {
                tracing::debug!(%peer, "{bad}");
                bad.response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientCodec, FrameCodec, Target, codes};
    use bytes::BytesMut;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::{Decoder, Encoder};

    /// Echoes the command as data.
    struct Echo;

    impl Service for Echo {
        type Request = Request;
        type Response = Response;

        async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
            Response::ok(json!(request.command), request.request_id)
        }
    }

    async fn read_response<T: AsyncRead + Unpin>(stream: &mut T, buf: &mut BytesMut) -> Response {
        loop {
            if let Some(response) = ClientCodec::new().decode(buf).unwrap() {
                return response;
            }
            assert_ne!(stream.read_buf(buf).await.unwrap(), 0, "closed");
        }
    }

    #[tokio::test]
    async fn bad_payloads_are_answered_and_the_connection_goes_on_over_any_transport() {
        let (mut client, mut device) = tokio::io::duplex(4096);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let config = ServerBuilder::new(peer);
        let served =
            tokio::spawn(async move { serve_connection(&mut device, peer, Echo, &config).await });
        let mut out = BytesMut::new();
        FrameCodec::new()
            .encode(&br#"{"command":"X","request_id":9}"#[..], &mut out)
            .unwrap();
        ClientCodec::new()
            .encode(
                Request::new(Target::Main, "GetActiveRoutine").with_request_id(10),
                &mut out,
            )
            .unwrap();
        client.write_all(&out).await.unwrap();
        let mut buf = BytesMut::new();
        let refused = read_response(&mut client, &mut buf).await;
        assert_eq!(
            refused.error.and_then(|e| e.code),
            Some(codes::INVALID_REQUEST)
        );
        assert_eq!(refused.request_id, Some(9));
        let answered = read_response(&mut client, &mut buf).await;
        assert_eq!(answered.data, Some(json!("GetActiveRoutine")));
        assert_eq!(answered.request_id, Some(10));
        drop(client);
        assert!(matches!(served.await.unwrap(), ConnectionEnd::Closed));
    }
}
