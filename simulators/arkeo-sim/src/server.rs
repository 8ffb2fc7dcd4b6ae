//! The network surface: the shared [`Device`] as a `labwire_simkit::Device`, served through
//! arkeo-proto's [`ServerCodec`] and the simulator kit's fault layer (`Faulty`).

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arkeo_proto::wire::{self, Hex};
use arkeo_proto::{
    BadRequest, DecodeError, EncodeError, Limits, Request, Response, RoutineState, ServerCodec,
    codes, json,
};
use bytes::{Bytes, BytesMut};
use labwire_net::CancellationToken;
use labwire_net::service::Exchange;
use labwire_simkit::{Faults, Faulty, HostConfig, Requests, SimClock, SimHandle};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::task::TaskTracker;

use crate::scenario::{ArkeoMatcher, ArkeoScenario};
use crate::{Device, Durations};

/// How long a connection may take to deliver the rest of a frame once its first byte has
/// arrived (bytes that trickle in do not extend it), and to take a whole reply: 10 s.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay without a request begun before it is closed: 5 minutes
/// (labwire-net's default; the shared host setting `idle_timeout`, `--idle-timeout`, changes
/// it). ARKEO clients keep their
/// connection between calls, so this is long; it frees the slots of clients that went away
/// without closing (at the connection cap a new client is refused at once, see
/// `max_connections`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = labwire_net::service::DEFAULT_IDLE_TIMEOUT;

/// The simulator's own faults, besides the kit's (`Fault::Delay`, `NoReply`, `Close`,
/// `Truncate`, `Garbage`): `Fault::Device(ArkeoFault::..)`.
///
/// In scenario files and control requests: `{device: wrong_request_id}`,
/// `{device: request_id_as_float}`, `{device: request_id_as_string}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArkeoFault {
    /// The answer carries a `request_id` other than the request's (the client must see the
    /// connection as out of step).
    WrongRequestId,
    /// The answer echoes the request's `request_id` as a float (`1001.0`), as a device that
    /// keeps numbers as doubles writes it.
    RequestIdAsFloat,
    /// The answer echoes the request's `request_id` as a string (`"1001"`).
    RequestIdAsString,
}

/// A well-framed payload that is not JSON: what `Fault::Garbage` sends instead of an answer.
const GARBAGE: &[u8] = b"\x00\x00\x00\x13\x00garbage, not JSON\xff";

/// Configures an [`ArkeoSim`]; see [`ArkeoSim::builder`]. The host settings (`listen`,
/// `backlog`, `max_connections`, `frame_budget`, `idle_timeout` ([`DEFAULT_IDLE_TIMEOUT`] here),
/// `time_scale`/`speed`, `clock`, `host`) are the simulator kit's, the same in every labwire
/// simulator.
#[derive(Debug, Clone)]
pub struct ArkeoSimBuilder {
    host: HostConfig,
    durations: Durations,
    limits: Limits,
    frame_timeout: Duration,
    scenario: ArkeoScenario,
}

impl ArkeoSimBuilder {
    labwire_simkit::host_setters!();

    /// The device as `scenario` describes it: routines, timings (over [`Durations`] set
    /// before or after), settings, data, TMPCTL/MUX/LED state, an active routine or error, and
    /// the fault schedule ([`ArkeoScenario::load`] reads one from a file). A reset goes back
    /// to it.
    #[must_use]
    pub fn scenario(mut self, scenario: ArkeoScenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// Routine phase and blocking command durations in simulated time ([`Durations`]).
    #[must_use]
    pub fn durations(mut self, durations: Durations) -> Self {
        self.durations = durations;
        self
    }

    /// How long the routine still reports Ready after an accepted `StartMeasurement`
    /// ([`Durations::start_lag`], 0.25 s of simulated time by default; zero switches to
    /// Starting inside the reply).
    #[must_use]
    pub fn start_lag(mut self, lag: std::time::Duration) -> Self {
        self.durations.start_lag = lag;
        self
    }

    /// Largest frame accepted and sent ([`arkeo_proto::DEFAULT_MAX_FRAME_LENGTH`]).
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.limits.max_frame_length = max;
        self
    }

