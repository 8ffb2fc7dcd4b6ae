//! The device side, written once: a [`Service`] answers typed requests; [`serve`] owns accept,
//! framing through a tokio-util codec, size limits (the codec's), read and write deadlines, the
//! connection cap and graceful shutdown.
//!
//! Every labwire protocol crate's `server` feature is this loop with the protocol's codec, and
//! every simulator is a `Service` (wrapped in the simulator kit's fault layer). A user's own
//! device emulator or gateway is one too.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::budget::{FrameBudget, Held, READ_CHUNK};
use crate::server::{Server, ServerHandle};
use crate::warn_limit::WarnLimit;

/// A device: answers one request at a time for each connection.
///
/// `call` may be called concurrently for different connections; a device with one state (as a
/// real instrument has) keeps it behind a lock or in an actor.
pub trait Service: Send + Sync + 'static {
    /// What a client sends, as the codec decodes it.
    type Request: Send + 'static;
    /// What is sent back, as the codec encodes it.
    type Response: Send + 'static;

    /// Answers `request` from `peer`.
    fn call(
        &self,
        peer: SocketAddr,
        request: Self::Request,
    ) -> impl Future<Output = Self::Response> + Send;
}

impl<S: Service> Service for Arc<S> {
    type Request = S::Request;
    type Response = S::Response;

    fn call(
        &self,
        peer: SocketAddr,
        request: Self::Request,
    ) -> impl Future<Output = Self::Response> + Send {
        S::call(self, peer, request)
    }
}

/// How one answer is sent (see [`PlannedService`]). [`Plan::default`] sends it at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wait this long before acting.
    pub delay: Duration,
    /// What to send.
    pub action: Action,
}

/// What is done instead of (or with) an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send the answer.
    #[default]
    Reply,
    /// Send nothing for this request; the connection stays open.
    NoReply,
    /// Close the connection instead of answering.
    Close,
    /// Send the first half of the answer's bytes, then close.
    Truncate,
    /// Send these bytes instead of the answer; the connection stays open.
    Garbage(Bytes),
}

/// A service that also says how each answer is to be sent: the seam through which a simulator
/// injects faults without its device knowing (the simulator kit's fault layer is one). Every
/// [`Service`] is one that always sends its answer.
pub trait PlannedService: Send + Sync + 'static {
    /// What a client sends, as the codec decodes it.
    type Request: Send + 'static;
    /// What is sent back, as the codec encodes it.
    type Response: Send + 'static;

    /// Answers `request` from `peer`, and says how.
    fn call(
        &self,
        peer: SocketAddr,
        request: Self::Request,
    ) -> impl Future<Output = (Self::Response, Plan)> + Send;
}

impl<S: Service> PlannedService for S {
    type Request = S::Request;
    type Response = S::Response;

    async fn call(&self, peer: SocketAddr, request: Self::Request) -> (Self::Response, Plan) {
        (Service::call(self, peer, request).await, Plan::default())
    }
}

/// How long a connection with no request begun stays open by default: 5 minutes
/// ([`Exchange::idle_timeout`]). Long, because clients of the request-response protocols keep
/// a connection between calls; finite, so that clients that vanished without closing do not
/// hold their slots (and at the cap, new clients are refused) forever.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How connections are served. Public fields; start from [`Exchange::new`].
///
/// Deadlines bytes cannot reset: `read_timeout` runs from a request's first byte, however the
/// rest trickles in, and `idle_timeout` from the end of the last exchange (or the accept).
/// What a server closes for either is logged as a rate-limited warning
/// ([`crate::warn_limit`]) when the peer misbehaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// One request and its answer per connection (then close), or many in sequence.
    pub once: bool,
    /// Once a request's first byte has arrived, the whole request must arrive within this.
    pub read_timeout: Duration,
    /// A connection with no request begun for this long is closed (`None`: never;
    /// [`DEFAULT_IDLE_TIMEOUT`] by default).
    pub idle_timeout: Option<Duration>,
    /// An answer must be taken by the client within this.
    pub write_timeout: Duration,
    /// For protocols without a delimiter: when the codec needs more bytes but none arrive for
    /// this long, the codec's `decode_eof` is asked for a request made of what it has (the
    /// connection stays open). `None`: wait for more bytes (bounded by `read_timeout`).
    pub quiet_period: Option<Duration>,
}

