//! The node's state, without sockets or clocks: every method takes `now`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pycom_proto::Identity;
use pycom_proto::sequence::{Row, SEQUENCE_FILE, STANDALONE_SEQUENCE_FILE, Sequence};

use crate::shell::{self, BoardioCommand, Files};

/// A coordinator as the node tracks it: keyed by the IP it connects from and the port it
/// advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorStatus {
    /// Where events for it go.
    pub addr: SocketAddr,
    /// Its identity from its latest request.
    pub identity: Identity,
    /// Heard from within the offline delay.
    pub online: bool,
    /// `unit_info` has been sent to it (once, ever).
    pub unit_info_sent: bool,
}

#[derive(Debug, Clone)]
struct Tracked {
    identity: Identity,
    last_heard: Instant,
    online: bool,
    unit_info_sent: bool,
}

/// Most coordinators a node tracks; requests from further ones are served but not tracked.
pub const MAX_COORDINATORS: usize = 1024;

/// Which coordinators the node knows, when their `unit_info` is due, and when they go offline.
#[derive(Debug, Clone)]
pub struct Coordinators {
    ready_at: Instant,
    offline_after: Duration,
    tracked: HashMap<SocketAddr, Tracked>,
}

impl Coordinators {
    /// A node started at `started` whose hardware info is available `boot_time` later.
    pub fn new(started: Instant, boot_time: Duration, offline_after: Duration) -> Self {
        Self {
            ready_at: started + boot_time,
            offline_after,
            tracked: HashMap::new(),
        }
    }

    /// Whether boardio has finished initialising.
    pub fn hardware_ready(&self, now: Instant) -> bool {
        now >= self.ready_at
    }

    /// A request from `identity`, whose events go to `reply_to`. Returns whether `unit_info`
    /// is due to it now (first time both conditions hold).
    pub fn on_request(&mut self, now: Instant, reply_to: SocketAddr, identity: &Identity) -> bool {
        if !identity.coordinator {
            return false;
        }
        if !self.tracked.contains_key(&reply_to) && self.tracked.len() >= MAX_COORDINATORS {
            // A flood of made-up coordinators must not grow the table without end.
            return false;
        }
        let ready = self.hardware_ready(now);
        let tracked = self.tracked.entry(reply_to).or_insert_with(|| Tracked {
            identity: identity.clone(),
            last_heard: now,
            online: true,
            unit_info_sent: false,
        });
        tracked.identity = identity.clone();
        tracked.last_heard = now;
        tracked.online = true;
        if ready && !tracked.unit_info_sent {
            tracked.unit_info_sent = true;
            return true;
        }
        false
    }

    /// Advances time: returns the coordinators `unit_info` is now due to (boot just finished)
    /// and those that just went offline.
    pub fn poll(&mut self, now: Instant) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let ready = self.hardware_ready(now);
        let mut due = Vec::new();
        let mut offline = Vec::new();
        for (addr, tracked) in &mut self.tracked {
            if tracked.online
                && now.saturating_duration_since(tracked.last_heard) >= self.offline_after
            {
                tracked.online = false;
                offline.push(*addr);
            }
            // Only a coordinator seen online since boot finished gets it now; one that went
            // silent before boot gets it when it comes back.
            if ready && tracked.online && !tracked.unit_info_sent {
                tracked.unit_info_sent = true;
                due.push(*addr);
            }
        }
        due.sort();
        offline.sort();
        (due, offline)
    }

    /// Whether any coordinator is online (otherwise the node scans for one).
    pub fn any_online(&self) -> bool {
        self.tracked.values().any(|t| t.online)
    }

    /// Every tracked coordinator, in address order.
    pub fn list(&self) -> Vec<CoordinatorStatus> {
        let mut list: Vec<_> = self
            .tracked
            .iter()
            .map(|(addr, t)| CoordinatorStatus {
                addr: *addr,
                identity: t.identity.clone(),
                online: t.online,
                unit_info_sent: t.unit_info_sent,
            })
            .collect();
        list.sort_by_key(|c| c.addr);
        list
    }
}

