//! The simulator on the network: a pycom node built on [`pycom_proto::node`].

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labwire_net::CancellationToken;
use labwire_net::warn_limit::WarnLimit;
use labwire_simkit::{Faults, HostConfig, Requests, ScheduledFault, SimHandle};
use pycom_proto::node::{self, EventSender, NodeConfig, NodeListener, Request, Service};
use pycom_proto::transport::{self, DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT, SendError};
use pycom_proto::{Body, Identity, Limits, Sequence, UnitInfo, wire};
use tokio_util::task::TaskTracker;

use crate::SimClock;
use crate::faults::{self, Event, GARBAGE, La4Fault, Spoil};
use crate::outbox::{Deliver, Delivered, Dropped, Outbox};
use crate::scenario::{La4Matcher, La4Scenario};
use crate::shell::Files;
use crate::state::{CoordinatorStatus, Coordinators, Device, LightState};

/// Version a simulated node reports by default (the one in the vendor's examples).
pub const NODE_VERSION: &str = "0.14.0";

/// How many of the latest commands [`Stats::commands`] keeps.
pub const MAX_RECORDED_COMMANDS: usize = 1024;

/// How many bytes of the latest commands [`Stats::commands`] keeps at most (older ones go
/// first), so that large commands cannot pile up.
pub const MAX_RECORDED_COMMAND_BYTES: usize = 1024 * 1024;

/// Events (and discovery probes) waiting for one destination at most; more are dropped, with a
/// warning, and counted in [`Stats::events_lost`]. Each destination has its own queue, so a
/// coordinator that does not answer holds up only its own events.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Destinations with events on their way at once by default
/// ([`SimConfig::max_event_destinations`]): one queue and task each, ended after a second
/// without events. A new destination when all are taken evicts an idle one, or one stuck in its
/// first delivery; events that still do not fit are dropped, with a rate-limited warning.
pub const MAX_EVENT_DESTINATIONS: usize = 1024;

/// Deadline for connecting to a coordinator to deliver an event, by default
/// ([`SimConfig::connect_timeout`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How a simulated node runs. Public fields; start from [`SimConfig::default`] (the device's
/// defaults, as the binary uses them) and pass it to [`La4Sim::start`], or use the chainable
/// [`La4Sim::builder`] (which listens on a free loopback port by default).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where the node listens (`127.0.0.1:5000`, the device's port, by default; port 0 picks
    /// one), its listen backlog and connection limit, and how fast its simulated time runs:
    /// `boot_time`, `offline_after` and `discovery_interval` pass `time_scale` times sooner
    /// (0 stops the clock, so that only [`SimClock::advance`] moves it).
    pub host: HostConfig,
    /// The node's `id`.
    pub id: String,
    /// The node's `name`.
    pub name: String,
    /// The `ip` it reports; the listen IP when `None`.
    pub ip: Option<String>,
    /// The pycom `version` in its messages ([`NODE_VERSION`] by default).
    pub version: String,
    /// Simulated time until boardio has finished initialising (hardware info available).
    pub boot_time: Duration,
    /// A coordinator not heard from for this long (simulated time) is offline (15 s on the
    /// device).
    pub offline_after: Duration,
    /// With no coordinator online, probe [`SimConfig::discovery_targets`] this often
    /// (simulated time).
    pub discovery_interval: Duration,
    /// Where to probe for a coordinator (the node's subnet scan). Empty by default, so an
    /// embedded simulator sends nothing unasked; the binary probes `127.0.0.1:5001`.
    pub discovery_targets: Vec<SocketAddr>,
    /// What `unit_info` reports.
    pub unit_info: UnitInfo,
    /// The standalone (boot-time) sequence stored at power-on, as if a coordinator had sent
    /// `uSeqStandalone` before: it is in the standalone sequence file and runs when boardio
    /// finishes booting (no event: nobody asked). `None` by default.
    pub standalone_sequence: Option<Sequence>,
    /// boardio also reports `BOARDIO_READY` when `uSeq` loads a valid sequence (it is silent
    /// then otherwise), so the vendor's `… && boardiocli uSeq && boardiocli runSeq` yields two
    /// verdicts: `uSeq`'s, then `runSeq`'s. A variant of the device, `false` by default.
    pub reports_load: bool,
    /// Size limit for requests and events.
    pub limits: Limits,
    /// Deadline for a coordinator to deliver a request, and for its first byte after the
    /// connection opens (the node's idle limit; 5 s by default). The host's
    /// [`HostConfig::idle_timeout`], when set, replaces it.
    pub read_timeout: Duration,
    /// Deadline for delivering one event.
    pub send_timeout: Duration,
    /// Deadline for connecting to deliver one event (within `send_timeout`;
    /// [`DEFAULT_CONNECT_TIMEOUT`] by default). A destination whose delivery times out is
    /// unreachable: its queued events are dropped, and new ones for five seconds.
    pub connect_timeout: Duration,
    /// Most destinations with events on their way at once ([`MAX_EVENT_DESTINATIONS`] by
    /// default); see [`MAX_EVENT_DESTINATIONS`] for what happens past it.
    pub max_event_destinations: usize,
    /// The fault schedule at the start, scheduled again on a reset (a scenario's `faults`);
    /// empty by default.
    pub faults: Vec<ScheduledFault<La4Fault, La4Matcher>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            host: HostConfig::new(SocketAddr::from(([127, 0, 0, 1], node::DEFAULT_NODE_PORT))),
            id: "81639cd4".into(),
            name: "rigsters-controller".into(),
            ip: None,
            version: NODE_VERSION.into(),
            boot_time: Duration::from_secs(3),
            offline_after: Duration::from_secs(15),
            discovery_interval: Duration::from_secs(5),
            discovery_targets: Vec::new(),
            unit_info: UnitInfo {
                wiringpi_version: "2.61".into(),
                boardio_version: "1.3.0".into(),
                firmware_version: "2.0.4".into(),
                unit_type: "light_array".into(),
                mcu_type: "RP2040".into(),
                mac_address: "dc:a6:32:1b:4e:f0".into(),
            },
            standalone_sequence: None,
            reports_load: false,
            limits: Limits::default(),
            read_timeout: DEFAULT_READ_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_event_destinations: MAX_EVENT_DESTINATIONS,
            faults: Vec::new(),
        }
    }
}

