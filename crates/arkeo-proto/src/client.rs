//! Async ARKEO client (feature `client`), with the shape every labwire client has
//! (`docs/clients.md`): a builder, `call`/`call_with_timeout`, one [`Error`] vocabulary, any
//! transport ([`Connector`]), an `arkeo.call` span per call.
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use arkeo_proto::{Client, Request, Target};
//!
//! let client = Client::builder("192.168.1.20:6360").call_timeout(Duration::from_secs(2)).build();
//! match client.call(Request::new(Target::Routine, "GetTestStatus")).await {
//!     Ok(answer) => println!("{answer:?}"),
//!     Err(e) if e.device_error().is_some() => eprintln!("the device refused: {e}"),
//!     Err(e) if e.is_timeout() => eprintln!("no answer in time: {e}"),
//!     Err(e) => eprintln!("{}", labwire_net::error_chain(&e)),
//! }
//! # }
//! ```
//!
//! One [`Client`] owns at most one connection: TCP to `host:port`, or a stream of any
//! transport from a [`Connector`] ([`Connector::from_fn`] opens each connection with your
//! function, [`Connector::once`] hands over one stream opened elsewhere). The device forbids
//! pipelining, so calls are strictly sequential: a clone of the handle shares the same
//! connection, and concurrent calls queue (fairly, in call order) for it.
//!
//! # Never a stale reply
//!
//! While a call is in flight its future *owns* the connection (it is taken out of the shared
//! slot). The connection goes back only after a clean exchange whose reply carries the
//! expected `request_id` and nothing after it. A timeout, an I/O or decode error, a mismatched
//! `request_id`, bytes beyond the reply, or a cancelled call (its future dropped) drops the
//! connection instead, and the next call reconnects. A reply that arrives late therefore dies
//! with its connection and can never be handed to a later call.
//!
//! # Timeouts
//!
//! Every call has a deadline, queueing included: the call timeout ([`DEFAULT_CALL_TIMEOUT`],
//! set with [`ClientBuilder::call_timeout`]) for ordinary commands, and the longer blocking timeout
//! ([`DEFAULT_BLOCKING_TIMEOUT`], [`ClientBuilder::blocking_timeout`]) for the routine commands
//! that answer only when the hardware is done ([`BLOCKING_COMMANDS`]: acquisitions,
//! `AutoExposure`, `StartCalibration`). [`Client::call`], [`Client::command`] and the typed
//! helpers choose between the two ([`Client::timeout_for`]); [`Client::call_with_timeout`] and
//! [`Client::command_with_timeout`] take the timeout of one call. A call that runs out of time
//! drops the connection (see above), so a timeout shorter than the hardware needs costs a
//! reconnect as well as the answer.
//!
//! # Waiting for a measurement
//!
//! The ARKEO application may still report `Ready` for a moment after `StartMeasurement`
//! answered OK. Waiting for `Ready` straight after the start can therefore return at once, and
//! `GetTestData` then reads the previous run. [`Client::measure`] and
//! [`Client::wait_for_measurement`] first wait (up to the start grace,
//! [`DEFAULT_START_GRACE`], [`ClientBuilder::start_grace`]) to see the routine leave `Ready`
//! — `Starting`, `Running`, or a progress value — and only then for `Ready` again.
//!
//! # Refusals
//!
//! A refusal by the device (an ARKEO error object, or an `ERROR` status) is
//! `Err(`[`Error::Device`]`)` from [`Client::call`] and every helper, never an `Ok`; the
//! connection goes on. [`Client::call_response`] returns every answer as it came, refusals
//! included.
//!
//! # Logs
//!
//! Every call runs in an `arkeo.call` span (level `debug`) with the `peer` and the call's
//! `request_id`; a connection has an `arkeo.connection` span for its own events.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use labwire_net::transport::{Connector, Stream};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::Mutex;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder};
use tracing::Instrument;

use crate::codec::ClientCodec;
use crate::reply::{Exposure, LedStatus, MonochromatorStatus, Rates, Spectrum, TmpctlController};
use crate::wire::{Hex, Limits};
use crate::{
    DecodeError, EncodeError, ErrorObject, MuxStatus, ParamKey, Request, Response, RoutineState,
    Target, TestStatus,
};

/// Default time a call may take, queueing included: 10 s (the blocking routine commands get
/// [`DEFAULT_BLOCKING_TIMEOUT`]).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The former name of [`DEFAULT_CALL_TIMEOUT`] (which was 5 s).
#[deprecated(since = "0.2.0", note = "use DEFAULT_CALL_TIMEOUT")]
pub const DEFAULT_TIMEOUT: Duration = DEFAULT_CALL_TIMEOUT;
/// Default time a connect may take: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval between two `GetTestStatus` polls in [`Client::wait_until`]: 100 ms.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Default time a blocking routine command ([`BLOCKING_COMMANDS`]) may take: 10 min.
///
/// labwire's choice (the vendor gives no figure): a lamp calibration sweeps the whole
/// wavelength range, and an acquisition lasts its integration time times its averages.
pub const DEFAULT_BLOCKING_TIMEOUT: Duration = Duration::from_secs(600);
/// Default time a measurement has to leave `Ready` after `StartMeasurement` in
/// [`Client::measure`] / [`Client::wait_for_measurement`]: 10 s (labwire's choice).
pub const DEFAULT_START_GRACE: Duration = Duration::from_secs(10);
/// The `ROUTINE` commands that answer only when the hardware has finished, so that they get
/// the blocking timeout ([`DEFAULT_BLOCKING_TIMEOUT`]) instead of the call timeout.
///
/// `AcquireSingle`, `AutoExposure` and `StartCalibration` are the ones the project's protocol
/// reference names; `AcquireDark` and `AcquireReference` take a spectrum with the same
/// integration time as `AcquireSingle` (labwire's choice to include them).
pub const BLOCKING_COMMANDS: &[&str] = &[
    "AcquireDark",
    "AcquireReference",
    "AcquireSingle",
    "AutoExposure",
    "StartCalibration",
];

/// Read buffer growth step while waiting for bytes.
const READ_STEP: usize = 8 * 1024;
/// Read buffer capacity kept between calls; a larger buffer (after a large reply) is freed.
const RETAINED_CAPACITY: usize = 256 * 1024;

