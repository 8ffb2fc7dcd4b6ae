#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
pub mod scenario;
pub mod state;

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use labwire_simkit::{Device, Faulty, HostConfig, Requests};
use pekat_proto::server::{CancellationToken, ServerBuilder, ServerConfig};
use pekat_proto::{Command, Dialect, Incoming, Limits, ProjectState, Reply, RequestId, Response};
use tokio_util::task::TaskTracker;

pub use config::{
    DEFAULT_GARBAGE, ProjectSpec, ProjectSpecError, SimConfig, demo_projects, parse_projects_file,
};
/// The shared fault vocabulary; this simulator's own faults are [`PekatFault`].
pub use labwire_simkit::Fault;
/// The simulator's clock: simulated time runs `time_scale` times faster than real time (0
/// stops it, so that only `advance` moves it). Start and stop delays are in simulated time.
pub use labwire_simkit::SimClock;
pub use labwire_simkit::{Faults, ScheduledFault, SimHandle};
pub use pekat_proto::DEFAULT_PORT;
pub use scenario::{PekatMatcher, PekatScenario};
pub use state::{Manager, Outcome, ProjectInfo};

/// This simulator's own faults, queued or set as `Fault::Device(PekatFault::..)` next to the
/// shared ones ([`Fault::NoReply`], [`Fault::Delay`], [`Fault::Close`], [`Fault::Truncate`],
/// [`Fault::Garbage`]). The request is still carried out; only its answer changes.
///
/// Silent `start`/`stop` is not a fault but a device setting
/// ([`PekatSimBuilder::silent_start_stop`], [`SimState::set_silent_start_stop`]): it is how
/// some 3.19 servers always behave, for those two commands only. As a fault it would be used up
/// by whatever request came next (a `status` poll, which is answered) and would take the one
/// standing fault, which tests want free for a delay or a lost answer on top.
///
/// ```no_run
/// # async fn run(sim: pekat_sim::PekatSim) {
/// use pekat_proto::Response;
/// use pekat_sim::{Fault, PekatFault};
///
/// // The next answer says the license expired; the one after it is lost.
/// sim.faults().push(Fault::Device(PekatFault::Answer(Response::Other("license expired".into()))));
/// sim.faults().push(Fault::NoReply);
/// # }
/// ```
///
/// In scenario files and control requests: `{device: {answer: "error:port"}}` (any answer
/// text, read as a client reads it: `not-found`, `running`, `license expired`, …) and
/// `{device: {wrong_id: 99}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PekatFault {
    /// Answer this instead (echoing the request's id): a refusal the state would not give
    /// (`PortInUse`, `NotFound`), or text the protocol does not know (`Response::Other`).
    Answer(Response),
    /// Echo this id instead of the request's, as a server out of step would (3.19; a 3.18
    /// answer carries no id, so the fault does nothing there).
    WrongId(RequestId),
}

/// A handle on the simulated Projects Manager's state, for tests and tools: read and change
/// projects and settings, read counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    manager: Mutex<Manager>,
    clock: SimClock,
    silent_start_stop: AtomicBool,
    connections: AtomicU64,
    /// What a reset goes back to.
    config: SimConfig,
    scenario: PekatScenario,
}

/// The registry as `config` and `scenario` describe it at simulated time `now`.
fn initial_manager(config: &SimConfig, scenario: &PekatScenario, now: Duration) -> Manager {
    let mut manager = Manager::new(config.start_delay, config.stop_delay);
    manager.set_switch_delay(config.switch_delay);
    for project in &config.projects {
        manager.add_project(project.path.clone(), project.port);
    }
    for &port in &scenario.ports_in_use {
        manager.occupy_port(port);
    }
    for (path, state) in scenario.initial_states() {
        // A project the builder replaced after the scenario has no state to set.
        manager.set_state(path, state, now);
    }
    manager
}

