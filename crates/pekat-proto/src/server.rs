//! The device side (feature `server`): answer PEKAT requests with your own [`Service`], served
//! by labwire's one serve loop ([`labwire_net::service`]) through [`ServerCodec`].
//!
//! A service gets typed [`Request`]s and returns typed [`Response`]s; the server does the rest:
//! it frames requests (there is no delimiter on the wire, see below), answers the ones it
//! cannot understand itself (the dialect's "unknown command", never reaching the service),
//! echoes 3.19 request ids, writes each answer in one write, and owns the limits, deadlines,
//! connection cap and graceful shutdown.
//!
//! ```
//! use std::net::SocketAddr;
//! use pekat_proto::server::{ServerBuilder, Service};
//! use pekat_proto::{ProjectState, Request, Response};
//!
//! /// Every project is running.
//! struct AlwaysRunning;
//!
//! impl Service for AlwaysRunning {
//!     type Request = Request;
//!     type Response = Response;
//!
//!     async fn call(&self, _peer: SocketAddr, _request: Request) -> Response {
//!         Response::Status(ProjectState::Running)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = ServerBuilder::new()
//!     .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
//!     .serve(AlwaysRunning)
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Framing
//!
//! By default the server reads requests as the vendor's server does: what one read delivers
//! is the request ("one request is one write"), taken as soon as it can be whole (its
//! separator has arrived) and answered at once, with no timer on the way. Bytes already
//! waiting on the socket are taken with it (the read drains what has arrived, without waiting
//! for more), so a line ending sent in a segment of its own right behind its request is part of
//! it. Requests split where the split shows are still read whole: one that stops before its
//! separator (`sta`, `7.swi`) waits for the rest; one that stops half-way for good is answered
//! as it is once [`ServerConfig::read_timeout`] has passed since its first byte, or at once
//! when the client half-closes. One that grows past [`Limits::max_request_len`] is answered
//! with the dialect's error, then the connection is closed. A trailing `\n` or `\r\n` (or a
//! lone `\r`) is ignored.
//!
//! A request split inside its *path* cannot be seen as split: it is read as two requests, as
//! the vendor's server reads it. A server that must be safe against such senders sets a
//! **quiet period** ([`ServerConfig::quiet_period`], [`ServerBuilder::quiet_period`]; none by
//! default, [`DEFAULT_QUIET_PERIOD`]): once a request looks whole, the server waits that long
//! for bytes that still belong to it (labwire-net's [`Exchange::quiet_period`]), at the cost of
//! that wait (plus the timer's rounding, up to a millisecond) on every answer.
//!
//! A line ending that arrives **after** its request was taken (a `\r` and its `\n` in two TCP
//! segments, the second after the request was read, or a `\r\n` written after the request) is
//! dropped, never answered: an answer to it would be read by the client as the answer to its
//! next request. Only as the first bytes of a connection is a bare line ending an (empty)
//! request, answered with the dialect's error ([`ServerCodec`] has the rule).
//!
//! ## Slow answers
//!
//! A real Projects Manager answers `start` only once the project runs, so a service may take a
//! long time. Meanwhile the server watches the connection: a client that closes it (or resets
//! it) ends the connection at once, dropping the service's future, so that clients that give up
//! do not hold connections. A client that half-closed right after its request still gets its
//! answer. (This is why the server runs labwire-net's [`serve_connection_within`] itself rather than
//! [`serve`](labwire_net::service::serve): the shared loop does not watch a connection while
//! its service works, nor tell the codec that the client has half-closed.)
//!
//! ## Below the typed service
//!
//! A simulator or a gateway may need more than a typed service: to see the requests the server
//! could not understand, to send no answer at all (as some 3.19 servers do for `start`), to
//! plan faults, or to keep per-connection state. [`ServerBuilder::serve_connections`] serves a
//! [`PlannedService`] over [`Incoming`] requests and `Option<Reply>` answers, made for each
//! connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use labwire_net::service::{log_end, serve_connection_within};
use labwire_net::{Exchange, FrameBudget, Server, WarnLimit};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{Incoming, ServerCodec};
use crate::error::{DecodeError, EncodeError};
use crate::message::{Dialect, Reply, Request, Response};
use crate::wire::{self, Completeness, DEFAULT_PORT, Limits};

