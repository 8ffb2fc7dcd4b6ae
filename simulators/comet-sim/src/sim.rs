//! The running simulator: the device behind simkit's fault layer, served by `labwire-net`'s
//! serve loop with COMET's codec, one exchange per connection.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use comet_socket::dispatch::Answer;
use comet_socket::server::CancellationToken;
use comet_socket::{CodecError, CometCodec, Frame, Limits};
use labwire_net::PlannedService;
use labwire_net::service::Plan;
use labwire_simkit::{Faulty, HostConfig, Requests, SimHandle};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::task::TaskTracker;

use crate::config::{GARBAGE, SimConfig};
use crate::device::{CometDevice, CometFault, SimState, initial_faults};
use crate::scenario::{CometMatcher, CometScenario};
use crate::{Fault, Faults};

/// Configures a [`CometSim`]; see [`CometSim::builder`]. The host settings (`listen`,
/// `backlog`, `max_connections`, `frame_budget`, `idle_timeout` (here the connection deadline,
/// 30 s, unless set), `time_scale`/`speed`, `clock`, `host`) are the same as every labwire
/// simulator's; the others change one field of the [`SimConfig`] it holds.
#[derive(Debug, Clone)]
pub struct CometSimBuilder {
    host: HostConfig,
    config: SimConfig,
    shutdown: Option<CancellationToken>,
}

impl CometSimBuilder {
    labwire_simkit::host_setters!();

    /// Replaces the device settings (keeps the host settings and a token given with
    /// [`CometSimBuilder::stop_on`]).
    #[must_use]
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// The endpoint as `scenario` describes it ([`CometScenario::load`] reads one from a
    /// file): what it gives replaces the settings set before (answers, delays and Telegram
    /// replies are added to them), and its fault schedule replaces [`SimConfig::schedule`].
    /// Setters called after it win. A reset (`sim.reset()`, the control channel's
    /// `POST /reset`) goes back to the settings and the schedule the simulator started with.
    #[must_use]
    pub fn scenario(mut self, scenario: CometScenario) -> Self {
        scenario.apply(&mut self.config);
        self
    }

    /// The handlers take `delay` (simulated time) for every request of `action`; see
    /// [`SimConfig::delays`].
    #[must_use]
    pub fn delay(mut self, action: impl Into<String>, delay: Duration) -> Self {
        self.config.delays.insert(action.into(), delay);
        self
    }

    /// COMET-fidelity mode (see the crate docs); off by default.
    #[must_use]
    pub fn fidelity(mut self, on: bool) -> Self {
        self.config.fidelity = on;
        self
    }

    /// Real time each step of a connection may take; see [`SimConfig::connection_deadline`].
    #[must_use]
    pub fn connection_deadline(mut self, deadline: Duration) -> Self {
        self.config.connection_deadline = deadline;
        self
    }

    /// The action the Telegram-bot handler answers
    /// ([`DEFAULT_TELEGRAM_ACTION`](crate::DEFAULT_TELEGRAM_ACTION)).
    #[must_use]
    pub fn telegram_action(mut self, action: impl Into<String>) -> Self {
        self.config.telegram_action = action.into();
        self
    }

    /// Answers `action` with `value`, before the built-in handlers (adds to the answers).
    #[must_use]
    pub fn answer(mut self, action: impl Into<String>, value: Value) -> Self {
        self.config.answers.insert(action.into(), value);
        self
    }

    /// Replaces every fixed answer.
    #[must_use]
    pub fn answers(mut self, answers: BTreeMap<String, Value>) -> Self {
        self.config.answers = answers;
        self
    }