impl SimState {
    fn new(config: SimConfig, scenario: PekatScenario, clock: SimClock) -> Self {
        let manager = initial_manager(&config, &scenario, clock.now());
        Self {
            inner: Arc::new(Inner {
                manager: Mutex::new(manager),
                clock,
                silent_start_stop: AtomicBool::new(config.silent_start_stop),
                connections: AtomicU64::new(0),
                config,
                scenario,
            }),
        }
    }

    fn manager(&self) -> MutexGuard<'_, Manager> {
        // A panic while holding the lock cannot leave the registry half-changed in a way that
        // matters to a simulator; keep serving.
        self.inner.manager.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.inner.clock.now()
    }

    /// The state of the project at `path`, if the simulator knows it.
    pub fn project_state(&self, path: &str) -> Option<ProjectState> {
        let now = self.now();
        self.manager().state(path, now)
    }

    /// Every project with its port and state.
    pub fn projects(&self) -> Vec<ProjectInfo> {
        let now = self.now();
        self.manager().projects(now)
    }

    /// Forces a project into `state`; whether the project exists.
    pub fn set_project_state(&self, path: &str, state: ProjectState) -> bool {
        let now = self.now();
        self.manager().set_state(path, state, now)
    }

    /// Adds (or replaces) a stopped project.
    pub fn add_project(&self, path: impl Into<String>, port: u16) {
        self.manager().add_project(path, port);
    }

    /// Removes a project; whether it existed.
    pub fn remove_project(&self, path: &str) -> bool {
        self.manager().remove_project(path)
    }

    /// Marks `port` as held by another program: projects on it answer `error:port` to start.
    pub fn occupy_port(&self, port: u16) {
        self.manager().occupy_port(port);
    }

    /// Frees a port taken with [`SimState::occupy_port`].
    pub fn release_port(&self, port: u16) {
        self.manager().release_port(port);
    }

    /// Changes start and stop delays (simulated time) for transitions that begin from now on.
    pub fn set_delays(&self, start: Duration, stop: Duration) {
        self.manager().set_delays(start, stop);
    }

    /// Carries out a command directly, as if a client had sent it, ignoring faults.
    pub fn handle(&self, command: Command, path: &str) -> Outcome {
        let now = self.now();
        self.manager().handle(command, path, now)
    }

    /// Whether `start` and `stop` go unanswered (see [`SimConfig::silent_start_stop`]).
    pub fn silent_start_stop(&self) -> bool {
        self.inner.silent_start_stop.load(Ordering::Relaxed)
    }

    /// Answers `start` and `stop` from now on, or not (the state changes either way).
    pub fn set_silent_start_stop(&self, silent: bool) {
        self.inner
            .silent_start_stop
            .store(silent, Ordering::Relaxed);
    }

    /// Connections accepted so far (those open now: the handle's `connection_count`).
    pub fn connections_accepted(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Ports marked as held by another program, in order.
    pub fn ports_in_use(&self) -> Vec<u16> {
        self.manager().occupied_ports()
    }
}

/// The control channel's view: `GET /state` is `{"dialect", "projects": [{"path", "port",
/// "state"}], "ports_in_use", "delays": {"start", "stop", "switch"}, "silent_start_stop",
/// "connections_accepted", "clock"}`; a reset rebuilds the registry from the scenario.
impl labwire_simkit::control::Control for SimState {
    type Fault = PekatFault;
    type Matcher = PekatMatcher;

    fn state(&self) -> serde_json::Value {
        let now = self.now();
        let (projects, ports, (start, stop, switch)) = {
            let mut manager = self.manager();
            (
                manager.projects(now),
                manager.occupied_ports(),
                manager.delays(),
            )
        };
        let format = labwire_simkit::duration::format;
        let projects: Vec<_> = projects
            .iter()
            .map(|p| serde_json::json!({"path": p.path, "port": p.port, "state": p.state}))
            .collect();
        serde_json::json!({
            "dialect": self.inner.config.dialect.as_str(),
            "projects": projects,
            "ports_in_use": ports,
            "delays": {
                "start": format(start),
                "stop": format(stop),
                "switch": switch.map(format),
            },
            "silent_start_stop": self.silent_start_stop(),
            "connections_accepted": self.connections_accepted(),
            "clock": format(now),
        })
    }

