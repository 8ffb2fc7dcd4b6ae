//! The device side (feature `server`): any [`Service`] that answers COMET's [`Incoming`]
//! requests with an [`Answer`], served by [`serve`] / [`serve_until`] (or a [`ServerBuilder`]
//! for the listener, limits and deadline), and [`Handlers`], a chain of handlers dispatched as
//! COMET does.
//!
//! Serving is `labwire-net`'s one loop ([`labwire_net::service::serve`]) with [`ServerCodec`]
//! and one exchange per connection: the request is read, the service answers, the answer is
//! written (or nothing, for [`Answer::Close`]), the connection is closed. For [`Answer::Hold`]
//! nothing is written and the connection is kept open, parked on the socket and a timer, until
//! the client leaves or the connection deadline passes. Unlike COMET,
//! connections are served concurrently (a slow handler stalls nobody else), every step is
//! bounded by a deadline, and shutdown is clean.
//!
//! COMET tries its handlers in registration order with `(action, value)`; the first one to
//! return a truthy value answers; a falsy return or an exception passes the message on; when
//! nobody answers, the result is `null`. [`Handlers`] does the same.
//!
//! A handler that panics counts as one that raised: the panic is logged (warn) and the message
//! passes to the next handler, as COMET does with a handler's exception. (The process's panic
//! hook still sees the panic; the default one prints it to stderr.) This needs the default
//! `panic = "unwind"`; with `panic = "abort"` a panicking handler ends the process.
//!
//! Your own device or gateway is a [`Service`] too:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::net::SocketAddr;
//! use comet_socket::server::{Answer, Incoming, Service, serve};
//! use serde_json::json;
//!
//! struct Thermometer;
//!
//! impl Service for Thermometer {
//!     type Request = Incoming;
//!     type Response = Answer;
//!
//!     async fn call(&self, _peer: SocketAddr, request: Incoming) -> Answer {
//!         match request {
//!             Incoming::Request(r) if r.action == "Temperature" => Answer::result(json!(21.5)),
//!             other => other.default_answer(),
//!         }
//!     }
//! }
//!
//! let handle = serve("127.0.0.1:0".parse().unwrap(), Thermometer).await?;
//! println!("listening on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use labwire_net::service::{Action, Plan};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::ServerCodec;
use crate::error::report;
use crate::json::is_truthy;
use crate::message::Request;
use crate::wire::Limits;

pub use crate::dispatch::{Answer, Incoming};
pub use labwire_net::service::{ConnectionEnd, Exchange};
pub use labwire_net::{CancellationToken, PlannedService, ServerConfig, ServerHandle, Service};

/// How long each step of a connection may take when no deadline is configured: waiting for
/// the request, receiving it, answering it, and sending the answer.
pub const DEFAULT_CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// What a handler returns when it fails; the message passes to the next handler.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Answers messages. Chain handlers with [`Handlers::handler`].
///
/// Return a truthy value to answer, a falsy one (`null`, `false`, `0`, `""`, `[]`, `{}`) to
/// let the next handler try, or an error (logged, then the next handler tries). A handler that
/// panics is treated like one that returned an error.
///
/// For closures see [`handler_fn`] and [`async_handler_fn`]; for state, implement it:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use comet_socket::server::{Handler, HandlerError};
/// use serde_json::{Value, json};
///
/// struct Counter(AtomicU64);
///
/// impl Handler for Counter {
///     async fn handle(&self, action: &str, _value: &Value) -> Result<Value, HandlerError> {
///         if action != "COUNT" {
///             return Ok(Value::Null); // falsy: the next handler tries
///         }
///         Ok(json!(self.0.fetch_add(1, Ordering::Relaxed) + 1))
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles `value` sent for `action`.
    fn handle(
        &self,
        action: &str,
        value: &Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`Handler`], so one chain can hold handlers of different types.
trait DynHandler: Send + Sync {
    fn handle_dyn<'a>(
        &'a self,
        action: &'a str,
        value: &'a Value,
    ) -> BoxFuture<'a, Result<Value, HandlerError>>;
}

