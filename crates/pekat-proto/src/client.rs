//! The async client (feature `client`), with the shape every labwire client has
//! (`docs/clients.md`): a builder, `call`/`call_with_timeout`, one [`Error`] vocabulary, any
//! transport ([`Connector`]), a `pekat.call` span per call.
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use pekat_proto::{Client, Request};
//!
//! let client = Client::builder("192.168.1.20:7002").call_timeout(Duration::from_secs(2)).build();
//! match client.call(Request::status(r"C:\Users\pekat\PekatVisionProjects\Test Project 1")).await {
//!     Ok(answer) => println!("{answer:?}"),
//!     Err(e) if e.device_error().is_some() => eprintln!("the device refused: {e}"),
//!     Err(e) if e.is_timeout() => eprintln!("no answer in time: {e}"),
//!     Err(e) => eprintln!("{}", labwire_net::error_chain(&e)),
//! }
//! # }
//! ```

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use labwire_net::transport::{Connector, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::codec::ClientCodec;
use crate::error::{DecodeError, DeviceError, EncodeError};
use crate::message::{
    Command, Dialect, ProjectState, Reply, Request, RequestId, Response, Terminator,
};
use crate::wire::{self, Limits};

/// Default deadline for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline for an answer ([`ClientConfig::call_timeout`]).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for the answer to `start`, `stop` and `switch`
/// ([`ClientConfig::blocking_timeout`]). Generous because a real Projects Manager answers them
/// only once the project is up (or down), which can take tens of seconds.
pub const DEFAULT_BLOCKING_TIMEOUT: Duration = Duration::from_secs(30);
/// The former default deadline for every answer, now [`DEFAULT_BLOCKING_TIMEOUT`] for the
/// commands that need it and [`DEFAULT_CALL_TIMEOUT`] for the others.
#[deprecated(
    since = "0.2.0",
    note = "use DEFAULT_CALL_TIMEOUT or DEFAULT_BLOCKING_TIMEOUT"
)]
pub const DEFAULT_ANSWER_TIMEOUT: Duration = DEFAULT_BLOCKING_TIMEOUT;
/// Default time [`Client::start_and_wait`] / [`Client::stop_and_wait`] wait for an answer to
/// `start`/`stop` before they go on polling `status` without one.
pub const DEFAULT_NO_ANSWER_GRACE: Duration = Duration::from_secs(2);
/// Default pause between two `status` polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why a call failed: the transport, the wire, or the device's own refusal
/// ([`Error::Device`]). The same variants as every labwire client's `Error`, plus PEKAT's
/// [`Error::IdMismatch`] and [`Error::WaitTimedOut`].
///
/// A cause appears once: print the whole chain with [`labwire_net::error_chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be made within the connect timeout.
    #[error("cannot connect to {peer}")]
    Connect {
        /// The peer tried, as the [`Connector`] names it (`host:port` for TCP).
        peer: String,
        /// Why (`TimedOut`, `ConnectionRefused`, a TLS error, ...).
        #[source]
        source: io::Error,
    },
    /// Writing or reading failed. The connection has been dropped.
    #[error("I/O error")]
    Io(#[source] io::Error),
    /// No (complete) answer within the deadline. The connection has been dropped.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection without answering.
    #[error("the server closed the connection without answering")]
    Closed,
    /// The answer could not be decoded. The connection has been dropped.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The request could not be encoded; nothing was sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The device answered, but not with success for this call (`not-found`, `error:port`,
    /// `Unknown command`, an answer the protocol does not know, ...). The connection is fine.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A 3.19 answer echoed another request's id: the connection was out of step and has been
    /// dropped.
    #[error("sent request id {sent} but the answer is for {received}")]
    IdMismatch {
        /// The id sent.
        sent: RequestId,
        /// The id echoed.
        received: RequestId,
    },
    /// [`Client::start_and_wait`] / [`Client::stop_and_wait`]: the project did not reach the
    /// state in time.
    #[error("the project did not become {target} within {waited:?} (last status: {last:?})")]
    WaitTimedOut {
        /// The state waited for.
        target: ProjectState,
        /// The last state reported, if any status answer came.
        last: Option<ProjectState>,
        /// How long was waited.
        waited: Duration,
    },
}