    fn reset(&self) {
        let Inner {
            config, scenario, ..
        } = &*self.inner;
        let fresh = initial_manager(config, scenario, self.now());
        *self.manager() = fresh;
        self.set_silent_start_stop(config.silent_start_stop);
    }

    fn initial_faults(&self) -> Vec<ScheduledFault<PekatFault, PekatMatcher>> {
        self.inner.scenario.faults.clone()
    }
}

/// The Projects Manager as the server sees it: the sans-IO [`Manager`] answering requests at
/// simulated time, under the fault layer.
#[derive(Debug)]
struct Projects {
    state: SimState,
    dialect: Dialect,
}

impl Device for Projects {
    type Request = Incoming;
    type Response = Option<Reply>;
    type Fault = PekatFault;

    async fn call(
        &self,
        _peer: SocketAddr,
        incoming: Incoming,
        fault: Option<PekatFault>,
    ) -> Option<Reply> {
        let (mut reply, answer_at) = match incoming {
            Err(bad) => (bad.reply(), None),
            Ok(request) => {
                let (answer_at, response) = match self.state.handle(request.command, &request.path)
                {
                    Outcome::At(at, response) => (Some(at), response),
                    Outcome::Now(response) => (None, response),
                };
                let start_or_stop = matches!(request.command, Command::Start | Command::Stop);
                if start_or_stop && self.state.silent_start_stop() {
                    tracing::debug!("not answering start/stop (silent_start_stop)");
                    return None;
                }
                (Reply::to(&request, response), answer_at)
            }
        };
        match fault {
            Some(PekatFault::Answer(response)) => reply.response = response,
            Some(PekatFault::WrongId(id)) if self.dialect.supports_ids() => reply.id = Some(id),
            _ => {}
        }
        // The real server answers start/stop/switch once the transition is complete.
        if let Some(at) = answer_at {
            let clock = &self.state.inner.clock;
            clock.sleep(at.saturating_sub(clock.now())).await;
        }
        Some(reply)
    }
}

/// Configures a [`PekatSim`]; see [`PekatSim::builder`]. The shared host setters (`listen`,
/// `backlog`, `max_connections`, `frame_budget`, `idle_timeout`, `time_scale`/`speed`, `clock`,
/// `host`) come first; every other setter changes one field of the [`SimConfig`] it holds.
/// `idle_timeout`, when set, replaces [`SimConfig::idle_timeout`] (60 s), whatever the
/// scenario says.
#[derive(Debug, Clone)]
pub struct PekatSimBuilder {
    host: HostConfig,
    config: SimConfig,
    scenario: PekatScenario,
}

impl PekatSimBuilder {
    labwire_simkit::host_setters!();

    /// The device as `scenario` describes it ([`PekatScenario::load`] reads one from a file):
    /// its settings replace those given so far (setters called afterwards win over it), its
    /// projects' initial states, ports in use and fault schedule apply at the start. A reset
    /// ([`SimHandle::reset`], the control channel's `POST /reset`) goes back to it.
    #[must_use]
    pub fn scenario(mut self, scenario: PekatScenario) -> Self {
        scenario.apply(&mut self.config);
        self.scenario = scenario;
        self
    }