/// Why a call failed: the transport, the wire, or the device's own refusal
/// ([`Error::Device`]). The same variants as every labwire client's `Error`, plus ARKEO's
/// [`Error::RequestIdMismatch`], [`Error::UnexpectedData`], [`Error::RoutineFailed`] and
/// [`Error::MeasurementNotStarted`].
///
/// A cause appears once: print the whole chain with [`labwire_net::error_chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting failed (refused, unreachable, or the connect timeout passed).
    #[error("cannot connect to {peer}")]
    Connect {
        /// The peer, as the [`Connector`] names it (`host:port` for TCP).
        peer: String,
        /// Why (`ConnectionRefused`, `TimedOut`, a TLS error, ...).
        #[source]
        source: io::Error,
    },
    /// Reading or writing the connection failed. The connection has been dropped.
    #[error("I/O error")]
    Io(#[from] io::Error),
    /// No (complete) reply in time (or a [`Client::wait_until`] ran out of time). The
    /// connection has been dropped.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The device closed the connection before replying.
    #[error("the connection was closed before a reply arrived")]
    Closed,
    /// The reply could not be decoded. The connection has been dropped.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The request could not be encoded; nothing was sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The reply answered another request: the connection is out of step.
    #[error("reply carries request_id {received}, expected {expected}")]
    RequestIdMismatch {
        /// The id of the request in flight.
        expected: u64,
        /// The id in the reply.
        received: u64,
    },
    /// The device refused the request (an error object, or an `ERROR` status). The connection
    /// is fine.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The device accepted the request but its `data` does not have the documented shape.
    #[error("unexpected reply to {command}: {reason}")]
    UnexpectedData {
        /// The command.
        command: String,
        /// What was wrong.
        reason: String,
    },
    /// The routine went to the Error state while [`Client::wait_until`] waited for another.
    #[error("the routine failed: {:?}", .0.error)]
    RoutineFailed(Box<TestStatus>),
    /// After `StartMeasurement`, the routine never left `Ready` within the start grace
    /// ([`Client::wait_for_measurement`]): the measurement did not start, or ended between two
    /// polls.
    #[error("the measurement did not leave Ready within {grace:?} of its start")]
    MeasurementNotStarted {
        /// The start grace that passed.
        grace: Duration,
    },
}

impl Error {
    /// Whether the call ran out of time.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the connection was (or may have been) dropped: the next call opens a new one.
    pub fn is_connection_fatal(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Io(_)
                | Self::Timeout(_)
                | Self::Closed
                | Self::Decode(_)
                | Self::RequestIdMismatch { .. }
        )
    }

    /// The device's refusal, when this is one.
    pub fn device_error(&self) -> Option<&DeviceError> {
        match self {
            Self::Device(e) => Some(e),
            _ => None,
        }
    }
}

/// The device refused a request: the ARKEO error object and what was asked.
///
/// Displays as `ROUTINE StartMeasurement refused: 4006 No active routine`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{target} {command} refused: {}", describe(error))]
pub struct DeviceError {
    /// The request's target.
    pub target: Target,
    /// The request's command.
    pub command: String,
    /// The error object (an empty one when the status said ERROR without an object).
    pub error: ErrorObject,
}

impl DeviceError {
    /// The error code, when the device sent one (see [`crate::codes`]).
    pub fn code(&self) -> Option<i64> {
        self.error.code
    }

    /// The error message.
    pub fn message(&self) -> &str {
        &self.error.message
    }
}

/// The outcome of a call the device answered: its data, or its refusal.
///
/// [`Client::call`] returns `Result<Response, Error>` (a refusal is [`Error::Device`]);
/// [`Client::call_response`] returns every answer as it came. `Reply` remains for code written
/// against the former `call`.
#[deprecated(
    since = "0.2.0",
    note = "Client::call returns Result<Response, Error> with a refusal as Error::Device; Client::call_response returns every answer as it came"
)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// Accepted; the response's `data` (`null` when it had none).
    Ok(Value),
    /// Refused with an error object (or an `ERROR` status).
    Refused(DeviceError),
}

#[allow(deprecated)]
impl Reply {
    /// `Ok(data)` or `Err(refusal)`.
    ///
    /// # Errors
    /// The [`DeviceError`] of a refused request.
    #[allow(
        clippy::result_large_err,
        reason = "a refusal is rare and is the value the caller asked for; boxing it would only add an allocation"
    )]
    pub fn into_result(self) -> Result<Value, DeviceError> {
        match self {
            Self::Ok(data) => Ok(data),
            Self::Refused(e) => Err(e),
        }
    }

    /// Whether the device accepted the request.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }

    /// The reply `response` is to `request`: [`Reply::Refused`] when it is an error
    /// ([`Response::is_error`]), else its `data` (`null` when it had none).
    pub fn from_response(request: &Request, response: Response) -> Self {
        match refusal(request, response) {
            Ok(response) => Self::Ok(response.data.unwrap_or(Value::Null)),
            Err(refused) => Self::Refused(refused),
        }
    }
}

/// `response`, or the refusal it is (an error object, or an `ERROR` status).
#[allow(
    clippy::result_large_err,
    reason = "the Ok side is as large; this is the shape of the call's result"
)]
fn refusal(request: &Request, mut response: Response) -> Result<Response, DeviceError> {
    if response.is_error() {
        Err(DeviceError {
            target: request.target.clone(),
            command: request.command.clone(),
            error: response.error.take().unwrap_or_default(),
        })
    } else {
        Ok(response)
    }
}

/// Configures and creates a [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connector: Connector,
    call_timeout: Duration,
    blocking_timeout: Duration,
    start_grace: Duration,
    connect_timeout: Duration,
    poll_interval: Duration,
    param_key: ParamKey,
    limits: Limits,
}