impl Error {
    /// Whether a deadline passed (connect, answer, or waiting for a state).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::WaitTimedOut { .. } => true,
            Self::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the connection is gone (or was never there): the next call opens a new one.
    pub fn is_connection_fatal(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Io(_)
                | Self::Timeout(_)
                | Self::Closed
                | Self::Decode(_)
                | Self::IdMismatch { .. }
        )
    }

    /// The device's refusal, when that is what this error is.
    pub fn device_error(&self) -> Option<&DeviceError> {
        match self {
            Self::Device(error) => Some(error),
            _ => None,
        }
    }

    /// Whether the server gave no answer: it timed out or closed the connection (a 3.19
    /// server may not answer `start`/`stop` at all).
    pub fn is_no_answer(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Closed)
    }
}

/// How a [`Client`] talks. Public fields; start from [`ClientConfig::default`] (or use
/// [`ClientBuilder`]).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Dialect of requests (answers are understood in either). Default 3.18.
    pub dialect: Dialect,
    /// Deadline to connect. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Deadline for each answer, but those of `start`, `stop` and `switch`. Default
    /// [`DEFAULT_CALL_TIMEOUT`].
    pub call_timeout: Duration,
    /// Deadline for the answer to `start`, `stop` and `switch`, which a real Projects Manager
    /// gives only once the project is up (or down). Default [`DEFAULT_BLOCKING_TIMEOUT`].
    pub blocking_timeout: Duration,
    /// Keep one connection open across calls instead of a fresh connection per request
    /// (the default, and what integrators of the real server do). Calls then take turns.
    /// Needed for a [`Connector::once`] stream, which can be opened only once.
    pub keep_connection: bool,
    /// Send an `<id>.` prefix with every request (3.19 only) and check the echo. Default off.
    pub request_ids: bool,
    /// What is written after each request, in the same write. Default [`Terminator::None`],
    /// as in the vendor's example.
    pub terminator: Terminator,
    /// The longest request sent (typed or raw, terminator not counted) and the longest answer
    /// accepted. Default [`Limits::default`].
    pub limits: Limits,
    /// How long the `*_and_wait` helpers wait for an answer to `start`/`stop` before polling
    /// `status` without one. Default [`DEFAULT_NO_ANSWER_GRACE`].
    pub no_answer_grace: Duration,
    /// Pause between `status` polls. Default [`DEFAULT_POLL_INTERVAL`].
    pub poll_interval: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            dialect: Dialect::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            blocking_timeout: DEFAULT_BLOCKING_TIMEOUT,
            keep_connection: false,
            request_ids: false,
            terminator: Terminator::None,
            limits: Limits::default(),
            no_answer_grace: DEFAULT_NO_ANSWER_GRACE,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl ClientConfig {
    /// The deadline a call of `command` gets by default.
    pub fn timeout_for(&self, command: Command) -> Duration {
        match command {
            Command::Start | Command::Stop | Command::Switch => self.blocking_timeout,
            Command::Status => self.call_timeout,
        }
    }
}

/// A PEKAT Projects Manager client. Cheap to clone; clones share the configuration and (with
/// [`ClientConfig::keep_connection`]) the connection.
///
/// Every method is **cancel safe** in the sense that matters here: dropping a call's future
/// never leaves a half-read answer behind, because the connection it used is dropped with it.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    config: ClientConfig,
    kept: tokio::sync::Mutex<Option<Connection>>,
    /// Whether `kept` may hold a connection although the client does not keep connections:
    /// one opened by [`ClientBuilder::connect`], for the first call.
    opened_early: AtomicBool,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Connection {
    stream: Stream,
    buf: BytesMut,
}

