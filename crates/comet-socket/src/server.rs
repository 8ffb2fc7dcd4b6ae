//! The async server (feature `server`): a chain of handlers, dispatched as COMET does.
//!
//! COMET tries its handlers in registration order with `(action, value)`; the first one to
//! return a truthy value answers; a falsy return or an exception passes the message on; when
//! nobody answers, the result is `null`. [`CometServer`] does the same, and unlike COMET serves
//! connections concurrently (a slow handler stalls nobody else), bounds every connection with a
//! deadline, and shuts down cleanly.
//!
//! A handler that panics counts as one that raised: the panic is logged (warn) and the message
//! passes to the next handler, as COMET does with a handler's exception. (The process's panic
//! hook still sees the panic; the default one prints it to stderr.) This needs the default
//! `panic = "unwind"`; with `panic = "abort"` a panicking handler ends the process.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::dispatch::{Incoming, binary_answer, classify, invalid_answer};
use crate::error::{DecodeError, EncodeError, report};
use crate::io::{ReadError, WriteError, linger, read_frame, write_frame};
use crate::json::is_truthy;
use crate::message::{Request, Response};
use crate::wire::{Frame, Limits};

pub use labwire_net::{CancellationToken, ServerConfig, ServerHandle};

/// How long one connection may take, from accept to close, when none is configured.
pub const DEFAULT_CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// What a handler returns when it fails; the message passes to the next handler.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Answers messages. Register handlers with [`CometServerBuilder::handler`].
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

/// Why a connection ended without an answer, or while answering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No complete request arrived (the peer closed, a read failed, or the header was bad).
    #[error("no complete request")]
    Read(#[from] ReadError),
    /// The request's content is malformed; COMET closes without answering.
    #[error("malformed request, closing without an answer")]
    Malformed(#[from] DecodeError),
    /// The answer could not be encoded (too large for the limits).
    #[error("cannot encode the answer")]
    Encode(#[from] EncodeError),
    /// Writing the answer failed.
    #[error("cannot write the answer: {0}")]
    Write(io::Error),
    /// The connection deadline passed.
    #[error("connection deadline of {0:?} passed")]
    DeadlinePassed(Duration),
}

impl From<WriteError> for ConnectionError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Encode(e) => Self::Encode(e),
            WriteError::Io(e) => Self::Write(e),
        }
    }
}

/// Configures a [`CometServer`]; start from [`CometServer::builder`].
#[derive(Default)]
pub struct CometServerBuilder {
    handlers: Vec<Box<dyn DynHandler>>,
    limits: Limits,
    deadline: Option<Duration>,
}

impl fmt::Debug for CometServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CometServerBuilder")
            .field("handlers", &self.handlers.len())
            .field("limits", &self.limits)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl CometServerBuilder {
    /// Appends a handler to the chain; handlers are tried in the order they were added.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handlers.push(Box::new(handler));
        self
    }

    /// Frame size limits for requests and answers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long one connection may take from accept to close
    /// ([`DEFAULT_CONNECTION_DEADLINE`] by default). A connection past it is closed, answered
    /// or not.
    pub fn connection_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The server, ready to [`CometServer::bind`] or to serve streams you accept yourself.
    pub fn build(self) -> CometServer {
        CometServer {
            inner: Arc::new(Inner {
                handlers: self.handlers,
                limits: self.limits,
                deadline: self.deadline.unwrap_or(DEFAULT_CONNECTION_DEADLINE),
            }),
        }
    }
}

struct Inner {
    handlers: Vec<Box<dyn DynHandler>>,
    limits: Limits,
    deadline: Duration,
}

/// A COMET server: a handler chain plus limits. Cheap to clone (shared).
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use comet_socket::server::{CometServer, ServerConfig, handler_fn};
/// use serde_json::Value;
///
/// let server = CometServer::builder()
///     .handler(handler_fn(|action, value| {
///         Ok(if action == "ECHO" { value.clone() } else { Value::Null })
///     }))
///     .build();
/// let handle = server.bind(ServerConfig::new("127.0.0.1:65432".parse().unwrap())).await?;
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CometServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for CometServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CometServer")
            .field("handlers", &self.inner.handlers.len())
            .field("limits", &self.inner.limits)
            .field("deadline", &self.inner.deadline)
            .finish()
    }
}

