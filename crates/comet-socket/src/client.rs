//! The async client (feature `client`): the labwire client contract (`docs/clients.md`) for
//! COMET, one fresh connection per message.
//!
//! ```no_run
//! # async fn run() -> Result<(), comet_socket::client::Error> {
//! use std::time::Duration;
//! use comet_socket::{Client, Request};
//! use serde_json::json;
//!
//! let client = Client::builder("127.0.0.1:65432")
//!     .call_timeout(Duration::from_secs(2))
//!     .build();
//! match client.call(Request::new("ECHO", json!({"hello": "world"}))).await {
//!     Ok(answer) => println!("{}", answer.result),
//!     Err(e) if e.device_error().is_some() => eprintln!("the device refused: {e}"),
//!     Err(e) if e.is_timeout() => eprintln!("no answer in time: {e}"),
//!     Err(e) => eprintln!("{}", labwire_net::error_chain(&e)),
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};
use tracing::Instrument as _;

use crate::error::{DecodeError, EncodeError};
use crate::io::{ReadError, read_frame, write_bytes};
use crate::json::{self, is_truthy};
use crate::message::{DeviceError, Refusal, Request, Response, check_request, request_content};
use crate::wire::{self, Frame, Limits};

pub use labwire_net::transport::{AsyncStream, Connector, Stream};

/// Connect timeout when none is configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for the answer (writing the request included) when none is configured.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The call timeout's old name.
#[deprecated(since = "0.2.0", note = "use DEFAULT_CALL_TIMEOUT")]
pub const DEFAULT_ANSWER_TIMEOUT: Duration = DEFAULT_CALL_TIMEOUT;

/// Why a call failed.
///
/// The variants every labwire client has, and COMET's own [`Error::Invalid`] and
/// [`Error::BinaryAnswer`]. A message never repeats its cause: print the whole chain with
/// [`labwire_net::error_chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection could not be opened (in time: [`io::ErrorKind::TimedOut`]).
    #[error("cannot connect to {peer}")]
    Connect {
        /// The peer, as the [`Connector`] names it (the address for TCP).
        peer: String,
        /// The connect error.
        source: io::Error,
    },
    /// Writing the request or reading the answer failed.
    #[error("reading or writing the connection failed")]
    Io(#[source] io::Error),
    /// No complete answer within the call timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The device closed the connection before sending anything (a COMET server does that
    /// with content it cannot parse). A close inside the answer is
    /// [`Error::Decode`]`(`[`DecodeError::Truncated`]`)`.
    #[error("the device closed the connection without answering")]
    Closed,
    /// The answer is not a valid frame or message.
    #[error("invalid answer")]
    Decode(#[from] DecodeError),
    /// The request cannot be encoded (too large for the limits); nothing was sent.
    #[error("cannot encode the request")]
    Encode(#[from] EncodeError),
    /// The device answered with a refusal, `{"result": "Error: ..."}`.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The client refused to send the request: a COMET server would hand it to no handler
    /// (an empty action, a falsy value) or would hang on it (falsy content). Nothing was sent.
    #[error("the client refused to send the request")]
    Invalid(#[from] Refusal),
    /// The answer carries binary content where JSON was expected.
    #[error("the answer has binary content (content type {content_type:?})")]
    BinaryAnswer {
        /// The answer's content type.
        content_type: String,
        /// The answer's content.
        content: Bytes,
    },
}

impl Error {
    /// Whether a deadline passed: the call timeout, or the connect timeout.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the connection failed or is out of step. With COMET's one exchange per
    /// connection the next call opens a new one anyway; this tells transport failures from
    /// refusals (by the device, or by the client before sending).
    pub fn is_connection_fatal(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Io(_)
                | Self::Timeout(_)
                | Self::Closed
                | Self::Decode(_)
                | Self::BinaryAnswer { .. }
        )
    }

    /// The device's refusal, if that is what this is.
    pub fn device_error(&self) -> Option<&DeviceError> {
        match self {
            Self::Device(refusal) => Some(refusal),
            _ => None,
        }
    }

    /// Whether the client refused the request before connecting.
    #[deprecated(since = "0.2.0", note = "use matches!(e, Error::Invalid(_))")]
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Invalid(_))
    }
}