impl<H: Handler> DynHandler for H {
    fn handle_dyn<'a>(
        &'a self,
        action: &'a str,
        value: &'a Value,
    ) -> BoxFuture<'a, Result<Value, HandlerError>> {
        Box::pin(self.handle(action, value))
    }
}

/// Why a handler call panicked, for the log.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}

/// Polls a handler's future, turning a panic inside it into an `Err` with the panic payload.
struct CatchPanic<'a>(Option<BoxFuture<'a, Result<Value, HandlerError>>>);

impl Future for CatchPanic<'_> {
    type Output = Result<Result<Value, HandlerError>, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The boxed future is `Unpin`, so is this wrapper.
        let slot = &mut self.get_mut().0;
        let Some(future) = slot.as_mut() else {
            // Polled again after completing: stay pending rather than panic.
            return Poll::Pending;
        };
        // Unwind safety: after a panic the future is dropped and never polled again; what the
        // handler itself shares is its own business, as with any panic in a task.
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                *slot = None;
                Poll::Ready(Ok(result))
            }
            Err(payload) => {
                // Dropping a panicked future may panic again; contain that too.
                let future = slot.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
                Poll::Ready(Err(payload))
            }
        }
    }
}

/// Runs one handler on one message; a panic, whether while creating the future or while
/// polling it, comes back as `Err` with the panic payload.
async fn call_handler(
    handler: &dyn DynHandler,
    action: &str,
    value: &Value,
) -> Result<Result<Value, HandlerError>, Box<dyn Any + Send>> {
    let future = catch_unwind(AssertUnwindSafe(|| handler.handle_dyn(action, value)))?;
    CatchPanic(Some(future)).await
}

/// A [`Handler`] made from a plain function; see [`handler_fn`].
#[derive(Debug, Clone)]
pub struct FnHandler<F>(F);

/// A handler from a synchronous closure `|action, value| -> Result<Value, HandlerError>`.
///
/// ```
/// use comet_socket::server::handler_fn;
/// use serde_json::Value;
///
/// let echo = handler_fn(|action, value| {
///     Ok(if action == "ECHO" { value.clone() } else { Value::Null })
/// });
/// ```
pub fn handler_fn<F>(f: F) -> FnHandler<F>
where
    F: Fn(&str, &Value) -> Result<Value, HandlerError> + Send + Sync + 'static,
{
    FnHandler(f)
}

