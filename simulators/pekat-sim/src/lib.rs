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
use pekat_proto::{Command, ProjectState};
use tokio::time::Instant;

pub use config::{
    DEFAULT_PORT, ProjectSpec, ProjectSpecError, SimConfig, demo_projects, parse_projects_file,
};
pub use state::{Manager, Outcome, ProjectInfo};

/// Faults a test can switch on at any time; they apply to requests that arrive afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// Answer nothing to `start` and `stop` (the state still changes). Starts as
    /// [`SimConfig::silent_start_stop`].
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

/// Converts between real time and simulated time (real time multiplied by the scale).
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin: Instant,
    scale: f64,
}

impl Clock {
    fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Self {
            origin: Instant::now(),
            scale,
        }
    }

    /// Simulated time now.
    fn now(&self) -> Duration {
        Duration::try_from_secs_f64(self.origin.elapsed().as_secs_f64() * self.scale)
            .unwrap_or(Duration::MAX)
    }

    /// The real instant at which simulated time reaches `at`.
    fn real(&self, at: Duration) -> Instant {
        let real = Duration::try_from_secs_f64(at.as_secs_f64() / self.scale).unwrap_or(FAR_AWAY);
        self.origin
            .checked_add(real)
            .unwrap_or_else(|| after(FAR_AWAY))
    }
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
    faults: Mutex<Faults>,
    clock: Clock,
    requests: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    fn manager(&self) -> MutexGuard<'_, Manager> {
        // A panic while holding the lock cannot leave the registry half-changed in a way that
        // matters to a simulator; keep serving.
        self.manager.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A handle on the simulated Projects Manager's state, for tests and tools: read and change
/// projects, inject faults, read counters. Cheap to clone.
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

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Changes the faults: `sim.state().update_faults(|f| f.no_answer = true)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()));
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

/// A running simulator: a PEKAT Projects Manager TCP server on a real socket.
///
/// Dropping it stops the server; [`Simulator::shutdown`] also waits until every connection is
/// closed.
#[derive(Debug)]
pub struct Simulator {
    handle: ServerHandle,
    state: SimState,
    config: Arc<SimConfig>,
}

impl Simulator {
    /// Binds `config.listen` and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        let mut manager = Manager::new(config.start_delay, config.stop_delay);
        for project in &config.projects {
            manager.add_project(project.path.clone(), project.port);
        }
        let shared = Arc::new(Shared {
            manager: Mutex::new(manager),
            faults: Mutex::new(Faults {
                silent_start_stop: config.silent_start_stop,
                ..Faults::default()
            }),
            clock: Clock::new(config.time_scale),
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
        Ok(Self {
            handle,
            state: SimState { shared },
            config,
        })
    }

    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The state handle (projects, faults, counters).
    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Connections open right now.
    pub fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    /// Stops accepting, closes every connection, and waits until all are closed.
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
            let clock = Clock::new(scale);
            let now = clock.now();
            let _ = clock.real(now);
            let _ = clock.real(Duration::MAX);
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