    /// Frame limits, all at once.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// See [`DEFAULT_FRAME_TIMEOUT`] (`Duration::MAX`: no limit).
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
        let clock = self.host.clock();
        let scenario = Arc::new(self.scenario);
        let state = SimState {
            device: Arc::new(Mutex::new(Device::from_scenario(
                self.durations,
                &scenario,
                clock.now(),
            ))),
            clock: clock.clone(),
            scenario: Arc::clone(&scenario),
            durations: self.durations,
        };
        let faults: Faults<ArkeoFault, ArkeoMatcher> = Faults::default();
        faults
            .reschedule(&scenario.faults)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let requests = Requests::default();
        let service = Faulty::new(
            Served(state.clone()),
            faults.clone(),
            Bytes::from_static(GARBAGE),
            requests.clone(),
        );
        let exchange = self.host.exchange(Exchange {
            read_timeout: self.frame_timeout,
            write_timeout: self.frame_timeout,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            ..Exchange::new()
        });
        let server = self.host.bind().await?;
        let budget = server
            .frame_budget()
            .clone()
            .with_claimed_length(wire::claimed_length);
        let server = server.with_frame_budget(budget);
        let shutdown = CancellationToken::new();
        let limits = self.limits;
        let handle = labwire_net::service::serve(
            server,
            shutdown.child_token(),
            service,
            move || SimCodec(ServerCodec::with_limits(limits)),
            exchange,
        );
        tracing::debug!(addr = %handle.local_addr(), "arkeo-sim listening");
        let tasks = TaskTracker::new();
        Ok(ArkeoSim(SimHandle::new(
            handle, state, clock, faults, requests, shutdown, tasks,
        )))
    }
}

/// A running simulator: the simulator kit's [`SimHandle`] (address, [`SimState`], clock,
/// faults, request and connection counts, shutdown), which it dereferences to. Dropping it
/// stops the server without waiting; `shutdown()` also waits until every client is
/// disconnected.
#[derive(Debug)]
pub struct ArkeoSim(SimHandle<SimState, ArkeoFault, ArkeoMatcher>);

impl ArkeoSim {
    /// A builder with the defaults: loopback port 0, real-time clock, default durations.
    pub fn builder() -> ArkeoSimBuilder {
        ArkeoSimBuilder {
            host: HostConfig::loopback(),
            durations: Durations::default(),
            limits: Limits::default(),
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            scenario: ArkeoScenario::default(),
        }
    }
}

impl Deref for ArkeoSim {
    type Target = SimHandle<SimState, ArkeoFault, ArkeoMatcher>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Direct access to the simulated device, for tests and embedding. Clones share the device,
/// which is the one every connection talks to.
#[derive(Debug, Clone)]
pub struct SimState {
    device: Arc<Mutex<Device>>,
    clock: SimClock,
    /// What a reset goes back to.
    scenario: Arc<ArkeoScenario>,
    durations: Durations,
}

impl labwire_simkit::control::Control for SimState {
    type Fault = ArkeoFault;
    type Matcher = ArkeoMatcher;

    fn state(&self) -> serde_json::Value {
        let mut state = self.with(|device| device.state_json());
        if let Some(map) = state.as_object_mut() {
            map.insert(
                "clock".to_owned(),
                labwire_simkit::duration::format(self.clock.now()).into(),
            );
        }
        state
    }

    fn reset(&self) {
        let fresh = Device::from_scenario(self.durations, &self.scenario, self.clock.now());
        *self.device() = fresh;
    }

    fn initial_faults(&self) -> Vec<labwire_simkit::ScheduledFault<ArkeoFault, ArkeoMatcher>> {
        self.scenario.faults.clone()
    }
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

    /// Handles a request exactly as a connection would (without faults), except that a
    /// blocking command answers at once instead of after its hardware time.
    pub fn handle(&self, request: &Request) -> Response {
        let now = self.clock.now();
        self.device().handle(request, now)
    }

    /// Sets how long the routine still reports Ready after an accepted `StartMeasurement`
    /// ([`Durations::start_lag`]); a start already in its lag uses the new length.
    pub fn set_start_lag(&self, lag: Duration) {
        self.with(|device| device.set_start_lag(lag));
    }

    /// Replaces every duration ([`Durations`]).
    pub fn set_durations(&self, durations: Durations) {
        self.with(|device| device.set_durations(durations));
    }

    /// The active routine's name.
    pub fn active_routine(&self) -> Option<String> {
        self.with(|d| d.routine().map(|r| r.name().to_owned()))
    }

    /// The active routine's state, as `GetTestStatus` reports it (Ready during the start
    /// lag; see [`crate::Routine::start_pending`]).
    pub fn routine_state(&self) -> Option<RoutineState> {
        self.with(|d| d.routine().map(|r| r.state().clone()))
    }

    /// Puts the active routine into Error with `message`; returns whether one was active.
    pub fn fail_routine(&self, message: &str) -> bool {
        let now = self.clock.now();
        self.device().fail_routine(message, now)
    }

    /// Requests handled so far, over all connections (well-formed ones; the handle's
    /// `requests()` counts every frame).
    pub fn requests_handled(&self) -> u64 {
        self.device().requests_handled()
    }
}

/// The device as the network serves it.
struct Served(SimState);

/// An answer and how to write it.
#[derive(Debug)]
struct Reply {
    response: Response,
    /// Measurement data: non-finite numbers go out as bare `NaN`/`Infinity`, as the vendor
    /// writes them.
    bare_non_finite: bool,
    /// How the echoed `request_id` is written.
    id_style: IdStyle,
}

/// How an answer writes its `request_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdStyle {
    /// `1001`, as the vendor documents.
    Integer,
    /// `1001.0`.
    Float,
    /// `"1001"`.
    String,
}