/// A COMET client: one fresh connection per message, as COMET's own client does, with
/// deadlines COMET's client lacks.
///
/// Cheap to clone and `Send + Sync`; clones share their configuration (and the connection
/// [`ClientBuilder::connect`] opened, until a call uses it), so calls from many tasks run in
/// parallel.
///
/// ```no_run
/// # async fn run() -> Result<(), comet_socket::client::Error> {
/// use comet_socket::Client;
/// use serde_json::json;
///
/// let client = Client::builder("127.0.0.1:65432").build();
/// let result = client.send("ECHO", &json!({"hello": "world"})).await?;
/// assert_eq!(result, json!({"hello": "world"}));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    connector: Connector,
    connect_timeout: Duration,
    call_timeout: Duration,
    limits: Limits,
    opened: Arc<Opened>,
}

/// The connection [`ClientBuilder::connect`] opened, kept for the first call.
#[derive(Default)]
struct Opened {
    /// Whether `stream` holds one: every call reads it, only the first one locks.
    ready: AtomicBool,
    stream: Mutex<Option<Stream>>,
}

impl Opened {
    fn put(&self, stream: Stream) {
        *self.stream.lock().unwrap_or_else(PoisonError::into_inner) = Some(stream);
        self.ready.store(true, Ordering::Release);
    }

    fn take(&self) -> Option<Stream> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        let stream = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.ready.store(false, Ordering::Release);
        stream
    }
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish()
    }
}

/// Configures a [`Client`]; start from [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    client: Client,
}

impl ClientBuilder {
    /// Connect timeout ([`DEFAULT_CONNECT_TIMEOUT`] by default).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.client.connect_timeout = timeout;
        self
    }

    /// How long every call waits for its answer, writing the request included
    /// ([`DEFAULT_CALL_TIMEOUT`] by default); [`Client::call_with_timeout`] for one call.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.client.call_timeout = timeout;
        self
    }

    /// The call timeout's old name.
    #[deprecated(since = "0.2.0", note = "use call_timeout")]
    #[must_use]
    pub fn answer_timeout(self, timeout: Duration) -> Self {
        self.call_timeout(timeout)
    }

    /// Frame size limits, for requests and answers.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.client.limits = limits;
        self
    }

    /// The configured client. Nothing is opened until the first call.
    pub fn build(self) -> Client {
        self.client
    }

    /// The configured client, once a connection to the device could be opened.
    ///
    /// COMET carries one exchange per connection, so there is nothing to keep open between
    /// calls: the connection opened here is kept for the first call, which sends its request
    /// over it (if the device has closed it meanwhile, the call opens a fresh one). It is
    /// never closed unused: a COMET server takes a connection that closes before a whole
    /// request for a failed exchange and reports it, so opening one only to check would put
    /// an error in the device's log. With [`Connector::once`] this takes the stream, and the
    /// first call uses it.
    ///
    /// # Errors
    /// [`Error::Connect`].
    ///
    /// # Cancel safety
    /// Cancel safe: a connection being opened is dropped with the future.
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.build();
        let stream = client.open_new().await?;
        client.opened.put(stream);
        Ok(client)
    }
}