impl Exchange {
    /// Many requests per connection; 10 s to finish a request or take an answer; closed after
    /// [`DEFAULT_IDLE_TIMEOUT`] without a request.
    pub fn new() -> Self {
        Self {
            once: false,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            write_timeout: Duration::from_secs(10),
            quiet_period: None,
        }
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a connection ended (for logs and tests).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// The client closed between requests (or after its one exchange).
    #[error("closed by the client")]
    Closed,
    /// The one exchange of a `once` connection is done.
    #[error("exchange done")]
    Done,
    /// A fault plan closed it.
    #[error("closed by an injected fault")]
    Fault,
    /// No request began within the idle timeout.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// A request did not finish within the read timeout.
    #[error("request not finished within {0:?}")]
    ReadTimeout(Duration),
    /// The client did not take an answer within the write timeout.
    #[error("answer not taken within {0:?}")]
    WriteTimeout(Duration),
    /// The client closed in the middle of a request.
    #[error("closed in the middle of a request ({0} bytes)")]
    Truncated(usize),
    /// The bytes could not be decoded (the stream cannot be resynchronised).
    #[error("undecodable request: {0}")]
    Decode(String),
    /// The answer could not be encoded.
    #[error("cannot encode the answer: {0}")]
    Encode(String),
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A request needs more buffer than the server's whole frame budget
    /// ([`crate::budget`]): it can never be read.
    #[error("a request needs {needed} bytes of buffer, more than the frame budget of {budget}")]
    OverBudget {
        /// Bytes of the budget the request needs.
        needed: usize,
        /// The server's whole budget.
        budget: usize,
    },
}

impl ConnectionEnd {
    /// Whether the peer misbehaved: sent what cannot be decoded or is too large, trickled a
    /// request past its deadline, did not take its answer, or vanished in the middle of a
    /// request. Such ends are logged as rate-limited warnings ([`crate::warn_limit`]); the
    /// others (a normal close, an idle timeout, an injected fault, a socket error) at debug.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Self::ReadTimeout(_)
                | Self::WriteTimeout(_)
                | Self::Truncated(_)
                | Self::Decode(_)
                | Self::OverBudget { .. }
        )
    }
}

/// Serves `service` on `server` with a fresh codec per connection from `codec`, until
/// `shutdown` is cancelled (or the returned handle is shut down).
pub fn serve<S, C, F>(
    server: Server,
    shutdown: CancellationToken,
    service: S,
    codec: F,
    exchange: Exchange,
) -> ServerHandle
where
    S: PlannedService,
    F: Fn() -> C + Send + Sync + 'static,
    C: Decoder<Item = S::Request> + Encoder<S::Response> + Send + 'static,
    <C as Decoder>::Error: std::fmt::Display,
    <C as Encoder<S::Response>>::Error: std::fmt::Display,
{
    let budget = server.frame_budget().clone();
    let warnings = server.warnings();
    let shared = Arc::new((service, codec, exchange, budget, warnings));
    server.serve_with_token(shutdown, move |mut stream, peer, _token| {
        let shared = Arc::clone(&shared);
        async move {
            // An idle connection holds its socket, its peer, this `Arc` and the wait in
            // `readable_within`: every state of this future is paid by every idle connection,
            // so the exchange's machinery (codec, buffers, deadlines, the device's answer) is
            // boxed, and created on the first bytes.
            let mut conn: Option<Box<Connection<C>>> = None;
            let end = loop {
                let (service, codec, exchange, budget, _) = &*shared;
                match conn.as_deref_mut() {
                    Some(conn) if !conn.buf.is_empty() => {}
                    // A connection that has exchanged before and kept its buffer: the next
                    // request is read into it whole, in one read (the first-bytes buffer would
                    // take a request larger than it in two).
                    Some(conn) if conn.buf.capacity() > 0 => {
                        if let Err(end) = next_bytes_within(&mut stream, conn, exchange).await {
                            break end;
                        }
                    }
                    // A new connection, or one whose large buffer was released: nothing is
                    // reserved before the first bytes.
                    _ => {
                        match crate::idle::first_bytes_within(&stream, exchange.idle_timeout).await
                        {
                            Ok(first) => conn
                                .get_or_insert_with(|| Box::new(Connection::new(codec())))
                                .buf
                                .extend_from_slice(first.as_slice()),
                            Err(end) => break end,
                        }
                    }
                }
                let conn = conn.get_or_insert_with(|| Box::new(Connection::new(codec())));
                let step = Box::pin(exchange_once(
                    &mut stream,
                    peer,
                    service,
                    conn,
                    exchange,
                    budget,
                ));
                if let Err(end) = step.await {
                    break end;
                }
            };
            log_end(peer, &end, &shared.4);
        }
    })
}