impl<F> Handler for FnHandler<F>
where
    F: Fn(&str, &Value) -> Result<Value, HandlerError> + Send + Sync + 'static,
{
    fn handle(
        &self,
        action: &str,
        value: &Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send {
        std::future::ready((self.0)(action, value))
    }
}

/// A [`Handler`] made from an async function; see [`async_handler_fn`].
#[derive(Debug, Clone)]
pub struct AsyncFnHandler<F>(F);

/// A handler from an async closure taking owned `(action, value)`.
///
/// ```
/// use comet_socket::server::async_handler_fn;
/// use serde_json::{Value, json};
///
/// let slow = async_handler_fn(|action: String, _value: Value| async move {
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///     Ok(json!(format!("done {action}")))
/// });
/// ```
pub fn async_handler_fn<F, Fut>(f: F) -> AsyncFnHandler<F>
where
    F: Fn(String, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    AsyncFnHandler(f)
}

impl<F, Fut> Handler for AsyncFnHandler<F>
where
    F: Fn(String, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    fn handle(
        &self,
        action: &str,
        value: &Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send {
        (self.0)(action.to_owned(), value.clone())
    }
}

/// A chain of [`Handler`]s, dispatched as COMET does: the [`Service`] most COMET servers are.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use comet_socket::server::{Handlers, handler_fn, serve};
/// use serde_json::{Value, json};
///
/// let handlers = Handlers::new()
///     .handler(handler_fn(|action, value| {
///         Ok(if action == "ECHO" { value.clone() } else { Value::Null })
///     }))
///     .handler(handler_fn(|action, _| {
///         Ok(if action == "Status" { json!("running") } else { Value::Null })
///     }));
/// let handle = serve("127.0.0.1:65432".parse().unwrap(), handlers).await?;
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Handlers {
    chain: Vec<Box<dyn DynHandler>>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("len", &self.chain.len())
            .finish()
    }
}

impl Handlers {
    /// No handlers: every valid request is answered `{"result": null}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a handler to the chain; handlers are tried in the order they were added.
    #[must_use]
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.chain.push(Box::new(handler));
        self
    }

    /// How many handlers the chain holds.
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Whether the chain holds no handler.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// Runs the chain for `request`: the first truthy result, or `null`. A handler that fails
    /// or panics passes the request to the next one.
    pub async fn dispatch(&self, request: &Request) -> Value {
        for (index, handler) in self.chain.iter().enumerate() {
            match call_handler(&**handler, &request.action, &request.value).await {
                Ok(Ok(result)) if is_truthy(&result) => {
                    tracing::trace!(index, "handler answered");
                    return result;
                }
                Ok(Ok(_)) => tracing::trace!(index, "handler passed"),
                Ok(Err(error)) => {
                    tracing::debug!(index, action = %request.action, error = %report(&*error), "handler failed, trying the next");
                }
                Err(payload) => {
                    tracing::warn!(index, action = %request.action, panic = panic_message(&*payload), "handler panicked, trying the next");
                }
            }
        }
        Value::Null
    }

    /// The answer COMET would give to `incoming`: the chain's result for a valid request,
    /// otherwise [`Incoming::default_answer`].
    pub async fn answer(&self, incoming: Incoming) -> Answer {
        match incoming {
            Incoming::Request(request) => {
                tracing::debug!(action = %request.action, value = %request.value, "request");
                let result = self.dispatch(&request).await;
                tracing::debug!(%result, "answer");
                Answer::result(result)
            }
            other => {
                tracing::debug!(request = ?other, "not for the handlers");
                other.default_answer()
            }
        }
    }
}

impl Service for Handlers {
    type Request = Incoming;
    type Response = Answer;

    async fn call(&self, _peer: SocketAddr, request: Incoming) -> Answer {
        self.answer(request).await
    }
}

/// How `labwire-net`'s serve loop is to send `answer`: [`Answer::Hold`] becomes
/// [`Action::NoReply`] with no delay, whatever `plan` said (nothing is sent and the connection
/// stays open until the client leaves or the deadline); any other answer keeps `plan`.
///
/// [`serve`] and [`ServerBuilder`] apply it. A server on `labwire-net`'s loop of its own (a
/// simulator with a fault layer) applies it to its service's answers.
pub fn with_hold(answer: Answer, plan: Plan) -> (Answer, Plan) {
    match answer {
        Answer::Hold => (
            Answer::Hold,
            Plan {
                delay: Duration::ZERO,
                action: Action::NoReply,
            },
        ),
        answer => (answer, plan),
    }
}

/// The [`Exchange`] of a COMET server: one request and its answer per connection, with
/// `deadline` for waiting for the request, for receiving it and for sending the answer.
pub fn exchange(deadline: Duration) -> Exchange {
    Exchange {
        once: true,
        read_timeout: deadline,
        idle_timeout: Some(deadline),
        write_timeout: deadline,
        quiet_period: None,
    }
}

/// Where and how a COMET [`Service`] is served: the listener, frame limits and the deadline.
/// Start from [`ServerBuilder::new`], finish with [`ServerBuilder::serve`] or
/// [`ServerBuilder::serve_until`].
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use std::time::Duration;
/// use comet_socket::Limits;
/// use comet_socket::server::{Handlers, ServerBuilder};
///
/// let handle = ServerBuilder::new("127.0.0.1:65432".parse().unwrap())
///     .limits(Limits { max_content_length: 1 << 20, ..Limits::default() })
///     .connection_deadline(Duration::from_secs(5))
///     .serve(Handlers::new())
///     .await?;
/// # handle.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: ServerConfig,
    limits: Limits,
    deadline: Duration,
}