impl ClientBuilder {
    /// Time a call may take, queueing included ([`DEFAULT_CALL_TIMEOUT`]); the blocking
    /// routine commands get [`ClientBuilder::blocking_timeout`] instead.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The former name of [`ClientBuilder::call_timeout`].
    #[deprecated(since = "0.2.0", note = "use call_timeout")]
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.call_timeout(timeout)
    }

    /// Time a blocking routine command ([`BLOCKING_COMMANDS`]) may take, queueing included
    /// ([`DEFAULT_BLOCKING_TIMEOUT`]). The call timeout applies instead when it is longer.
    #[must_use]
    pub fn blocking_timeout(mut self, timeout: Duration) -> Self {
        self.blocking_timeout = timeout;
        self
    }

    /// Time a measurement has to leave `Ready` after `StartMeasurement` in
    /// [`Client::measure`] and [`Client::wait_for_measurement`] ([`DEFAULT_START_GRACE`]).
    #[must_use]
    pub fn start_grace(mut self, grace: Duration) -> Self {
        self.start_grace = grace;
        self
    }

    /// Time a connect may take ([`DEFAULT_CONNECT_TIMEOUT`]), within the call's own deadline.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Interval between `GetTestStatus` polls in [`Client::wait_until`]
    /// ([`DEFAULT_POLL_INTERVAL`]).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The key requests carry their parameters under (`parameter` by default; `params` for
    /// devices that follow the vendor's Python example).
    #[must_use]
    pub fn param_key(mut self, key: ParamKey) -> Self {
        self.param_key = key;
        self
    }

    /// Largest frame sent or accepted ([`crate::DEFAULT_MAX_FRAME_LENGTH`]).
    #[deprecated(since = "0.2.0", note = "use limits(Limits { max_frame_length, .. })")]
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.limits.max_frame_length = max;
        self
    }

    /// Frame limits for requests sent and replies accepted ([`Limits::default`]), the same
    /// type the codecs take.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Creates the client without connecting; the first call connects.
    pub fn build(self) -> Client {
        let codec = ClientCodec::with_limits(self.limits).param_key(self.param_key);
        Client {
            inner: Arc::new(Inner {
                config: self,
                codec,
                slot: Mutex::new(Slot::default()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Creates the client and connects it, so that a wrong address fails here; the calls then
    /// use this connection.
    ///
    /// # Errors
    /// [`Error::Connect`].
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is left open.
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.build();
        let deadline = deadline_after(client.inner.config.call_timeout);
        let connection = client.inner.open(deadline).await?;
        client.inner.slot.lock().await.connection = Some(connection);
        Ok(client)
    }
}

/// A clonable, `Send + Sync` handle to one ARKEO endpoint. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientBuilder,
    codec: ClientCodec,
    /// The lock queues the calls (fairly, in call order).
    slot: Mutex<Slot>,
    next_id: AtomicU64,
}

/// What the calls share, one at a time.
#[derive(Debug, Default)]
struct Slot {
    /// The idle connection, if any; a call in flight takes it out.
    connection: Option<Connection>,
    /// The frame of the call in flight, encoded here so that no call allocates one.
    frame: BytesMut,
}

#[derive(Debug)]
struct Connection {
    stream: Stream,
    read_buf: BytesMut,
    span: tracing::Span,
    /// The call deadline's timer, kept from call to call: set once per connection and moved
    /// only when a call's deadline is earlier than where it stands, or when it fires before
    /// the deadline of the call in flight (see [`Connection::exchange`]), instead of a timer
    /// registered and removed again by every call.
    timer: Pin<Box<Sleep>>,
}

impl Client {
    /// A builder for `addr`: `"host:port"`, a `SocketAddr`, or a [`Connector`] for another
    /// transport ([`Connector::from_fn`] opens each connection with your function — a TLS
    /// stream, an SSH channel, a [`tokio::io::duplex`] end —, [`Connector::once`] hands over a
    /// stream opened elsewhere). For TCP each connection resolves `addr` again.
    pub fn builder(addr: impl Into<Connector>) -> ClientBuilder {
        ClientBuilder {
            connector: addr.into(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            blocking_timeout: DEFAULT_BLOCKING_TIMEOUT,
            start_grace: DEFAULT_START_GRACE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            param_key: ParamKey::Parameter,
            limits: Limits::default(),
        }
    }

    /// Connects to `addr` with the default settings.
    ///
    /// # Errors
    /// [`Error::Connect`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn connect(addr: impl Into<Connector>) -> Result<Self, Error> {
        Self::builder(addr).connect().await
    }

    /// The peer, as logs and errors name it (the address for TCP).
    pub fn peer(&self) -> &str {
        self.inner.config.connector.peer()
    }

    /// The former name of [`Client::peer`].
    #[deprecated(since = "0.2.0", note = "use peer")]
    pub fn addr(&self) -> &str {
        self.peer()
    }

    /// Sends `request` and waits for its reply, within the call timeout, or the blocking
    /// timeout for a blocking routine command (see [`Client::timeout_for`]).
    ///
    /// A `request_id` is assigned when the request has none; the reply must carry the same id
    /// (a reply without any id is accepted, as some vendor examples omit it; an id echoed as
    /// a whole float or a string, `1001.0` or `"1001"`, counts as that integer).
    ///
    /// Returns the whole decoded [`Response`] of an accepted request (its `data`, unknown
    /// fields, ...).
    ///
    /// # Errors
    /// [`Error::Device`] when the device refused (an error object, or an `ERROR` status);
    /// transport and protocol failures, see [`Error`].
    ///
    /// # Cancel safety
    /// Cancel safe in the sense that matters: dropping the future never leaves a reply behind
    /// for another call (the connection is dropped and the next call reconnects). Whether the
    /// device received the request is then unknown.
    pub async fn call(&self, request: Request) -> Result<Response, Error> {
        let timeout = self.timeout_for(&request);
        self.call_with_timeout(request, timeout).await
    }

    /// The timeout [`Client::call`] gives `request`: the blocking timeout for a `ROUTINE`
    /// command in [`BLOCKING_COMMANDS`] (or the call timeout, when that is longer), the call
    /// timeout for everything else.
    pub fn timeout_for(&self, request: &Request) -> Duration {
        let config = &self.inner.config;
        if is_blocking(request) {
            config.blocking_timeout.max(config.call_timeout)
        } else {
            config.call_timeout
        }
    }

    /// Like [`Client::call`] with its own timeout (queueing included).
    ///
    /// # Errors
    /// See [`Client::call`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn call_with_timeout(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let (request, response) = self.exchange(request, timeout).await?;
        Ok(refusal(&request, response)?)
    }

    /// The raw path: like [`Client::call_with_timeout`], but every answer comes back as it
    /// came, refusals included (a [`Response`] with its `error`), never as [`Error::Device`].
    ///
    /// # Errors
    /// Transport and protocol failures, see [`Error`]; never [`Error::Device`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn call_response(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        Ok(self.exchange(request, timeout).await?.1)
    }

    async fn exchange(
        &self,
        mut request: Request,
        timeout: Duration,
    ) -> Result<(Request, Response), Error> {
        let id = *request
            .request_id
            .get_or_insert_with(|| self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let deadline = deadline_after(timeout);
        // Fields are evaluated only when the span is enabled; a disabled span costs its
        // level check.
        let span = tracing::debug_span!(
            "arkeo.call",
            peer = self.inner.config.connector.peer(),
            request_id = id,
            target = request.target.as_str(),
            command = request.command.as_str(),
        );
        let response = self
            .inner
            .exchange(&request, id, deadline, timeout)
            .instrument(span)
            .await?;
        Ok((request, response))
    }

    /// Drops the current connection, if any (waiting for a call in flight to finish). The
    /// next call reconnects.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn disconnect(&self) {
        self.inner.slot.lock().await.connection.take();
    }

    /// Sends `command` to `target` with `parameter` (an object, or `Value::Null` for none) and
    /// returns the reply's `data` (`null` when it had none).
    ///
    /// # Errors
    /// Transport failures, or [`Error::Device`] when the device refuses.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn command(
        &self,
        target: Target,
        command: &str,
        parameter: Value,
    ) -> Result<Value, Error> {
        let request = Request::new(target, command).with_parameter(parameter);
        Ok(data(self.call(request).await?))
    }

    /// Like [`Client::command`], with the reply's `data` read as `T` (see
    /// [`Response::data_as`]): a [`crate::reply`] type for a documented shape, a struct of
    /// yours for a routine's own data.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `data` is not of `T`'s shape.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn command_as<T: serde::de::DeserializeOwned>(
        &self,
        target: Target,
        command: &str,
        parameter: Value,
    ) -> Result<T, Error> {
        let request = Request::new(target, command).with_parameter(parameter);
        let response = self.call(request).await?;
        response
            .data_as()
            .map_err(|e| unexpected(command, &e.to_string()))
    }

    /// Like [`Client::command`] with the timeout of this one call (queueing included).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn command_with_timeout(
        &self,
        target: Target,
        command: &str,
        parameter: Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let request = Request::new(target, command).with_parameter(parameter);
        Ok(data(self.call_with_timeout(request, timeout).await?))
    }

    /// `MAIN StartRoutine {routine}`: activates a routine (one at a time). Returns the reply's
    /// `data`.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn start_routine(&self, routine: &str) -> Result<Value, Error> {
        self.command(Target::Main, "StartRoutine", json!({ "routine": routine }))
            .await
    }

    /// `MAIN GetActiveRoutine`: the active routine's name, `None` when there is none.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `routine` is missing.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn active_routine(&self) -> Result<Option<String>, Error> {
        let data = self
            .command(Target::Main, "GetActiveRoutine", Value::Null)
            .await?;
        match data.get("routine") {
            Some(Value::String(name)) if name.is_empty() => Ok(None),
            Some(Value::String(name)) => Ok(Some(name.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(unexpected("GetActiveRoutine", "`routine` is not a string")),
        }
    }

    /// `MAIN GetAvailableRoutines`: the routine names.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `routines` is not a list of
    /// strings.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn available_routines(&self) -> Result<Vec<String>, Error> {
        let data = self
            .command(Target::Main, "GetAvailableRoutines", Value::Null)
            .await?;
        string_list(&data, "routines").ok_or_else(|| {
            unexpected(
                "GetAvailableRoutines",
                "`routines` is not a list of strings",
            )
        })
    }

    /// `ROUTINE GetTestStatus`: the active routine's state, progress and error.
    ///
    /// # Errors
    /// See [`Client::command`] (code 4006 when no routine is active);
    /// [`Error::UnexpectedData`] when `data` has no `routine_status`.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn test_status(&self) -> Result<TestStatus, Error> {
        self.test_status_within(self.inner.config.call_timeout)
            .await
    }

    async fn test_status_within(&self, timeout: Duration) -> Result<TestStatus, Error> {
        let request = Request::new(Target::Routine, "GetTestStatus");
        let data = data(self.call_with_timeout(request, timeout).await?);
        TestStatus::from_value(data).map_err(|e| unexpected("GetTestStatus", &e.to_string()))
    }

    /// Polls `GetTestStatus` until the routine is in `state`, for at most `timeout`.
    ///
    /// Not for the end of a measurement just started: the application may still say Ready
    /// for a moment after `StartMeasurement`; use [`Client::wait_for_measurement`].
    ///
    /// # Errors
    /// [`Error::Timeout`] when `timeout` passes first; [`Error::RoutineFailed`] when the routine
    /// enters Error while waiting for another state; any error of [`Client::test_status`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn wait_until(
        &self,
        state: RoutineState,
        timeout: Duration,
    ) -> Result<TestStatus, Error> {
        self.wait_for(|status| status.routine_status == state, timeout)
            .await
    }

    /// Polls `GetTestStatus` until `done` holds, for at most `timeout`. A routine in Error
    /// ends the wait with [`Error::RoutineFailed`] unless `done` accepts that status.
    ///
    /// # Errors
    /// See [`Client::wait_until`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn wait_for<F>(&self, done: F, timeout: Duration) -> Result<TestStatus, Error>
    where
        F: FnMut(&TestStatus) -> bool,
    {
        match self.poll_until(done, deadline_after(timeout)).await {
            Ok(Some(status)) => Ok(status),
            Ok(None) | Err(Error::Timeout(_)) => Err(Error::Timeout(timeout)),
            Err(e) => Err(e),
        }
    }

    /// Polls until `done` holds (`Some`) or `deadline` passes (`None`); a routine in Error
    /// that `done` does not accept is [`Error::RoutineFailed`]. A poll that times out is
    /// `Error::Timeout`.
    async fn poll_until<F>(
        &self,
        mut done: F,
        deadline: Instant,
    ) -> Result<Option<TestStatus>, Error>
    where
        F: FnMut(&TestStatus) -> bool,
    {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let status = self
                .test_status_within(left.min(self.inner.config.call_timeout))
                .await?;
            if done(&status) {
                return Ok(Some(status));
            }
            if status.routine_status == RoutineState::Error {
                return Err(Error::RoutineFailed(Box::new(status)));
            }
            let pause = self
                .inner
                .config
                .poll_interval
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }

    /// Waits for the measurement just started with `StartMeasurement` to end, for at most
    /// `timeout`, and returns the final status (Ready).
    ///
    /// The application may still report `Ready` for a moment after `StartMeasurement`
    /// answered, so waiting for `Ready` alone can return before the measurement began. This
    /// first waits, for at most the start grace ([`ClientBuilder::start_grace`]), to see the
    /// routine leave `Ready` (`Starting`, `Running`, or any progress value), and only then
    /// for `Ready` again.
    ///
    /// # Errors
    /// [`Error::MeasurementNotStarted`] when the routine is still `Ready` at the end of the
    /// start grace; [`Error::Timeout`] when `timeout` passes first; [`Error::RoutineFailed`]
    /// when the routine enters Error; any error of [`Client::test_status`].
    ///
    /// # Cancel safety
    /// See [`Client::call`]; the measurement goes on in the device.
    pub async fn wait_for_measurement(&self, timeout: Duration) -> Result<TestStatus, Error> {
        self.wait_for_measurement_until(deadline_after(timeout), timeout, &mut |_| {})
            .await
    }

    /// `seen` gets every status polled on the way.
    async fn wait_for_measurement_until(
        &self,
        deadline: Instant,
        timeout: Duration,
        seen: &mut (dyn FnMut(&TestStatus) + Send),
    ) -> Result<TestStatus, Error> {
        let grace = self.inner.config.start_grace;
        let grace_end = deadline.min(deadline_after(grace));
        let left_ready = |s: &TestStatus| {
            seen(s);
            s.progress.is_some()
                || !matches!(s.routine_status, RoutineState::Ready | RoutineState::Error)
        };
        match self.poll_until(left_ready, grace_end).await {
            Ok(Some(_)) => {}
            Ok(None) if grace_end < deadline => return Err(Error::MeasurementNotStarted { grace }),
            Ok(None) | Err(Error::Timeout(_)) => return Err(Error::Timeout(timeout)),
            Err(e) => return Err(e),
        }
        let ready = |s: &TestStatus| {
            seen(s);
            s.routine_status == RoutineState::Ready
        };
        match self.poll_until(ready, deadline).await {
            Ok(Some(status)) => Ok(status),
            Ok(None) | Err(Error::Timeout(_)) => Err(Error::Timeout(timeout)),
            Err(e) => Err(e),
        }
    }

    /// Runs one measurement with the routine's current settings: `StartMeasurement`, then
    /// [`Client::wait_for_measurement`], then `GetTestData`; `timeout` bounds the whole.
    ///
    /// This is the safe form of "start, poll until Ready, fetch": see
    /// [`Client::wait_for_measurement`] for why polling for Ready alone can fetch the previous
    /// run's data.
    ///
    /// # Errors
    /// Those of [`Client::start_measurement`], [`Client::wait_for_measurement`] and
    /// [`Client::test_data`].
    ///
    /// # Cancel safety
    /// See [`Client::call`]; a started measurement goes on in the device.
    pub async fn measure(&self, timeout: Duration) -> Result<Value, Error> {
        self.measure_with_progress(timeout, |_| {}).await
    }

    /// [`Client::measure`], handing every status polled while the measurement runs to
    /// `progress` (the routine's state, and its progress where the routine reports one:
    /// [`TestStatus::progress_pct`]), e.g. to draw a progress bar.
    ///
    /// # Errors
    /// As [`Client::measure`].
    ///
    /// # Cancel safety
    /// As [`Client::measure`].
    pub async fn measure_with_progress(
        &self,
        timeout: Duration,
        mut progress: impl FnMut(&TestStatus) + Send,
    ) -> Result<Value, Error> {
        let deadline = deadline_after(timeout);
        let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
        let start = Request::new(Target::Routine, "StartMeasurement");
        let within = left(deadline).min(self.inner.config.call_timeout);
        self.call_with_timeout(start, within).await?;
        self.wait_for_measurement_until(deadline, timeout, &mut progress)
            .await?;
        let fetch = Request::new(Target::Routine, "GetTestData");
        let within = left(deadline).min(self.inner.config.call_timeout);
        if within.is_zero() {
            return Err(Error::Timeout(timeout));
        }
        Ok(data(self.call_with_timeout(fetch, within).await?))
    }

    /// `ROUTINE StartMeasurement` (only when Ready).
    ///
    /// To wait for the measurement's end, use [`Client::wait_for_measurement`] (or
    /// [`Client::measure`] for the whole run), not `wait_until(Ready)`: the application may
    /// still say Ready for a moment after this answered.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn start_measurement(&self) -> Result<Value, Error> {
        self.command(Target::Routine, "StartMeasurement", Value::Null)
            .await
    }

    /// `ROUTINE StopMeasurement` (while Starting or Running).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn stop_measurement(&self) -> Result<Value, Error> {
        self.command(Target::Routine, "StopMeasurement", Value::Null)
            .await
    }

    /// `ROUTINE CloseRoutine`: deactivates the routine.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn close_routine(&self) -> Result<Value, Error> {
        self.command(Target::Routine, "CloseRoutine", Value::Null)
            .await
    }

    /// `ROUTINE ApplySettings` with a routine-specific settings object.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn apply_settings(&self, settings: Value) -> Result<Value, Error> {
        self.command(Target::Routine, "ApplySettings", settings)
            .await
    }

    /// `ROUTINE GetSettings`: the routine's current settings (the reply's `data`).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn settings(&self) -> Result<Value, Error> {
        self.command(Target::Routine, "GetSettings", Value::Null)
            .await
    }

    /// `ROUTINE GetTestData`: the latest measurement data. Non-finite numbers arrive as the
    /// strings `"NaN"`, `"Infinity"`, `"-Infinity"`; read numbers with
    /// [`crate::json::lenient_f64`].
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn test_data(&self) -> Result<Value, Error> {
        self.command(Target::Routine, "GetTestData", Value::Null)
            .await
    }

    /// `ROUTINE SetInfo {user_name, device_name, device_area}`.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_info(
        &self,
        user_name: &str,
        device_name: &str,
        device_area: f64,
    ) -> Result<Value, Error> {
        let parameter = json!({
            "user_name": user_name,
            "device_name": device_name,
            "device_area": device_area,
        });
        self.command(Target::Routine, "SetInfo", parameter).await
    }

    /// `ROUTINE ClearErrors`: Error → Ready.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn clear_errors(&self) -> Result<Value, Error> {
        self.command(Target::Routine, "ClearErrors", Value::Null)
            .await
    }

    /// `ROUTINE GetCustomCommands`: the active routine's own commands.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `CustomCommands` is not a list
    /// of strings.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn custom_commands(&self) -> Result<Vec<String>, Error> {
        let data = self
            .command(Target::Routine, "GetCustomCommands", Value::Null)
            .await?;
        string_list(&data, "CustomCommands").ok_or_else(|| {
            unexpected(
                "GetCustomCommands",
                "`CustomCommands` is not a list of strings",
            )
        })
    }

    /// A routine's custom command (e.g. Luminescence `AcquireSingle`, `SetLaser`), within the
    /// call timeout, or the blocking timeout for [`BLOCKING_COMMANDS`].
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn routine_command(&self, command: &str, parameter: Value) -> Result<Value, Error> {
        self.command(Target::Routine, command, parameter).await
    }

    async fn routine_typed<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        parameter: Value,
    ) -> Result<T, Error> {
        self.command_as(Target::Routine, command, parameter).await
    }
}

