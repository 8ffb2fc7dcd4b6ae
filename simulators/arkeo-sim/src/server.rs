//! The network surface: one listener, one task per connection, one shared [`Device`].

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arkeo_proto::wire::{self, Hex};
use arkeo_proto::{
    DEFAULT_MAX_FRAME_LENGTH, DecodeError, FrameCodec, Request, Response, RoutineState, codes, json,
};
use bytes::BytesMut;
use labwire_net::{CancellationToken, Server, ServerConfig, ServerHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::faults::Action;
use crate::{Device, Durations, Faults, SimClock};

/// How long a connection may take to deliver the rest of a frame once its first byte has
/// arrived, and to take a whole reply: 10 s. Idle time between requests is not limited; idle
/// connections are bounded by the connection limit instead.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer capacity a connection keeps between requests.
const RETAINED_CAPACITY: usize = 256 * 1024;

/// Configures an [`ArkeoSim`]; see [`ArkeoSim::builder`].
#[derive(Debug, Clone)]
pub struct ArkeoSimBuilder {
    server: ServerConfig,
    durations: Durations,
    clock: SimClock,
    max_frame_length: usize,
    frame_timeout: Duration,
}

impl ArkeoSimBuilder {
    /// Address to listen on (default `127.0.0.1:0`: loopback, any free port).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.server.addr = addr;
        self
    }

    /// Listen backlog ([`labwire_net::DEFAULT_BACKLOG`] by default).
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.server.backlog = backlog;
        self
    }

    /// Connections served at once; more wait in the backlog.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.server.max_connections = max;
        self
    }

    /// Routine phase durations in simulated time.
    #[must_use]
    pub fn durations(mut self, durations: Durations) -> Self {
        self.durations = durations;
        self
    }

    /// Runs simulated time `speed` times faster than real time (default 1.0).
    #[must_use]
    pub fn speed(mut self, speed: f64) -> Self {
        self.clock = SimClock::scaled(speed);
        self
    }

    /// Uses `clock` (e.g. [`SimClock::manual`] for tests that step time themselves).
    #[must_use]
    pub fn clock(mut self, clock: SimClock) -> Self {
        self.clock = clock;
        self
    }

    /// Largest frame accepted and sent ([`DEFAULT_MAX_FRAME_LENGTH`]).
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_length = max;
        self
    }

    /// See [`DEFAULT_FRAME_TIMEOUT`].
    #[must_use]
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Binds and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> io::Result<ArkeoSim> {
        let state = SimState {
            device: Arc::new(Mutex::new(Device::new(self.durations))),
            clock: self.clock,
        };
        let faults = Faults::default();
        let shared = Arc::new(Shared {
            state: state.clone(),
            faults: faults.clone(),
            max_frame_length: self.max_frame_length,
            frame_timeout: self.frame_timeout,
        });
        let server = Server::bind(self.server).await?;
        let handle = server.serve(move |stream, peer, token| {
            serve_connection(stream, peer, shared.clone(), token)
        });
        tracing::debug!(addr = %handle.local_addr(), "arkeo-sim listening");
        Ok(ArkeoSim {
            handle,
            state,
            faults,
        })
    }
}

/// A running simulator. Dropping it stops the server without waiting; [`ArkeoSim::shutdown`]
/// also waits until every client is disconnected.
#[derive(Debug)]
pub struct ArkeoSim {
    handle: ServerHandle,
    state: SimState,
    faults: Faults,
}

impl ArkeoSim {
    /// A builder with the defaults: loopback port 0, real-time clock, default durations.
    pub fn builder() -> ArkeoSimBuilder {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ArkeoSimBuilder {
            server: ServerConfig::new(loopback),
            durations: Durations::default(),
            clock: SimClock::scaled(1.0),
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The device state shared by every connection.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// The simulated clock.
    pub fn clock(&self) -> &SimClock {
        &self.state.clock
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Clients connected right now.
    pub fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    /// Stops accepting, disconnects every client, and waits until all are gone. Idempotent.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await;
    }

    /// The token that stops this simulator when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.handle.shutdown_token()
    }
}

/// Direct access to the simulated device, for tests and embedding. Clones share the device.
#[derive(Debug, Clone)]
pub struct SimState {
    device: Arc<Mutex<Device>>,
    clock: SimClock,
}

impl SimState {
    fn device(&self) -> MutexGuard<'_, Device> {
        // Device methods do not panic on any input; should one ever, the state it leaves is
        // still a valid device (every field is always consistent on its own).
        self.device.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the device, brought up to the current simulated time first.
    pub fn with<R>(&self, f: impl FnOnce(&mut Device) -> R) -> R {
        let now = self.clock.now();
        let mut device = self.device();
        device.advance(now);
        f(&mut device)
    }

