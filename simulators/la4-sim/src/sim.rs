//! The simulator on the network: a pycom node built on [`pycom_proto::node`].

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labwire_net::{CancellationToken, ServerConfig, ServerHandle};
use pycom_proto::node::{self, EventSender, Handler, NodeConfig, NodeListener, Request};
use pycom_proto::transport::{self, DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT};
use pycom_proto::{Body, Identity, Limits, UnitInfo};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::shell::Files;
use crate::state::{CoordinatorStatus, Coordinators, Device, LightState};

/// Version a simulated node reports (the one in the vendor's examples).
pub const NODE_VERSION: &str = "0.14.0";

/// How many of the latest commands [`Stats::commands`] keeps.
pub const MAX_RECORDED_COMMANDS: usize = 1024;

/// Faults the simulator injects on demand; change them at any time with
/// [`SimState::set_faults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Send no events at all (commands are still run).
    pub no_events: bool,
    /// Wait this long (real time, not scaled) before sending each event.
    pub event_delay: Duration,
    /// Send bytes that are not a message instead of each event.
    pub garbage_events: bool,
}

/// Bytes sent instead of an event when [`Faults::garbage_events`] is on: not UTF-8, not JSON.
pub const GARBAGE: &[u8] = b"\xff\xfe{\"type_\": \"output\", garbage";

/// How a simulated node runs. Public fields; start from [`SimConfig::default`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where the node listens; `127.0.0.1:5000` by default, port 0 picks one.
    pub listen: SocketAddr,
    /// Listen backlog (large: coordinators open one connection per request).
    pub backlog: u32,
    /// Connections served at once.
    pub max_connections: usize,
    /// The node's `id`.
    pub id: String,
    /// The node's `name`.
    pub name: String,
    /// The `ip` it reports; the listen IP when `None`.
    pub ip: Option<String>,
    /// Time until boardio has finished initialising (hardware info available).
    pub boot_time: Duration,
    /// A coordinator not heard from for this long is offline (15 s on the device).
    pub offline_after: Duration,
    /// With no coordinator online, probe [`SimConfig::discovery_targets`] this often.
    pub discovery_interval: Duration,
    /// Where to probe for a coordinator (the node's subnet scan). Empty by default, so an
    /// embedded simulator sends nothing unasked; the binary probes `127.0.0.1:5001`.
    pub discovery_targets: Vec<SocketAddr>,
    /// Simulated time runs this many times faster: the three durations above are divided by
    /// it. `1.0` by default.
    pub time_scale: f64,
    /// What `unit_info` reports.
    pub unit_info: UnitInfo,
    /// Size limit for requests and events.
    pub limits: Limits,
    /// Deadline for a coordinator to deliver a request.
    pub read_timeout: Duration,
    /// Deadline for delivering one event.
    pub send_timeout: Duration,
    /// Faults from the start.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], node::DEFAULT_NODE_PORT)),
            backlog: labwire_net::DEFAULT_BACKLOG,
            max_connections: labwire_net::DEFAULT_MAX_CONNECTIONS,
            id: "81639cd4".into(),
            name: "rigsters-controller".into(),
            ip: None,
            boot_time: Duration::from_secs(3),
            offline_after: Duration::from_secs(15),
            discovery_interval: Duration::from_secs(5),
            discovery_targets: Vec::new(),
            time_scale: 1.0,
            unit_info: UnitInfo {
                wiringpi_version: "2.61".into(),
                boardio_version: "1.3.0".into(),
                firmware_version: "2.0.4".into(),
                unit_type: "light_array".into(),
                mcu_type: "RP2040".into(),
                mac_address: "dc:a6:32:1b:4e:f0".into(),
            },
            limits: Limits::default(),
            read_timeout: DEFAULT_READ_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    fn scaled(&self, duration: Duration) -> Duration {
        let scale = if self.time_scale.is_finite() && self.time_scale > 0.0 {
            self.time_scale
        } else {
            1.0
        };
        duration.div_f64(scale)
    }
}

/// Counters and records tests can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Valid requests received.
    pub requests: u64,
    /// The latest commands received (at most [`MAX_RECORDED_COMMANDS`]), oldest first.
    pub commands: Vec<String>,
    /// Events delivered.
    pub events_sent: u64,
    /// Events not delivered (faults or unreachable coordinator).
    pub events_lost: u64,
    /// Coordinators a `unit_info` was delivered to, in order.
    pub unit_info_sent_to: Vec<SocketAddr>,
    /// Discovery probes sent.
    pub probes_sent: u64,
}

