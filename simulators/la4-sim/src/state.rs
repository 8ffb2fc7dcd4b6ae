//! The node's state, without sockets or clocks: every method takes `now`.

use pycom_proto::sequence::{Row, SEQUENCE_FILE, STANDALONE_SEQUENCE_FILE, Sequence};

use crate::shell::{self, BoardioCommand, Files};

pub use crate::coordinators::{
    CoordinatorStatus, Coordinators, MAX_COORDINATORS, SERVED_GENERATION,
};

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
    /// The sequence loaded with `uSeq` or `uSeqStandalone` (or at boot), ready for `runSeq`.
    pub loaded: Option<Sequence>,
    /// The last sequence run.
    pub last_run: Option<Sequence>,
    /// The boot-time sequence stored with `uSeqStandalone` (or present at power-on); it runs
    /// at the end of every boot and survives reboots.
    pub standalone: Option<Sequence>,
    /// Sequences run since the simulator started, reboots included (the boot-time runs too).
    pub runs: u64,
}

impl LightState {
    /// Back to the power-on state: everything off, nothing loaded, no last run; the stored
    /// standalone sequence and the run count stay.
    fn power_on(&mut self) {
        *self = Self {
            standalone: self.standalone.take(),
            runs: self.runs,
            ..Self::default()
        };
    }

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

/// How the simulated boardio daemon departs from its plain behaviour, to test how a
/// coordinator copes: `reports_load` is a variant of the device
/// ([`SimConfig::reports_load`](crate::SimConfig::reports_load)), `run_seq_error` is set for
/// each command from its fault ([`La4Fault::RunSeqError`](crate::La4Fault::RunSeqError)).
/// The default is the plain behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardioBehaviour {
    /// `uSeq` reports `BOARDIO_READY` when it loads a valid sequence (it is silent otherwise),
    /// so the vendor idiom yields two verdicts: `uSeq`'s, then `runSeq`'s.
    pub reports_load: bool,
    /// Every `runSeq` reports `BOARDIO_ERROR: <this text>` and leaves the lights alone (a
    /// device fault, e.g. `LED driver overheated`).
    pub run_seq_error: Option<String>,
}