/// The simulated lights, as the last sequence run left them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LightState {
    /// Model light power, 0–100 % (0 = off).
    pub model_light: u8,
    /// Fans on (off at boot).
    pub fans: bool,
    /// Polariser on.
    pub polarizer: bool,
    /// The last flash-array row run (`ALL_4_*` / `OLAT_4_*`), if any.
    pub array: Option<Row>,
    /// The sequence loaded with `uSeq`, ready for `runSeq`.
    pub loaded: Option<Sequence>,
    /// The last sequence run.
    pub last_run: Option<Sequence>,
    /// The boot-time sequence loaded with `uSeqStandalone`.
    pub standalone: Option<Sequence>,
    /// Sequences run since start.
    pub runs: u64,
}

impl LightState {
    fn apply(&mut self, sequence: &Sequence) {
        for row in sequence.rows() {
            match *row {
                Row::ModelLight { power } => self.model_light = power,
                Row::LedFan { on } => self.fans = on,
                Row::DigitalPolarizer { on } => self.polarizer = on,
                other => self.array = Some(other),
            }
        }
        self.last_run = Some(sequence.clone());
        self.runs += 1;
    }
}

pub use pycom_proto::sequence::{BOARDIO_ERROR, BOARDIO_READY};

/// The simulated device: its two files and its lights, driven by command lines.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// The sequence files.
    pub files: Files,
    /// The lights.
    pub lights: LightState,
}

/// What a command produced: the `output` event's text, then `message` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// stdout on success, stderr on failure.
    pub output: String,
    /// `BOARDIO_READY` / `BOARDIO_ERROR: …` messages from the boardio daemon, in order.
    pub messages: Vec<String>,
}

impl Device {
    /// Runs `command` (never on the host) with boardio running when `booted`.
    pub fn run(&mut self, command: &str, booted: bool) -> CommandResult {
        let outcome = shell::run(command, &mut self.files, booted);
        let messages = outcome
            .boardio
            .iter()
            .filter_map(|c| self.boardio(*c))
            .collect();
        CommandResult {
            output: outcome.output().to_owned(),
            messages,
        }
    }

    /// The boardio daemon handling one FIFO command; returns the message it reports, if any.
    fn boardio(&mut self, command: BoardioCommand) -> Option<String> {
        let error = |what: String| Some(format!("{BOARDIO_ERROR}: {what}"));
        let load = |file: Option<&str>, path: &str| match file {
            None => Err(format!("{path} does not exist")),
            Some(text) => Sequence::parse_csv(text).map_err(|e| format!("{path}: {e}")),
        };
        match command {
            BoardioCommand::USeq => match load(self.files.sequence.as_deref(), SEQUENCE_FILE) {
                Ok(sequence) => {
                    self.lights.loaded = Some(sequence);
                    None
                }
                Err(what) => {
                    self.lights.loaded = None;
                    error(what)
                }
            },
            BoardioCommand::USeqStandalone => {
                match load(self.files.standalone.as_deref(), STANDALONE_SEQUENCE_FILE) {
                    Ok(sequence) => {
                        self.lights.standalone = Some(sequence);
                        Some(BOARDIO_READY.to_owned())
                    }
                    Err(what) => error(what),
                }
            }
            BoardioCommand::RunSeq => match self.lights.loaded.clone() {
                Some(sequence) => {
                    self.lights.apply(&sequence);
                    Some(BOARDIO_READY.to_owned())
                }
                None => error("no sequence loaded".to_owned()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn coordinator(port: u16) -> (SocketAddr, Identity) {
        let identity = Identity::new("c", "coord", "127.0.0.1", port, "1", true);
        (SocketAddr::from(([127, 0, 0, 1], port)), identity)
    }

    #[test]
    fn unit_info_goes_once_when_the_coordinator_arrives_after_boot() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, 100 * MS, 1000 * MS);
        let (addr, id) = coordinator(9000);
        assert!(c.on_request(t0 + 200 * MS, addr, &id));
        assert!(!c.on_request(t0 + 300 * MS, addr, &id));
        assert_eq!(c.poll(t0 + 400 * MS), (vec![], vec![]));
    }

    #[test]
    fn unit_info_goes_when_boot_finishes_after_the_coordinator_arrived() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, 100 * MS, 1000 * MS);
        let (addr, id) = coordinator(9000);
        assert!(!c.on_request(t0, addr, &id));
        assert_eq!(c.poll(t0 + 50 * MS).0, vec![]);
        assert_eq!(c.poll(t0 + 100 * MS).0, vec![addr]);
        assert_eq!(c.poll(t0 + 150 * MS).0, vec![]);
    }