pub use labwire_net::service::{Action, Plan, PlannedService, Service};
pub use labwire_net::{CancellationToken, ServerHandle};

/// Default quiet period: none. What one read delivers is the request, as on the vendor's server
/// (see the module docs, "Framing"); set one to read requests whose path a sender splits over
/// several writes (a few milliseconds is plenty on a LAN).
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::ZERO;
/// Default deadline for the rest of a request once its first byte arrived.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time a connection may stay without a request begun.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default deadline for the client to take an answer.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server listens and frames. Public fields; start from [`ServerConfig::default`] (or
/// use [`ServerBuilder`]).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address (`127.0.0.1:7002` by default: loopback, the usual port; `0.0.0.0:7002` serves
    /// the network), listen backlog, connection cap, `TCP_NODELAY`.
    pub listener: labwire_net::ServerConfig,
    /// The dialect requests are read in and answers written in (3.18 by default).
    pub dialect: Dialect,
    /// Size limits ([`Limits::default`]).
    pub limits: Limits,
    /// Once a request looks whole, bytes arriving within this still belong to it; zero (the
    /// default, [`DEFAULT_QUIET_PERIOD`]) answers at once. See the module docs, "Framing".
    pub quiet_period: Duration,
    /// A request still incomplete this long after its first byte is taken as it is
    /// ([`DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Duration,
    /// A connection with no request begun for this long is closed ([`DEFAULT_IDLE_TIMEOUT`];
    /// `None`: never).
    pub idle_timeout: Option<Duration>,
    /// A client that does not take its answer within this is disconnected
    /// ([`DEFAULT_WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
    /// Close each connection after its first answer (default: serve many requests on one).
    pub one_request_per_connection: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listener: labwire_net::ServerConfig::new(SocketAddr::from((
                [127, 0, 0, 1],
                DEFAULT_PORT,
            ))),
            dialect: Dialect::default(),
            limits: Limits::default(),
            quiet_period: DEFAULT_QUIET_PERIOD,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            one_request_per_connection: false,
        }
    }
}

impl ServerConfig {
    /// How often the serve loop asks the codec whether a paused client's bytes are a request:
    /// each quiet period, or (without one) once the read timeout has passed.
    fn tick(&self) -> Duration {
        if self.quiet_period.is_zero() {
            self.read_timeout
        } else {
            self.quiet_period.min(self.read_timeout)
        }
    }

    fn exchange(&self) -> Exchange {
        let tick = self.tick();
        Exchange {
            once: self.one_request_per_connection,
            // The codec takes a late request by itself within a tick of the read timeout; the
            // loop's own deadline lies well beyond, only as a safety net.
            read_timeout: self
                .read_timeout
                .saturating_mul(2)
                .saturating_add(tick.saturating_mul(2)),
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            quiet_period: Some(tick),
        }
    }
}

/// Binds `config.listener` and answers requests with `service` until the returned handle is
/// shut down (or dropped).
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve<S>(config: ServerConfig, service: S) -> io::Result<ServerHandle>
where
    S: Service<Request = Request, Response = Response>,
{
    serve_until(config, service, CancellationToken::new()).await
}

/// Like [`serve`], stopping also when `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_until<S>(
    config: ServerConfig,
    service: S,
    shutdown: CancellationToken,
) -> io::Result<ServerHandle>
where
    S: Service<Request = Request, Response = Response>,
{
    let service = Arc::new(Answering(service));
    ServerBuilder::from(config)
        .serve_connections(move |_peer| Arc::clone(&service), shutdown)
        .await
}

/// Configures and starts a server; every setter changes one field of its [`ServerConfig`].
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    config: ServerConfig,
}

impl From<ServerConfig> for ServerBuilder {
    fn from(config: ServerConfig) -> Self {
        Self { config }
    }
}

