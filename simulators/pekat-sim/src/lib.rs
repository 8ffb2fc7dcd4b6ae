#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod conn;
pub mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labwire_net::{Server, ServerConfig, ServerHandle};
use pekat_proto::{Command, Dialect, ProjectState};
use tokio::time::Instant;

/// The simulator's clock: simulated time is real time since the start multiplied by the speed
/// ([`SimConfig::time_scale`]). Start and stop delays are in simulated time.
pub use labwire_simkit::SimClock;

pub use config::{
    DEFAULT_PORT, ProjectSpec, ProjectSpecError, SimConfig, demo_projects, parse_projects_file,
};
pub use state::{Manager, Outcome, ProjectInfo};

/// Which faults are switched on; read and changed through [`Faults`]. They apply to requests
/// that arrive afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultSettings {
    /// Answer nothing to `start` and `stop` (the state still changes), as reported for some
    /// 3.19 servers.
    pub silent_start_stop: bool,
    /// Answer nothing at all (requests are still carried out); the connection stays open.
    pub no_answer: bool,
    /// Close the connection instead of answering (the request is still carried out).
    pub close_instead_of_answer: bool,
    /// Send these bytes instead of the answer.
    pub garbage: Option<Vec<u8>>,
    /// Wait this long (real time) before each answer.
    pub answer_delay: Duration,
}

/// Fault injection, shared by every connection: what the simulator does wrong, on purpose.
/// Clones share the same settings; [`PekatSim::faults`] hands one out.
///
/// ```no_run
/// # async fn run(sim: pekat_sim::PekatSim) {
/// sim.faults().update(|f| f.no_answer = true);
/// // ... the client times out ...
/// sim.faults().clear();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultSettings> {
        // Plain settings: a panic elsewhere cannot leave them inconsistent.
        self.shared.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The faults in force.
    pub fn get(&self) -> FaultSettings {
        self.lock().clone()
    }

    /// Replaces every fault setting.
    pub fn set(&self, settings: FaultSettings) {
        *self.lock() = settings;
    }

    /// Changes some settings: `sim.faults().update(|f| f.no_answer = true)`.
    pub fn update(&self, change: impl FnOnce(&mut FaultSettings)) {
        change(&mut self.lock());
    }

    /// Switches every fault off.
    pub fn clear(&self) {
        self.set(FaultSettings::default());
    }
}

/// The real instant at which simulated time on `clock` reaches `at` (far away on a stopped
/// clock, which only advances move).
pub(crate) fn real_instant(clock: &SimClock, at: Duration) -> Instant {
    let wait = at.saturating_sub(clock.now());
    after(clock.real(wait).unwrap_or(FAR_AWAY))
}

/// Stands in for "never" where an instant is needed.
const FAR_AWAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant `duration` from now, or far away if that cannot be represented.
pub(crate) fn after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .or_else(|| now.checked_add(FAR_AWAY))
        .unwrap_or(now)
}