impl ServerBuilder {
    /// Listens on `addr` (port 0 picks a free port), with the default backlog, connection
    /// limit, frame limits and [`DEFAULT_CONNECTION_DEADLINE`].
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_config(ServerConfig::new(addr))
    }

    /// Listens as `config` says.
    pub fn with_config(config: ServerConfig) -> Self {
        Self {
            config,
            limits: Limits::default(),
            deadline: DEFAULT_CONNECTION_DEADLINE,
        }
    }

    /// Listen backlog ([`labwire_net::DEFAULT_BACKLOG`] by default).
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.config.backlog = backlog;
        self
    }

    /// Connections served at once; a client that connects while that many are live is
    /// refused at once (accepted and closed, with a rate-limited warning).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// Frame size limits for requests and answers.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long each step of a connection may take ([`DEFAULT_CONNECTION_DEADLINE`] by
    /// default): waiting for the request, receiving it, the service's answer, sending it. A
    /// connection past it is closed without an answer.
    #[must_use]
    pub fn connection_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Binds and serves `service` until the returned handle is shut down.
    ///
    /// # Errors
    /// Binding failed.
    pub async fn serve<S>(self, service: S) -> io::Result<ServerHandle>
    where
        S: PlannedService<Request = Incoming, Response = Answer>,
    {
        self.serve_until(service, CancellationToken::new()).await
    }

    /// Like [`ServerBuilder::serve`], stopping also when `shutdown` is cancelled.
    ///
    /// # Errors
    /// Binding failed.
    pub async fn serve_until<S>(
        self,
        service: S,
        shutdown: CancellationToken,
    ) -> io::Result<ServerHandle>
    where
        S: PlannedService<Request = Incoming, Response = Answer>,
    {
        let server = labwire_net::Server::bind(self.config).await?;
        let budget = server
            .frame_budget()
            .clone()
            .with_claimed_length(crate::wire::claimed_length);
        let server = server.with_frame_budget(budget);
        let limits = self.limits;
        let service = Bounded {
            service,
            deadline: self.deadline,
        };
        Ok(labwire_net::service::serve(
            server,
            shutdown,
            service,
            move || ServerCodec::with_limits(limits),
            exchange(self.deadline),
        ))
    }

    /// Serves one connection opened elsewhere, over any transport (the server end of a
    /// [`tokio::io::duplex`] pair, a TLS stream, an SSH channel), with this builder's frame
    /// limits and deadline (its listener settings do not apply): one exchange, as over TCP.
    /// `peer` is what `service` is told the client is.
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled exchange leaves the stream out of step; drop it.
    pub async fn serve_stream<T, S>(
        &self,
        stream: &mut T,
        peer: SocketAddr,
        service: S,
    ) -> ConnectionEnd
    where
        T: AsyncRead + AsyncWrite + Unpin,
        S: PlannedService<Request = Incoming, Response = Answer>,
    {
        let service = Bounded {
            service,
            deadline: self.deadline,
        };
        labwire_net::service::serve_connection(
            stream,
            peer,
            &service,
            ServerCodec::with_limits(self.limits),
            &exchange(self.deadline),
        )
        .await
    }
}

/// Serves one connection opened elsewhere, over any transport, with the defaults of
/// [`ServerBuilder::new`]; see [`ServerBuilder::serve_stream`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use comet_socket::server::{Handlers, handler_fn, serve_stream};
/// use comet_socket::{Client, Connector, Request};
/// use serde_json::json;
///
/// let (near, mut far) = tokio::io::duplex(64 * 1024);
/// let echo = Handlers::new().handler(handler_fn(|_, value| Ok(value.clone())));
/// let server = tokio::spawn(async move {
///     serve_stream(&mut far, "127.0.0.1:0".parse().unwrap(), echo).await
/// });
/// let client = Client::builder(Connector::once(near)).build();
/// let answer = client.call(Request::new("ECHO", json!("hi"))).await.unwrap();
/// assert_eq!(answer.result, json!("hi"));
/// server.await.unwrap();
/// # }
/// ```
///
/// # Cancel safety
/// Not cancel safe, as [`ServerBuilder::serve_stream`].
pub async fn serve_stream<T, S>(stream: &mut T, peer: SocketAddr, service: S) -> ConnectionEnd
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: PlannedService<Request = Incoming, Response = Answer>,
{
    // No listener: the address is never bound.
    ServerBuilder::new(SocketAddr::from(([127, 0, 0, 1], 0)))
        .serve_stream(stream, peer, service)
        .await
}