/// The routines' custom commands, with the vendor's parameter and reply names. Each needs its
/// routine active (`MAIN StartRoutine`); the device refuses them otherwise.
impl Client {
    /// Luminescence `AcquireDark`: a dark spectrum (2 rows), kept by the application for
    /// dark subtraction. Blocks for the integration time; uses the blocking timeout.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when the reply has no `spectrum`.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn acquire_dark(&self) -> Result<Spectrum, Error> {
        self.routine_typed("AcquireDark", Value::Null).await
    }

    /// Luminescence `AcquireReference`: a reference spectrum (2 rows). Blocks for the
    /// integration time; uses the blocking timeout.
    ///
    /// # Errors
    /// See [`Client::acquire_dark`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn acquire_reference(&self) -> Result<Spectrum, Error> {
        self.routine_typed("AcquireReference", Value::Null).await
    }

    /// Luminescence `AcquireSingle`: one spectrum, 3 rows (wavelength nm, raw counts,
    /// irradiance µW/cm²). Blocks for the integration time times the averages; uses the
    /// blocking timeout.
    ///
    /// # Errors
    /// See [`Client::acquire_dark`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn acquire_single(&self) -> Result<Spectrum, Error> {
        self.routine_typed("AcquireSingle", Value::Null).await
    }

    /// Luminescence `AutoExposure`: lets the application find the integration time; returns
    /// what it chose. Blocks while it measures; uses the blocking timeout.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when the reply has no
    /// `integration_time`.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn auto_exposure(&self) -> Result<Exposure, Error> {
        self.routine_typed("AutoExposure", Value::Null).await
    }

    /// Luminescence `SetLaser {channel, frequency, duty_cycle}`: the PWM frequency (Hz) and
    /// duty cycle (%) of a laser channel; a duty cycle of 0 turns it off.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_laser(
        &self,
        channel: i64,
        frequency: f64,
        duty_cycle: f64,
    ) -> Result<Value, Error> {
        let parameter =
            json!({ "channel": channel, "frequency": frequency, "duty_cycle": duty_cycle });
        self.routine_command("SetLaser", parameter).await
    }

    /// TCSPC `GetRates`: the sync and input rates (counts/s) and their ratio.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when the reply lacks one of
    /// `sync_rate`, `input_rate`, `ratio`.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn rates(&self) -> Result<Rates, Error> {
        self.routine_typed("GetRates", Value::Null).await
    }

    /// TCSPC `SetLaser {port_id, laser}`: turns the excitation laser on `port_id` on or off.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_tcspc_laser(&self, port_id: i64, on: bool) -> Result<Value, Error> {
        let parameter = json!({ "port_id": port_id, "laser": on });
        self.routine_command("SetLaser", parameter).await
    }

    /// IPCE `SetShutter {shutter_status}`: opens (`true`) or closes the shutter.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_shutter(&self, open: bool) -> Result<Value, Error> {
        self.routine_command("SetShutter", json!({ "shutter_status": open }))
            .await
    }

    /// IPCE `SetWavelength {wavelength}`: moves the monochromator (nm).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_wavelength(&self, nm: f64) -> Result<Value, Error> {
        self.routine_command("SetWavelength", json!({ "wavelength": nm }))
            .await
    }

    /// IPCE `StartCalibration {path}`: calibrates the lamp with the photodiode whose
    /// calibration file is at `path` (on the ARKEO PC). Blocks for the whole sweep; uses the
    /// blocking timeout.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn start_calibration(&self, path: &str) -> Result<Value, Error> {
        self.routine_command("StartCalibration", json!({ "path": path }))
            .await
    }

    /// IPCE `GetChopperFrequency`: the live chopper frequency (Hz).
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `frequency` is not a number.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn chopper_frequency(&self) -> Result<f64, Error> {
        let data = self
            .routine_command("GetChopperFrequency", Value::Null)
            .await?;
        data.get("frequency")
            .and_then(crate::json::lenient_f64)
            .ok_or_else(|| unexpected("GetChopperFrequency", "`frequency` is not a number"))
    }

    /// IPCE `GetMonochromatorStatus`. The vendor says not to call it during a measurement.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `data` is not an object of the
    /// documented fields.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn monochromator_status(&self) -> Result<MonochromatorStatus, Error> {
        self.routine_typed("GetMonochromatorStatus", Value::Null)
            .await
    }

    /// Resistivity `ApplyCurrent {current}` (A).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn apply_current(&self, amperes: f64) -> Result<Value, Error> {
        self.routine_command("ApplyCurrent", json!({ "current": amperes }))
            .await
    }

    /// Resistivity `SetDeviceDimensions {thickness, length, width}`: thickness in µm, length
    /// and width in mm, for the resistance correction.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_device_dimensions(
        &self,
        thickness_um: f64,
        length_mm: f64,
        width_mm: f64,
    ) -> Result<Value, Error> {
        let parameter =
            json!({ "thickness": thickness_um, "length": length_mm, "width": width_mm });
        self.routine_command("SetDeviceDimensions", parameter).await
    }

    /// Connection Test `SetOutput {output}`: the voltage or current (by the routine's mode).
    /// It has an effect only while the measurement is Running.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_output(&self, output: f64) -> Result<Value, Error> {
        self.routine_command("SetOutput", json!({ "output": output }))
            .await
    }
}

