//! ARKEO scenario files: the device described in YAML (`--scenario FILE`,
//! [`ArkeoSimBuilder::scenario`](crate::ArkeoSimBuilder::scenario)).
//!
//! Every field is optional; a field left out keeps the simulator's default, and a field not in
//! this schema is an error naming its line. Durations carry their unit (`250ms`, `1.5s`).
//!
//! ```yaml
//! routines: [JV, Luminescence]        # what GetAvailableRoutines lists and StartRoutine accepts
//! timings:                            # Durations, in simulated time
//!   initializing: 500ms
//!   start_lag: 250ms
//!   starting: 300ms
//!   running: 2s
//!   auto_exposure: 6s
//!   calibration: 60s
//! info: { user_name: ada, device_name: cell-7, device_area: 0.09 }
//! settings:                           # per routine, merged over its default settings
//!   Luminescence: { integration_time: 200, averages: 2 }
//! data:                               # per routine: GetTestData after each measurement
//!   JV: { voc: 1.1 }
//! active_routine:                     # a routine already started (Ready, or Error with `error`)
//!   name: Luminescence
//!   error: Spectrometer not found
//!   data: { spectrum: [] }            # GetTestData before the first measurement
//! tmpctl:                             # replaces the two default controllers
//!   - { address: 1, channel: 1, name: Stage, enabled: true, setpoint: 40, temperature: 40 }
//! mux: { connected: true, relays: [true, false, false, false] }
//! led:                                # replaces the two default boards (12 values each)
//!   - { address: 1, values: [0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }
//! faults:                             # the fault schedule (labwire_simkit::ScheduledFault)
//!   - { request: 3, fault: no_reply }
//!   - { matching: { command: GetTestData }, fault: { delay: 200ms }, count: 1 }
//!   - { matching: { target: MUX }, fault: { device: wrong_request_id }, until_cleared: true }
//! ```
//!
//! A matcher (`matching`) picks requests by `target` (any case) and/or `command` (exact);
//! frames that are not requests match nothing. Device faults: `wrong_request_id`,
//! `request_id_as_float`, `request_id_as_string`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use arkeo_proto::{BadRequest, Request};
use labwire_simkit::duration::Humane;
use labwire_simkit::scenario::{self, ScenarioError};
use labwire_simkit::{Matcher, ScheduledFault};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::device::{LED_CHANNELS, MUX_RELAYS, ROUTINES};
use crate::{ArkeoFault, Durations};

/// An ARKEO scenario; see the [module docs](self) for the file format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArkeoScenario {
    /// Routines `GetAvailableRoutines` lists and `StartRoutine` accepts (default: every one
    /// in [`ROUTINES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routines: Option<Vec<RoutineName>>,
    /// Phase and blocking-command durations.
    #[serde(default)]
    pub timings: Timings,
    /// What `SetInfo` would have set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Info>,
    /// Per routine: settings merged over its defaults when it starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<RoutineName, Map<String, Value>>,
    /// Per routine: the data each measurement produces, instead of generated data.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<RoutineName, Value>,
    /// A routine already active at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_routine: Option<ActiveRoutine>,
    /// The temperature controllers (default: [`crate::device::TMPCTL_CONTROLLERS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpctl: Vec<ControllerSpec>,
    /// The multiplexer (default: disconnected, every relay open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mux: Option<MuxSpec>,
    /// The LED boards (default: boards 1 and 2, every channel off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub led: Vec<LedSpec>,
    /// The fault schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ScheduledFault<ArkeoFault, ArkeoMatcher>>,
}

impl ArkeoScenario {
    /// Reads a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read or is not an ARKEO scenario (file, line, column and field
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
    /// As [`ArkeoScenario::load`].
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = scenario::from_str(text, file)?;
        scenario
            .check()
            .map_err(|e| ScenarioError::invalid(file, e))?;
        Ok(scenario)
    }

    /// The checks across fields.
    fn check(&self) -> Result<(), String> {
        if let (Some(routines), Some(active)) = (&self.routines, &self.active_routine)
            && !routines.contains(&active.name)
        {
            return Err(format!(
                "active_routine.name: {} is not among `routines`",
                active.name
            ));
        }
        Ok(())
    }
}