/// Counters and records tests can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The latest commands received (at most [`MAX_RECORDED_COMMANDS`] of them, and
    /// [`MAX_RECORDED_COMMAND_BYTES`] in all), oldest first.
    pub commands: Vec<String>,
    /// Events delivered (spoiled ones too: [`Fault::Garbage`](labwire_simkit::Fault::Garbage),
    /// [`Fault::Truncate`](labwire_simkit::Fault::Truncate)).
    pub events_sent: u64,
    /// Events not delivered (faults, unreachable coordinator, or dropped because the
    /// destination's queue was full, it had timed out within the last five seconds, it was
    /// evicted while stuck, or too many destinations were busy).
    pub events_lost: u64,
    /// Coordinators a `unit_info` was delivered to, in order.
    pub unit_info_sent_to: Vec<SocketAddr>,
    /// Discovery probes sent.
    pub probes_sent: u64,
}

/// What is queued for a destination.
enum Outgoing {
    /// An event, with what its command's fault does to it.
    Event(Event),
    /// A discovery probe: the node's own base message, never faulty.
    Probe,
}

struct Shared {
    identity: Identity,
    unit_info: UnitInfo,
    events: EventSender,
    limits: Limits,
    send_timeout: Duration,
    connect_timeout: Duration,
    clock: SimClock,
    coordinators: Mutex<Coordinators>,
    device: Mutex<Device>,
    /// What a reset goes back to.
    initial: Initial,
    faults: Faults<La4Fault, La4Matcher>,
    requests: Requests,
    stats: Mutex<Stats>,
    outbox: Outbox<Outgoing>,
    /// Warnings about dropped events (a flood of made-up destinations must not flood the log).
    drop_warnings: WarnLimit,
}

/// The node's state at the start, which a reset goes back to.
struct Initial {
    boot_time: Duration,
    offline_after: Duration,
    standalone_sequence: Option<Sequence>,
    reports_load: bool,
    faults: Vec<ScheduledFault<La4Fault, La4Matcher>>,
}

impl Initial {
    fn coordinators(&self, now: std::time::Instant) -> Coordinators {
        Coordinators::new(now, self.boot_time, self.offline_after)
    }

    fn device(&self) -> Device {
        let mut device = power_on(self.standalone_sequence.as_ref());
        device.boardio.reports_load = self.reports_load;
        device
    }
}