/// Temperature controller, MUX and LED helpers.
impl Client {
    /// `TMPCTL GetStatus`: every temperature controller, with its `DeviceStatus` and
    /// `LatestMeasurement`.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `data` is not an array of
    /// controllers of the documented shape.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn tmpctl_status(&self) -> Result<Vec<TmpctlController>, Error> {
        let data = self
            .command(Target::Tmpctl, "GetStatus", Value::Null)
            .await?;
        serde_json::from_value(data).map_err(|e| unexpected("TMPCTL GetStatus", &e.to_string()))
    }

    /// `TMPCTL SetController {address, channel}`: selects the controller that
    /// `SetTemperature` and `SetEnable` address.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_temperature_controller(
        &self,
        address: i64,
        channel: i64,
    ) -> Result<Value, Error> {
        let parameter = json!({ "address": address, "channel": channel });
        self.command(Target::Tmpctl, "SetController", parameter)
            .await
    }

    /// `TMPCTL SetTemperature {temperature}` (°C).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_temperature(&self, celsius: f64) -> Result<Value, Error> {
        self.command(
            Target::Tmpctl,
            "SetTemperature",
            json!({ "temperature": celsius }),
        )
        .await
    }

    /// `TMPCTL SetEnable {enable}`: turns temperature control on or off.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_temperature_enabled(&self, enable: bool) -> Result<Value, Error> {
        self.command(Target::Tmpctl, "SetEnable", json!({ "enable": enable }))
            .await
    }

    /// `MUX Connect`.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn mux_connect(&self) -> Result<Value, Error> {
        self.command(Target::Mux, "Connect", Value::Null).await
    }

    /// `MUX Disconnect`.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn mux_disconnect(&self) -> Result<Value, Error> {
        self.command(Target::Mux, "Disconnect", Value::Null).await
    }

    /// `MUX GetStatus`: connection, firmware and relay states.
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when the reply lacks the documented
    /// fields.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn mux_status(&self) -> Result<MuxStatus, Error> {
        let data = self.command(Target::Mux, "GetStatus", Value::Null).await?;
        MuxStatus::from_value(&data).map_err(|e| unexpected("MUX GetStatus", &e.to_string()))
    }

    /// `MUX SetStatus {state}`: sets every relay, one entry per relay (`nrRelays`, 4 on the
    /// vendor's multiplexer). Sent as `state`, the key of the vendor's example (its prose says
    /// `channels`; arkeo-sim accepts both).
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_relays(&self, states: &[bool]) -> Result<Value, Error> {
        self.command(Target::Mux, "SetStatus", json!({ "state": states }))
            .await
    }

    /// `LED GetStatus`: the driver and the boards with their channel values (0..1).
    ///
    /// # Errors
    /// See [`Client::command`]; [`Error::UnexpectedData`] when `data` lacks `connected` or a
    /// board is not of the documented shape.
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn led_status(&self) -> Result<LedStatus, Error> {
        let data = self.command(Target::Led, "GetStatus", Value::Null).await?;
        serde_json::from_value(data).map_err(|e| unexpected("LED GetStatus", &e.to_string()))
    }

    /// `LED SetValues {address, values}`: one value per channel (12 on current boards; another
    /// count is refused with 1001), 0 (off) to 1 (full). The device coerces values outside
    /// 0..1 into range rather than refusing them.
    ///
    /// # Errors
    /// See [`Client::command`].
    ///
    /// # Cancel safety
    /// See [`Client::call`].
    pub async fn set_led_values(&self, address: i64, values: &[f64]) -> Result<Value, Error> {
        let parameter = json!({ "address": address, "values": values });
        self.command(Target::Led, "SetValues", parameter).await
    }
}

