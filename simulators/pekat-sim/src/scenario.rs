//! PEKAT scenario files: the Projects Manager described in YAML (`--scenario FILE`,
//! [`PekatSimBuilder::scenario`](crate::PekatSimBuilder::scenario)).
//!
//! Every field is optional; a field left out keeps the simulator's default (or what the
//! builder was given before), and a field not in this schema is an error naming its line.
//! Durations carry their unit (`250ms`, `1.5s`), in simulated time.
//!
//! ```yaml
//! dialect: "3.19"                     # 3.18 (`start:PATH`, the default) or 3.19 (`[id.]start|PATH`)
//! projects:                           # replaces the demo projects
//!   - { path: 'C:\Lines\Line A', port: 8000, state: running }   # state: stopped (default),
//!   - { path: 'C:\Lines\Line B', port: 8001 }                   # starting, running, stopping
//! ports_in_use: [8002]                # held by another program: start/switch answer error:port
//! delays: { start: 1s, stop: 500ms, switch: 2s }   # switch: the target's start (default: start)
//! silent_start_stop: true             # no answer to start/stop (some 3.19 servers)
//! one_request_per_connection: false
//! idle_timeout: 60s
//! request_timeout: 2s
//! quiet_period: 0ms
//! max_request_len: 4096
//! faults:                             # the fault schedule (labwire_simkit::ScheduledFault)
//!   - { request: 3, fault: no_reply }
//!   - { matching: { command: status }, fault: { delay: 200ms }, count: 2 }
//!   - matching: { command: start, project: 'C:\Lines\Line B' }
//!     fault: { device: { answer: "error:port" } }
//!     until_cleared: true
//! ```
//!
//! A matcher (`matching`) picks requests by `command` (`start`, `stop`, `status`, `switch`)
//! and/or `project` (a path, compared as the simulator looks paths up: any case, `/` or `\`,
//! trailing separator ignored); requests that cannot be read match nothing. Device faults:
//! `{answer: TEXT}` (this answer instead, read as a client reads one: `error:port`,
//! `not-found`, `running`, or any other text as it is) and `{wrong_id: ID}` (3.19: echo `ID`
//! instead of the request's id).
//!
//! The binary's flags (`--dialect`, `--project`, `--projects-file`, the delays,
//! `--silent-start-stop`, …) are laid over the file: a flag given wins over the field.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use labwire_simkit::duration::Humane;
use labwire_simkit::scenario::{self, ScenarioError};
use labwire_simkit::{Matcher, ScheduledFault};
use pekat_proto::{Command, Dialect, Incoming, ProjectState, Request, RequestId, Response};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{PekatFault, ProjectSpec, SimConfig};

/// A PEKAT scenario; see the [module docs](self) for the file format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PekatScenario {
    /// The dialect spoken (`"3.18"` or `"3.19"`; a bare `3.19` is read too).
    #[serde(
        default,
        with = "dialect_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub dialect: Option<Dialect>,
    /// The projects, replacing the configured ones (default: [`crate::demo_projects`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<ProjectEntry>>,
    /// Ports held by another program: starting or switching to a project on one answers
    /// `error:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports_in_use: Vec<u16>,
    /// How long transitions take.
    #[serde(default)]
    pub delays: Delays,
    /// No answer at all to `start` and `stop` (see [`SimConfig::silent_start_stop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_start_stop: Option<bool>,
    /// See [`SimConfig::one_request_per_connection`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_request_per_connection: Option<bool>,
    /// See [`SimConfig::idle_timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Humane>,
    /// See [`SimConfig::request_timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Humane>,
    /// See [`SimConfig::quiet_period`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_period: Option<Humane>,
    /// See [`SimConfig::max_request_len`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_len: Option<usize>,
    /// The fault schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ScheduledFault<PekatFault, PekatMatcher>>,
}

/// One project of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectEntry {
    /// The folder path, as the Projects Manager knows it.
    pub path: String,
    /// The port it serves on (1-65535).
    pub port: u16,
    /// Its state at the start (default `stopped`); `starting` and `stopping` complete after
    /// the delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ProjectState>,
}

/// Transition times in a scenario: each one given replaces the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delays {
    /// From `start` to `running` ([`SimConfig::start_delay`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Humane>,
    /// From `stop` to `stopped` ([`SimConfig::stop_delay`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Humane>,
    /// How long the target of a `switch` takes to start once the others have stopped
    /// ([`SimConfig::switch_delay`]; default: the start delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<Humane>,
}