/// The request handler: a handle on the shared state, which the outbox's tasks need too.
struct Node(Arc<Shared>);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays usable even if a test thread panicked while holding it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The lights as the last sequence left them (the boot-time one once boot has finished).
    pub fn lights(&self) -> LightState {
        self.shared
            .device(self.shared.clock.instant())
            .0
            .lights
            .clone()
    }

    /// The two sequence files.
    pub fn files(&self) -> Files {
        self.shared
            .device(self.shared.clock.instant())
            .0
            .files
            .clone()
    }

    /// Reboots the node, as a power cycle would: the lights go back to their power-on state,
    /// boardio boots again ([`SimConfig::boot_time`] from now, simulated time), and at the end
    /// of the boot the stored standalone sequence (the last one `uSeqStandalone` stored, or
    /// [`SimConfig::standalone_sequence`]) runs again. The files stay. The coordinators stay
    /// tracked, and `unit_info` is not sent again to those that had it (a real node forgets
    /// them; the simulator keeps it simple).
    pub fn reboot(&self) {
        let now = self.shared.clock.instant();
        // Both locks at once, in the order `Shared::device` takes them: nobody sees the
        // device rebooted with the old boot deadline, or the other way round.
        let mut coordinators = lock(&self.shared.coordinators);
        let mut device = lock(&self.shared.device);
        coordinators.reboot(now);
        device.reboot();
        tracing::info!("rebooting");
    }

    /// The coordinators the node tracks.
    pub fn coordinators(&self) -> Vec<CoordinatorStatus> {
        lock(&self.shared.coordinators).list()
    }

    /// Whether boardio has finished booting.
    pub fn is_booted(&self) -> bool {
        let now = self.shared.clock.instant();
        lock(&self.shared.coordinators).hardware_ready(now)
    }

    /// Counters and records so far.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// Whether boardio also reports `BOARDIO_READY` when `uSeq` loads a valid sequence
    /// ([`SimConfig::reports_load`]).
    pub fn reports_load(&self) -> bool {
        lock(&self.shared.device).boardio.reports_load
    }

    /// Changes [`SimConfig::reports_load`] for the commands run from now on.
    pub fn set_reports_load(&self, reports_load: bool) {
        lock(&self.shared.device).boardio.reports_load = reports_load;
    }

    /// Puts the node back into its initial state (its configuration's, so its scenario's):
    /// power-on lights and files (the configured standalone sequence stored), boardio booting
    /// again for [`SimConfig::boot_time`] from now, [`SimConfig::reports_load`], and no
    /// coordinator known (so each gets `unit_info` again). [`Stats`] and the clock go on.
    /// The faults are the handle's: `sim.reset()` (or `POST /reset`) also schedules
    /// [`SimConfig::faults`] again.
    pub fn reset(&self) {
        let shared = &self.shared;
        let now = shared.clock.instant();
        // Both locks at once, in the order `Shared::device` takes them.
        let mut coordinators = lock(&shared.coordinators);
        let mut device = lock(&shared.device);
        *coordinators = shared.initial.coordinators(now);
        *device = shared.initial.device();
        tracing::info!("reset");
    }

    /// The state as the control channel shows it (`GET /state`).
    fn to_json(&self) -> serde_json::Value {
        let shared = &self.shared;
        let now = shared.clock.instant();
        let booted = lock(&shared.coordinators).hardware_ready(now);
        let (device, _) = shared.device(now);
        let csv = |s: &Option<Sequence>| s.as_ref().map(Sequence::to_csv);
        let lights = &device.lights;
        let device_json = serde_json::json!({
            "lights": {
                "model_light": lights.model_light,
                "fans": lights.fans,
                "polarizer": lights.polarizer,
                "array": lights.array.map(|row| row.to_string()),
                "loaded": csv(&lights.loaded),
                "last_run": csv(&lights.last_run),
                "standalone": csv(&lights.standalone),
                "runs": lights.runs,
            },
            "files": {
                "sequence": device.files.sequence,
                "standalone": device.files.standalone,
            },
            "reports_load": device.boardio.reports_load,
        });
        drop(device);
        let coordinators: Vec<_> = self
            .coordinators()
            .into_iter()
            .map(|c| {
                serde_json::json!({
                    "addr": c.addr.to_string(),
                    "id": c.identity.id,
                    "name": c.identity.name,
                    "online": c.online,
                    "unit_info_sent": c.unit_info_sent,
                })
            })
            .collect();
        let stats = self.stats();
        let mut state = serde_json::json!({
            "identity": shared.identity,
            "unit_info": shared.unit_info,
            "booted": booted,
            "coordinators": coordinators,
            "stats": {
                "commands": stats.commands,
                "events_sent": stats.events_sent,
                "events_lost": stats.events_lost,
                "unit_info_sent_to": stats.unit_info_sent_to.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "probes_sent": stats.probes_sent,
            },
        });
        if let (Some(state), serde_json::Value::Object(device)) =
            (state.as_object_mut(), device_json)
        {
            state.extend(device);
        }
        state
    }
}