impl Inner {
    /// Connects; the connection's timer starts at `deadline`, the deadline of the call that
    /// connects.
    async fn open(&self, deadline: Instant) -> Result<Connection, Error> {
        let connector = &self.config.connector;
        let stream = connector
            .connect(self.config.connect_timeout)
            .await
            .map_err(|source| Error::Connect {
                peer: connector.peer().to_owned(),
                source,
            })?;
        // The local address is asked of the kernel only when the span is recorded. No parent:
        // the connection outlives the call that opened it.
        let span = tracing::debug_span!(
            parent: None,
            "arkeo.connection",
            peer = connector.peer(),
            local = ?match &stream {
                Stream::Tcp(tcp) => tcp.local_addr().ok(),
                Stream::Other(_) => None,
            }
        );
        span.in_scope(|| tracing::debug!("connected"));
        Ok(Connection {
            stream,
            read_buf: BytesMut::new(),
            span,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        })
    }

    /// One call, all of it (queueing, connecting, the exchange) by `deadline`, which is
    /// `timeout` after the call began; [`Error::Timeout`] after that.
    async fn exchange(
        &self,
        request: &Request,
        id: u64,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let late = |_| Error::Timeout(timeout);
        // Uncontended, the lock is taken without a future; a queued call is never passed over
        // (the lock hands itself to the first waiter directly).
        let mut slot = match self.slot.try_lock() {
            Ok(slot) => slot,
            Err(_) => tokio::time::timeout_at(deadline, self.slot.lock())
                .await
                .map_err(late)?,
        };
        let Slot { connection, frame } = &mut *slot;
        // Encoding first: a request that cannot be encoded never touches the connection.
        frame.clear();
        if frame.capacity() > RETAINED_CAPACITY {
            *frame = BytesMut::new();
        }
        self.codec.clone().encode(request, frame)?;
        // Taking the connection out makes this future its owner until it is put back after a
        // clean exchange.
        // A connection the device closed while idle is replaced before anything is sent on
        // it, so the request is not lost to a dead socket.
        let idle = connection
            .take()
            .and_then(|mut idle| idle.is_idle_and_open().then_some(idle));
        let mut taken = match idle {
            Some(idle) => idle,
            // Boxed: connecting is rare, and its future would otherwise make every call's
            // future larger.
            None => Box::pin(tokio::time::timeout_at(deadline, self.open(deadline)))
                .await
                .map_err(late)??,
        };
        let response = taken
            .exchange_by(frame, self.codec, id, deadline)
            .await
            .ok_or(Error::Timeout(timeout))??;
        let span = &taken.span;
        match response.request_id {
            Some(received) if received != id => {
                span.in_scope(|| {
                    tracing::warn!(
                        expected = id,
                        received,
                        "request_id mismatch; dropping the connection"
                    )
                });
                Err(Error::RequestIdMismatch {
                    expected: id,
                    received,
                })
            }
            _ if !taken.read_buf.is_empty() => {
                // More bytes than the reply: the start of a frame nobody asked for, whose rest
                // would arrive in front of the next reply. The connection is out of step.
                span.in_scope(|| {
                    tracing::warn!(
                        extra = taken.read_buf.len(),
                        "bytes after the reply; dropping the connection"
                    )
                });
                Ok(response)
            }
            _ => {
                *connection = Some(taken);
                Ok(response)
            }
        }
    }
}