impl Connection {
    /// Whether the connection is still open with nothing unread on it, as far as can be told
    /// without waiting (the last operation on a kept connection is a successful read, so the
    /// probe really asks the stream).
    fn is_idle_and_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            tracing::debug!("unread bytes on the kept connection; reconnecting");
            return false;
        }
        let mut probe = [0u8; 1];
        let read = match &mut self.stream {
            Stream::Tcp(stream) => match stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                other => other,
            },
            // Any other stream is asked once, without a waker that matters: `Pending` means
            // nothing has arrived and it is open. The next real read registers its own waker.
            Stream::Other(stream) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                match std::pin::Pin::new(stream).poll_read(&mut cx, &mut buf) {
                    Poll::Pending => return true,
                    Poll::Ready(result) => result.map(|()| buf.filled().len()),
                }
            }
        };
        match read {
            Err(error) => {
                tracing::debug!(%error, "kept connection failed; reconnecting");
                false
            }
            Ok(0) => {
                tracing::debug!("kept connection closed by the server; reconnecting");
                false
            }
            Ok(_) => {
                tracing::warn!("unsolicited bytes on the idle kept connection; reconnecting");
                false
            }
        }
    }
}

/// Builds a [`Client`]: `Client::builder(addr).call_timeout(..).build()` (lazy) or
/// `.connect().await` (eager).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connector: Connector,
    config: ClientConfig,
}

impl ClientBuilder {
    /// The whole configuration at once (the setters below change one field each).
    #[must_use]
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// The dialect to speak.
    #[must_use]
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.config.dialect = dialect;
        self
    }

    /// Deadline to connect. Default [`DEFAULT_CONNECT_TIMEOUT`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Deadline for each answer but those of `start`, `stop` and `switch`. Default
    /// [`DEFAULT_CALL_TIMEOUT`].
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = timeout;
        self
    }

    /// Deadline for the answers to `start`, `stop` and `switch`. Default
    /// [`DEFAULT_BLOCKING_TIMEOUT`].
    #[must_use]
    pub fn blocking_timeout(mut self, timeout: Duration) -> Self {
        self.config.blocking_timeout = timeout;
        self
    }

    /// Deadline for every answer: sets both [`ClientBuilder::call_timeout`] and
    /// [`ClientBuilder::blocking_timeout`].
    #[deprecated(
        since = "0.2.0",
        note = "use call_timeout (and blocking_timeout for start/stop/switch)"
    )]
    #[must_use]
    pub fn answer_timeout(self, timeout: Duration) -> Self {
        self.call_timeout(timeout).blocking_timeout(timeout)
    }

    /// Keep one connection across calls (needed for a [`Connector::once`] stream).
    #[must_use]
    pub fn keep_connection(mut self, keep: bool) -> Self {
        self.config.keep_connection = keep;
        self
    }

    /// Number the requests with `<id>.` prefixes (3.19).
    #[must_use]
    pub fn request_ids(mut self, on: bool) -> Self {
        self.config.request_ids = on;
        self
    }

    /// What to write after each request: nothing (the default, as in the vendor's example),
    /// `\n` or `\r\n`.
    #[must_use]
    pub fn terminator(mut self, terminator: Terminator) -> Self {
        self.config.terminator = terminator;
        self
    }

    /// Size limits: the longest request sent and the longest answer accepted.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How long the `*_and_wait` helpers wait for a `start`/`stop` answer before polling.
    #[must_use]
    pub fn no_answer_grace(mut self, grace: Duration) -> Self {
        self.config.no_answer_grace = grace;
        self
    }

    /// Pause between `status` polls.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// The client. Nothing is connected until the first call.
    pub fn build(self) -> Client {
        Client::new(self.connector, self.config)
    }

    /// The client, with a connection opened first: a kept one
    /// ([`ClientConfig::keep_connection`]), or, with a connection per request, the one the
    /// first call uses (so that an unreachable server shows here).
    ///
    /// Cancel safe: a cancelled connect leaves nothing behind.
    ///
    /// # Errors
    /// [`Error::Connect`] when no connection can be made within the connect timeout.
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.build();
        let timeout = client.inner.config.connect_timeout;
        let conn = client.open(after(Instant::now(), timeout)).await?;
        let inner = &*client.inner;
        inner.opened_early.store(true, Ordering::Relaxed);
        *inner.kept.lock().await = Some(conn);
        Ok(client)
    }
}