    /// The text the Telegram bot reports for `status` (`idle`).
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.config.status = status.into();
        self
    }

    /// Frame size limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// A fault applied to every request from the start; see
    /// [`Faults::set`](labwire_simkit::Faults::set).
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.config.fault = Some(fault);
        self
    }

    /// Stops the simulator also when `token` is cancelled (e.g. a parent's shutdown).
    #[must_use]
    pub fn stop_on(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// The device settings so far.
    pub fn current_config(&self) -> &SimConfig {
        &self.config
    }

    /// Binds and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> io::Result<CometSim> {
        let Self {
            host,
            config,
            shutdown,
        } = self;
        let server = host.bind().await?;
        let budget = server
            .frame_budget()
            .clone()
            .with_claimed_length(comet_socket::wire::claimed_length);
        let server = server.with_frame_budget(budget);
        let clock = host.clock();
        let state = SimState::new(&config, clock.clone());
        let faults = Faults::default();
        faults
            .reschedule(&initial_faults(&config))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let requests = Requests::default();
        let device = CometDevice::new(&config, state.clone(), clock.clone());
        let service = HoldLayer(Faulty::new(
            device,
            faults.clone(),
            Bytes::from_static(GARBAGE),
            requests.clone(),
        ));
        let codec = {
            let state = state.clone();
            let limits = config.limits;
            move || SimCodec::new(limits, state.clone())
        };
        let shutdown = shutdown.map_or_else(CancellationToken::new, |p| p.child_token());
        let handle = labwire_net::service::serve(
            server,
            shutdown.child_token(),
            service,
            codec,
            host.exchange(comet_socket::server::exchange(config.connection_deadline)),
        );
        tracing::info!(addr = %handle.local_addr(), fidelity = config.fidelity, "COMET simulator started");
        Ok(CometSim(SimHandle::new(
            handle,
            state,
            clock,
            faults,
            requests,
            shutdown,
            TaskTracker::new(),
        )))
    }
}

/// A running simulated COMET endpoint: simkit's [`SimHandle`] (`local_addr()`, `state()`,
/// `clock()`, `faults()`, `requests()`, `connection_count()`, `shutdown()`,
/// `shutdown_token()`) over the COMET [`SimState`]. Dropping it stops the server without
/// waiting; `shutdown()` also waits until every client is disconnected.
#[derive(Debug)]
pub struct CometSim(SimHandle<SimState, CometFault, CometMatcher>);

impl CometSim {
    /// A builder on `127.0.0.1` port 0, with a real-time clock, no fixed answers and no faults.
    pub fn builder() -> CometSimBuilder {
        CometSimBuilder {
            host: HostConfig::loopback(),
            config: SimConfig::default(),
            shutdown: None,
        }
    }

    /// Starts a simulator on `127.0.0.1` port 0 with the device settings `config`; the same as
    /// `CometSim::builder().config(config).start()`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        Self::builder().config(config).start().await
    }
}

impl Deref for CometSim {
    type Target = SimHandle<SimState, CometFault, CometMatcher>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Serves the device's [`Answer::Hold`] as `labwire-net`'s `NoReply` (whatever fault was due):
/// the connection stays open, parked on the socket and the deadline's timer, until the client
/// leaves or the deadline passes.
struct HoldLayer<S>(S);

impl<S> PlannedService for HoldLayer<S>
where
    S: PlannedService<Request = Frame, Response = Answer>,
{
    type Request = Frame;
    type Response = Answer;

    async fn call(&self, peer: SocketAddr, frame: Frame) -> (Answer, Plan) {
        let (answer, plan) = self.0.call(peer, frame).await;
        comet_socket::server::with_hold(answer, plan)
    }
}

/// COMET's frame codec, counting the connections (one codec each) and the frames that cannot
/// be decoded (they never reach the device).
struct SimCodec {
    frames: CometCodec,
    state: SimState,
}

impl SimCodec {
    fn new(limits: Limits, state: SimState) -> Self {
        state.count(|c| c.connections += 1);
        Self {
            frames: CometCodec::with_limits(limits),
            state,
        }
    }

    fn counted<T>(&self, decoded: Result<T, CodecError>) -> Result<T, CodecError> {
        if decoded.is_err() {
            self.state.count(|c| c.malformed += 1);
        }
        decoded
    }
}

impl Decoder for SimCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let decoded = self.frames.decode(src);
        self.counted(decoded)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let decoded = self.frames.decode_eof(src);
        self.counted(decoded)
    }
}

impl Encoder<Answer> for SimCodec {
    type Error = CodecError;

    fn encode(&mut self, answer: Answer, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.frames.encode(answer, dst)
    }
}