/// Binds `addr` and serves `service` with the defaults of [`ServerBuilder::new`], until the
/// returned handle is shut down.
///
/// # Errors
/// Binding failed.
pub async fn serve<S>(addr: SocketAddr, service: S) -> io::Result<ServerHandle>
where
    S: PlannedService<Request = Incoming, Response = Answer>,
{
    ServerBuilder::new(addr).serve(service).await
}

/// Like [`serve`], stopping also when `shutdown` is cancelled.
///
/// # Errors
/// Binding failed.
pub async fn serve_until<S>(
    addr: SocketAddr,
    service: S,
    shutdown: CancellationToken,
) -> io::Result<ServerHandle>
where
    S: PlannedService<Request = Incoming, Response = Answer>,
{
    ServerBuilder::new(addr)
        .serve_until(service, shutdown)
        .await
}

/// A service whose answer must come within the deadline, else the connection is closed
/// without one (the serve loop bounds reading and writing, not the service).
struct Bounded<S> {
    service: S,
    deadline: Duration,
}

impl<S> PlannedService for Bounded<S>
where
    S: PlannedService<Request = Incoming, Response = Answer>,
{
    type Request = Incoming;
    type Response = Answer;

    async fn call(&self, peer: SocketAddr, request: Incoming) -> (Answer, Plan) {
        let answer = PlannedService::call(&self.service, peer, request);
        match tokio::time::timeout(self.deadline, answer).await {
            Ok((answer, plan)) => with_hold(answer, plan),
            Err(_) => {
                tracing::debug!(deadline = ?self.deadline, "no answer within the deadline, closing");
                (Answer::Close, Plan::default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain() -> Handlers {
        Handlers::new()
            .handler(handler_fn(|action, _| {
                if action == "FAIL" {
                    Err("boom".into())
                } else {
                    Ok(Value::Null)
                }
            }))
            .handler(handler_fn(|action, _| {
                Ok(if action == "EMPTY" {
                    json!("")
                } else {
                    Value::Null
                })
            }))
            .handler(async_handler_fn(|action: String, _| async move {
                Ok(if action == "ECHO" {
                    Value::Null
                } else {
                    json!("last")
                })
            }))
    }

    #[tokio::test]
    async fn errors_and_falsy_answers_pass_to_the_next_handler() {
        let server = chain();
        for action in ["FAIL", "EMPTY", "OTHER"] {
            let result = server.dispatch(&Request::new(action, json!("x"))).await;
            assert_eq!(result, json!("last"), "{action}");
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_passes_the_message_to_the_next_like_an_error() {
        let server = Handlers::new()
            // Panics while the handler is called (a synchronous closure).
            .handler(handler_fn(|action, _| {
                assert_ne!(action, "SYNC", "sync handler panicked");
                Ok(Value::Null)
            }))
            // Panics while its future is polled, after a suspension point.
            .handler(async_handler_fn(|action: String, _| async move {
                tokio::task::yield_now().await;
                assert_ne!(action, "ASYNC", "async handler panicked");
                Ok(Value::Null)
            }))
            // Panics with a non-string payload.
            .handler(handler_fn(|action, _| {
                if action == "ANY" {
                    std::panic::panic_any(42_u8);
                }
                Ok(Value::Null)
            }))
            .handler(handler_fn(|action, _| Ok(json!(format!("next: {action}")))));
        for action in ["SYNC", "ASYNC", "ANY", "OTHER"] {
            let result = server.dispatch(&Request::new(action, json!(1))).await;
            assert_eq!(result, json!(format!("next: {action}")));
        }
    }

    #[tokio::test]
    async fn when_the_only_handler_panics_the_answer_is_null() {
        let server = Handlers::new().handler(handler_fn(|_, _| -> Result<Value, HandlerError> {
            panic!("always")
        }));
        let answer = server
            .answer(Incoming::Request(Request::new("X", json!(1))))
            .await;
        assert_eq!(answer, Answer::result(Value::Null));
    }

    #[test]
    fn panic_payloads_are_described() {
        assert_eq!(panic_message(&"text"), "text");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&1_u8), "a non-string panic payload");
    }

    #[tokio::test]
    async fn nobody_answering_gives_null() {
        let result = chain().dispatch(&Request::new("ECHO", json!("x"))).await;
        assert_eq!(result, Value::Null);
    }

    #[tokio::test]
    async fn malformed_content_gets_no_answer() {
        let frame = crate::Frame::json(&b"[\"ECHO\", \"x\"]"[..]);
        let answer = chain().answer(Incoming::from_frame(&frame)).await;
        assert_eq!(answer, Answer::Close);
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_at_the_deadline() {
        let (_client, mut server_side) = tokio::io::duplex(64);
        let end = labwire_net::service::serve_connection(
            &mut server_side,
            peer(),
            &chain(),
            ServerCodec::new(),
            &exchange(Duration::from_secs(3)),
        )
        .await;
        assert!(matches!(end, ConnectionEnd::Idle(_)), "{end}");
    }

    /// Answers every request with [`Answer::Hold`].
    struct Holding;

    impl Service for Holding {
        type Request = Incoming;
        type Response = Answer;

        async fn call(&self, _peer: SocketAddr, _request: Incoming) -> Answer {
            Answer::Hold
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_keeps_the_connection_open_until_the_deadline() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let service = Bounded {
            service: Holding,
            deadline: Duration::from_secs(3),
        };
        let (mut client, mut server_side) = tokio::io::duplex(1024);
        let request = Request::new("X", json!(1)).to_frame().unwrap();
        let bytes = crate::wire::encode_to_bytes(&request, &Limits::default()).unwrap();
        client.write_all(&bytes).await.unwrap();
        let started = tokio::time::Instant::now();
        let end = labwire_net::service::serve_connection(
            &mut server_side,
            peer(),
            &service,
            ServerCodec::new(),
            &exchange(Duration::from_secs(3)),
        )
        .await;
        assert!(matches!(end, ConnectionEnd::Fault), "{end}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(server_side);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
    }

    #[test]
    fn hold_overrides_the_plan_and_other_answers_keep_it() {
        let delayed = Plan {
            delay: Duration::from_secs(1),
            action: Action::Close,
        };
        assert_eq!(
            with_hold(Answer::Hold, delayed.clone()).1,
            Plan {
                delay: Duration::ZERO,
                action: Action::NoReply
            }
        );
        assert_eq!(with_hold(Answer::Close, delayed.clone()).1, delayed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_never_answers_is_cut_off_at_the_deadline() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hanging = Handlers::new().handler(async_handler_fn(|_, _| async {
            std::future::pending::<()>().await;
            Ok(Value::Null)
        }));
        let service = Bounded {
            service: hanging,
            deadline: Duration::from_secs(3),
        };
        let (mut client, mut server_side) = tokio::io::duplex(1024);
        let request = Request::new("X", json!(1)).to_frame().unwrap();
        let bytes = crate::wire::encode_to_bytes(&request, &Limits::default()).unwrap();
        client.write_all(&bytes).await.unwrap();
        let started = tokio::time::Instant::now();
        let end = labwire_net::service::serve_connection(
            &mut server_side,
            peer(),
            &service,
            ServerCodec::new(),
            &exchange(Duration::from_secs(3)),
        )
        .await;
        assert!(matches!(end, ConnectionEnd::Done), "{end}");
        // Cut off at the deadline, then at most labwire-net's one-second linger for a client
        // that keeps its side open.
        let elapsed = started.elapsed();
        assert!(
            (Duration::from_secs(3)..=Duration::from_secs(4)).contains(&elapsed),
            "{elapsed:?}"
        );
        drop(server_side);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
    }
}
