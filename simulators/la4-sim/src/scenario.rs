//! LA4 scenario files: the node described in YAML (`--scenario FILE`,
//! [`La4SimBuilder::scenario`](crate::La4SimBuilder::scenario)).
//!
//! Every field is optional; a field left out keeps the simulator's default (the binary's
//! flags, given explicitly, win over the file), and a field not in this schema is an error
//! naming its line. Durations carry their unit (`250ms`, `1.5s`).
//!
//! ```yaml
//! id: "81639cd4"                      # the node's identity (fleet nodes count up from it)
//! name: rigsters-controller
//! ip: 10.0.0.17                       # the `ip` it reports (default: the listen IP)
//! version: 0.14.0                     # the pycom version in its messages
//! unit_info:                          # what unit_info reports; each field given replaces one
//!   boardio_version: 1.3.0
//!   firmware_version: 2.0.4
//!   mac_address: "dc:a6:32:1b:4e:f0"
//! nodes: 4                            # fleet size (`--nodes`; the binary and `Fleet` read it)
//! timings:                            # simulated time
//!   boot: 3s                          # until boardio has booted (unit_info, standalone run)
//!   offline_after: 15s                # a silent coordinator goes offline
//!   discovery_interval: 5s            # between discovery probes
//! discovery: ["127.0.0.1:5001"]       # where to probe for a coordinator ([]: nowhere)
//! sequence:                           # how sequences behave
//!   reports_load: true                # `uSeq` reports BOARDIO_READY too
//!   standalone: |                     # stored at power-on, run when boardio has booted
//!     LED_FAN,1
//!     MODEL_LIGHT,10
//! faults:                             # the fault schedule (labwire_simkit::ScheduledFault)
//!   - { request: 2, fault: no_reply }
//!   - { matching: { contains: runSeq }, fault: { device: { run_seq_error: LED driver overheated } } }
//!   - { matching: { first_word: echo }, fault: { device: drop_output }, until_cleared: true }
//! ```
//!
//! Sequences run at once (boardio's timing is not simulated), so `sequence` has no timings.
//!
//! A fault is taken once per **command** request (heartbeats take none), so `request: N`
//! counts commands. A matcher (`matching`) picks commands by their text (`contains`, a
//! substring such as `runSeq` or `uSeqStandalone`; `first_word`, such as `echo`, `cat` or
//! `boardiocli`) and/or by the sending coordinator's `id` (`coordinator`). Device faults:
//! `drop_output`, `message_before_output`, `{run_seq_error: <text>}`
//! ([`La4Fault`]).

use std::net::SocketAddr;
use std::path::Path;

use labwire_simkit::duration::Humane;
use labwire_simkit::scenario::{self, ScenarioError};
use labwire_simkit::{Matcher, ScheduledFault};
use pycom_proto::node::Request;
use pycom_proto::{Body, Sequence, UnitInfo};
use serde::{Deserialize, Serialize};

use crate::La4Fault;
use crate::sim::SimConfig;

/// An LA4 scenario; see the [module docs](self) for the file format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct La4Scenario {
    /// [`SimConfig::id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// [`SimConfig::name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// [`SimConfig::ip`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// [`SimConfig::version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// [`SimConfig::unit_info`], field by field.
    #[serde(default)]
    pub unit_info: UnitInfoSpec,
    /// How many nodes the binary (`--nodes`) or [`Fleet`](crate::Fleet) starts (default 1);
    /// [`La4Scenario::nodes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// Boot, offline and discovery delays.
    #[serde(default)]
    pub timings: Timings,
    /// [`SimConfig::discovery_targets`] (replaces them; `[]`: no discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Vec<SocketAddr>>,
    /// How sequences behave.
    #[serde(default)]
    pub sequence: SequenceSpec,
    /// The fault schedule ([`SimConfig::faults`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ScheduledFault<La4Fault, La4Matcher>>,
}