    /// Replaces every device setting (the host settings stay).
    #[must_use]
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// The dialect spoken (3.18 by default).
    #[must_use]
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.config.dialect = dialect;
        self
    }

    /// Replaces the projects (default [`demo_projects`]).
    #[must_use]
    pub fn projects(mut self, projects: impl IntoIterator<Item = ProjectSpec>) -> Self {
        self.config.projects = projects.into_iter().collect();
        self
    }

    /// Adds a project.
    #[must_use]
    pub fn project(mut self, path: impl Into<String>, port: u16) -> Self {
        self.config.projects.push(ProjectSpec::new(path, port));
        self
    }

    /// Simulated time from `start` to `running` and from `stop` to `stopped`.
    #[must_use]
    pub fn delays(mut self, start: Duration, stop: Duration) -> Self {
        self.config.start_delay = start;
        self.config.stop_delay = stop;
        self
    }

    /// Simulated time the target of a `switch` takes to start once the others have stopped
    /// (`None`, the default: the start delay).
    #[must_use]
    pub fn switch_delay(mut self, delay: Option<Duration>) -> Self {
        self.config.switch_delay = delay;
        self
    }

    /// Sends no answer to `start` and `stop` (the state still changes); see
    /// [`SimConfig::silent_start_stop`].
    #[must_use]
    pub fn silent_start_stop(mut self, silent: bool) -> Self {
        self.config.silent_start_stop = silent;
        self
    }

    /// What [`Fault::Garbage`] sends ([`DEFAULT_GARBAGE`] by default).
    #[must_use]
    pub fn garbage(mut self, garbage: impl Into<Bytes>) -> Self {
        self.config.garbage = garbage.into();
        self
    }

    /// Closes each connection after one answer (off by default).
    #[must_use]
    pub fn one_request_per_connection(mut self, on: bool) -> Self {
        self.config.one_request_per_connection = on;
        self
    }

    /// See [`SimConfig::request_timeout`] (2 s).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// See [`SimConfig::quiet_period`] (none by default).
    #[must_use]
    pub fn quiet_period(mut self, quiet: Duration) -> Self {
        self.config.quiet_period = quiet;
        self
    }

    /// Largest request accepted ([`pekat_proto::DEFAULT_MAX_REQUEST_LEN`]).
    #[must_use]
    pub fn max_request_len(mut self, max: usize) -> Self {
        self.config.max_request_len = max;
        self
    }

    /// The device settings so far.
    pub fn current_config(&self) -> &SimConfig {
        &self.config
    }

    /// Binds and starts serving, through `pekat_proto::server` and the simulator kit's fault
    /// layer.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> io::Result<PekatSim> {
        let Self {
            host,
            mut config,
            scenario,
        } = self;
        // The shared host setting wins over the device's (and the scenario's) idle timeout.
        if let Some(idle) = host.idle_timeout {
            config.idle_timeout = idle;
        }
        let clock = host.clock();
        let faults: Faults<PekatFault, PekatMatcher> = Faults::default();
        faults
            .reschedule(&scenario.faults)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let state = SimState::new(config.clone(), scenario, clock.clone());
        let requests = Requests::default();
        let projects = Projects {
            state: state.clone(),
            dialect: config.dialect,
        };
        let device = Arc::new(Faulty::new(
            projects,
            faults.clone(),
            config.garbage.clone(),
            requests.clone(),
        ));
        let server = ServerConfig {
            listener: host.server_config(),
            dialect: config.dialect,
            limits: Limits {
                max_request_len: config.max_request_len,
                ..Limits::default()
            },
            quiet_period: config.quiet_period,
            read_timeout: config.request_timeout,
            idle_timeout: host.idle_timeout_or(Some(config.idle_timeout)),
            write_timeout: config.idle_timeout,
            one_request_per_connection: config.one_request_per_connection,
        };
        let shutdown = CancellationToken::new();
        let accepted = state.clone();
        let server = ServerBuilder::from(server)
            .serve_connections(
                move |_peer| {
                    accepted.inner.connections.fetch_add(1, Ordering::Relaxed);
                    Arc::clone(&device)
                },
                shutdown.child_token(),
            )
            .await?;
        tracing::debug!(
            addr = %server.local_addr(),
            dialect = %config.dialect,
            projects = config.projects.len(),
            "PEKAT simulator listening"
        );
        let handle = SimHandle::new(
            server,
            state,
            clock,
            faults,
            requests,
            shutdown,
            TaskTracker::new(),
        );
        Ok(PekatSim { handle, config })
    }
}