impl Connection {
    /// Best effort: false when the peer has closed the connection or sent bytes nobody asked
    /// for (as far as the reactor already knows; no waiting).
    fn is_idle_and_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let read = match &mut self.stream {
            Stream::Tcp(stream) => stream.try_read(&mut probe),
            // Any other stream is asked once, without a waker that matters: `Pending` means
            // nothing has arrived and it is open. The next real read registers its own waker.
            Stream::Other(stream) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                match Pin::new(stream).poll_read(&mut cx, &mut buf) {
                    Poll::Pending => return true,
                    Poll::Ready(result) => result.map(|()| buf.filled().len()),
                }
            }
        };
        match read {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(0) => {
                self.span
                    .in_scope(|| tracing::debug!("closed by the peer while idle; reconnecting"));
                false
            }
            Ok(_) => {
                self.span
                    .in_scope(|| tracing::warn!("unsolicited bytes while idle; reconnecting"));
                false
            }
        }
    }

    /// [`Connection::exchange`] by `deadline`: `None` when it passes first.
    ///
    /// The connection's timer is moved back when it stands later than `deadline` (a call with
    /// a shorter timeout than the last); when it fires before `deadline` (it stands where an
    /// earlier call's deadline was), it is moved on to `deadline` and the wait goes on. A call
    /// with the same timeout as the last therefore leaves the timer where it is.
    async fn exchange_by(
        &mut self,
        frame: &[u8],
        codec: ClientCodec,
        id: u64,
        deadline: Instant,
    ) -> Option<Result<Response, Error>> {
        let Self {
            stream,
            read_buf,
            timer,
            ..
        } = self;
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let mut exchange = std::pin::pin!(Self::exchange(stream, read_buf, frame, codec, id));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            while timer.as_mut().poll(cx).is_ready() {
                if Instant::now() >= deadline {
                    return Poll::Ready(None);
                }
                timer.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }

    async fn exchange(
        stream: &mut Stream,
        read_buf: &mut BytesMut,
        frame: &[u8],
        mut codec: ClientCodec,
        id: u64,
    ) -> Result<Response, Error> {
        tracing::trace!(hex = %Hex(frame), "send");
        if let Some(payload) = frame.get(crate::wire::HEADER_LEN..) {
            tracing::debug!(request_id = id, payload = %String::from_utf8_lossy(payload), "request");
        }
        // Header and payload in one write: with Nagle off, one segment per request.
        stream.write_all(frame).await?;
        if let Stream::Other(_) = stream {
            // A user's stream may buffer (TLS does); TCP writes through.
            stream.flush().await?;
        }
        // Anything left in the buffer here would be a reply nobody asked for.
        read_buf.clear();
        loop {
            let before = read_buf.len();
            if let Some(response) = codec.decode(read_buf)? {
                if read_buf.is_empty() && read_buf.capacity() > RETAINED_CAPACITY {
                    // Do not keep a large reply's buffer for the life of the connection.
                    *read_buf = BytesMut::new();
                }
                tracing::debug!(request_id = ?response.request_id, status = ?response.status, error = ?response.error, "response");
                return Ok(response);
            }
            if read_buf.capacity() - read_buf.len() == 0 {
                read_buf.reserve(READ_STEP);
            }
            let n = stream.read_buf(read_buf).await?;
            if n == 0 {
                return Err(Error::Closed);
            }
            if let Some(new) = read_buf.get(before..) {
                tracing::trace!(hex = %Hex(new), "received");
            }
        }
    }
}