impl La4Scenario {
    /// Reads a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read or is not an LA4 scenario (file, line, column and field
    /// named).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let scenario: Self = scenario::load(path)?;
        scenario
            .check()
            .map_err(|e| ScenarioError::invalid(path, e))?;
        Ok(scenario)
    }

    /// Reads a scenario from text; `file` names it in errors.
    ///
    /// # Errors
    /// As [`La4Scenario::load`].
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = scenario::from_str(text, file)?;
        scenario
            .check()
            .map_err(|e| ScenarioError::invalid(file, e))?;
        Ok(scenario)
    }

    /// How many nodes to start: `nodes`, or 1.
    pub fn nodes(&self) -> usize {
        self.nodes.unwrap_or(1)
    }

    /// `config` with every setting this scenario gives.
    pub fn apply(&self, config: &mut SimConfig) {
        let set = |slot: &mut String, value: &Option<String>| {
            if let Some(value) = value {
                slot.clone_from(value);
            }
        };
        set(&mut config.id, &self.id);
        set(&mut config.name, &self.name);
        set(&mut config.version, &self.version);
        if let Some(ip) = &self.ip {
            config.ip = Some(ip.clone());
        }
        self.unit_info.apply(&mut config.unit_info);
        let timings = &self.timings;
        for (slot, value) in [
            (&mut config.boot_time, timings.boot),
            (&mut config.offline_after, timings.offline_after),
            (&mut config.discovery_interval, timings.discovery_interval),
        ] {
            if let Some(value) = value {
                *slot = value.0;
            }
        }
        if let Some(targets) = &self.discovery {
            config.discovery_targets.clone_from(targets);
        }
        if let Some(reports_load) = self.sequence.reports_load {
            config.reports_load = reports_load;
        }
        if let Some(sequence) = &self.sequence.standalone {
            config.standalone_sequence = Some(sequence.0.clone());
        }
        config.faults.clone_from(&self.faults);
    }

    /// The checks across fields.
    fn check(&self) -> Result<(), String> {
        if self.nodes == Some(0) {
            return Err("nodes: must be at least 1".into());
        }
        if self.id.as_deref().is_some_and(str::is_empty) {
            return Err("id: must not be empty".into());
        }
        Ok(())
    }
}

/// [`UnitInfo`] in a scenario: each field given replaces the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitInfoSpec {
    /// [`UnitInfo::wiringpi_version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiringpi_version: Option<String>,
    /// [`UnitInfo::boardio_version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boardio_version: Option<String>,
    /// [`UnitInfo::firmware_version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// [`UnitInfo::unit_type`] (`light_array`, `human_scanning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_type: Option<String>,
    /// [`UnitInfo::mcu_type`] (`RP2040`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcu_type: Option<String>,
    /// [`UnitInfo::mac_address`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

impl UnitInfoSpec {
    /// `info` with the fields given here.
    pub fn apply(&self, info: &mut UnitInfo) {
        for (slot, value) in [
            (&mut info.wiringpi_version, &self.wiringpi_version),
            (&mut info.boardio_version, &self.boardio_version),
            (&mut info.firmware_version, &self.firmware_version),
            (&mut info.unit_type, &self.unit_type),
            (&mut info.mcu_type, &self.mcu_type),
            (&mut info.mac_address, &self.mac_address),
        ] {
            if let Some(value) = value {
                slot.clone_from(value);
            }
        }
    }
}

/// How sequences behave, in a scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceSpec {
    /// [`SimConfig::reports_load`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports_load: Option<bool>,
    /// [`SimConfig::standalone_sequence`], as the file's CSV text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone: Option<SequenceCsv>,
}

/// The node's delays in a scenario (simulated time): each one given replaces the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// [`SimConfig::boot_time`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Humane>,
    /// [`SimConfig::offline_after`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_after: Option<Humane>,
    /// [`SimConfig::discovery_interval`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_interval: Option<Humane>,
}