impl Client {
    /// A builder for a client of `addr`: `"host:port"` (resolved on every call), a
    /// `SocketAddr`, or a [`Connector`] for any other transport.
    pub fn builder(addr: impl Into<Connector>) -> ClientBuilder {
        ClientBuilder {
            client: Self {
                connector: addr.into(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                call_timeout: DEFAULT_CALL_TIMEOUT,
                limits: Limits::default(),
                opened: Arc::default(),
            },
        }
    }

    /// A client of `addr` with the defaults, once a connection could be opened; see
    /// [`ClientBuilder::connect`].
    ///
    /// # Errors
    /// [`Error::Connect`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`ClientBuilder::connect`].
    pub async fn connect(addr: impl Into<Connector>) -> Result<Self, Error> {
        Self::builder(addr).connect().await
    }

    /// A client of `addr` with the defaults; nothing is opened until the first call.
    #[deprecated(since = "0.2.0", note = "use Client::builder(addr).build()")]
    pub fn new(addr: impl Into<Connector>) -> Self {
        Self::builder(addr).build()
    }

    /// The peer, as the [`Connector`] names it (the address for TCP).
    pub fn peer(&self) -> &str {
        self.connector.peer()
    }

    /// The peer's old name.
    #[deprecated(since = "0.2.0", note = "use peer")]
    pub fn addr(&self) -> &str {
        self.peer()
    }

    /// Sends `request` and returns the answer; a refusal by the device
    /// (`{"result": "Error: ..."}`) is [`Error::Device`].
    ///
    /// Refuses, before connecting, an empty action or a falsy `value` (`null`, `false`, `0`,
    /// `""`, `[]`, `{}`) with [`Error::Invalid`]: a COMET server never hands those to a
    /// handler.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_timeout`] tells deadlines apart.
    ///
    /// # Cancel safety
    /// Cancel safe: each call owns its connection, which is dropped with the future.
    pub async fn call(&self, request: Request) -> Result<Response, Error> {
        self.call_with_timeout(request, self.call_timeout).await
    }

    /// [`Client::call`] with this call's own timeout.
    ///
    /// # Errors
    /// As [`Client::call`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::call`].
    pub async fn call_with_timeout(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        self.call_parts(&request.action, &request.value, timeout)
            .await
    }

    /// Sends `value` for `action` and returns the answer's `result` (`null` when no handler on
    /// the server answered): [`Client::call`] without building a [`Request`].
    ///
    /// # Errors
    /// As [`Client::call`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::call`].
    pub async fn send(&self, action: &str, value: &Value) -> Result<Value, Error> {
        let response = self.call_parts(action, value, self.call_timeout).await?;
        Ok(response.result)
    }

    /// [`Client::send`] with the result read as a `T` ([`Response::result_as`]): a struct for
    /// an answer of a documented shape, `Option<T>` where no handler may answer.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), comet_socket::client::Error> {
    /// # let client = comet_socket::Client::builder("127.0.0.1:65432").build();
    /// #[derive(serde::Deserialize)]
    /// struct Environment {
    ///     temperature: f64,
    ///     humidity: f64,
    /// }
    ///
    /// let now: Environment = client.send_as("Environment", &serde_json::json!(true)).await?;
    /// println!("{} °C, {} %", now.temperature, now.humidity);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`]; [`Error::Decode`]`(`[`DecodeError::UnexpectedResult`]`)` when the
    /// result does not fit `T`.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::call`].
    pub async fn send_as<T: DeserializeOwned>(
        &self,
        action: &str,
        value: &Value,
    ) -> Result<T, Error> {
        let response = self.call_parts(action, value, self.call_timeout).await?;
        Ok(response.into_result_as()?)
    }

    /// [`Client::send`] with this call's own timeout.
    ///
    /// # Errors
    /// As [`Client::send`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::send`].
    #[deprecated(
        since = "0.2.0",
        note = "use call_with_timeout(Request::new(action, value), timeout)"
    )]
    pub async fn send_with_timeout(
        &self,
        action: &str,
        value: &Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let response = self.call_parts(action, value, timeout).await?;
        Ok(response.result)
    }

    async fn call_parts(
        &self,
        action: &str,
        value: &Value,
        timeout: Duration,
    ) -> Result<Response, Error> {
        check_request(action, value)?;
        let bytes = wire::encode_json_to_bytes(&request_content(action, value)?, &self.limits)?;
        let span = tracing::debug_span!("comet.call", peer = self.connector.peer(), action);
        async {
            tracing::debug!(%value, "sending request");
            let answer = self.send_bytes(&bytes, timeout).await?;
            let response = self.response(answer)?;
            tracing::debug!(result = %response.result, "answer received");
            Ok(DeviceError::check(response)?)
        }
        .instrument(span)
        .await
    }

    /// Sends `content` as it is (any JSON object, not only `{"action", "value"}`) and returns
    /// the answer as it came: the raw path, where a `{"result": "Error: ..."}` answer is an
    /// `Ok` like any other.
    ///
    /// # Errors
    /// [`Refusal::FalsyContent`] for falsy content, which hangs a real COMET server; otherwise
    /// as [`Client::call`] (but never [`Error::Device`]).
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::call`].
    pub async fn send_content(&self, content: &Value) -> Result<Response, Error> {
        if !is_truthy(content) {
            return Err(Refusal::FalsyContent.into());
        }
        let encoded = json::to_vec(content).map_err(|e| EncodeError::Json(e.to_string()))?;
        let bytes = wire::encode_json_to_bytes(&encoded, &self.limits)?;
        let action = content.get("action").and_then(Value::as_str);
        let span = tracing::debug_span!("comet.call", peer = self.connector.peer(), action);
        async {
            let answer = self.send_bytes(&bytes, self.call_timeout).await?;
            self.response(answer)
        }
        .instrument(span)
        .await
    }

    /// Sends one frame as it is and returns the answering frame, binary or JSON: the way to
    /// send binary content, or JSON that is not a request.
    ///
    /// # Errors
    /// [`Refusal::FalsyContent`], before connecting, for falsy content whatever its content
    /// type ([`Frame::has_falsy_content`]): JSON that is empty or falsy, or binary content of no
    /// bytes — it hangs a real COMET server. Otherwise as [`Client::call`], except that binary
    /// answers are returned and no answer is read as a refusal.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::call`].
    pub async fn exchange(&self, frame: &Frame) -> Result<Frame, Error> {
        if frame.has_falsy_content() {
            return Err(Refusal::FalsyContent.into());
        }
        // Encode before connecting: a request over the limits must not reach the server at all.
        let bytes = wire::encode_to_bytes(frame, &self.limits)?;
        let span = tracing::debug_span!(
            "comet.call",
            peer = self.connector.peer(),
            content_type = %frame.content_type
        );
        self.send_bytes(&bytes, self.call_timeout)
            .instrument(span)
            .await
    }

    /// Sends an encoded frame over a fresh connection and reads the answering frame.
    async fn send_bytes(&self, bytes: &[u8], timeout: Duration) -> Result<Frame, Error> {
        let mut stream = self.open().await?;
        let exchange = async {
            write_bytes(&mut stream, bytes).await.map_err(Error::Io)?;
            read_frame(&mut stream, &self.limits)
                .await
                .map_err(|e| match e {
                    ReadError::Closed { received: 0 } => Error::Closed,
                    ReadError::Closed { received } => {
                        Error::Decode(DecodeError::Truncated { received })
                    }
                    ReadError::Decode(source) => Error::Decode(source),
                    ReadError::Io(source) => Error::Io(source),
                })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// The connection [`ClientBuilder::connect`] opened if it is still open, else a new one.
    async fn open(&self) -> Result<Stream, Error> {
        if let Some(mut stream) = self.opened.take() {
            if still_open(&mut stream).await {
                return Ok(stream);
            }
            tracing::debug!("the connection opened in advance was closed; opening another");
        }
        self.open_new().await
    }

    async fn open_new(&self) -> Result<Stream, Error> {
        self.connector
            .connect(self.connect_timeout)
            .await
            .map_err(|source| Error::Connect {
                peer: self.connector.peer().to_owned(),
                source,
            })
    }

    fn response(&self, answer: Frame) -> Result<Response, Error> {
        if !answer.is_json() {
            return Err(Error::BinaryAnswer {
                content_type: answer.content_type,
                content: answer.content,
            });
        }
        Ok(Response::from_frame(&answer)?)
    }
}

/// Whether a connection opened in advance can still carry a request: nothing to read yet
/// (a device sends nothing before the request; an end of stream or an error means it left).
async fn still_open(stream: &mut Stream) -> bool {
    poll_fn(|cx| {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        Poll::Ready(Pin::new(&mut *stream).poll_read(cx, &mut buf).is_pending())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn oversized_requests_fail_before_connecting() {
        // Port 9 on loopback has no listener: reaching the connect would give a Connect error.
        let client = Client::builder("127.0.0.1:9")
            .limits(Limits {
                max_content_length: 16,
                ..Limits::default()
            })
            .build();
        let err = client
            .send("ECHO", &json!("x".repeat(100)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Encode(EncodeError::ContentTooLong { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refusals_happen_before_any_connection() {
        // Nothing listens on port 9 here, and the refusal must come before trying.
        let client = Client::builder("127.0.0.1:9").build();
        for value in [
            json!(null),
            json!(false),
            json!(0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            let err = client.send("ECHO", &value).await.unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{value}: {err}");
        }
        let err = client.send("", &json!("x")).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(Refusal::EmptyAction)));
        let err = client.send_content(&json!({})).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(Refusal::FalsyContent)));
        for falsy in [
            Frame::json(Bytes::new()),
            Frame::json(&b"[]"[..]),
            Frame::binary(wire::CONTENT_TYPE_CLIENT_BINARY, Bytes::new()),
        ] {
            let err = client.exchange(&falsy).await.unwrap_err();
            assert!(
                matches!(err, Error::Invalid(Refusal::FalsyContent)),
                "{falsy:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn bare_non_finite_content_is_truthy_and_not_refused() {
        // Python reads it as a truthy float: COMET closes the connection (it is not an object)
        // rather than hang, so it may go out. Nothing listens on port 9: a Connect error shows
        // the client tried.
        let client = Client::builder("127.0.0.1:9").build();
        let err = client
            .exchange(&Frame::json(&b"NaN"[..]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
    }
}