impl Reply {
    /// The response as a JSON value whose `request_id` is written in `id_style`.
    fn restyled(&self) -> Result<serde_json::Value, serde_json::Error> {
        let mut value = serde_json::to_value(&self.response)?;
        if let (Some(id), Some(map)) = (self.response.request_id, value.as_object_mut()) {
            #[allow(
                clippy::cast_precision_loss,
                reason = "a fault that mimics a device storing ids as doubles"
            )]
            let styled = match self.id_style {
                IdStyle::Integer => serde_json::Value::from(id),
                IdStyle::Float => serde_json::Value::from(id as f64),
                IdStyle::String => serde_json::Value::from(id.to_string()),
            };
            map.insert("request_id".to_owned(), styled);
        }
        Ok(value)
    }
}

impl labwire_simkit::Device for Served {
    type Request = Result<Request, BadRequest>;
    type Response = Reply;
    type Fault = ArkeoFault;

    async fn call(
        &self,
        _peer: SocketAddr,
        request: Result<Request, BadRequest>,
        fault: Option<ArkeoFault>,
    ) -> Reply {
        let mut reply = match request {
            Ok(request) => {
                tracing::debug!(
                    target_ = %request.target,
                    command = %request.command,
                    request_id = ?request.request_id,
                    parameter = %serde_json::Value::Object(request.parameter.clone()),
                    "request"
                );
                let state = &self.0;
                let (response, busy) = {
                    let now = state.clock.now();
                    state.device().handle_timed(&request, now)
                };
                if !busy.is_zero() {
                    // The hardware works before the answer goes out (the device stays usable
                    // from other connections meanwhile).
                    tracing::debug!(?busy, command = %request.command, "blocking command");
                    state.clock.sleep(busy).await;
                }
                tracing::debug!(status = ?response.status, error = ?response.error, "response");
                Reply {
                    // Measurement data and the monochromator's filter table carry non-finite
                    // numbers, which the vendor writes as bare tokens.
                    bare_non_finite: matches!(
                        request.command.as_str(),
                        "GetTestData" | "GetMonochromatorStatus"
                    ) && !response.is_error(),
                    response,
                    id_style: IdStyle::Integer,
                }
            }
            Err(bad) => {
                tracing::debug!("{bad}");
                Reply {
                    response: bad.response(),
                    bare_non_finite: false,
                    id_style: IdStyle::Integer,
                }
            }
        };
        match fault {
            Some(ArkeoFault::WrongRequestId) => {
                let id = reply.response.request_id;
                reply.response.request_id = Some(id.map_or(u64::MAX, |id| id.wrapping_add(1000)));
            }
            Some(ArkeoFault::RequestIdAsFloat) => reply.id_style = IdStyle::Float,
            Some(ArkeoFault::RequestIdAsString) => reply.id_style = IdStyle::String,
            None => {}
        }
        reply
    }
}

/// arkeo-proto's server codec, writing measurement data with bare non-finite numbers, an
/// answer too large for the limit as an error reply, and every frame at `trace` in hex.
struct SimCodec(ServerCodec);

impl Decoder for SimCodec {
    type Item = Result<Request, BadRequest>;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, DecodeError> {
        if let Ok(Some((_, used))) = wire::split_frame(src, self.0.limits().max_frame_length) {
            tracing::trace!(hex = %Hex(src.get(..used).unwrap_or_default()), "received");
        }
        self.0.decode(src)
    }
}

impl Encoder<Reply> for SimCodec {
    type Error = EncodeError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        let max = self.0.limits().max_frame_length;
        let encoded = match (reply.bare_non_finite, reply.id_style) {
            (false, IdStyle::Integer) => self.0.encode(&reply.response, dst),
            (true, IdStyle::Integer) => json::to_vec_non_finite(&reply.response)
                .map_err(EncodeError::from)
                .and_then(|payload| wire::encode_frame(&payload, max, dst)),
            (bare, _) => reply
                .restyled()
                .and_then(|value| {
                    if bare {
                        json::to_vec_non_finite(&value)
                    } else {
                        serde_json::to_vec(&value)
                    }
                })
                .map_err(EncodeError::from)
                .and_then(|payload| wire::encode_frame(&payload, max, dst)),
        };
        if let Err(e) = encoded {
            tracing::error!("cannot encode the reply: {e}");
            let fallback = Response::error(
                codes::INVALID_STATE,
                format!("reply too large: {e}"),
                reply.response.request_id,
            );
            self.0.encode(fallback, dst)?;
        }
        tracing::trace!(hex = %Hex(dst.get(start..).unwrap_or_default()), "send");
        Ok(())
    }
}