/// A routine's name, one of [`ROUTINES`] (any case; kept as the simulator spells it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RoutineName(String);

impl RoutineName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoutineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for RoutineName {
    type Error = String;

    fn try_from(name: &str) -> Result<Self, String> {
        ROUTINES
            .iter()
            .find(|r| r.eq_ignore_ascii_case(name))
            .map(|r| Self((*r).to_owned()))
            .ok_or_else(|| {
                format!(
                    "unknown routine `{name}`, expected one of: {}",
                    ROUTINES.join(", ")
                )
            })
    }
}

impl<'de> Deserialize<'de> for RoutineName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::try_from(name.as_str()).map_err(serde::de::Error::custom)
    }
}

/// [`Durations`] in a scenario: each one given replaces the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// [`Durations::initializing`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializing: Option<Humane>,
    /// [`Durations::start_lag`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lag: Option<Humane>,
    /// [`Durations::starting`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting: Option<Humane>,
    /// [`Durations::running`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Humane>,
    /// [`Durations::auto_exposure`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_exposure: Option<Humane>,
    /// [`Durations::calibration`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Humane>,
}

impl Timings {
    /// `durations` with the timings given here.
    pub fn apply(&self, mut durations: Durations) -> Durations {
        let set = |slot: &mut Duration, value: Option<Humane>| {
            if let Some(value) = value {
                *slot = value.0;
            }
        };
        set(&mut durations.initializing, self.initializing);
        set(&mut durations.start_lag, self.start_lag);
        set(&mut durations.starting, self.starting);
        set(&mut durations.running, self.running);
        set(&mut durations.auto_exposure, self.auto_exposure);
        set(&mut durations.calibration, self.calibration);
        durations
    }
}

/// The user and device information measurements carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Info {
    /// The user.
    #[serde(default)]
    pub user_name: String,
    /// The device under test.
    #[serde(default)]
    pub device_name: String,
    /// Its area (cm²).
    #[serde(default = "one")]
    pub device_area: f64,
}

fn one() -> f64 {
    1.0
}

/// A routine active at the start: Ready, or Error with `error` (cleared by `ClearErrors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveRoutine {
    /// Which.
    pub name: RoutineName,
    /// Starts in Error with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What `GetTestData` answers before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// One temperature controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSpec {
    /// Bus address.
    pub address: i64,
    /// Channel.
    pub channel: i64,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Regulating.
    #[serde(default)]
    pub enabled: bool,
    /// Setpoint (°C).
    #[serde(default = "default_setpoint")]
    pub setpoint: f64,
    /// Temperature at the start (°C; default ambient, 23.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

fn default_setpoint() -> f64 {
    25.0
}

/// The multiplexer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuxSpec {
    /// `MUX Connect` already done.
    #[serde(default)]
    pub connected: bool,
    /// The relays (closed: `true`).
    #[serde(default)]
    pub relays: [bool; MUX_RELAYS],
}

/// One LED board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedSpec {
    /// Board address.
    pub address: i64,
    /// The channel values, 0..1 (coerced into range).
    pub values: [f64; LED_CHANNELS],
}

/// Picks ARKEO requests for a scheduled fault: by `target` (any case) and/or `command`
/// (exact); both left out picks every request. Frames that are not requests match nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArkeoMatcher {
    /// `MAIN`, `ROUTINE`, `TMPCTL`, `MUX`, `LED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// E.g. `GetTestData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl ArkeoMatcher {
    /// Requests for `command` (any target).
    pub fn command(command: impl Into<String>) -> Self {
        Self {
            target: None,
            command: Some(command.into()),
        }
    }
}

impl Matcher<Request> for ArkeoMatcher {
    fn matches(&self, request: &Request) -> bool {
        self.target
            .as_deref()
            .is_none_or(|t| request.target.as_str().eq_ignore_ascii_case(t))
            && self.command.as_deref().is_none_or(|c| request.command == c)
    }
}

impl Matcher<Result<Request, BadRequest>> for ArkeoMatcher {
    fn matches(&self, request: &Result<Request, BadRequest>) -> bool {
        request.as_ref().is_ok_and(|r| self.matches(r))
    }
}