/// The simulated device: its two files and its lights, driven by command lines.
///
/// [`Device::default`] has booted, with nothing stored; [`Device::reboot`] powers it on again
/// (also how a node starts), after which [`Device::finish_boot`], or the first command run
/// with boardio booted, runs the stored standalone sequence.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// The sequence files.
    pub files: Files,
    /// The lights.
    pub lights: LightState,
    /// How boardio answers.
    pub boardio: BoardioBehaviour,
    /// Rebooted, and the end of that boot not yet seen.
    booting: bool,
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
    /// Runs `command` (never on the host) with boardio running when `booted`. A boot that has
    /// just finished is completed first ([`Device::finish_boot`]), so the command acts on the
    /// lights the boot-time sequence left.
    pub fn run(&mut self, command: &str, booted: bool) -> CommandResult {
        if booted {
            self.finish_boot();
        }
        let outcome = shell::run(command, &mut self.files, booted);
        let messages = outcome
            .boardio
            .iter()
            .filter_map(|c| self.daemon(*c))
            .collect();
        CommandResult {
            output: outcome.output().to_owned(),
            messages,
        }
    }

    /// Powers the device off and on: the lights go back to their power-on state (everything
    /// off, nothing loaded); the files and the stored standalone sequence stay. boardio boots
    /// again; call [`Device::finish_boot`] once it has.
    pub fn reboot(&mut self) {
        self.lights.power_on();
        self.booting = true;
    }

    /// boardio has finished booting: it loads the stored standalone sequence and runs it,
    /// once per boot, with no message (nobody asked). Returns whether a sequence ran; nothing
    /// happens unless [`Device::reboot`] came since the last boot finished.
    pub fn finish_boot(&mut self) -> bool {
        if !std::mem::take(&mut self.booting) {
            return false;
        }
        let Some(sequence) = self.lights.standalone.clone() else {
            return false;
        };
        self.lights.apply(&sequence);
        self.lights.loaded = Some(sequence);
        true
    }

    /// The boardio daemon handling one FIFO command; returns the message it reports, if any.
    fn daemon(&mut self, command: BoardioCommand) -> Option<String> {
        let error = |what: String| Some(format!("{BOARDIO_ERROR}: {what}"));
        let load = |file: Option<&str>, path: &str| match file {
            None => Err(format!("{path} does not exist")),
            Some(text) => Sequence::parse_csv(text).map_err(|e| format!("{path}: {e}")),
        };
        match command {
            BoardioCommand::USeq => match load(self.files.sequence.as_deref(), SEQUENCE_FILE) {
                Ok(sequence) => {
                    self.lights.loaded = Some(sequence);
                    self.boardio.reports_load.then(|| BOARDIO_READY.to_owned())
                }
                Err(what) => {
                    self.lights.loaded = None;
                    error(what)
                }
            },
            BoardioCommand::USeqStandalone => {
                match load(self.files.standalone.as_deref(), STANDALONE_SEQUENCE_FILE) {
                    Ok(sequence) => {
                        // Stored for every boot, and loaded: the vendor's idiom runs it at
                        // once with `&& boardiocli runSeq`.
                        self.lights.standalone = Some(sequence.clone());
                        self.lights.loaded = Some(sequence);
                        Some(BOARDIO_READY.to_owned())
                    }
                    Err(what) => error(what),
                }
            }
            BoardioCommand::RunSeq => {
                if let Some(fault) = &self.boardio.run_seq_error {
                    return error(fault.clone());
                }
                match self.lights.loaded.clone() {
                    Some(sequence) => {
                        self.lights.apply(&sequence);
                        Some(BOARDIO_READY.to_owned())
                    }
                    None => error("no sequence loaded".to_owned()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(rows: impl Into<Vec<Row>>) -> Sequence {
        Sequence::new(rows).unwrap()
    }

    /// The vendor's standalone idiom, written out (not built by `Sequence::command`).
    fn standalone_idiom(csv: &str, then_run: bool) -> String {
        let run = if then_run {
            " && boardiocli runSeq"
        } else {
            ""
        };
        format!("echo \"{csv}\" > {STANDALONE_SEQUENCE_FILE} && boardiocli uSeqStandalone{run}")
    }

    fn normal_idiom(csv: &str) -> String {
        format!("echo \"{csv}\" > {SEQUENCE_FILE} && boardiocli uSeq && boardiocli runSeq")
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
    fn standalone_sequence_alone_is_stored_and_loaded_not_run() {
        let mut device = Device::default();
        let result = device.run(&standalone_idiom("LED_FAN,1", false), true);
        assert_eq!(result.messages, [BOARDIO_READY]);
        let fan = sequence([Row::LedFan { on: true }]);
        assert_eq!(device.lights.standalone, Some(fan.clone()));
        assert_eq!(device.lights.loaded, Some(fan));
        assert!(!device.lights.fans);
        assert_eq!(device.lights.runs, 0);
    }

    #[test]
    fn the_vendor_standalone_idiom_stores_the_sequence_and_runs_it_at_once() {
        let mut device = Device::default();
        let result = device.run(&standalone_idiom("LED_FAN,1\\nMODEL_LIGHT,30", true), true);
        assert_eq!(
            result.output,
            "BOARDIO_CLI: Sent: \"uSeqStandalone\" to FIFO file\n\
             BOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n"
        );
        assert_eq!(result.messages, [BOARDIO_READY, BOARDIO_READY]);
        let stored = sequence([Row::LedFan { on: true }, Row::ModelLight { power: 30 }]);
        assert_eq!(device.lights.standalone, Some(stored.clone()));
        assert_eq!(device.lights.last_run, Some(stored));
        assert!(device.lights.fans);
        assert_eq!(device.lights.model_light, 30);
    }

    #[test]
    fn reports_load_reports_ready_for_useq_then_the_run_verdict() {
        let mut device = Device::default();
        device.boardio.reports_load = true;
        let result = device.run(&normal_idiom("MODEL_LIGHT,100"), true);
        assert_eq!(result.messages, [BOARDIO_READY, BOARDIO_READY]);
        assert_eq!(device.lights.model_light, 100);
        // uSeq alone: one verdict.
        let result = device.run("boardiocli uSeq", true);
        assert_eq!(result.messages, [BOARDIO_READY]);
        // A bad file: uSeq's error, as without the fault, then runSeq's.
        let result = device.run(&normal_idiom("MODEL_LIGHT,101"), true);
        assert_eq!(result.messages.len(), 2, "{result:?}");
        assert!(result.messages.iter().all(|m| m.starts_with(BOARDIO_ERROR)));
        // Without the fault, uSeq is silent on success.
        device.boardio.reports_load = false;
        let result = device.run(&normal_idiom("MODEL_LIGHT,100"), true);
        assert_eq!(result.messages, [BOARDIO_READY]);
    }

    #[test]
    fn run_seq_error_reports_the_fault_for_every_run_and_leaves_the_lights() {
        let mut device = Device::default();
        device.boardio.run_seq_error = Some("LED driver overheated".into());
        let result = device.run(&normal_idiom("MODEL_LIGHT,100\\nLED_FAN,1"), true);
        assert_eq!(result.messages, ["BOARDIO_ERROR: LED driver overheated"]);
        assert_eq!(
            device.run("boardiocli runSeq", true).messages,
            result.messages
        );
        assert_eq!(device.lights.model_light, 0);
        assert!(!device.lights.fans);
        assert_eq!(device.lights.runs, 0);
        assert!(device.lights.loaded.is_some(), "uSeq still loads");
        // Fault cleared: the loaded sequence runs.
        device.boardio.run_seq_error = None;
        assert_eq!(
            device.run("boardiocli runSeq", true).messages,
            [BOARDIO_READY]
        );
        assert_eq!(device.lights.model_light, 100);
    }

    #[test]
    fn reboot_turns_the_lights_off_and_the_end_of_boot_runs_the_stored_standalone_sequence() {
        let mut device = Device::default();
        device.run(&standalone_idiom("DIGITAL_POLARIZER,1", false), true);
        device.run(&normal_idiom("MODEL_LIGHT,70\\nLED_FAN,1"), true);
        assert_eq!(device.lights.runs, 1);
        let files = device.files.clone();
        device.reboot();
        let stored = sequence([Row::DigitalPolarizer { on: true }]);
        assert_eq!(
            device.lights,
            LightState {
                standalone: Some(stored.clone()),
                runs: 1,
                ..LightState::default()
            }
        );
        assert_eq!(device.files, files, "the files survive a reboot");
        // While boardio boots, nothing reaches it.
        let result = device.run("boardiocli runSeq", false);
        assert_eq!(result.output, "BOARDIO_CLI: boardio is not running\n");
        assert!(result.messages.is_empty());
        assert!(!device.lights.polarizer);
        // The end of the boot runs the stored sequence once, and leaves it loaded.
        assert!(device.finish_boot());
        assert!(device.lights.polarizer);
        assert_eq!(device.lights.model_light, 0);
        assert_eq!(device.lights.last_run, Some(stored.clone()));
        assert_eq!(device.lights.loaded, Some(stored));
        assert_eq!(device.lights.runs, 2);
        assert!(!device.finish_boot());
        assert_eq!(device.lights.runs, 2);
    }

    #[test]
    fn a_command_after_the_boot_finished_finds_the_standalone_sequence_already_run() {
        let mut device = Device::default();
        device.lights.standalone = Some(sequence([Row::LedFan { on: true }]));
        device.reboot();
        let result = device.run(&normal_idiom("MODEL_LIGHT,20"), true);
        assert_eq!(result.messages, [BOARDIO_READY]);
        assert!(device.lights.fans, "the boot-time sequence ran first");
        assert_eq!(device.lights.model_light, 20);
        assert_eq!(device.lights.runs, 2);
        assert!(!device.finish_boot(), "that boot is over");
    }

    #[test]
    fn a_boot_without_a_stored_standalone_sequence_leaves_the_lights_off() {
        let mut device = Device::default();
        device.run(&normal_idiom("MODEL_LIGHT,70"), true);
        device.reboot();
        assert!(!device.finish_boot());
        assert_eq!(device.lights.model_light, 0);
        assert_eq!(device.lights.loaded, None);
        assert_eq!(
            device.run("boardiocli runSeq", true).messages,
            ["BOARDIO_ERROR: no sequence loaded"]
        );
    }
}