/// The control channel's view (`GET /state`: identity, `unit_info`, `booted`, lights, files,
/// `reports_load`, coordinators, stats) and reset ([`SimState::reset`]).
impl labwire_simkit::control::Control for SimState {
    type Fault = La4Fault;
    type Matcher = La4Matcher;

    fn state(&self) -> serde_json::Value {
        self.to_json()
    }

    fn reset(&self) {
        SimState::reset(self);
    }

    fn initial_faults(&self) -> Vec<ScheduledFault<La4Fault, La4Matcher>> {
        self.shared.initial.faults.clone()
    }
}

impl Service for Node {
    type Request = Request;
    type Response = ();

    async fn call(&self, _peer: SocketAddr, request: Request) {
        let shared = &self.0;
        let to = request.reply_addr();
        let Request { message, peer } = request;
        let now = shared.clock.instant();
        shared.requests.count();
        let unit_info_due = lock(&shared.coordinators).on_request(now, to, &message.identity);
        if unit_info_due {
            shared.send_unit_info(to);
        }
        match message.body {
            Body::Cmd { command } => {
                tracing::debug!(%peer, %command, "command");
                record(&mut lock(&shared.stats).commands, &command);
                // One fault per command, decided now; it travels with the command's events.
                let fault = shared
                    .faults
                    .take_for(|m| m.matches_command(&message.identity.id, &command));
                if let Some(fault) = &fault {
                    tracing::debug!(?fault, "fault injection");
                }
                // Run as it arrives (one peer's requests are handled in order); only the
                // events wait in the destination's queue.
                let result = {
                    let (mut device, booted) = shared.device(now);
                    device.boardio.run_seq_error = faults::run_seq_error(fault.as_ref());
                    device.run(&command, booted)
                };
                let output = Body::Output {
                    output: result.output,
                };
                let messages = result
                    .messages
                    .into_iter()
                    .map(|message| Body::Message { message })
                    .collect();
                let (events, lost) = faults::command_events(output, messages, fault.as_ref());
                if lost > 0 {
                    lock(&shared.stats).events_lost += lost;
                }
                if !events.is_empty() {
                    shared.send(to, events);
                }
            }
            Body::Heartbeat => {
                tracing::debug!(%peer, coordinator = message.identity.coordinator, "heartbeat")
            }
            other => tracing::debug!(%peer, type_ = ?other.type_name(), "ignored request"),
        }
    }
}

/// A device just powered on, with `standalone` stored (and in its file), boardio booting.
fn power_on(standalone: Option<&Sequence>) -> Device {
    let mut device = Device::default();
    if let Some(sequence) = standalone {
        device.files.standalone = Some(sequence.to_csv());
        device.lights.standalone = Some(sequence.clone());
    }
    device.reboot();
    device
}

/// Keeps `command` as the latest of `commands`, dropping the oldest beyond the bounds.
fn record(commands: &mut Vec<String>, command: &str) {
    commands.push(command.to_owned());
    let mut bytes: usize = commands.iter().map(String::len).sum();
    let mut excess = 0;
    for old in commands.iter() {
        if commands.len() - excess <= MAX_RECORDED_COMMANDS
            && (bytes <= MAX_RECORDED_COMMAND_BYTES || commands.len() - excess == 1)
        {
            break;
        }
        bytes -= old.len();
        excess += 1;
    }
    commands.drain(..excess);
}

impl Deliver for Shared {
    type Item = Outgoing;

    async fn deliver(&self, to: SocketAddr, item: Outgoing) -> Delivered {
        match item {
            Outgoing::Event(event) => self.send_event(to, event).await,
            Outgoing::Probe => {
                // A probe is the node's own base message, `coordinator: false`.
                let sent = self.send_body(to, Body::Heartbeat).await;
                tracing::debug!(target = %to, ok = sent.is_ok(), "discovery probe");
                lock(&self.stats).probes_sent += 1;
                delivered(&sent)
            }
        }
    }

    fn dropped(&self, to: SocketAddr, count: usize, why: Dropped) {
        self.lost(to, count as u64, why);
    }
}

/// How a delivery went, for the outbox.
fn delivered(sent: &Result<(), SendError>) -> Delivered {
    match sent {
        Ok(()) => Delivered::Yes,
        Err(error) if error.is_timeout() => Delivered::TimedOut,
        Err(_) => Delivered::Failed,
    }
}