impl ServerBuilder {
    /// The defaults of [`ServerConfig::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Address to listen on (`127.0.0.1:7002` by default; port 0 picks a free one).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listener.addr = addr;
        self
    }

    /// Listen backlog.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.config.listener.backlog = backlog;
        self
    }

    /// Connections served at once; a client that connects while that many are live is
    /// refused at once (accepted and closed, with a rate-limited warning).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.listener.max_connections = max;
        self
    }

    /// The dialect spoken.
    #[must_use]
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.config.dialect = dialect;
        self
    }

    /// Size limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// See [`ServerConfig::quiet_period`].
    #[must_use]
    pub fn quiet_period(mut self, quiet: Duration) -> Self {
        self.config.quiet_period = quiet;
        self
    }

    /// See [`ServerConfig::read_timeout`].
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// See [`ServerConfig::idle_timeout`].
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// See [`ServerConfig::write_timeout`].
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// Close each connection after its first answer (or serve many requests on one).
    #[must_use]
    pub fn one_request_per_connection(mut self, once: bool) -> Self {
        self.config.one_request_per_connection = once;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Binds and answers requests with `service`; see [`serve`].
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve<S>(self, service: S) -> io::Result<ServerHandle>
    where
        S: Service<Request = Request, Response = Response>,
    {
        serve(self.config, service).await
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
        serve_until(self.config, service, shutdown).await
    }

    /// Binds and serves each accepted connection with the service `make_service(peer)`
    /// returns (an `Arc` of one shared service, or a new one per connection), until `shutdown`
    /// is cancelled.
    ///
    /// The service sees every request, understood or not ([`Incoming`]; answer a
    /// [`BadRequest`](crate::BadRequest) with [`BadRequest::reply`](crate::BadRequest::reply)),
    /// answers `None` to send nothing, and may plan how its answer goes out ([`Plan`]: a delay,
    /// no answer, a close, garbage). Any [`Service`] with these types is a [`PlannedService`].
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve_connections<F, P>(
        self,
        make_service: F,
        shutdown: CancellationToken,
    ) -> io::Result<ServerHandle>
    where
        F: Fn(SocketAddr) -> Arc<P> + Send + Sync + 'static,
        P: PlannedService<Request = Incoming, Response = Option<Reply>>,
    {
        let server = Server::bind(self.config.listener.clone()).await?;
        Ok(run(server, shutdown, make_service, &self.config))
    }
}

/// A typed service as the serve loop calls it: requests it cannot understand are answered
/// here, and every answer echoes its request's id.
struct Answering<S>(S);

impl<S> Service for Answering<S>
where
    S: Service<Request = Request, Response = Response>,
{
    type Request = Incoming;
    type Response = Option<Reply>;

    async fn call(&self, peer: SocketAddr, incoming: Incoming) -> Option<Reply> {
        Some(match incoming {
            Ok(request) => {
                let id = request.id.clone();
                let response = self.0.call(peer, request).await;
                Reply { id, response }
            }
            Err(bad) => bad.reply(),
        })
    }
}

fn run<F, P>(
    server: Server,
    shutdown: CancellationToken,
    make_service: F,
    config: &ServerConfig,
) -> ServerHandle
where
    F: Fn(SocketAddr) -> Arc<P> + Send + Sync + 'static,
    P: PlannedService<Request = Incoming, Response = Option<Reply>>,
{
    let shared = Arc::new(Shared {
        make_service,
        dialect: config.dialect,
        limits: config.limits,
        read_timeout: config.read_timeout,
        hold: !config.quiet_period.is_zero(),
        exchange: config.exchange(),
        budget: server.frame_budget().clone(),
        warnings: server.warnings(),
    });
    server.serve_with_token(shutdown, move |stream, peer, _token| {
        let shared = Arc::clone(&shared);
        let service = (shared.make_service)(peer);
        async move {
            // Until the first byte the task holds only the socket, its peer, the service, this
            // `Arc` and a readiness wait (a task is as large as its largest state, and idle connections
            // are what a server has most of); the connection's machinery is built and boxed
            // once bytes arrive.
            let idle = shared.exchange.idle_timeout;
            if let Err(end) = labwire_net::idle::readable_within(&stream, idle).await {
                log_end(peer, &end, &shared.warnings);
                return;
            }
            Box::pin(connection(stream, peer, service, &shared)).await;
        }
    })
}

/// What every connection of a server shares.
struct Shared<F> {
    make_service: F,
    dialect: Dialect,
    limits: Limits,
    read_timeout: Duration,
    /// Whether a request that looks whole waits for the quiet period.
    hold: bool,
    exchange: Exchange,
    /// The server's frame budget ([`labwire_net::budget`]).
    budget: FrameBudget,
    /// The server's warnings about misbehaving peers ([`labwire_net::warn_limit`]).
    warnings: Arc<WarnLimit>,
}