/// A sequence as its CSV file holds it (`LED_FAN,1\nMODEL_LIGHT,10\n`), checked when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceCsv(pub Sequence);

impl Serialize for SequenceCsv {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_csv())
    }
}

impl<'de> Deserialize<'de> for SequenceCsv {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sequence::parse_csv(&text)
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("invalid sequence CSV: {e}")))
    }
}

/// Picks LA4 commands for a scheduled fault: by the command text (`contains`, a substring;
/// `first_word`, the command line's first word) and/or by the sender (`coordinator`, its
/// `id`); all given must hold, none picks every command. Requests that are not commands match
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct La4Matcher {
    /// A substring of the command line, e.g. `runSeq`, `uSeqStandalone`, `la4_sequence.csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The command line's first word, e.g. `echo`, `cat`, `boardiocli`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_word: Option<String>,
    /// The sending coordinator's `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
}

impl La4Matcher {
    /// Commands whose text contains `text`.
    pub fn contains(text: impl Into<String>) -> Self {
        Self {
            contains: Some(text.into()),
            ..Self::default()
        }
    }

    /// Commands whose first word is `word`.
    pub fn first_word(word: impl Into<String>) -> Self {
        Self {
            first_word: Some(word.into()),
            ..Self::default()
        }
    }

    /// Whether a command line `command` from the coordinator `coordinator` is picked.
    pub fn matches_command(&self, coordinator: &str, command: &str) -> bool {
        self.contains.as_deref().is_none_or(|t| command.contains(t))
            && self
                .first_word
                .as_deref()
                .is_none_or(|w| command.split_whitespace().next() == Some(w))
            && self.coordinator.as_deref().is_none_or(|c| coordinator == c)
    }
}

impl Matcher<Request> for La4Matcher {
    fn matches(&self, request: &Request) -> bool {
        match &request.message.body {
            Body::Cmd { command } => self.matches_command(&request.message.identity.id, command),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matcher_picks_by_text_first_word_and_coordinator() {
        let command = "echo \"LED_FAN,1\" > /home/rigsters/la4_sequence.csv && boardiocli runSeq";
        assert!(La4Matcher::default().matches_command("a", command));
        assert!(La4Matcher::contains("runSeq").matches_command("a", command));
        assert!(!La4Matcher::contains("uSeqStandalone").matches_command("a", command));
        assert!(La4Matcher::first_word("echo").matches_command("a", command));
        assert!(!La4Matcher::first_word("boardiocli").matches_command("a", command));
        let from_b = La4Matcher {
            coordinator: Some("b".into()),
            ..La4Matcher::contains("runSeq")
        };
        assert!(!from_b.matches_command("a", command));
        assert!(from_b.matches_command("b", command));
    }

    #[test]
    fn a_scenario_sets_what_it_gives_and_keeps_the_rest() {
        let scenario = La4Scenario::from_yaml(
            "name: bench\nunit_info: { mac_address: \"02:00:00:00:00:01\" }\n\
             timings: { boot: 0s }\nsequence: { reports_load: true, standalone: \"LED_FAN,1\\n\" }\n\
             faults:\n  - { matching: { contains: runSeq }, fault: { device: { run_seq_error: hot } } }\n",
            "s.yaml",
        )
        .unwrap();
        let mut config = SimConfig::default();
        scenario.apply(&mut config);
        assert_eq!(config.name, "bench");
        assert_eq!(config.id, SimConfig::default().id);
        assert_eq!(config.unit_info.mac_address, "02:00:00:00:00:01");
        assert_eq!(config.unit_info.unit_type, "light_array");
        assert!(config.boot_time.is_zero());
        assert_eq!(config.offline_after, SimConfig::default().offline_after);
        assert!(config.reports_load);
        assert!(config.standalone_sequence.is_some());
        assert_eq!(
            config.faults[0].fault,
            labwire_simkit::Fault::Device(La4Fault::RunSeqError("hot".into()))
        );
        assert_eq!(scenario.nodes(), 1);
    }
}