impl Shared {
    /// The device, and whether boardio has booted by `now`. A boot that has finished is
    /// completed first (the stored standalone sequence runs), whoever looks first: the clock
    /// loop, a command, or a test reading the lights.
    fn device(&self, now: std::time::Instant) -> (MutexGuard<'_, Device>, bool) {
        // Always the coordinators' lock before the device's (as `SimState::reboot` does).
        let coordinators = lock(&self.coordinators);
        let booted = coordinators.hardware_ready(now);
        let mut device = lock(&self.device);
        drop(coordinators);
        if booted && device.finish_boot() {
            tracing::info!("boardio booted: standalone sequence run");
        }
        (device, booted)
    }

    fn send_unit_info(self: &Arc<Self>, to: SocketAddr) {
        let unit_info = Body::UnitInfo(self.unit_info.clone());
        self.send(to, vec![Event::plain(unit_info)]);
    }

    /// Queues `events` for `to`, in order after the events already queued for it; drops them
    /// all (counted as lost) when its queue is full, it is unreachable or too many destinations
    /// are busy.
    fn send(self: &Arc<Self>, to: SocketAddr, events: Vec<Event>) {
        let count = events.len() as u64;
        let events = events.into_iter().map(Outgoing::Event).collect();
        if let Err(dropped) = self.outbox.push(self, to, events) {
            self.lost(to, count, dropped);
        }
    }

    /// Counts `count` events for `to` as lost, and says so: a rate-limited warning (a flood of
    /// made-up destinations must not flood the log), at debug level while shutting down.
    fn lost(&self, to: SocketAddr, count: u64, dropped: Dropped) {
        let lost = {
            let mut stats = lock(&self.stats);
            stats.events_lost += count;
            stats.events_lost
        };
        if dropped == Dropped::ShutDown {
            tracing::debug!(%to, count, "shutting down: events dropped");
            return;
        }
        labwire_net::peer_warn!(self.drop_warnings, %to, count, ?dropped, lost, "events dropped");
    }

    /// Sends `body` as one event of this node's, within the connect and send deadlines.
    async fn send_body(&self, to: SocketAddr, body: Body) -> Result<(), SendError> {
        let bytes = wire::encode(&self.events.message(body), &self.limits)?;
        self.send_bytes(to, &bytes).await
    }

    async fn send_bytes(&self, to: SocketAddr, bytes: &[u8]) -> Result<(), SendError> {
        transport::send_bytes_within(to, bytes, self.connect_timeout, self.send_timeout, false)
            .await
    }

    async fn send_event(&self, to: SocketAddr, event: Event) -> Delivered {
        let Event { body, delay, spoil } = event;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let is_unit_info = matches!(body, Body::UnitInfo(_));
        let sent = match spoil {
            None => self.send_body(to, body).await,
            Some(Spoil::Garbage) => self.send_bytes(to, GARBAGE).await,
            Some(Spoil::Truncate) => match wire::encode(&self.events.message(body), &self.limits) {
                Ok(mut bytes) => {
                    bytes.truncate(bytes.len() / 2);
                    self.send_bytes(to, &bytes).await
                }
                Err(error) => Err(error.into()),
            },
        };
        let mut stats = lock(&self.stats);
        match &sent {
            Ok(()) => {
                stats.events_sent += 1;
                if is_unit_info {
                    stats.unit_info_sent_to.push(to);
                }
            }
            Err(error) => {
                tracing::debug!(%to, %error, "event not delivered");
                stats.events_lost += 1;
            }
        }
        delivered(&sent)
    }

    /// Goes over the coordinators every `tick` (real time) or as soon as the clock is advanced
    /// by hand: boot finished (the standalone sequence runs), coordinators gone offline,
    /// discovery probes due.
    async fn run_clock(
        self: Arc<Self>,
        tick: Duration,
        discovery_interval: Duration,
        targets: Vec<SocketAddr>,
    ) {
        let clock = self.clock.clone();
        let mut next_probe = clock.instant();
        let notify = clock.advanced_by_hand();
        let mut advanced = std::pin::pin!(notify.notified());
        advanced.as_mut().enable();
        loop {
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = advanced.as_mut() => {}
            }
            // Armed again before this round, so an advance while it runs is not missed.
            advanced.set(notify.notified());
            advanced.as_mut().enable();
            let now = clock.instant();
            drop(self.device(now));
            let (due, offline) = lock(&self.coordinators).poll(now);
            for addr in offline {
                tracing::info!(coordinator = %addr, "coordinator offline");
            }
            for to in due {
                self.send_unit_info(to);
            }
            let scanning = !targets.is_empty() && !lock(&self.coordinators).any_online();
            if scanning && now >= next_probe {
                next_probe = now + discovery_interval;
                for &target in &targets {
                    // At most one probe on its way per target: a target that does not answer
                    // is skipped until its probe has timed out.
                    if let Err(dropped) = self.outbox.push_if_idle(&self, target, Outgoing::Probe) {
                        tracing::debug!(%target, ?dropped, "discovery probe skipped");
                    }
                }
            }
        }
    }
}