impl PekatScenario {
    /// Reads a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a PEKAT scenario (file, line, column and field
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
    /// As [`PekatScenario::load`].
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = scenario::from_str(text, file)?;
        scenario
            .check()
            .map_err(|e| ScenarioError::invalid(file, e))?;
        Ok(scenario)
    }

    /// The checks across fields: what a real Projects Manager could not be in.
    fn check(&self) -> Result<(), String> {
        let projects = self.projects.as_deref().unwrap_or_default();
        let mut paths = BTreeSet::new();
        let mut held = BTreeSet::new();
        for (i, project) in projects.iter().enumerate() {
            if project.path.trim().is_empty() {
                return Err(format!("projects[{i}].path: the path is empty"));
            }
            if project.port == 0 {
                return Err(format!("projects[{i}].port: 0 is not a port (1-65535)"));
            }
            if !paths.insert(crate::state::key(&project.path)) {
                return Err(format!(
                    "projects[{i}].path: {:?} is listed twice",
                    project.path
                ));
            }
            let holds = project.state.is_some_and(|s| s != ProjectState::Stopped);
            if holds && self.ports_in_use.contains(&project.port) {
                return Err(format!(
                    "projects[{i}].state: port {} is in `ports_in_use`, so the project cannot be {}",
                    project.port,
                    project.state.map_or("stopped", ProjectState::as_str)
                ));
            }
            if holds && !held.insert(project.port) {
                return Err(format!(
                    "projects[{i}].state: another project already holds port {}",
                    project.port
                ));
            }
        }
        if let Some(i) = self.ports_in_use.iter().position(|&p| p == 0) {
            return Err(format!("ports_in_use[{i}]: 0 is not a port (1-65535)"));
        }
        Ok(())
    }

    /// `config` with the settings given here.
    pub fn apply(&self, config: &mut SimConfig) {
        if let Some(dialect) = self.dialect {
            config.dialect = dialect;
        }
        if let Some(projects) = &self.projects {
            config.projects = projects
                .iter()
                .map(|p| ProjectSpec::new(p.path.clone(), p.port))
                .collect();
        }
        let set = |slot: &mut Duration, value: Option<Humane>| {
            if let Some(value) = value {
                *slot = value.0;
            }
        };
        set(&mut config.start_delay, self.delays.start);
        set(&mut config.stop_delay, self.delays.stop);
        if let Some(switch) = self.delays.switch {
            config.switch_delay = Some(switch.0);
        }
        set(&mut config.idle_timeout, self.idle_timeout);
        set(&mut config.request_timeout, self.request_timeout);
        set(&mut config.quiet_period, self.quiet_period);
        if let Some(silent) = self.silent_start_stop {
            config.silent_start_stop = silent;
        }
        if let Some(one) = self.one_request_per_connection {
            config.one_request_per_connection = one;
        }
        if let Some(max) = self.max_request_len {
            config.max_request_len = max;
        }
    }

    /// The projects whose initial state is not `stopped`.
    pub(crate) fn initial_states(&self) -> impl Iterator<Item = (&str, ProjectState)> {
        self.projects
            .iter()
            .flatten()
            .filter_map(|p| p.state.map(|s| (p.path.as_str(), s)))
    }
}

/// `dialect:` as text (`"3.19"`) or as the number YAML reads `3.19` as.
mod dialect_text {
    use super::{Deserializer, Dialect, Serializer, Visitor, de, fmt};

    // Serde's `with` hands the field by reference.
    #[allow(clippy::ref_option, reason = "the signature serde's `with` expects")]
    pub(super) fn serialize<S: Serializer>(
        dialect: &Option<Dialect>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match dialect {
            Some(d) => s.serialize_some(d.as_str()),
            None => s.serialize_none(),
        }
    }

    struct DialectVisitor;

    impl Visitor<'_> for DialectVisitor {
        type Value = Option<Dialect>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a dialect: \"3.18\" or \"3.19\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.parse().map(Some).map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            self.visit_str(&n.to_string())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Dialect>, D::Error> {
        d.deserialize_any(DialectVisitor)
    }
}

/// Picks PEKAT requests for a scheduled fault: by `command` and/or `project` (compared as
/// the simulator looks paths up); both left out picks every request. Requests that cannot be
/// read match nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PekatMatcher {
    /// `start`, `stop`, `status` or `switch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// A project path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl PekatMatcher {
    /// Requests for `command` (any project).
    pub fn command(command: Command) -> Self {
        Self {
            command: Some(command),
            project: None,
        }
    }

    /// Requests for the project at `path` (any command).
    pub fn project(path: impl Into<String>) -> Self {
        Self {
            command: None,
            project: Some(path.into()),
        }
    }
}

impl Matcher<Request> for PekatMatcher {
    fn matches(&self, request: &Request) -> bool {
        self.command.is_none_or(|c| request.command == c)
            && self
                .project
                .as_deref()
                .is_none_or(|p| crate::state::key(p) == crate::state::key(&request.path))
    }
}