/// Serves one connection whose first bytes have arrived.
async fn connection<F, P>(stream: TcpStream, peer: SocketAddr, service: Arc<P>, shared: &Shared<F>)
where
    F: Fn(SocketAddr) -> Arc<P> + Send + Sync + 'static,
    P: PlannedService<Request = Incoming, Response = Option<Reply>>,
{
    let Shared {
        dialect,
        limits,
        read_timeout,
        hold,
        exchange,
        budget,
        warnings,
        ..
    } = shared;
    {
        let stream = Arc::new(stream);
        let eof = Arc::new(AtomicBool::new(false));
        let service = Watched {
            service,
            stream: Arc::clone(&stream),
            eof: Arc::clone(&eof),
            idle_timeout: exchange.idle_timeout,
            understood: std::sync::Mutex::new(Instant::now()),
            warnings: Arc::clone(warnings),
        };
        let codec = Framing {
            codec: ServerCodec::with_limits(*dialect, *limits),
            hold: *hold,
            read_timeout: *read_timeout,
            started: None,
            eof: Arc::clone(&eof),
        };
        let mut conn = Conn {
            stream,
            eof,
            pending_error: None,
        };
        let end = serve_connection_within(&mut conn, peer, &service, codec, exchange, budget).await;
        log_end(peer, &end, warnings);
    }
}

/// [`ServerCodec`] behind the quiet-period framing of the module docs. The serve loop calls
/// `decode` after each read and `decode_eof` after each quiet period without bytes (and at the
/// end of the stream).
#[derive(Debug)]
struct Framing {
    codec: ServerCodec,
    /// Whether a request that looks whole waits for the quiet period.
    hold: bool,
    read_timeout: Duration,
    /// When the request being gathered began.
    started: Option<Instant>,
    /// Set by [`Conn`] once the client has half-closed.
    eof: Arc<AtomicBool>,
}

impl Framing {
    /// Whether `buf` can be a whole request. A trailing `\r` does not make it wait: its `\n`,
    /// if one follows, is either read with it or dropped as a late line ending.
    fn completeness(&self, buf: &[u8]) -> Completeness {
        let body = buf.strip_suffix(b"\r").unwrap_or(buf);
        wire::request_completeness(body, self.codec.dialect())
    }

    fn overdue(&mut self) -> bool {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        now.saturating_duration_since(started) >= self.read_timeout
    }

    /// Drops the line endings at the start of `buf` that are the late tail of the request
    /// before: they are never a request, and must not start the read deadline of one.
    fn drop_late_line_endings(&mut self, buf: &mut BytesMut) {
        let late = self.codec.late_line_endings(buf);
        if late > 0 {
            tracing::debug!(late, "late line ending dropped");
            buf.advance(late);
            if buf.is_empty() {
                self.started = None;
            }
        }
    }

    fn taken(
        &mut self,
        taken: Result<Option<Incoming>, DecodeError>,
    ) -> Result<Option<Incoming>, DecodeError> {
        if let Ok(Some(incoming)) = &taken {
            self.started = None;
            tracing::debug!(?incoming, "request");
        }
        taken
    }
}

impl Decoder for Framing {
    type Item = Incoming;
    type Error = DecodeError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        self.drop_late_line_endings(buf);
        if buf.is_empty() {
            self.started = None;
            return self.codec.decode(buf);
        }
        if wire::check_len(buf, self.codec.limits().max_request_len).is_err() {
            let taken = self.codec.decode(buf);
            return self.taken(taken);
        }
        // Without a quiet period, what has arrived is the request as soon as it can be whole.
        let whole = !self.hold && self.completeness(buf) == Completeness::Complete;
        if whole || self.overdue() {
            let taken = self.codec.decode_eof(buf);
            return self.taken(taken);
        }
        Ok(None)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        self.drop_late_line_endings(buf);
        if buf.is_empty() {
            return self.codec.decode_eof(buf);
        }
        let whole = self.eof.load(Ordering::Relaxed)
            || self.overdue()
            || self.completeness(buf) == Completeness::Complete;
        if !whole {
            return Ok(None);
        }
        let taken = self.codec.decode_eof(buf);
        self.taken(taken)
    }
}

impl Encoder<Option<Reply>> for Framing {
    type Error = EncodeError;