/// Waits (at most the idle timeout) for the next request's first bytes on a connection that
/// has exchanged before and kept its buffer, reading them straight into it. The wait holds the socket, the
/// connection's address and, with an idle timeout, one timer: no more than
/// [`crate::idle::first_bytes_within`] holds.
async fn next_bytes_within<C>(
    stream: &mut tokio::net::TcpStream,
    conn: &mut Connection<C>,
    exchange: &Exchange,
) -> Result<(), ConnectionEnd> {
    conn.buf.reserve(READ_CHUNK);
    // A read, not a wait for readiness and then a read: a short read clears the socket's
    // readiness, so that the next wait goes straight to the reactor instead of first asking
    // the socket in vain.
    let read = stream.read_buf(&mut conn.buf);
    let n = match exchange.idle_timeout {
        None => read.await,
        Some(idle) => match tokio::time::timeout(idle, read).await {
            Ok(n) => n,
            Err(_) => return Err(ConnectionEnd::Idle(idle)),
        },
    };
    match n {
        Ok(0) => Err(ConnectionEnd::Closed),
        Ok(_) => Ok(()),
        Err(error) => Err(ConnectionEnd::Io(error)),
    }
}

/// Logs how a connection ended: a normal end at trace level, the peer's misbehaviour as a
/// rate-limited warning ([`ConnectionEnd::is_misbehaviour`]), anything else at debug.
pub fn log_end(peer: SocketAddr, end: &ConnectionEnd, warnings: &WarnLimit) {
    match end {
        ConnectionEnd::Closed | ConnectionEnd::Done => tracing::trace!(%peer, %end),
        end if end.is_misbehaviour() => {
            crate::peer_warn!(warnings, %peer, %end, "connection ended");
        }
        end => tracing::debug!(%peer, %end, "connection ended"),
    }
}

/// What a connection keeps between its exchanges.
struct Connection<C> {
    codec: C,
    /// Bytes received and not yet decoded; nothing is reserved before the first byte.
    buf: BytesMut,
    /// The encoded answer.
    out: BytesMut,
    /// What `buf` holds of the server's frame budget.
    held: Held,
}

impl<C> Connection<C> {
    fn new(codec: C) -> Self {
        Self {
            codec,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            held: None,
        }
    }
}

/// Serves one connection (any transport): requests in, answers out, until it ends. Its
/// buffers are bounded by the codec's limits only; [`serve_connection_within`] shares a
/// server's frame budget.
pub async fn serve_connection<T, S, C>(
    stream: &mut T,
    peer: SocketAddr,
    service: &S,
    codec: C,
    exchange: &Exchange,
) -> ConnectionEnd
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: PlannedService,
    C: Decoder<Item = S::Request> + Encoder<S::Response>,
    <C as Decoder>::Error: std::fmt::Display,
    <C as Encoder<S::Response>>::Error: std::fmt::Display,
{
    serve_connection_within(
        stream,
        peer,
        service,
        codec,
        exchange,
        &FrameBudget::unlimited(),
    )
    .await
}

/// Like [`serve_connection`], taking what its buffers grow by from `budget` (a server's
/// [`Server::frame_budget`], shared by its connections; see [`crate::budget`]).
pub async fn serve_connection_within<T, S, C>(
    stream: &mut T,
    peer: SocketAddr,
    service: &S,
    codec: C,
    exchange: &Exchange,
    budget: &FrameBudget,
) -> ConnectionEnd
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: PlannedService,
    C: Decoder<Item = S::Request> + Encoder<S::Response>,
    <C as Decoder>::Error: std::fmt::Display,
    <C as Encoder<S::Response>>::Error: std::fmt::Display,
{
    let mut conn = Connection::new(codec);
    loop {
        if let Err(end) = exchange_once(stream, peer, service, &mut conn, exchange, budget).await {
            return end;
        }
    }
}