    /// Handles a request exactly as a connection would (without faults).
    pub fn handle(&self, request: &Request) -> Response {
        let now = self.clock.now();
        self.device().handle(request, now)
    }

    /// The active routine's name.
    pub fn active_routine(&self) -> Option<String> {
        self.with(|d| d.routine().map(|r| r.name().to_owned()))
    }

    /// The active routine's state.
    pub fn routine_state(&self) -> Option<RoutineState> {
        self.with(|d| d.routine().map(|r| r.state().clone()))
    }

    /// Puts the active routine into Error with `message`; returns whether one was active.
    pub fn fail_routine(&self, message: &str) -> bool {
        let now = self.clock.now();
        self.device().fail_routine(message, now)
    }

    /// Requests handled so far, over all connections.
    pub fn requests_handled(&self) -> u64 {
        self.device().requests_handled()
    }
}

#[derive(Debug)]
struct Shared {
    state: SimState,
    faults: Faults,
    max_frame_length: usize,
    frame_timeout: Duration,
}

/// Why a connection ended, for the log.
enum End {
    Closed,
    Fault,
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _token: CancellationToken,
) {
    // The listener already runs this future inside a `connection` span with the peer; server
    // shutdown drops this future, which closes the socket.
    match connection_loop(&mut stream, &shared).await {
        Ok(End::Closed) => tracing::debug!(%peer, "client closed the connection"),
        Ok(End::Fault) => tracing::debug!(%peer, "connection dropped by fault injection"),
        Err(reason) => tracing::warn!(%peer, "{reason}; closing the connection"),
    }
}

async fn connection_loop(stream: &mut TcpStream, shared: &Shared) -> Result<End, String> {
    let mut codec = FrameCodec::new().max_frame_length(shared.max_frame_length);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::with_capacity(4096);
    // When the frame being received must be complete. Set when its first byte is seen, so a
    // client trickling one byte at a time cannot extend it.
    let mut deadline: Option<Instant> = None;
    loop {
        let payload = loop {
            match codec.decode(&mut buf) {
                Ok(Some(payload)) => {
                    deadline = None;
                    if buf.is_empty() && buf.capacity() > RETAINED_CAPACITY {
                        // Do not keep a large request's buffer for the life of the connection.
                        buf = BytesMut::with_capacity(4096);
                    }
                    break payload;
                }
                Ok(None) => {}
                // Only the length prefix can fail here: the stream cannot be resynchronised.
                Err(e) => return Err(format!("unreadable frame: {e}")),
            }
            if buf.capacity() == buf.len() {
                buf.reserve(4096);
            }
            let before = buf.len();
            let n = if buf.is_empty() {
                // Idle between requests: no limit.
                stream.read_buf(&mut buf).await
            } else {
                // A frame has begun: it must be complete by its deadline.
                let until = *deadline.get_or_insert_with(|| deadline_after(shared.frame_timeout));
                match tokio::time::timeout_at(until, stream.read_buf(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => {
                        return Err(format!(
                            "incomplete frame ({} bytes) not finished within {:?}",
                            buf.len(),
                            shared.frame_timeout
                        ));
                    }
                }
            };
            match n {
                Ok(0) if buf.is_empty() => return Ok(End::Closed),
                Ok(0) => {
                    return Err(format!(
                        "connection closed in the middle of a frame ({} bytes)",
                        buf.len()
                    ));
                }
                Ok(_) => {
                    if let Some(new) = buf.get(before..) {
                        tracing::trace!(hex = %Hex(new), "received");
                    }
                }
                Err(e) => return Err(format!("read failed: {e}")),
            }
        };

        let (response, non_finite) = respond(&payload, &shared.state);
        let (action, delay) = shared.faults.take();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let response = match action {
            Action::Reply | Action::Truncate => response,
            Action::Garbage => {
                out.clear();
                let garbage = b"\x00garbage, not JSON\xff";
                if let Err(e) = wire::encode_frame(garbage, shared.max_frame_length, &mut out) {
                    return Err(format!("cannot encode garbage: {e}"));
                }
                write(stream, &out, shared.frame_timeout).await?;
                tracing::debug!("fault injection: sent garbage instead of the reply");
                continue;
            }
            Action::Drop => return Ok(End::Fault),
            Action::Silence => {
                tracing::debug!("fault injection: not answering");
                continue;
            }
            Action::WrongId => Response {
                request_id: Some(
                    response
                        .request_id
                        .map_or(u64::MAX, |id| id.wrapping_add(1000)),
                ),
                ..response
            },
        };
        out.clear();
        if let Err(e) = encode(&response, non_finite, shared.max_frame_length, &mut out) {
            tracing::error!("cannot encode the reply: {e}");
            let fallback = Response::error(
                codes::INVALID_STATE,
                format!("reply too large: {e}"),
                response.request_id,
            );
            out.clear();
            if let Err(e) = wire::encode_response(&fallback, shared.max_frame_length, &mut out) {
                return Err(format!("cannot encode an error reply: {e}"));
            }
        }
        if action == Action::Truncate {
            let half = out.get(..out.len() / 2).unwrap_or_default();
            tracing::trace!(hex = %Hex(half), "send (truncated)");
            write(stream, half, shared.frame_timeout).await?;
            return Ok(End::Fault);
        }
        tracing::trace!(hex = %Hex(&out), "send");
        write(stream, &out, shared.frame_timeout).await?;
    }
}

/// `timeout` from now; a duration too large to represent (`Duration::MAX` for "no limit") is
/// capped at a century instead of overflowing.
fn deadline_after(timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(CENTURY)).unwrap_or(now)
}

/// Writes one reply, which the client must take within `timeout`: one that sends requests but
/// never reads the replies would otherwise hold its connection (and task) forever.
async fn write(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!(
            "reply of {} bytes not taken by the client within {timeout:?}",
            bytes.len()
        )),
    }
}

