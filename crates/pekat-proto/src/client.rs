//! The async client (feature `client`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::codec::ClientCodec;
use crate::error::{DecodeError, EncodeError};
use crate::message::{Dialect, ProjectState, Reply, Request, RequestId, Response, Terminator};
use crate::wire::{self, DEFAULT_MAX_REQUEST_LEN, DEFAULT_MAX_RESPONSE_LEN, Limits};

/// Default deadline for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline for an answer. Generous because a real Projects Manager answers `start`
/// only once the project is up, which can take tens of seconds.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time [`Client::start_and_wait`] / [`Client::stop_and_wait`] wait for an answer to
/// `start`/`stop` before they go on polling `status` without one.
pub const DEFAULT_NO_ANSWER_GRACE: Duration = Duration::from_secs(2);
/// Default pause between two `status` polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why a call failed. A device that answered but refused (`not-found`, `error:port`, ...) is
/// [`Error::Refused`]; everything else is about the transport or the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be made within the connect timeout.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why (`TimedOut`, `ConnectionRefused`, ...).
        #[source]
        source: io::Error,
    },
    /// Writing or reading failed.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
    /// No (complete) answer within the deadline. The connection has been dropped.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection without answering.
    #[error("the server closed the connection without answering")]
    Closed,
    /// The answer could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The request could not be encoded; nothing was sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The server answered, but not with success for this call (`not-found`, `error:port`,
    /// `Unknown command`, an unexpected answer, ...). The connection is fine.
    #[error("the server answered {0:?}")]
    Refused(Response),
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

    /// Whether the server gave no answer: it timed out or closed the connection.
    pub fn is_no_answer(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Closed)
    }

    /// The device's refusal, when that is what this error is.
    pub fn refusal(&self) -> Option<&Response> {
        match self {
            Self::Refused(response) => Some(response),
            _ => None,
        }
    }
}

/// How a [`Client`] talks. Public fields; start from [`ClientConfig::default`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Dialect of requests (answers are understood in either). Default 3.18.
    pub dialect: Dialect,
    /// Deadline to connect. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Deadline for each answer. Default [`DEFAULT_ANSWER_TIMEOUT`].
    pub answer_timeout: Duration,
    /// Keep one connection open across calls instead of a fresh connection per request
    /// (the default, and what integrators of the real server do). Calls then take turns.
    pub keep_connection: bool,
    /// Send an `<id>.` prefix with every request (3.19 only) and check the echo. Default off.
    pub request_ids: bool,
    /// What is written after each request, in the same write. Default [`Terminator::None`],
    /// as in the vendor's example.
    pub terminator: Terminator,
    /// Largest request sent (typed or raw), terminator not counted. Default
    /// [`DEFAULT_MAX_REQUEST_LEN`].
    pub max_request_len: usize,
    /// Largest answer accepted. Default [`DEFAULT_MAX_RESPONSE_LEN`].
    pub max_response_len: usize,
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
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            keep_connection: false,
            request_ids: false,
            terminator: Terminator::None,
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
            max_response_len: DEFAULT_MAX_RESPONSE_LEN,
            no_answer_grace: DEFAULT_NO_ANSWER_GRACE,
            poll_interval: DEFAULT_POLL_INTERVAL,
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
    addr: String,
    config: ClientConfig,
    kept: tokio::sync::Mutex<Option<Connection>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    buf: BytesMut,
}

impl Connection {
    /// Whether the connection is still open with nothing unread on it, as far as can be told
    /// without waiting (the last operation on a kept connection is a successful read, so the
    /// probe really asks the socket).
    fn is_idle_and_open(&self) -> bool {
        if !self.buf.is_empty() {
            tracing::debug!("unread bytes on the kept connection; reconnecting");
            return false;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
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

/// Builds a [`Client`]: `Client::builder(addr).dialect(..).build()`.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    addr: String,
    config: ClientConfig,
}

impl ClientBuilder {
    /// The dialect to speak.
    #[must_use]
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.config.dialect = dialect;
        self
    }

    /// Deadline to connect.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Deadline for each answer.
    #[must_use]
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.config.answer_timeout = timeout;
        self
    }

    /// Keep one connection across calls.
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
        self.config.max_request_len = limits.max_request_len;
        self.config.max_response_len = limits.max_response_len;
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
        Client::new(self.addr, self.config)
    }
}