/// What every connection shares: the device state, the faults, counters.
#[derive(Debug)]
struct Shared {
    manager: Mutex<Manager>,
    faults: Mutex<FaultSettings>,
    clock: SimClock,
    requests: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    fn manager(&self) -> MutexGuard<'_, Manager> {
        // A panic while holding the lock cannot leave the registry half-changed in a way that
        // matters to a simulator; keep serving.
        self.manager.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> FaultSettings {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A handle on the simulated Projects Manager's state, for tests and tools: read and change
/// projects, read counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

impl SimState {
    /// The state of the project at `path`, if the simulator knows it.
    pub fn project_state(&self, path: &str) -> Option<ProjectState> {
        let now = self.shared.clock.now();
        self.shared.manager().state(path, now)
    }

    /// Every project with its port and state.
    pub fn projects(&self) -> Vec<ProjectInfo> {
        let now = self.shared.clock.now();
        self.shared.manager().projects(now)
    }

    /// Forces a project into `state`; whether the project exists.
    pub fn set_project_state(&self, path: &str, state: ProjectState) -> bool {
        let now = self.shared.clock.now();
        self.shared.manager().set_state(path, state, now)
    }

    /// Adds (or replaces) a stopped project.
    pub fn add_project(&self, path: impl Into<String>, port: u16) {
        self.shared.manager().add_project(path, port);
    }

    /// Removes a project; whether it existed.
    pub fn remove_project(&self, path: &str) -> bool {
        self.shared.manager().remove_project(path)
    }

    /// Marks `port` as held by another program: projects on it answer `error:port` to start.
    pub fn occupy_port(&self, port: u16) {
        self.shared.manager().occupy_port(port);
    }

    /// Frees a port taken with [`SimState::occupy_port`].
    pub fn release_port(&self, port: u16) {
        self.shared.manager().release_port(port);
    }

    /// Changes start and stop delays (simulated time) for transitions that begin from now on.
    pub fn set_delays(&self, start: Duration, stop: Duration) {
        self.shared.manager().set_delays(start, stop);
    }

    /// Carries out a command directly, as if a client had sent it, ignoring faults.
    pub fn handle(&self, command: Command, path: &str) -> Outcome {
        let now = self.shared.clock.now();
        self.shared.manager().handle(command, path, now)
    }

    /// Requests received so far (understood or not).
    pub fn requests_received(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

/// Configures a [`PekatSim`]; see [`PekatSim::builder`]. Every setter changes one field of the
/// [`SimConfig`] it holds.
#[derive(Debug, Clone)]
pub struct PekatSimBuilder {
    config: SimConfig,
}

impl PekatSimBuilder {
    /// Replaces the whole configuration.
    #[must_use]
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`: loopback, any free port).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Listen backlog ([`labwire_net::DEFAULT_BACKLOG`] by default).
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.config.backlog = backlog;
        self
    }

    /// Connections served at once; more wait in the backlog.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
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

    /// Runs simulated time `speed` times faster than real time (default 1.0); see
    /// [`SimConfig::time_scale`].
    #[must_use]
    pub fn speed(mut self, speed: f64) -> Self {
        self.config.time_scale = speed;
        self
    }

    /// Faults switched on from the start; see [`Faults`].
    #[must_use]
    pub fn faults(mut self, faults: FaultSettings) -> Self {
        self.config.faults = faults;
        self
    }

    /// Sends no answer to `start` and `stop` from the start (the state still changes).
    #[must_use]
    pub fn silent_start_stop(mut self, silent: bool) -> Self {
        self.config.faults.silent_start_stop = silent;
        self
    }

    /// Closes each connection after one answer (off by default).
    #[must_use]
    pub fn one_request_per_connection(mut self, on: bool) -> Self {
        self.config.one_request_per_connection = on;
        self
    }

    /// Closes a connection that sends nothing, or does not take its answer, for this long
    /// (60 s); see [`SimConfig::idle_timeout`].
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Deadline for the rest of a request once its first byte arrived (2 s); see
    /// [`SimConfig::request_timeout`].
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// See [`SimConfig::quiet_period`] (3 ms).
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

    /// The configuration so far.
    pub fn current_config(&self) -> &SimConfig {
        &self.config
    }

    /// Binds and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> io::Result<PekatSim> {
        let config = self.config;
        let mut manager = Manager::new(config.start_delay, config.stop_delay);
        for project in &config.projects {
            manager.add_project(project.path.clone(), project.port);
        }
        let shared = Arc::new(Shared {
            manager: Mutex::new(manager),
            faults: Mutex::new(config.faults.clone()),
            clock: SimClock::new(config.time_scale),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let mut server_config = ServerConfig::new(config.listen);
        server_config.backlog = config.backlog;
        server_config.max_connections = config.max_connections;
        server_config.nodelay = true;
        let server = Server::bind(server_config).await?;
        let config = Arc::new(config);
        let handle = {
            let shared = Arc::clone(&shared);
            let config = Arc::clone(&config);
            server.serve(move |stream, _peer, _token| {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                conn::serve(stream, Arc::clone(&shared), Arc::clone(&config))
            })
        };
        tracing::debug!(
            addr = %handle.local_addr(),
            dialect = %config.dialect,
            projects = config.projects.len(),
            "PEKAT simulator listening"
        );
        Ok(PekatSim {
            handle,
            state: SimState {
                shared: Arc::clone(&shared),
            },
            faults: Faults { shared },
            config,
        })
    }
}

/// A running simulator: a PEKAT Projects Manager TCP server on a real socket.
///
/// Dropping it stops the server without waiting; [`PekatSim::shutdown`] also waits until every
/// connection is closed.
#[derive(Debug)]
pub struct PekatSim {
    handle: ServerHandle,
    state: SimState,
    faults: Faults,
    config: Arc<SimConfig>,
}

impl PekatSim {
    /// A builder with the defaults of [`SimConfig::loopback`]: `127.0.0.1` port 0, dialect
    /// 3.18, the [`demo_projects`], real-time clock, no faults.
    pub fn builder() -> PekatSimBuilder {
        PekatSimBuilder {
            config: SimConfig::loopback(),
        }
    }

    /// Starts a simulator configured by `config`; the same as
    /// `PekatSim::builder().config(config).start()`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        Self::builder().config(config).start().await
    }

    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The state handle (projects, counters); clone it to keep one.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// The simulated clock.
    pub fn clock(&self) -> &SimClock {
        &self.state.shared.clock
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Connections open right now.
    pub fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    /// Stops accepting, closes every connection, and waits until all are closed. Idempotent.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await;
    }

    /// The token that stops the simulator when cancelled (for tying it to a parent's shutdown).
    pub fn shutdown_token(&self) -> labwire_net::CancellationToken {
        self.handle.shutdown_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
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
            for clock in [SimClock::new(scale), SimClock::scaled(scale)] {
                let now = clock.now();
                let _ = real_instant(&clock, now);
                let _ = real_instant(&clock, Duration::MAX);
            }
        }
        let _ = after(Duration::MAX);
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
}