/// Configures a [`La4Sim`]; see [`La4Sim::builder`]. The host settings (`listen`, `backlog`,
/// `max_connections`, `frame_budget`, `idle_timeout`, `time_scale` / `speed`, `clock`, `host`)
/// are the ones every labwire simulator has ([`labwire_simkit::host_setters!`]); every other
/// setter has the meaning of the [`SimConfig`] field of the same name. A node's connection
/// carries one request, whose wait and delivery share one deadline
/// ([`SimConfig::read_timeout`], 5 s): `idle_timeout`, when set, replaces it.
#[derive(Debug, Clone)]
pub struct La4SimBuilder {
    host: HostConfig,
    /// The device settings; its `host` is unused (the builder's own `host` is).
    config: SimConfig,
}

impl From<SimConfig> for La4SimBuilder {
    fn from(mut config: SimConfig) -> Self {
        Self {
            host: std::mem::take(&mut config.host),
            config,
        }
    }
}

impl La4SimBuilder {
    labwire_simkit::host_setters!();

    /// The node's `id` (`81639cd4` by default).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.config.id = id.into();
        self
    }

    /// The node's `name` (`rigsters-controller` by default).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The `ip` the node reports (the listen IP by default).
    #[must_use]
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.config.ip = Some(ip.into());
        self
    }

    /// What `unit_info` reports.
    #[must_use]
    pub fn unit_info(mut self, unit_info: UnitInfo) -> Self {
        self.config.unit_info = unit_info;
        self
    }

    /// Simulated time until boardio has booted (3 s by default; zero: booted at once).
    #[must_use]
    pub fn boot_time(mut self, boot_time: Duration) -> Self {
        self.config.boot_time = boot_time;
        self
    }

    /// Simulated silence after which a coordinator is offline (15 s by default).
    #[must_use]
    pub fn offline_after(mut self, offline_after: Duration) -> Self {
        self.config.offline_after = offline_after;
        self
    }

    /// Simulated time between discovery scans (5 s by default).
    #[must_use]
    pub fn discovery_interval(mut self, interval: Duration) -> Self {
        self.config.discovery_interval = interval;
        self
    }

    /// Where to probe for a coordinator when none is online (replaces the list; empty by
    /// default, so the node sends nothing unasked).
    #[must_use]
    pub fn discovery_targets(mut self, targets: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.config.discovery_targets = targets.into_iter().collect();
        self
    }

    /// Adds one address to probe for a coordinator.
    #[must_use]
    pub fn discover(mut self, target: SocketAddr) -> Self {
        self.config.discovery_targets.push(target);
        self
    }

    /// The standalone sequence stored at power-on, run when boardio finishes booting (none by
    /// default).
    #[must_use]
    pub fn standalone_sequence(mut self, sequence: Sequence) -> Self {
        self.config.standalone_sequence = Some(sequence);
        self
    }

    /// Whether boardio also reports `BOARDIO_READY` when `uSeq` loads a valid sequence (no by
    /// default).
    #[must_use]
    pub fn reports_load(mut self, reports_load: bool) -> Self {
        self.config.reports_load = reports_load;
        self
    }

    /// The pycom `version` in the node's messages ([`NODE_VERSION`] by default).
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.config.version = version.into();
        self
    }

    /// Every setting `scenario` gives (identity, `unit_info`, timings, discovery targets,
    /// `reports_load`, the standalone sequence) and its fault schedule; setters called after
    /// this win. [`La4Scenario::load`] reads one from a file; its `nodes` is for
    /// [`Fleet::start`](crate::Fleet::start). A reset goes back to it.
    #[must_use]
    pub fn scenario(mut self, scenario: &La4Scenario) -> Self {
        scenario.apply(&mut self.config);
        self
    }

    /// The fault schedule at the start ([`SimConfig::faults`]; replaces the one before).
    #[must_use]
    pub fn faults(
        mut self,
        faults: impl IntoIterator<Item = ScheduledFault<La4Fault, La4Matcher>>,
    ) -> Self {
        self.config.faults = faults.into_iter().collect();
        self
    }

    /// Size limit for requests and events.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Deadline for a coordinator to deliver a request.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// Deadline for delivering one event.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// Deadline for connecting to deliver one event ([`DEFAULT_CONNECT_TIMEOUT`] by default).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Most destinations with events on their way at once ([`MAX_EVENT_DESTINATIONS`] by
    /// default).
    #[must_use]
    pub fn max_event_destinations(mut self, max: usize) -> Self {
        self.config.max_event_destinations = max;
        self
    }

    /// The configuration so far, host settings included.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            host: self.host.clone(),
            ..self.config.clone()
        }
    }

    /// Binds the listen address and starts the node: it boots, answers requests, tracks
    /// coordinators and, with none online, probes for one.
    ///
    /// # Errors
    /// When the address cannot be bound, or the fault schedule has more than
    /// [`MAX_SCHEDULED`](labwire_simkit::faults::MAX_SCHEDULED) entries (`InvalidInput`).
    pub async fn start(self) -> io::Result<La4Sim> {
        let Self { host, config } = self;
        let faults = Faults::default();
        faults
            .reschedule(&config.faults)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let clock = host.clock();
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let node_config = NodeConfig {
            server: host.server_config(),
            limits: config.limits,
            // A node's connection carries one request, and pycom-proto's node gives the wait
            // for it the request's deadline: the shared idle setting sets both.
            read_timeout: host.idle_timeout.unwrap_or(config.read_timeout),
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
                .unwrap_or_else(|| host.listen.ip().to_string()),
            port,
            config.version.clone(),
            false,
        );
        let initial = Initial {
            boot_time: config.boot_time,
            offline_after: config.offline_after,
            standalone_sequence: config.standalone_sequence.clone(),
            reports_load: config.reports_load,
            faults: config.faults.clone(),
        };
        let coordinators = initial.coordinators(clock.instant());
        let device = initial.device();
        let requests = Requests::default();
        let shared = Arc::new(Shared {
            events: EventSender::new(identity.clone())
                .with_limits(config.limits)
                .with_timeout(config.send_timeout),
            limits: config.limits,
            send_timeout: config.send_timeout,
            connect_timeout: config.connect_timeout,
            identity,
            unit_info: config.unit_info.clone(),
            clock: clock.clone(),
            coordinators: Mutex::new(coordinators),
            device: Mutex::new(device),
            initial,
            faults: faults.clone(),
            requests: requests.clone(),
            stats: Mutex::new(Stats::default()),
            outbox: Outbox::new(
                MAX_QUEUED_EVENTS,
                config.max_event_destinations,
                shutdown.clone(),
                tasks.clone(),
            ),
            drop_warnings: WarnLimit::default(),
        });
        let server = listener.serve_until(Node(Arc::clone(&shared)), shutdown.child_token());
        // Often enough to notice each of the three delays within an eighth of it. On a stopped
        // clock time moves only by hand, and each advance wakes the loop at once.
        let tick = [
            config.boot_time,
            config.offline_after,
            config.discovery_interval,
        ]
        .into_iter()
        .filter(|d| !d.is_zero())
        .filter_map(|d| clock.real(d))
        .min()
        .unwrap_or(Duration::from_millis(100))
        .div_f64(8.0)
        .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let token = shutdown.clone();
        let clock_task = Arc::clone(&shared).run_clock(
            tick,
            config.discovery_interval,
            config.discovery_targets.clone(),
        );
        tasks.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = clock_task => {}
            }
        });
        tracing::debug!(addr = %server.local_addr(), id = %shared.identity.id, "LA4 node simulator started");
        let state = SimState { shared };
        Ok(La4Sim {
            handle: SimHandle::new(server, state, clock, faults, requests, shutdown, tasks),
        })
    }
}