    fn encode(&mut self, reply: Option<Reply>, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let Some(reply) = reply else {
            tracing::debug!("no answer");
            return Ok(());
        };
        self.codec.encode(&reply, dst)?;
        tracing::debug!(?reply, "answer");
        tracing::trace!(hex = %wire::Hex(dst), "answer bytes");
        Ok(())
    }
}

/// The connection as the serve loop reads and writes it, shared with [`Watched`]; notes the
/// client's half-close for [`Framing`].
struct Conn {
    stream: Arc<TcpStream>,
    eof: Arc<AtomicBool>,
    /// An error met after some bytes had been read: reported by the next read.
    pending_error: Option<io::Error>,
}

impl Conn {
    /// Reads everything that has arrived, without waiting for more: whether there is
    /// something to report (bytes, the end of the stream, or no room left), or nothing had
    /// arrived (the socket's readiness is then cleared).
    ///
    /// Reading until the socket has nothing left makes what one read delivers the whole of
    /// what the client has sent, and leaves the next read to wait for new bytes at once,
    /// rather than to find out with one more `recv` that the readiness was stale.
    fn drain(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<bool> {
        let mut got = false;
        loop {
            let room = buf.initialize_unfilled();
            if room.is_empty() {
                return Ok(true);
            }
            match self.stream.try_read(room) {
                Ok(0) => {
                    self.eof.store(true, Ordering::Relaxed);
                    return Ok(true);
                }
                Ok(n) => {
                    buf.advance(n);
                    got = true;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                Err(error) if got => {
                    self.pending_error = Some(error);
                    return Ok(true);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.pending_error.take() {
            return Poll::Ready(Err(error));
        }
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            if this.drain(buf)? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(data) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A shared socket cannot be shut down from here; the serve loop returns right after,
        // and dropping the connection closes it.
        Poll::Ready(Ok(()))
    }
}

/// A connection's service, watched: while it works on an answer (and waits out a planned
/// delay), a client that leaves ends the connection.
struct Watched<P> {
    service: Arc<P>,
    stream: Arc<TcpStream>,
    eof: Arc<AtomicBool>,
    /// The idle limit also holds for requests the server cannot understand: without it a
    /// client sending one byte a minute (each answered, once overdue, with the dialect's
    /// error) would hold its connection forever.
    idle_timeout: Option<Duration>,
    /// When the connection began or its last understood request arrived.
    understood: std::sync::Mutex<Instant>,
    /// The server's warnings about misbehaving peers.
    warnings: Arc<WarnLimit>,
}

impl<P> Watched<P> {
    /// Whether the connection has sent nothing the server understood for the idle limit;
    /// resets the clock on an understood request.
    fn idle_in_garbage(&self, request: &Incoming) -> bool {
        let now = Instant::now();
        let mut understood = self
            .understood
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if request.is_ok() {
            *understood = now;
            return false;
        }
        self.idle_timeout
            .is_some_and(|idle| now.saturating_duration_since(*understood) >= idle)
    }
}

impl<P> PlannedService for Watched<P>
where
    P: PlannedService<Request = Incoming, Response = Option<Reply>>,
{
    type Request = Incoming;
    type Response = Option<Reply>;

    async fn call(&self, peer: SocketAddr, request: Incoming) -> (Option<Reply>, Plan) {
        if self.idle_in_garbage(&request) {
            labwire_net::peer_warn!(
                self.warnings,
                %peer,
                "connection closed: nothing understood within the idle limit"
            );
            let close = Plan {
                action: Action::Close,
                ..Plan::default()
            };
            return (None, close);
        }
        let answer = async {
            let (reply, mut plan) = self.service.call(peer, request).await;
            let delay = std::mem::take(&mut plan.delay);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            (reply, plan)
        };
        if self.eof.load(Ordering::Relaxed) {
            // Half-closed right after asking: it still wants its answer.
            return answer.await;
        }
        tokio::select! {
            biased;
            answer = answer => answer,
            () = left(&self.stream) => {
                tracing::debug!("the client left before its answer");
                let close = Plan { action: Action::Close, ..Plan::default() };
                (None, close)
            }
        }
    }
}

/// Resolves when the client closes or resets the connection. Never, once it has sent more
/// bytes: they are its next request, read after this answer.
async fn left(stream: &TcpStream) {
    let mut probe = [0u8; 1];
    if let Ok(1..) = stream.peek(&mut probe).await {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::BadRequestKind;

    fn framing(hold: bool) -> Framing {
        Framing {
            codec: ServerCodec::new(Dialect::V3_18),
            hold,
            read_timeout: Duration::from_secs(2),
            started: None,
            eof: Arc::new(AtomicBool::new(false)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_request_waits_for_the_quiet_period_then_a_half_one_for_the_read_timeout() {
        let mut codec = framing(true);
        let mut buf = BytesMut::from(&b"status:C:\\p\r"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let request = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(request, Request::status(r"C:\p"));

        buf.extend_from_slice(b"sta");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        let bad = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::MissingSeparator(b':'));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_quiet_period_a_whole_request_is_taken_at_once() {
        let mut codec = framing(false);
        let mut buf = BytesMut::from(&b"stop:x"[..]);
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
        // ... also one ending in `\r`, with its `\n` when it came along ...
        for ending in [&b"\r"[..], b"\r\n"] {
            buf.extend_from_slice(b"stop:x");
            buf.extend_from_slice(ending);
            let request = codec.decode(&mut buf).unwrap().unwrap().unwrap();
            assert_eq!(request, Request::stop("x"));
            assert!(buf.is_empty());
        }
        // ... and a `\n` that comes later is the late tail of the request before.
        buf.extend_from_slice(b"\n");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
        // A request before its separator waits for the rest, up to the read timeout.
        buf.extend_from_slice(b"sto");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"p:x");
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
        buf.extend_from_slice(b"sto");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        let bad = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::MissingSeparator(b':'));
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_ending_after_the_quiet_period_is_dropped_not_answered() {
        let mut codec = framing(true);
        // The request ends in `\r`; the quiet period passes without its `\n`.
        let mut buf = BytesMut::from(&b"status:C:\\p\r"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(codec.decode_eof(&mut buf).unwrap().unwrap().is_ok());
        // Then the `\n`, alone: dropped at once, and the read deadline is not started.
        buf.extend_from_slice(b"\n");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
        assert!(codec.started.is_none());
        // A lone `\r`, then its `\n`, each after a quiet period: the same.
        for tail in [&b"\r"[..], b"\n", b"\r\n"] {
            buf.extend_from_slice(tail);
            assert!(codec.decode_eof(&mut buf).unwrap().is_none());
            assert!(buf.is_empty());
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        // The next request is read as usual.
        buf.extend_from_slice(b"\nstop:C:\\p");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let request = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(request, Request::stop(r"C:\p"));
    }

    #[tokio::test]
    async fn a_half_request_is_taken_when_the_client_half_closes() {
        let mut codec = framing(true);
        let mut buf = BytesMut::from(&b"sta"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        codec.eof.store(true, Ordering::Relaxed);
        assert!(codec.decode_eof(&mut buf).unwrap().unwrap().is_err());
    }

    #[tokio::test]
    async fn an_oversized_request_is_answered_then_refused() {
        let mut codec = framing(true);
        codec.codec = ServerCodec::new(Dialect::V3_18).with_max_request_len(8);
        let mut buf = BytesMut::from(&b"start:0123456789"[..]);
        let bad = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert!(matches!(bad.kind, BadRequestKind::TooLarge { max: 8, .. }));
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn no_answer_writes_nothing() {
        let mut codec = framing(true);
        let mut out = BytesMut::new();
        codec.encode(None, &mut out).unwrap();
        assert!(out.is_empty());
        codec
            .encode(Some(Reply::new(Response::Done)), &mut out)
            .unwrap();
        assert_eq!(&out[..], b"done");
    }

    #[test]
    fn without_a_quiet_period_the_loop_asks_once_the_read_timeout_has_passed() {
        let mut config = ServerConfig {
            quiet_period: Duration::ZERO,
            ..ServerConfig::default()
        };
        assert_eq!(config.exchange().quiet_period, Some(DEFAULT_READ_TIMEOUT));
        assert_eq!(ServerConfig::default().quiet_period, Duration::ZERO);
        let quiet = Duration::from_millis(3);
        config.quiet_period = quiet;
        let exchange = config.exchange();
        assert_eq!(exchange.quiet_period, Some(quiet));
        assert!(exchange.read_timeout > DEFAULT_READ_TIMEOUT + quiet);
        config.read_timeout = Duration::MAX;
        let _ = config.exchange();
    }
}