impl CometServer {
    /// A builder with no handlers (every valid request is answered `{"result": null}`).
    pub fn builder() -> CometServerBuilder {
        CometServerBuilder::default()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The connection deadline in force.
    pub fn connection_deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// Runs the handler chain for `request`: the first truthy result, or `null`. A handler that
    /// fails or panics passes the request to the next one.
    pub async fn dispatch(&self, request: &Request) -> Value {
        for (index, handler) in self.inner.handlers.iter().enumerate() {
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

    /// The answer COMET would give to `frame`: the handler chain's result, the invalid
    /// action/value string, or the binary answer.
    ///
    /// # Errors
    /// [`ConnectionError::Malformed`] when COMET would close without answering.
    pub async fn answer(&self, frame: &Frame) -> Result<Frame, ConnectionError> {
        match classify(frame)? {
            Incoming::Request(request) => {
                tracing::debug!(action = %request.action, value = %request.value, "request");
                let result = self.dispatch(&request).await;
                tracing::debug!(%result, "answer");
                Ok(Response::new(result).to_frame()?)
            }
            Incoming::Invalid(invalid) => {
                tracing::debug!(?invalid.action, ?invalid.value, "invalid request");
                Ok(invalid_answer(&invalid)?)
            }
            Incoming::Binary(frame) => {
                tracing::debug!(content_type = %frame.content_type, len = frame.content.len(), "binary request");
                Ok(binary_answer(&frame))
            }
        }
    }

    /// Serves one connection: reads one request, answers it, closes. Bounded by the connection
    /// deadline.
    ///
    /// # Errors
    /// Why no answer was written; the stream is closed either way.
    pub async fn serve_connection<S>(&self, mut stream: S) -> Result<(), ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = self.inner.deadline;
        let result = tokio::time::timeout(deadline, async {
            let request = read_frame(&mut stream, &self.inner.limits).await?;
            let answer = self.answer(&request).await?;
            write_frame(&mut stream, &answer, &self.inner.limits).await?;
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => {
                // The answer is out; lingering has its own short bound.
                linger(&mut stream).await;
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectionError::DeadlinePassed(deadline)),
        }
    }

    /// Binds `config.addr` and serves every connection in its own task until the returned
    /// handle shuts down.
    ///
    /// # Errors
    /// Binding failed.
    pub async fn bind(&self, config: ServerConfig) -> io::Result<ServerHandle> {
        self.bind_with_token(config, CancellationToken::new()).await
    }

    /// Like [`CometServer::bind`], stopping also when `shutdown` is cancelled.
    ///
    /// # Errors
    /// Binding failed.
    pub async fn bind_with_token(
        &self,
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> io::Result<ServerHandle> {
        let listener = labwire_net::Server::bind(config).await?;
        Ok(self.serve_on(listener, shutdown))
    }

    /// Serves connections accepted by an already bound `listener`.
    pub fn serve_on(
        &self,
        listener: labwire_net::Server,
        shutdown: CancellationToken,
    ) -> ServerHandle {
        let server = self.clone();
        listener.serve_with_token(shutdown, move |stream, _peer, _token| {
            let server = server.clone();
            async move {
                match server.serve_connection(stream).await {
                    Ok(()) => tracing::trace!("answered"),
                    Err(ConnectionError::Read(ReadError::Closed { received: 0 })) => {
                        tracing::trace!("closed before sending anything");
                    }
                    Err(error) => {
                        tracing::debug!(error = %report(&error), "connection ended without an answer");
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain() -> CometServer {
        CometServer::builder()
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
            .build()
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
        let server = CometServer::builder()
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
            .handler(handler_fn(|action, _| Ok(json!(format!("next: {action}")))))
            .build();
        for action in ["SYNC", "ASYNC", "ANY", "OTHER"] {
            let result = server.dispatch(&Request::new(action, json!(1))).await;
            assert_eq!(result, json!(format!("next: {action}")));
        }
    }

    #[tokio::test]
    async fn when_the_only_handler_panics_the_answer_is_null() {
        let server = CometServer::builder()
            .handler(handler_fn(|_, _| -> Result<Value, HandlerError> {
                panic!("always")
            }))
            .build();
        let answer = server
            .answer(&Request::new("X", json!(1)).to_frame().unwrap())
            .await
            .unwrap();
        assert_eq!(
            Response::from_frame(&answer).unwrap(),
            Response::new(Value::Null)
        );
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
        let err = chain()
            .answer(&Frame::json(&b"[\"ECHO\", \"x\"]"[..]))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ConnectionError::Malformed(DecodeError::ContentNotObject)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_at_the_deadline() {
        let server = CometServer::builder()
            .connection_deadline(Duration::from_secs(3))
            .build();
        let (_client, server_side) = tokio::io::duplex(64);
        let err = server.serve_connection(server_side).await.unwrap_err();
        assert!(matches!(err, ConnectionError::DeadlinePassed(_)));
    }
}