    #[test]
    fn non_coordinators_are_not_tracked() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 1000 * MS);
        let (addr, mut id) = coordinator(9000);
        id.coordinator = false;
        assert!(!c.on_request(t0, addr, &id));
        assert!(c.list().is_empty());
        // Saying `coordinator: true` later is what makes it one: unit_info then.
        id.coordinator = true;
        assert!(c.on_request(t0 + MS, addr, &id));
        assert_eq!(c.list().len(), 1);
    }

    #[test]
    fn a_silent_coordinator_goes_offline_and_unit_info_is_not_resent_on_return() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        let (addr, id) = coordinator(9000);
        assert!(c.on_request(t0, addr, &id));
        assert_eq!(c.poll(t0 + 149 * MS).1, vec![]);
        assert!(c.any_online());
        assert_eq!(c.poll(t0 + 150 * MS).1, vec![addr]);
        assert!(!c.any_online());
        assert!(!c.on_request(t0 + 200 * MS, addr, &id));
        assert!(c.any_online());
    }

    #[test]
    fn the_coordinator_table_is_bounded() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        for port in 0..=u16::try_from(MAX_COORDINATORS).unwrap() {
            let (addr, id) = coordinator(port);
            c.on_request(t0, addr, &id);
        }
        assert_eq!(c.list().len(), MAX_COORDINATORS);
        // Known ones are still refreshed.
        let (addr, id) = coordinator(0);
        assert!(!c.on_request(t0, addr, &id));
        assert_eq!(c.list().len(), MAX_COORDINATORS);
    }

    #[test]
    fn coordinators_differ_by_advertised_port() {
        let t0 = Instant::now();
        let mut c = Coordinators::new(t0, Duration::ZERO, 150 * MS);
        let (a, ida) = coordinator(9000);
        let (b, idb) = coordinator(9001);
        assert!(c.on_request(t0, a, &ida));
        assert!(c.on_request(t0, b, &idb));
        assert_eq!(c.list().len(), 2);
    }

    #[test]
    fn a_good_sequence_loads_runs_and_reports_ready() {
        let mut device = Device::default();
        let sequence = Sequence::new([
            Row::ModelLight { power: 40 },
            Row::LedFan { on: true },
            Row::DigitalPolarizer { on: true },
        ])
        .unwrap();
        let result = device.run(&sequence.command(pycom_proto::Slot::Normal), true);
        assert_eq!(result.messages, [BOARDIO_READY]);
        assert_eq!(device.lights.model_light, 40);
        assert!(device.lights.fans && device.lights.polarizer);
        assert_eq!(device.lights.last_run, Some(sequence));
        assert_eq!(device.lights.runs, 1);
    }

    #[test]
    fn a_bad_row_reports_boardio_error_and_changes_no_light() {
        let mut device = Device::default();
        let line = format!(
            "echo \"MODEL_LIGHT,150\" > {SEQUENCE_FILE} && boardiocli uSeq && boardiocli runSeq"
        );
        let result = device.run(&line, true);
        assert!(result.output.contains("Sent: \"uSeq\""));
        assert!(!result.messages.is_empty());
        assert!(result.messages.iter().all(|m| m.starts_with(BOARDIO_ERROR)));
        assert!(
            result.messages[0].contains("MODEL_LIGHT power must be 0..=100"),
            "{result:?}"
        );
        assert_eq!(device.lights, LightState::default());
    }

    #[test]
    fn standalone_sequence_is_stored_not_run() {
        let mut device = Device::default();
        let sequence = Sequence::new([Row::LedFan { on: true }]).unwrap();
        let result = device.run(&sequence.command(pycom_proto::Slot::Standalone), true);
        assert_eq!(result.messages, [BOARDIO_READY]);
        assert_eq!(device.lights.standalone, Some(sequence));
        assert!(!device.lights.fans);
    }
}