/// `timeout` from now; a duration too large to represent (`Duration::MAX` for "no limit") is
/// capped at a century instead of overflowing.
fn deadline_after(timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(CENTURY)).unwrap_or(now)
}

fn describe(error: &ErrorObject) -> String {
    match (error.code, error.message.is_empty()) {
        (Some(code), false) => format!("{code} {}", error.message),
        (Some(code), true) => format!("error {code}"),
        (None, false) => error.message.clone(),
        (None, true) => "no error details".to_owned(),
    }
}

/// An accepted response's `data`, `null` when it had none.
fn data(response: Response) -> Value {
    response.data.unwrap_or(Value::Null)
}

fn unexpected(command: &str, reason: &str) -> Error {
    Error::UnexpectedData {
        command: command.to_owned(),
        reason: reason.to_owned(),
    }
}

fn is_blocking(request: &Request) -> bool {
    request.target == Target::Routine && BLOCKING_COMMANDS.contains(&request.command.as_str())
}

fn string_list(data: &Value, key: &str) -> Option<Vec<String>> {
    data.get(key)?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn client_is_a_clonable_send_sync_handle() {
        assert_send_sync::<Client>();
    }

    #[test]
    fn error_classification() {
        assert!(Error::Timeout(Duration::from_secs(1)).is_timeout());
        assert!(Error::Timeout(Duration::from_secs(1)).is_connection_fatal());
        let mismatch = Error::RequestIdMismatch {
            expected: 1,
            received: 2,
        };
        assert!(mismatch.is_connection_fatal() && !mismatch.is_timeout());
        let device = Error::Device(DeviceError {
            target: Target::Routine,
            command: "StartMeasurement".into(),
            error: ErrorObject::new(4006, "No active routine"),
        });
        assert!(!device.is_connection_fatal());
        assert_eq!(
            device.device_error().and_then(DeviceError::code),
            Some(4006)
        );
        assert_eq!(
            device.to_string(),
            "ROUTINE StartMeasurement refused: 4006 No active routine"
        );
    }

    #[test]
    fn blocking_routine_commands_get_the_blocking_timeout_unless_the_call_timeout_is_longer() {
        let client = Client::builder("127.0.0.1:6360")
            .call_timeout(Duration::from_secs(2))
            .blocking_timeout(Duration::from_secs(90))
            .build();
        for command in BLOCKING_COMMANDS {
            let request = Request::new(Target::Routine, *command);
            assert_eq!(client.timeout_for(&request), Duration::from_secs(90));
        }
        // Only as ROUTINE commands, and not other commands.
        for request in [
            Request::new(Target::Main, "AcquireSingle"),
            Request::new(Target::Routine, "GetTestStatus"),
            Request::new(Target::Routine, "SetLaser"),
        ] {
            assert_eq!(client.timeout_for(&request), Duration::from_secs(2));
        }
        let patient = Client::builder("127.0.0.1:6360")
            .call_timeout(Duration::from_secs(900))
            .build();
        let request = Request::new(Target::Routine, "AutoExposure");
        assert_eq!(patient.timeout_for(&request), Duration::from_secs(900));
    }

    #[test]
    fn an_error_status_without_an_error_object_is_a_refusal() {
        let request = Request::new(Target::Main, "X");
        let response = Response {
            status: Some(crate::Status::Error),
            ..Response::default()
        };
        let refused = refusal(&request, response).unwrap_err();
        assert_eq!(refused.error, ErrorObject::default());
        let ok = refusal(&request, Response::ok(json!({"a":1}), None)).unwrap();
        assert_eq!(data(ok), json!({"a":1}));
    }
}