/// One request and its answer; `Err` when the connection ends.
async fn exchange_once<T, S, C>(
    stream: &mut T,
    peer: SocketAddr,
    service: &S,
    conn: &mut Connection<C>,
    exchange: &Exchange,
    budget: &FrameBudget,
) -> Result<(), ConnectionEnd>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: PlannedService,
    C: Decoder<Item = S::Request> + Encoder<S::Response>,
    <C as Decoder>::Error: std::fmt::Display,
    <C as Encoder<S::Response>>::Error: std::fmt::Display,
{
    let Connection {
        codec,
        buf,
        out,
        held,
    } = conn;
    let request = match read_request(stream, codec, buf, exchange, budget, held).await {
        Ok(Some(request)) => request,
        Ok(None) => return Err(ConnectionEnd::Closed),
        Err(end) => return Err(end),
    };
    // Boxed: a device's answer future can be large, and would otherwise be part of the
    // connection's state for its whole life.
    let (response, plan) = Box::pin(PlannedService::call(service, peer, request)).await;
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    out.clear();
    if let Err(error) = codec.encode(response, out) {
        return Err(ConnectionEnd::Encode(error.to_string()));
    }
    let bytes: &[u8] = match &plan.action {
        Action::Reply => out,
        // The one exchange gets no answer: the client keeps waiting (until its own deadline or
        // ours), as it would on a device that never answers.
        Action::NoReply if exchange.once => {
            hold(
                stream,
                exchange.idle_timeout.unwrap_or(exchange.read_timeout),
            )
            .await;
            return Err(ConnectionEnd::Fault);
        }
        Action::NoReply => &[],
        Action::Close => return Err(ConnectionEnd::Fault),
        Action::Truncate => out.get(..out.len() / 2).unwrap_or_default(),
        Action::Garbage(garbage) => garbage,
    };
    if !bytes.is_empty() {
        match tokio::time::timeout(exchange.write_timeout, stream.write_all(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(ConnectionEnd::Io(error)),
            Err(_) => return Err(ConnectionEnd::WriteTimeout(exchange.write_timeout)),
        }
    }
    if plan.action == Action::Truncate {
        return Err(ConnectionEnd::Fault);
    }
    if exchange.once {
        // Tell the client we are done, then take (and drop) what it may still be sending for a
        // moment: closing with unread bytes would reset the connection and could destroy the
        // answer before the client has read it.
        let _ = stream.shutdown().await;
        linger(stream).await;
        return Err(ConnectionEnd::Done);
    }
    // Do not keep a large request's buffer (nor its budget) for the life of the connection.
    crate::budget::release(buf, held);
    if out.capacity() > RETAINED_CAPACITY {
        *out = BytesMut::new();
    }
    Ok(())
}

/// Keeps the connection open without answering until the client closes it or `limit` passes;
/// whatever it sends is dropped.
async fn hold<T: AsyncRead + Unpin>(stream: &mut T, limit: Duration) {
    // On the heap: a buffer here would be part of every connection's task, idle ones included.
    let mut scratch = vec![0u8; 1024];
    let drain = async { while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(limit, drain).await;
}

/// After the one exchange of a connection: at most this long and this many bytes are read (and
/// dropped) before the socket is closed.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

async fn linger<T: AsyncRead + Unpin>(stream: &mut T) {
    let mut scratch = vec![0u8; 1024];
    let mut taken = 0;
    let drain = async {
        while taken < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(n) if n > 0 => taken += n,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Answer buffer capacity kept between requests; a larger one (after a large answer) is
/// released.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Bytes of a request's first read, taken into the task's own small buffer (requests that are
/// larger continue in the connection's buffer).
const FIRST_READ: usize = 64;

/// Reads until the codec yields a request (`Ok(Some)`), the client closes between requests
/// (`Ok(None)`), or the connection must end.
async fn read_request<T, C>(
    stream: &mut T,
    codec: &mut C,
    buf: &mut BytesMut,
    exchange: &Exchange,
    budget: &FrameBudget,
    held: &mut Held,
) -> Result<Option<C::Item>, ConnectionEnd>
where
    T: AsyncRead + Unpin,
    C: Decoder,
    C::Error: std::fmt::Display,
{
    // Set when a request's first byte is seen, so a client trickling bytes cannot extend it.
    let mut deadline: Option<Instant> = None;
    loop {
        match codec.decode(buf) {
            Ok(Some(request)) => return Ok(Some(request)),
            Ok(None) => {}
            Err(error) => return Err(ConnectionEnd::Decode(error.to_string())),
        }
        let n = if buf.is_empty() {
            // Idle: wait for the first bytes in a small buffer of the task's own, so that an
            // idle connection holds no read buffer at all.
            let mut first = [0u8; FIRST_READ];
            let read = stream.read(&mut first);
            let n = match exchange.idle_timeout {
                None => read.await,
                Some(idle) => match tokio::time::timeout(idle, read).await {
                    Ok(n) => n,
                    Err(_) => return Err(ConnectionEnd::Idle(idle)),
                },
            };
            if let Ok(n) = n {
                buf.extend_from_slice(first.get(..n).unwrap_or_default());
            }
            n
        } else {
            let until = *deadline.get_or_insert_with(|| deadline_after(exchange.read_timeout));
            budget
                .make_room(buf, held, until, exchange.read_timeout)
                .await?;
            let read = stream.read_buf(buf);
            let quiet = exchange.quiet_period.map(|q| deadline_after(q).min(until));
            match tokio::time::timeout_at(quiet.unwrap_or(until), read).await {
                Ok(n) => n,
                Err(_) if quiet.is_some_and(|q| q < until) => {
                    // The client paused: what it sent is the whole request.
                    return match codec.decode_eof(buf) {
                        Ok(Some(request)) => Ok(Some(request)),
                        Ok(None) => continue,
                        Err(error) => Err(ConnectionEnd::Decode(error.to_string())),
                    };
                }
                Err(_) => return Err(ConnectionEnd::ReadTimeout(exchange.read_timeout)),
            }
        };
        match n {
            Ok(0) => {
                // End of stream: what is buffered may still be a whole request (EOF framing).
                return match codec.decode_eof(buf) {
                    Ok(Some(request)) => Ok(Some(request)),
                    Ok(None) if buf.is_empty() => Ok(None),
                    Ok(None) => Err(ConnectionEnd::Truncated(buf.len())),
                    Err(error) => Err(ConnectionEnd::Decode(error.to_string())),
                };
            }
            Ok(_) => {}
            Err(error) => return Err(ConnectionEnd::Io(error)),
        }
    }
}

/// `timeout` from now, capped at a century (`Duration::MAX` means "no limit").
fn deadline_after(timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(CENTURY)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio_util::codec::LinesCodec;

    /// Answers each line with it in upper case.
    struct Shout;

    impl Service for Shout {
        type Request = String;
        type Response = String;

        async fn call(&self, _peer: SocketAddr, request: String) -> String {
            request.to_uppercase()
        }
    }

    /// [`Shout`] with plans taken in order, then plain replies.
    #[derive(Default)]
    struct Script(Mutex<Vec<Plan>>);

    impl PlannedService for Script {
        type Request = String;
        type Response = String;

        async fn call(&self, peer: SocketAddr, request: String) -> (String, Plan) {
            let plan = {
                let mut plans = self.0.lock().unwrap();
                if plans.is_empty() {
                    Plan::default()
                } else {
                    plans.remove(0)
                }
            };
            (Service::call(&Shout, peer, request).await, plan)
        }
    }

    async fn start(exchange: Exchange, plans: Vec<Plan>) -> ServerHandle {
        let server = Server::bind(crate::ServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        serve(
            server,
            CancellationToken::new(),
            Script(Mutex::new(plans)),
            LinesCodec::new,
            exchange,
        )
    }

    async fn connect(handle: &ServerHandle) -> BufReader<tokio::net::TcpStream> {
        BufReader::new(
            crate::connect(handle.local_addr(), Duration::from_secs(5))
                .await
                .unwrap(),
        )
    }

    async fn ask(client: &mut BufReader<tokio::net::TcpStream>, line: &str) -> String {
        client
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_line(&mut answer))
            .await
            .unwrap()
            .unwrap();
        answer
    }

    async fn read_to_end(client: &mut BufReader<tokio::net::TcpStream>) -> Vec<u8> {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        rest
    }

    #[tokio::test]
    async fn many_requests_on_one_connection_each_get_their_answer() {
        let handle = start(Exchange::new(), vec![]).await;
        let mut client = connect(&handle).await;
        for word in ["one", "two", "three"] {
            assert_eq!(
                ask(&mut client, word).await,
                format!("{}\n", word.to_uppercase())
            );
        }
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_once_connection_is_closed_after_its_exchange() {
        let exchange = Exchange {
            once: true,
            ..Exchange::new()
        };
        let handle = start(exchange, vec![]).await;
        let mut client = connect(&handle).await;
        assert_eq!(ask(&mut client, "hi").await, "HI\n");
        assert!(read_to_end(&mut client).await.is_empty());
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn plans_withhold_replace_cut_or_close_an_answer() {
        let plans = vec![
            Plan {
                action: Action::NoReply,
                ..Plan::default()
            },
            Plan {
                action: Action::Garbage(Bytes::from_static(b"??\n")),
                ..Plan::default()
            },
            Plan {
                action: Action::Truncate,
                ..Plan::default()
            },
        ];
        let handle = start(Exchange::new(), plans).await;
        let mut client = connect(&handle).await;
        // The first request gets nothing; the second's answer is garbage.
        client.get_mut().write_all(b"first\n").await.unwrap();
        assert_eq!(ask(&mut client, "second").await, "??\n");
        client.get_mut().write_all(b"abcdef\n").await.unwrap();
        assert_eq!(read_to_end(&mut client).await, b"ABC");
        let plans = vec![Plan {
            action: Action::Close,
            ..Plan::default()
        }];
        let handle = start(Exchange::new(), plans).await;
        let mut client = connect(&handle).await;
        client.get_mut().write_all(b"x\n").await.unwrap();
        assert!(read_to_end(&mut client).await.is_empty());
        handle.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_reply_on_a_once_connection_leaves_the_client_waiting_until_the_deadline() {
        let exchange = Exchange {
            once: true,
            idle_timeout: Some(Duration::from_secs(20)),
            ..Exchange::new()
        };
        let plans = vec![Plan {
            action: Action::NoReply,
            ..Plan::default()
        }];
        let handle = start(exchange, plans).await;
        let mut client = connect(&handle).await;
        client.get_mut().write_all(b"anyone?\n").await.unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        assert!(
            started.elapsed() >= Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        handle.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_planned_delay_holds_the_answer() {
        let plans = vec![Plan {
            delay: Duration::from_secs(3),
            ..Plan::default()
        }];
        let handle = start(Exchange::new(), plans).await;
        let mut client = connect(&handle).await;
        let started = Instant::now();
        assert_eq!(ask(&mut client, "late").await, "LATE\n");
        assert!(started.elapsed() >= Duration::from_secs(3));
        handle.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_request_and_an_idle_client_are_cut_off() {
        let exchange = Exchange {
            read_timeout: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(30)),
            ..Exchange::new()
        };
        let handle = start(exchange, vec![]).await;
        let mut client = connect(&handle).await;
        let started = Instant::now();
        for byte in b"slowly" {
            if client.get_mut().write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(read_to_end(&mut client).await.is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut idle = connect(&handle).await;
        let started = Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), idle.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() >= Duration::from_secs(30));
        handle.shutdown().await;
    }

    /// The idle limit holds between requests too, not only before the first, and a client
    /// that keeps asking is answered every time.
    #[tokio::test(start_paused = true)]
    async fn a_client_idle_after_its_requests_is_cut_off() {
        let exchange = Exchange {
            idle_timeout: Some(Duration::from_secs(30)),
            ..Exchange::new()
        };
        let handle = start(exchange, vec![]).await;
        let mut client = connect(&handle).await;
        for line in [
            "one",
            "a line longer than the sixty-four bytes of a first read, twice over",
        ] {
            assert_eq!(ask(&mut client, line).await, line.to_uppercase() + "\n");
        }
        let started = Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() >= Duration::from_secs(30));
        handle.shutdown().await;
    }

    /// One request per connection, ended by the client's EOF.
    struct UntilEof;

    impl Decoder for UntilEof {
        type Item = String;
        type Error = std::io::Error;

        fn decode(&mut self, _buf: &mut BytesMut) -> Result<Option<String>, std::io::Error> {
            Ok(None)
        }

        fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<String>, std::io::Error> {
            if buf.is_empty() {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&buf.split()).into_owned();
            Ok(Some(text))
        }
    }

    impl Encoder<String> for UntilEof {
        type Error = std::io::Error;

        fn encode(&mut self, item: String, out: &mut BytesMut) -> Result<(), std::io::Error> {
            out.extend_from_slice(item.as_bytes());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_framed_by_eof_is_answered() {
        let server = Server::bind(crate::ServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let handle = serve(
            server,
            CancellationToken::new(),
            Shout,
            || UntilEof,
            Exchange::new(),
        );
        let mut client = connect(&handle).await;
        client.get_mut().write_all(b"whole message").await.unwrap();
        client.get_mut().shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await, b"WHOLE MESSAGE");
        handle.shutdown().await;
    }
}