impl Matcher<Incoming> for PekatMatcher {
    fn matches(&self, request: &Incoming) -> bool {
        request.as_ref().is_ok_and(|r| self.matches(r))
    }
}

/// [`PekatFault`] in text: `{answer: TEXT}` or `{wrong_id: ID}`, read by hand because a YAML
/// reader takes a one-key map for an enum only as a tag.
impl Serialize for PekatFault {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Self::Answer(response) => map.serialize_entry("answer", &response.to_string())?,
            Self::WrongId(id) => map.serialize_entry("wrong_id", id.as_str())?,
        }
        map.end()
    }
}

const DEVICE_FAULTS: &[&str] = &["answer", "wrong_id"];

struct PekatFaultVisitor;

impl<'de> Visitor<'de> for PekatFaultVisitor {
    type Value = PekatFault;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a PEKAT fault: {answer: <text>} or {wrong_id: <id>}")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<PekatFault, E> {
        if DEVICE_FAULTS.contains(&name) {
            Err(E::custom(format!("`{name}` needs a value: {{{name}: ..}}")))
        } else {
            Err(E::unknown_variant(name, DEVICE_FAULTS))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PekatFault, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("an empty map is not a fault"));
        };
        let fault = match key.as_str() {
            "answer" => PekatFault::Answer(answer(&map.next_value::<String>()?)?),
            "wrong_id" => PekatFault::WrongId(map.next_value::<IdText>()?.0),
            other => return Err(de::Error::unknown_variant(other, DEVICE_FAULTS)),
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a fault is a map with one key"));
        }
        Ok(fault)
    }
}

/// The answer `text` stands for, read as a client reads one.
fn answer<E: de::Error>(text: &str) -> Result<Response, E> {
    if text.is_empty() || text.contains(['\r', '\n', '\0']) {
        return Err(E::custom(
            "an answer is one line of text, not empty and without CR, LF or NUL",
        ));
    }
    let reply = pekat_proto::wire::parse_response(text.as_bytes()).map_err(E::custom)?;
    Ok(match reply.id {
        // An id in the text is part of the text, not a second fault.
        Some(_) => Response::Other(text.to_owned()),
        None => reply.response,
    })
}

impl<'de> Deserialize<'de> for PekatFault {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PekatFaultVisitor)
    }
}

/// A request id written as text or as a number.
struct IdText(RequestId);

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = IdText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request id: letters, digits, `-` or `_`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<IdText, E> {
                RequestId::new(text).map(IdText).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<IdText, E> {
                Ok(IdText(RequestId::from(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IdText, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("a request id is not negative"))
                    .and_then(|n| self.visit_u64(n))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labwire_simkit::Fault;

    #[test]
    fn device_faults_read_and_write_the_same_text() {
        for (text, fault) in [
            (
                "{answer: 'error:port'}",
                PekatFault::Answer(Response::PortInUse),
            ),
            (
                "{answer: license expired}",
                PekatFault::Answer(Response::Other("license expired".into())),
            ),
            (
                "{answer: running}",
                PekatFault::Answer(Response::Status(ProjectState::Running)),
            ),
            ("{wrong_id: 99}", PekatFault::WrongId(RequestId::from(99))),
            (
                "{wrong_id: abc}",
                PekatFault::WrongId(RequestId::new("abc").unwrap()),
            ),
        ] {
            let read: Fault<PekatFault> =
                scenario::from_str(&format!("{{device: {text}}}"), "f.yaml").unwrap();
            assert_eq!(read, Fault::Device(fault.clone()), "{text}");
            let json = serde_json::to_value(&read).unwrap();
            let again: Fault<PekatFault> = serde_json::from_value(json).unwrap();
            assert_eq!(again, read);
        }
    }

    #[test]
    fn a_bare_dialect_number_is_read_as_the_dialect() {
        let s = PekatScenario::from_yaml("dialect: 3.19\n", "s.yaml").unwrap();
        assert_eq!(s.dialect, Some(Dialect::V3_19));
        let s = PekatScenario::from_yaml("dialect: '3.18'\n", "s.yaml").unwrap();
        assert_eq!(s.dialect, Some(Dialect::V3_18));
    }

    #[test]
    fn the_matcher_picks_by_command_and_path_as_paths_are_looked_up() {
        let m = PekatMatcher {
            command: Some(Command::Start),
            project: Some(r"C:\Lines\A".into()),
        };
        assert!(m.matches(&Request::start("c:/lines/a/")));
        assert!(!m.matches(&Request::stop(r"C:\Lines\A")));
        assert!(!m.matches(&Request::start(r"C:\Lines\B")));
        assert!(PekatMatcher::default().matches(&Request::status("x")));
    }
}