enum Job {
    Command { to: SocketAddr, command: String },
    UnitInfo { to: SocketAddr },
}

struct Shared {
    identity: Identity,
    unit_info: UnitInfo,
    events: EventSender,
    send_timeout: Duration,
    coordinators: Mutex<Coordinators>,
    device: Mutex<Device>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    outbox: mpsc::Sender<Job>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays usable even if a test thread panicked while holding it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> std::time::Instant {
    // tokio's clock, so that tests with paused time drive the simulator too.
    tokio::time::Instant::now().into_std()
}

/// Read and change a running simulator's state. Cheap to clone.
#[derive(Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("identity", &self.shared.identity)
            .finish_non_exhaustive()
    }
}

impl SimState {
    /// The node's identity (its `port` is the bound port).
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// The lights as the last sequence left them.
    pub fn lights(&self) -> LightState {
        lock(&self.shared.device).lights.clone()
    }

    /// The two sequence files.
    pub fn files(&self) -> Files {
        lock(&self.shared.device).files.clone()
    }

    /// The coordinators the node tracks.
    pub fn coordinators(&self) -> Vec<CoordinatorStatus> {
        lock(&self.shared.coordinators).list()
    }

    /// Whether boardio has finished booting.
    pub fn is_booted(&self) -> bool {
        lock(&self.shared.coordinators).hardware_ready(now())
    }

    /// Counters and records so far.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// The faults in effect.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Replaces the faults in effect (applies to events sent from now on).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }
}

impl Handler for Shared {
    async fn handle(&self, request: Request) {
        let to = request.reply_addr();
        let Request { message, peer } = request;
        let unit_info_due = lock(&self.coordinators).on_request(now(), to, &message.identity);
        lock(&self.stats).requests += 1;
        if unit_info_due {
            // A full queue means a flood: the request connection waits (backpressure).
            let _ = self.outbox.send(Job::UnitInfo { to }).await;
        }
        match message.body {
            Body::Cmd { command } => {
                tracing::debug!(%peer, %command, "command");
                {
                    let mut stats = lock(&self.stats);
                    if stats.commands.len() >= MAX_RECORDED_COMMANDS {
                        stats.commands.remove(0);
                    }
                    stats.commands.push(command.clone());
                }
                let _ = self.outbox.send(Job::Command { to, command }).await;
            }
            Body::Heartbeat => {
                tracing::debug!(%peer, coordinator = message.identity.coordinator, "heartbeat")
            }
            other => tracing::debug!(%peer, type_ = ?other.type_name(), "ignored request"),
        }
    }
}

impl Shared {
    /// Sends events one at a time, so that a coordinator gets them in the order commands came.
    async fn run_outbox(self: Arc<Self>, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            let (to, bodies) = match job {
                Job::UnitInfo { to } => (to, vec![Body::UnitInfo(self.unit_info.clone())]),
                Job::Command { to, command } => {
                    let booted = lock(&self.coordinators).hardware_ready(now());
                    let result = lock(&self.device).run(&command, booted);
                    let mut bodies = vec![Body::Output {
                        output: result.output,
                    }];
                    bodies.extend(
                        result
                            .messages
                            .into_iter()
                            .map(|message| Body::Message { message }),
                    );
                    (to, bodies)
                }
            };
            for body in bodies {
                self.deliver(to, body).await;
            }
        }
    }

    async fn deliver(&self, to: SocketAddr, body: Body) {
        let faults = lock(&self.faults).clone();
        if faults.no_events {
            lock(&self.stats).events_lost += 1;
            return;
        }
        if !faults.event_delay.is_zero() {
            tokio::time::sleep(faults.event_delay).await;
        }
        let is_unit_info = matches!(body, Body::UnitInfo(_));
        let sent = if faults.garbage_events {
            transport::send_bytes(to, GARBAGE, self.send_timeout, false).await
        } else {
            self.events.send(to, body).await
        };
        let mut stats = lock(&self.stats);
        match sent {
            Ok(()) => {
                stats.events_sent += 1;
                if is_unit_info && !faults.garbage_events {
                    stats.unit_info_sent_to.push(to);
                }
            }
            Err(error) => {
                tracing::debug!(%to, %error, "event not delivered");
                stats.events_lost += 1;
            }
        }
    }

    async fn run_clock(
        self: Arc<Self>,
        tick: Duration,
        discovery_interval: Duration,
        targets: Vec<SocketAddr>,
    ) {
        let mut next_probe = now();
        // At most one scan at a time; dropping the set (at shutdown) aborts it.
        let mut scan = JoinSet::new();
        loop {
            tokio::time::sleep(tick).await;
            let now = now();
            let (due, offline) = lock(&self.coordinators).poll(now);
            for addr in offline {
                tracing::info!(coordinator = %addr, "coordinator offline");
            }
            for to in due {
                let _ = self.outbox.send(Job::UnitInfo { to }).await;
            }
            while scan.try_join_next().is_some() {}
            let scanning = !targets.is_empty() && !lock(&self.coordinators).any_online();
            if scanning && now >= next_probe && scan.is_empty() {
                next_probe = now + discovery_interval;
                let shared = Arc::clone(&self);
                let targets = targets.clone();
                scan.spawn(async move {
                    for target in targets {
                        // A probe is the node's own base message, `coordinator: false`.
                        let sent = shared.events.send(target, Body::Heartbeat).await;
                        tracing::debug!(%target, ok = sent.is_ok(), "discovery probe");
                        lock(&shared.stats).probes_sent += 1;
                    }
                });
            }
        }
    }
}