/// A running simulated node: simkit's [`SimHandle`] (`local_addr`, `state`, `clock`, `faults`,
/// `requests`, `connection_count`, `shutdown`, `shutdown_token`), which it dereferences to.
/// Dropping it stops the node without waiting; [`SimHandle::shutdown`] also waits until every
/// connection is closed and no event is being sent.
///
/// Faults ([`SimHandle::faults`]: the shared [`Fault`](labwire_simkit::Fault)s and
/// [`La4Fault`]) are taken once per **command** request and act on that command's events
/// (heartbeats and other requests take none; `unit_info` and discovery probes are never
/// faulty): `NoReply` and `Close` lose them all, `Delay(d)` sends them `d` later (real time),
/// `Garbage` sends [`GARBAGE`] instead of each, `Truncate` sends the first half of each one's
/// bytes. [`SimHandle::requests`] counts every valid request.
#[derive(Debug)]
pub struct La4Sim {
    handle: SimHandle<SimState, La4Fault, La4Matcher>,
}

impl Deref for La4Sim {
    type Target = SimHandle<SimState, La4Fault, La4Matcher>;

    fn deref(&self) -> &Self::Target {
        &self.handle
    }
}

impl La4Sim {
    /// A builder with the defaults of [`SimConfig::default`], except that it listens on
    /// `127.0.0.1:0` (loopback, any free port).
    pub fn builder() -> La4SimBuilder {
        La4SimBuilder::from(SimConfig {
            host: HostConfig::loopback(),
            ..SimConfig::default()
        })
    }