/// A running simulator: a PEKAT Projects Manager TCP server on a real socket. It dereferences
/// to the simulator kit's [`SimHandle`]: `local_addr()`, `state()` (a [`SimState`]), `clock()`,
/// `faults()` (with [`PekatFault`]), `requests()`, `connection_count()`, `shutdown()`,
/// `shutdown_token()`.
///
/// Dropping it stops the server without waiting; `shutdown()` also waits until every
/// connection is closed.
#[derive(Debug)]
pub struct PekatSim {
    handle: SimHandle<SimState, PekatFault, PekatMatcher>,
    config: SimConfig,
}

impl PekatSim {
    /// A builder with the defaults: `127.0.0.1` port 0, dialect 3.18, the [`demo_projects`],
    /// a real-time clock, no faults.
    pub fn builder() -> PekatSimBuilder {
        PekatSimBuilder {
            host: HostConfig::loopback(),
            config: SimConfig::default(),
            scenario: PekatScenario::default(),
        }
    }

    /// The device settings the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }
}

impl Deref for PekatSim {
    type Target = SimHandle<SimState, PekatFault, PekatMatcher>;

    fn deref(&self) -> &Self::Target {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pekat_proto::Request;

    #[tokio::test(start_paused = true)]
    async fn extreme_time_scales_and_delays_never_overflow() {
        for scale in [
            f64::MIN_POSITIVE,
            1e-300,
            1.0,
            1e300,
            f64::MAX,
            0.0,
            -1.0,
            f64::NAN,
        ] {
            let config = SimConfig::default()
                .with_delays(Duration::MAX, Duration::MAX)
                .with_projects([ProjectSpec::new("p", 1)]);
            let state = SimState::new(config, PekatScenario::default(), SimClock::scaled(scale));
            let device = Projects {
                state,
                dialect: Dialect::V3_18,
            };
            let peer = SocketAddr::from(([127, 0, 0, 1], 1));
            let start = device.call(peer, Ok(Request::start("p")), None);
            let _ = tokio::time::timeout(Duration::from_secs(1), start).await;
        }
        let mut manager = Manager::new(Duration::MAX, Duration::MAX);
        manager.add_project("p", 1);
        manager.add_project("q", 2);
        manager.handle(Command::Start, "p", Duration::MAX);
        manager.handle(Command::Switch, "q", Duration::MAX);
        assert_eq!(
            manager.state("q", Duration::MAX),
            Some(ProjectState::Running)
        );
    }

    #[tokio::test]
    async fn device_faults_change_the_answer_but_not_what_is_done() {
        let config = SimConfig::default()
            .with_delays(Duration::ZERO, Duration::ZERO)
            .with_projects([ProjectSpec::new("p", 1)]);
        let state = SimState::new(config, PekatScenario::default(), SimClock::manual());
        let device = Projects {
            state: state.clone(),
            dialect: Dialect::V3_19,
        };
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let start = Request::start("p").with_id(RequestId::from(1));
        let refused = PekatFault::Answer(Response::PortInUse);
        let reply = device.call(peer, Ok(start), Some(refused)).await.unwrap();
        assert_eq!(reply.id, Some(RequestId::from(1)));
        assert_eq!(reply.response, Response::PortInUse);
        assert_eq!(state.project_state("p"), Some(ProjectState::Running));
        let wrong = PekatFault::WrongId(RequestId::from(9));
        let status = Request::status("p").with_id(RequestId::from(2));
        let reply = device.call(peer, Ok(status), Some(wrong)).await.unwrap();
        assert_eq!(reply.id, Some(RequestId::from(9)));
    }
}