impl Client {
    /// A client for the server `addr` (`"host:port"`, a `SocketAddr`, or a [`Connector`] for
    /// another transport) with `config`. Nothing is connected until the first call; for TCP
    /// each connection resolves `addr` again.
    pub fn new(addr: impl Into<Connector>, config: ClientConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector: addr.into(),
                config,
                kept: tokio::sync::Mutex::new(None),
                opened_early: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// A builder with the default configuration, for the server `addr` (`"host:port"`, a
    /// `SocketAddr`, or a [`Connector`]: [`Connector::from_fn`] opens each connection with
    /// your function — a TLS stream, an SSH channel, a [`tokio::io::duplex`] end —, and
    /// [`Connector::once`] hands over a stream opened elsewhere, with
    /// [`ClientBuilder::keep_connection`]).
    pub fn builder(addr: impl Into<Connector>) -> ClientBuilder {
        ClientBuilder {
            connector: addr.into(),
            config: ClientConfig::default(),
        }
    }

    /// A client with the default configuration and a connection opened first
    /// ([`ClientBuilder::connect`]).
    ///
    /// # Errors
    /// [`Error::Connect`] when no connection can be made within [`DEFAULT_CONNECT_TIMEOUT`].
    pub async fn connect(addr: impl Into<Connector>) -> Result<Self, Error> {
        Self::builder(addr).connect().await
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The peer, as logs and errors name it.
    pub fn peer(&self) -> &str {
        self.inner.connector.peer()
    }

    /// Sends `request` and returns the device's answer when it is a success (`done`,
    /// `success`, a state), within the command's deadline
    /// ([`ClientConfig::timeout_for`]: `start`, `stop`, `switch` get the blocking timeout).
    ///
    /// With [`ClientConfig::request_ids`] (3.19), a request without an id is numbered.
    ///
    /// Cancel safe as every call (see [`Client`]).
    ///
    /// # Errors
    /// [`Error::Device`] when the device refused (`not-found`, `error:port`, `Unknown
    /// command`, an answer the protocol does not know); transport errors, [`Error::Timeout`],
    /// undecodable answers, [`Error::IdMismatch`].
    pub async fn call(&self, request: Request) -> Result<Response, Error> {
        let timeout = self.inner.config.timeout_for(request.command);
        self.call_with_timeout(request, timeout).await
    }

    /// [`Client::call`] with its own deadline for the answer.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_timeout(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let reply = self.request_within(request, timeout).await?;
        if reply.response.is_success() {
            Ok(reply.response)
        } else {
            Err(Error::Device(DeviceError::refusal(reply.response)))
        }
    }

    /// Sends `request` and returns the answer as it came, refusals included (as
    /// [`Response`]s, never [`Error::Device`]), with the id it echoes (3.19).
    ///
    /// # Errors
    /// Transport failures, timeouts, undecodable answers, [`Error::IdMismatch`].
    pub async fn call_reply(&self, request: Request) -> Result<Reply, Error> {
        let timeout = self.inner.config.timeout_for(request.command);
        self.request_within(request, timeout).await
    }

    /// Sends `request` and returns whatever the server answered, refusals included.
    ///
    /// # Errors
    /// Transport failures, timeouts, undecodable answers.
    #[deprecated(
        since = "0.2.0",
        note = "use call (a refusal is Error::Device), or call_reply for every answer as it came"
    )]
    pub async fn request(&self, request: Request) -> Result<Reply, Error> {
        self.call_reply(request).await
    }

    /// Sends `text` as it is (then the configured [`Terminator`]) and returns the answer's
    /// text as it came, without its trailing line ending: no dialect, no id, no parsing. For
    /// commands the typed API does not spell, and for looking at what a server really says.
    ///
    /// The client's limits ([`ClientConfig::limits`]), its deadlines (the blocking timeout
    /// when `text` is a `start`, `stop` or `switch` in the client's dialect, the call timeout
    /// otherwise), its connection handling ([`ClientConfig::keep_connection`]) and its
    /// framing of answers all apply, as for a typed request. A `text` that starts with
    /// `<id>.` has its echo awaited whole.
    ///
    /// ```no_run
    /// # async fn run(client: pekat_proto::Client) -> Result<(), pekat_proto::Error> {
    /// let answer = client.call_raw(r"status:C:\Users\pekat\PekatVisionProjects\Test Project 1").await?;
    /// println!("{answer}"); // e.g. `running`, `not-found`, `Unknown command`
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancel safe as every call (see [`Client`]).
    ///
    /// # Errors
    /// [`Error::Encode`] for an empty text, one holding a CR, LF or NUL, or one longer than the
    /// limit (nothing is sent); [`Error::Decode`] for an answer too long or not UTF-8;
    /// transport errors and timeouts. Never [`Error::Device`]: every answer is returned.
    pub async fn call_raw(&self, text: &str) -> Result<String, Error> {
        let config = &self.inner.config;
        let timeout = match wire::parse_request(text.as_bytes(), config.dialect) {
            Ok(request) => config.timeout_for(request.command),
            Err(_) => config.call_timeout,
        };
        self.call_raw_with_timeout(text, timeout).await
    }

    /// [`Client::call_raw`] with its own answer timeout.
    ///
    /// # Errors
    /// As [`Client::call_raw`].
    pub async fn call_raw_with_timeout(
        &self,
        text: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let config = &self.inner.config;
        let mut out = BytesMut::new();
        wire::encode_raw_request(
            text,
            config.terminator,
            config.limits.max_request_len,
            &mut out,
        )?;
        let id = wire::raw_request_id(text);
        let span = tracing::debug_span!(
            "pekat.call",
            peer = self.inner.connector.peer(),
            id = id.as_ref().map(RequestId::as_str),
        );
        async {
            tracing::debug!(raw = text, "sending");
            let answer = self
                .exchange(&out, id.as_ref(), timeout, |msg| {
                    std::str::from_utf8(wire::strip_line_ending(msg))
                        .map(str::to_owned)
                        .map_err(|_| Error::Decode(DecodeError::InvalidUtf8))
                })
                .await?;
            tracing::debug!(answer, "answered");
            Ok(answer)
        }
        .instrument(span)
        .await
    }

    /// Starts the project at `path`. `Ok` when the server answered `done`.
    ///
    /// # Errors
    /// [`Error::Device`] with [`DeviceError::NotFound`], [`DeviceError::PortInUse`], ...;
    /// transport errors. A 3.19 server may not answer `start` at all: use
    /// [`Client::start_and_wait`] there.
    pub async fn start(&self, path: impl Into<String>) -> Result<(), Error> {
        self.expect_done(Request::start(path)).await
    }

    /// Stops the project at `path`. `Ok` when the server answered `done`.
    ///
    /// # Errors
    /// As [`Client::start`].
    pub async fn stop(&self, path: impl Into<String>) -> Result<(), Error> {
        self.expect_done(Request::stop(path)).await
    }

    /// Stops every project and starts the one at `path`. `Ok` when the server answered
    /// `success`.
    ///
    /// # Errors
    /// As [`Client::start`].
    pub async fn switch(&self, path: impl Into<String>) -> Result<(), Error> {
        self.expect_done(Request::switch(path)).await
    }

    /// The state of the project at `path`.
    ///
    /// # Errors
    /// [`Error::Device`] ([`DeviceError::NotFound`], ...) when the answer is not a state;
    /// transport errors.
    pub async fn status(&self, path: impl Into<String>) -> Result<ProjectState, Error> {
        match self.call(Request::status(path)).await? {
            Response::Status(state) => Ok(state),
            other => Err(Error::Device(DeviceError::Unexpected(other))),
        }
    }

    /// Starts the project at `path` and waits until `status` says `running`, all within
    /// `within`.
    ///
    /// The answer to `start` is awaited for at most [`ClientConfig::no_answer_grace`]; no
    /// answer (a 3.19 server may send none) is not an error. Then `status` is polled every
    /// [`ClientConfig::poll_interval`].
    ///
    /// # Errors
    /// [`Error::Device`] when `start` or `status` is refused (`not-found`, `error:port`),
    /// [`Error::WaitTimedOut`] when the project is not running in time, transport errors.
    pub async fn start_and_wait(
        &self,
        path: impl Into<String>,
        within: Duration,
    ) -> Result<(), Error> {
        let path = path.into();
        self.transition_and_wait(
            Request::start(path.clone()),
            &path,
            ProjectState::Running,
            within,
        )
        .await
    }

    /// Stops the project at `path` and waits until `status` says `stopped`, all within
    /// `within`. See [`Client::start_and_wait`].
    ///
    /// # Errors
    /// As [`Client::start_and_wait`].
    pub async fn stop_and_wait(
        &self,
        path: impl Into<String>,
        within: Duration,
    ) -> Result<(), Error> {
        let path = path.into();
        self.transition_and_wait(
            Request::stop(path.clone()),
            &path,
            ProjectState::Stopped,
            within,
        )
        .await
    }

    async fn expect_done(&self, request: Request) -> Result<(), Error> {
        match self.call(request).await? {
            Response::Done | Response::Success => Ok(()),
            other => Err(Error::Device(DeviceError::Unexpected(other))),
        }
    }

    async fn transition_and_wait(
        &self,
        request: Request,
        path: &str,
        target: ProjectState,
        within: Duration,
    ) -> Result<(), Error> {
        let config = &self.inner.config;
        let started = Instant::now();
        let deadline = after(started, within);
        let command = request.command;
        match self
            .request_within(request, config.no_answer_grace.min(within))
            .await
        {
            Ok(reply) if reply.response.is_success() => {}
            Ok(reply) => return Err(Error::Device(DeviceError::refusal(reply.response))),
            Err(error) if error.is_no_answer() => {
                tracing::debug!(%command, %error, "no answer; polling status");
            }
            Err(error) => return Err(error),
        }
        let mut last = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match self
                .request_within(Request::status(path), config.call_timeout.min(remaining))
                .await
            {
                Ok(Reply {
                    response: Response::Status(state),
                    ..
                }) => {
                    if state == target {
                        return Ok(());
                    }
                    last = Some(state);
                }
                Ok(reply) => return Err(Error::Device(DeviceError::refusal(reply.response))),
                Err(error) if error.is_no_answer() => {
                    tracing::debug!(%error, "no answer to status; polling again");
                }
                Err(error) => return Err(error),
            }
            let next = after(Instant::now(), config.poll_interval);
            if next >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
        }
        Err(Error::WaitTimedOut {
            target,
            last,
            waited: started.elapsed(),
        })
    }

    /// One request and its answer within `timeout`, in a `pekat.call` span.
    async fn request_within(
        &self,
        mut request: Request,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let inner = &*self.inner;
        let config = &inner.config;
        if config.request_ids && config.dialect.supports_ids() && request.id.is_none() {
            request.id = Some(RequestId::from(
                inner.next_id.fetch_add(1, Ordering::Relaxed),
            ));
        }
        let mut out = BytesMut::new();
        wire::encode_request(&request, config.dialect, &mut out)?;
        if out.len() > config.limits.max_request_len {
            return Err(Error::Encode(EncodeError::TooLarge {
                len: out.len(),
                max: config.limits.max_request_len,
            }));
        }
        out.extend_from_slice(config.terminator.as_bytes());
        // Fields are evaluated only when the span is enabled.
        let span = tracing::debug_span!(
            "pekat.call",
            peer = inner.connector.peer(),
            id = request.id.as_ref().map(RequestId::as_str),
            command = request.command.as_str(),
        );
        async {
            tracing::debug!(request = ?request, "sending");
            let reply = self
                .exchange(&out, request.id.as_ref(), timeout, |msg| {
                    let reply = wire::parse_response(msg)?;
                    // On a mismatch the connection is out of step: it is dropped, not kept.
                    check_id(&request, &reply)?;
                    Ok(reply)
                })
                .await?;
            tracing::debug!(reply = ?reply, "answered");
            Ok(reply)
        }
        .instrument(span)
        .await
    }

    /// Writes `out` and reads one answer within `timeout`, on the kept connection or a fresh
    /// one. `read` turns the answer's bytes into the result; when it fails, the connection is
    /// not kept.
    async fn exchange<T>(
        &self,
        out: &[u8],
        id: Option<&RequestId>,
        timeout: Duration,
        read: impl FnOnce(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let inner = &*self.inner;
        let deadline = after(Instant::now(), timeout);
        tracing::trace!(hex = %wire::Hex(out), "request bytes");
        let keep = inner.config.keep_connection;
        if !keep && !inner.opened_early.load(Ordering::Relaxed) {
            let conn = self.open(deadline).await?;
            let (msg, _conn) = self.round_trip(conn, out, id, deadline, timeout).await?;
            return read(&msg);
        }
        let mut kept = match tokio::time::timeout_at(deadline, inner.kept.lock()).await {
            Ok(guard) => guard,
            Err(_) => return Err(Error::Timeout(timeout)),
        };
        if !keep {
            // The connection `ClientBuilder::connect` opened serves this one call.
            inner.opened_early.store(false, Ordering::Relaxed);
        }
        // Taken out while in use: if this future is dropped, the connection goes with it.
        // One that the server closed, or that holds bytes nobody asked for (a stray or late
        // answer), is not reused: those bytes would be read as this request's answer.
        let reused = kept
            .take()
            .and_then(|mut conn| conn.is_idle_and_open().then_some(conn));
        let outcome = match reused {
            Some(conn) => match self.round_trip(conn, out, id, deadline, timeout).await {
                // A kept connection the server closed meanwhile: retry once on a fresh one
                // (every PEKAT command is idempotent).
                Err(error) if is_stale(&error) => {
                    tracing::debug!(%error, "kept connection is stale; reconnecting");
                    let conn = self.open(deadline).await?;
                    self.round_trip(conn, out, id, deadline, timeout).await
                }
                other => other,
            },
            None => {
                let conn = self.open(deadline).await?;
                self.round_trip(conn, out, id, deadline, timeout).await
            }
        };
        let (msg, conn) = outcome?;
        let value = read(&msg)?;
        if keep {
            *kept = Some(conn);
        }
        Ok(value)
    }

    async fn open(&self, deadline: Instant) -> Result<Connection, Error> {
        let connector = &self.inner.connector;
        let timeout = self
            .inner
            .config
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let stream = connector
            .connect(timeout)
            .await
            .map_err(|source| Error::Connect {
                peer: connector.peer().to_owned(),
                source,
            })?;
        Ok(Connection {
            stream,
            buf: BytesMut::new(),
        })
    }

    async fn round_trip(
        &self,
        mut conn: Connection,
        out: &[u8],
        id: Option<&RequestId>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(BytesMut, Connection), Error> {
        let config = &self.inner.config;
        let mut codec = ClientCodec::with_limits(config.dialect, config.limits);
        codec.expect_id(id.cloned());
        let exchange = async {
            // One write per request: the server takes what arrives as the whole request.
            conn.stream.write_all(out).await.map_err(Error::Io)?;
            if let Stream::Other(_) = conn.stream {
                // A user's stream may buffer (TLS does); TCP writes through.
                conn.stream.flush().await.map_err(Error::Io)?;
            }
            loop {
                if let Some(msg) = codec.decode_message(&mut conn.buf)? {
                    return Ok(msg);
                }
                conn.buf.reserve(128);
                let n = conn
                    .stream
                    .read_buf(&mut conn.buf)
                    .await
                    .map_err(Error::Io)?;
                if n == 0 {
                    return codec
                        .decode_message_eof(&mut conn.buf)?
                        .ok_or(Error::Closed);
                }
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(msg)) => Ok((msg, conn)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }
}

/// `from + duration`, capped at a century for durations too large to represent ("forever").
fn after(from: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    from.checked_add(duration.min(CENTURY)).unwrap_or(from)
}

/// An answer that echoes an id must echo the one sent (an answer without an id is accepted).
fn check_id(request: &Request, reply: &Reply) -> Result<(), Error> {
    match (&request.id, &reply.id) {
        (Some(sent), Some(received)) if sent != received => Err(Error::IdMismatch {
            sent: sent.clone(),
            received: received.clone(),
        }),
        _ => Ok(()),
    }
}

fn is_stale(error: &Error) -> bool {
    match error {
        Error::Closed => true,
        Error::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_errors_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Client>();
        send_sync::<Error>();
    }

    #[test]
    fn huge_durations_become_a_far_deadline_instead_of_overflowing() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(3600));
    }

    #[test]
    fn errors_say_whether_a_deadline_passed_or_nothing_came() {
        assert!(Error::Timeout(Duration::from_secs(1)).is_timeout());
        assert!(Error::Closed.is_no_answer() && !Error::Closed.is_timeout());
        let refused = Error::Device(DeviceError::NotFound);
        assert_eq!(refused.device_error(), Some(&DeviceError::NotFound));
        assert!(!refused.is_no_answer() && !refused.is_connection_fatal());
        let connect = Error::Connect {
            peer: "x".into(),
            source: io::Error::from(io::ErrorKind::TimedOut),
        };
        assert!(connect.is_timeout() && connect.is_connection_fatal());
        assert!(Error::Timeout(Duration::from_secs(1)).is_connection_fatal());
        assert!(!Error::Encode(EncodeError::EmptyPath).is_connection_fatal());
    }

    #[test]
    fn a_cause_appears_once_in_the_chain() {
        let connect = Error::Connect {
            peer: "127.0.0.1:9".into(),
            source: io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused"),
        };
        assert_eq!(
            labwire_net::error_chain(&connect),
            "cannot connect to 127.0.0.1:9: Connection refused"
        );
        let io = Error::Io(io::Error::new(io::ErrorKind::BrokenPipe, "Broken pipe"));
        assert_eq!(labwire_net::error_chain(&io), "I/O error: Broken pipe");
        let decode = Error::Decode(DecodeError::Io(io::Error::other("reset")));
        assert_eq!(labwire_net::error_chain(&decode), "I/O error: reset");
    }

    #[test]
    fn start_stop_and_switch_get_the_blocking_timeout() {
        let config = ClientConfig::default();
        assert_eq!(config.timeout_for(Command::Status), DEFAULT_CALL_TIMEOUT);
        for command in [Command::Start, Command::Stop, Command::Switch] {
            assert_eq!(config.timeout_for(command), DEFAULT_BLOCKING_TIMEOUT);
        }
    }
}