    /// Starts a node configured by `config` (the same as
    /// `La4SimBuilder::from(config).start()`).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        La4SimBuilder::from(config).start().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_devices() {
        let config = SimConfig::default();
        assert_eq!(config.host.listen, SocketAddr::from(([127, 0, 0, 1], 5000)));
        assert_eq!(config.offline_after, Duration::from_secs(15));
        assert!(config.host.backlog >= 1024, "{}", config.host.backlog);
        assert_eq!(config.host.time_scale, 1.0);
        assert!(!config.reports_load);
        // An embedded node sends nothing unasked; the binary probes loopback only.
        assert!(config.discovery_targets.is_empty());
        assert_eq!(config.unit_info.unit_type, "light_array");
        // Destinations that never accept are given up after a second of connecting, and the
        // node has room for 1024 destinations at once.
        assert_eq!(config.connect_timeout, Duration::from_secs(1));
        assert_eq!(config.max_event_destinations, MAX_EVENT_DESTINATIONS);
        assert_eq!(MAX_EVENT_DESTINATIONS, 1024);
        let builder = La4Sim::builder();
        assert!(builder.config().host.listen.ip().is_loopback());
        assert_eq!(builder.config().host.listen.port(), 0);
    }

    #[test]
    fn the_builder_keeps_the_host_settings_of_a_config_and_its_own_setters() {
        let config = SimConfig {
            host: HostConfig {
                backlog: 7,
                ..HostConfig::loopback()
            },
            id: "0000abcd".into(),
            ..SimConfig::default()
        };
        let built = La4SimBuilder::from(config)
            .max_connections(3)
            .clock(SimClock::manual())
            .reports_load(true)
            .config();
        assert_eq!((built.host.backlog, built.host.max_connections), (7, 3));
        assert!(built.host.clock().is_manual());
        assert_eq!(built.id, "0000abcd");
        assert!(built.reports_load);
    }

    #[test]
    fn a_configured_standalone_sequence_is_in_its_file_and_runs_at_the_end_of_boot() {
        let sequence = Sequence::parse_csv("LED_FAN,1\nMODEL_LIGHT,10\n").unwrap();
        let mut device = power_on(Some(&sequence));
        assert_eq!(device.files.standalone, Some(sequence.to_csv()));
        assert_eq!(device.lights.standalone, Some(sequence.clone()));
        assert!(!device.lights.fans, "not before boot has finished");
        assert!(device.finish_boot());
        assert_eq!(device.lights.last_run, Some(sequence));
        assert!(device.lights.fans);
        assert!(!power_on(None).finish_boot());
    }

    #[test]
    fn recorded_commands_are_bounded_in_number_and_bytes() {
        let mut commands = Vec::new();
        for i in 0..MAX_RECORDED_COMMANDS + 5 {
            record(&mut commands, &i.to_string());
        }
        assert_eq!(commands.len(), MAX_RECORDED_COMMANDS);
        assert_eq!(commands[0], "5");
        let big = "x".repeat(MAX_RECORDED_COMMAND_BYTES / 2);
        record(&mut commands, &big);
        record(&mut commands, &big);
        assert_eq!(commands.len(), 2, "only the two large ones fit");
        record(&mut commands, "echo");
        assert_eq!(commands, [big.clone(), "echo".to_owned()]);
        // One command larger than the whole budget is still kept (alone).
        let huge = "y".repeat(MAX_RECORDED_COMMAND_BYTES + 1);
        record(&mut commands, &huge);
        assert_eq!(commands, [huge]);
    }
}