/// A running simulated node.
#[derive(Debug)]
pub struct Simulator {
    state: SimState,
    server: ServerHandle,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Simulator {
    /// Binds `config.listen` and starts the node: it boots, answers requests, tracks
    /// coordinators and, with none online, probes for one.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        let shutdown = CancellationToken::new();
        let boot_time = config.scaled(config.boot_time);
        let offline_after = config.scaled(config.offline_after);
        let discovery_interval = config.scaled(config.discovery_interval);
        let (outbox, jobs) = mpsc::channel(1024);
        let mut server = ServerConfig::new(config.listen);
        server.backlog = config.backlog;
        server.max_connections = config.max_connections;
        let node_config = NodeConfig {
            server,
            limits: config.limits,
            read_timeout: config.read_timeout,
        };
        // Bind first: the identity must carry the real port.
        let listener = NodeListener::bind(node_config).await?;
        let port = listener.local_addr()?.port();
        let identity = Identity::new(
            config.id.clone(),
            config.name.clone(),
            config
                .ip
                .clone()
                .unwrap_or_else(|| config.listen.ip().to_string()),
            port,
            NODE_VERSION,
            false,
        );
        let shared = Arc::new(Shared {
            events: EventSender::new(identity.clone())
                .with_limits(config.limits)
                .with_timeout(config.send_timeout),
            send_timeout: config.send_timeout,
            identity,
            unit_info: config.unit_info.clone(),
            coordinators: Mutex::new(Coordinators::new(now(), boot_time, offline_after)),
            device: Mutex::new(Device::default()),
            faults: Mutex::new(config.faults.clone()),
            stats: Mutex::new(Stats::default()),
            outbox,
        });
        let server = listener.serve_with_token(Arc::clone(&shared), shutdown.child_token());
        let tasks = TaskTracker::new();
        let tick = [boot_time, offline_after, discovery_interval]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(Duration::from_millis(100))
            .div_f64(8.0)
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let token = shutdown.clone();
        let outbox_task = Arc::clone(&shared).run_outbox(jobs);
        tasks.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = outbox_task => {}
            }
        });
        let token = shutdown.clone();
        let clock = Arc::clone(&shared).run_clock(
            tick,
            discovery_interval,
            config.discovery_targets.clone(),
        );
        tasks.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = clock => {}
            }
        });
        tasks.close();
        tracing::debug!(addr = %server.local_addr(), id = %shared.identity.id, "LA4 node simulator started");
        Ok(Self {
            state: SimState { shared },
            server,
            shutdown,
            tasks,
        })
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The node's state, for tests to read and change.
    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// Starts shutting down without waiting (see [`Simulator::shutdown`]).
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops listening, closes every connection, stops sending events, and waits for it all.
    /// Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.server.shutdown().await;
        self.tasks.wait().await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