impl Client {
    /// A client for the server at `addr` (`host:port`). Nothing is connected until the first
    /// call; each call resolves `addr` again.
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                addr: addr.into(),
                config,
                kept: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// A builder with the default configuration.
    pub fn builder(addr: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            addr: addr.into(),
            config: ClientConfig::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Sends `request` and returns whatever the server answered, refusals included.
    ///
    /// # Errors
    /// Transport failures, timeouts, undecodable answers (never [`Error::Refused`]).
    pub async fn request(&self, request: Request) -> Result<Reply, Error> {
        self.request_within(request, self.inner.config.answer_timeout)
            .await
    }

    /// Sends `text` as it is (then the configured [`Terminator`]) and returns the answer's
    /// text as it came, without its trailing line ending: no dialect, no id, no parsing. For
    /// commands the typed API does not spell, and for looking at what a server really says.
    ///
    /// The client's limits ([`ClientConfig::max_request_len`] for `text`,
    /// [`ClientConfig::max_response_len`] for the answer), its answer timeout, its connection
    /// handling ([`ClientConfig::keep_connection`]) and its framing of answers all apply, as
    /// for a typed request. A `text` that starts with `<id>.` has its echo awaited whole.
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
    /// transport errors and timeouts. Never [`Error::Refused`]: every answer is returned.
    pub async fn call_raw(&self, text: &str) -> Result<String, Error> {
        self.call_raw_with_timeout(text, self.inner.config.answer_timeout)
            .await
    }

    /// [`Client::call_raw`] with its own answer timeout instead of
    /// [`ClientConfig::answer_timeout`].
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
        wire::encode_raw_request(text, config.terminator, config.max_request_len, &mut out)?;
        let id = wire::raw_request_id(text);
        tracing::debug!(raw = text, addr = %self.inner.addr, "sending");
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

    /// Starts the project at `path`. `Ok` when the server answered `done`.
    ///
    /// # Errors
    /// [`Error::Refused`] with `NotFound`, `PortInUse`, ...; transport errors. A 3.19 server
    /// may not answer `start` at all: use [`Client::start_and_wait`] there.
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
    /// [`Error::Refused`] (`NotFound`, ...) when the answer is not a state; transport errors.
    pub async fn status(&self, path: impl Into<String>) -> Result<ProjectState, Error> {
        let reply = self.request(Request::status(path)).await?;
        match reply.response {
            Response::Status(state) => Ok(state),
            other => Err(Error::Refused(other)),
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
    /// [`Error::Refused`] when `start` or `status` is refused (`not-found`, `error:port`),
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
        let reply = self.request(request).await?;
        match reply.response {
            Response::Done | Response::Success => Ok(()),
            other => Err(Error::Refused(other)),
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
            Ok(reply) => return Err(Error::Refused(reply.response)),
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
                .request_within(Request::status(path), config.answer_timeout.min(remaining))
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
                Ok(reply) => return Err(Error::Refused(reply.response)),
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

    /// One request and its answer within `timeout`.
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
        if out.len() > config.max_request_len {
            return Err(Error::Encode(EncodeError::TooLarge {
                len: out.len(),
                max: config.max_request_len,
            }));
        }
        out.extend_from_slice(config.terminator.as_bytes());
        tracing::debug!(request = ?request, addr = %inner.addr, "sending");
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
        if !inner.config.keep_connection {
            let conn = self.open(deadline).await?;
            let (msg, _conn) = self.round_trip(conn, out, id, deadline, timeout).await?;
            return read(&msg);
        }
        let mut kept = match tokio::time::timeout_at(deadline, inner.kept.lock()).await {
            Ok(guard) => guard,
            Err(_) => return Err(Error::Timeout(timeout)),
        };
        // Taken out while in use: if this future is dropped, the connection goes with it.
        // One that the server closed, or that holds bytes nobody asked for (a stray or late
        // answer), is not reused: those bytes would be read as this request's answer.
        let reused = kept.take().filter(Connection::is_idle_and_open);
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
        *kept = Some(conn);
        Ok(value)
    }

    async fn open(&self, deadline: Instant) -> Result<Connection, Error> {
        let addr = &self.inner.addr;
        let timeout = self
            .inner
            .config
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let stream = labwire_net::connect(addr.as_str(), timeout)
            .await
            .map_err(|source| Error::Connect {
                addr: addr.clone(),
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
        let mut codec = ClientCodec::new(self.inner.config.dialect)
            .with_max_response_len(self.inner.config.max_response_len);
        codec.expect_id(id.cloned());
        let exchange = async {
            // One write per request: the server takes what arrives as the whole request.
            conn.stream.write_all(out).await.map_err(Error::Io)?;
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
        let refused = Error::Refused(Response::NotFound);
        assert_eq!(refused.refusal(), Some(&Response::NotFound));
        assert!(!refused.is_no_answer());
        let connect = Error::Connect {
            addr: "x".into(),
            source: io::Error::from(io::ErrorKind::TimedOut),
        };
        assert!(connect.is_timeout());
    }
}