/// Turns one payload into a response; the flag says whether to write non-finite numbers as
/// bare tokens (measurement data, as the vendor does).
fn respond(payload: &[u8], state: &SimState) -> (Response, bool) {
    let value = match wire::parse_payload(payload) {
        Ok(value) => value,
        Err(e) => {
            tracing::debug!(payload = %String::from_utf8_lossy(payload), "bad payload: {e}");
            let message = match e {
                DecodeError::InvalidUtf8(_) => "Invalid JSON: payload is not UTF-8".to_owned(),
                other => format!("Invalid JSON: {other}"),
            };
            return (Response::error(codes::INVALID_JSON, message, None), false);
        }
    };
    let request_id = value.get("request_id").and_then(Value::as_u64);
    let request = match Request::from_value(value) {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!("bad request: {e}");
            return (
                Response::error(
                    codes::INVALID_REQUEST,
                    format!("Invalid request: {e}"),
                    request_id,
                ),
                false,
            );
        }
    };
    tracing::debug!(
        target_ = %request.target,
        command = %request.command,
        request_id = ?request.request_id,
        parameter = %serde_json::Value::Object(request.parameter.clone()),
        "request"
    );
    let response = state.handle(&request);
    tracing::debug!(status = ?response.status, error = ?response.error, "response");
    let non_finite = request.command == "GetTestData" && !response.is_error();
    (response, non_finite)
}

fn encode(
    response: &Response,
    non_finite: bool,
    max: usize,
    out: &mut BytesMut,
) -> Result<(), arkeo_proto::EncodeError> {
    if non_finite {
        let payload = json::to_vec_non_finite(response)?;
        wire::encode_frame(&payload, max, out)
    } else {
        wire::encode_response(response, max, out)
    }
}
