//! COMET scenario files: the endpoint described in YAML (`--scenario FILE`,
//! [`CometSimBuilder::scenario`](crate::CometSimBuilder::scenario)).
//!
//! Every field is optional; a field left out keeps the simulator's default (or what was set
//! before on the builder), and a field not in this schema is an error naming its line.
//! Durations carry their unit (`250ms`, `1.5s`).
//!
//! ```yaml
//! fidelity: true                      # COMET-fidelity mode: falsy content is held unanswered,
//!                                     # requests are handled one at a time
//! connection_deadline: 5s             # real time each step of a connection may take
//! answers:                            # per action: the fixed answer, before ECHO and the bot
//!   Status: { state: idle, sample: 7 }
//!   GetIV: [0.0, 1.2e-9]
//! delays:                             # per action: the handlers take this long (simulated time)
//!   GetIV: 200ms
//! telegram:                           # the Telegram-bot-shaped handler
//!   action: Telegram                  # the action it answers
//!   status: measuring                 # what it reports for `status`
//!   replies:                          # more commands it knows (any case), and their replies
//!     calibrate: Calibration queued
//! faults:                             # the fault schedule (labwire_simkit::ScheduledFault)
//!   - { request: 3, fault: no_reply }
//!   - { matching: { action: GetIV }, fault: { delay: 200ms }, count: 1 }
//!   - { matching: { action: Status }, fault: { device: { error: Overload } }, until_cleared: true }
//! ```
//!
//! `answers` add to (and for the same action replace) the answers given before, as `--answer`
//! flags do; a falsy answer (`null`, `{}`, `0`, …) lets the built-in handlers answer, as a falsy
//! handler result does in COMET. A `delays` entry holds a request of that action as
//! [`CometFault::Slow`] would; a `slow` fault, when one is due, replaces it.
//!
//! A matcher (`matching`) picks requests by `action` (exact); frames that are not valid
//! requests (invalid, binary, malformed) match nothing. Device faults: `{error: <text>}`
//! (answer `{"result": <text>}` without running any handler) and `{slow: <duration>}` (the
//! handlers take that long, in simulated time).

use std::collections::BTreeMap;
use std::path::Path;

use comet_socket::Frame;
use comet_socket::dispatch::Incoming;
use labwire_simkit::duration::Humane;
use labwire_simkit::scenario::{self, ScenarioError};
use labwire_simkit::{Matcher, ScheduledFault};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CometFault, SimConfig};

/// A COMET scenario; see the [module docs](self) for the file format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CometScenario {
    /// COMET-fidelity mode ([`SimConfig::fidelity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<bool>,
    /// Real time each step of a connection may take ([`SimConfig::connection_deadline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_deadline: Option<Humane>,
    /// Per action: the fixed answer, tried before the built-in handlers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, Value>,
    /// Per action: how long the handlers take, in simulated time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delays: BTreeMap<String, Humane>,
    /// The Telegram-bot-shaped handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<Telegram>,
    /// The fault schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ScheduledFault<CometFault, CometMatcher>>,
}

/// The Telegram-bot-shaped handler in a scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telegram {
    /// The action it answers ([`DEFAULT_TELEGRAM_ACTION`](crate::DEFAULT_TELEGRAM_ACTION)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// What it reports for `status` (`idle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Commands it knows besides `ping`, `status` and `help` (any case, trimmed), and what it
    /// replies to each; they win over the built-in ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replies: BTreeMap<String, String>,
}

impl CometScenario {
    /// Reads a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a COMET scenario (file, line, column and field
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
    /// As [`CometScenario::load`].
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = scenario::from_str(text, file)?;
        scenario
            .check()
            .map_err(|e| ScenarioError::invalid(file, e))?;
        Ok(scenario)
    }

    /// The checks serde cannot make.
    fn check(&self) -> Result<(), String> {
        if self.connection_deadline.is_some_and(|d| d.0.is_zero()) {
            return Err("connection_deadline: must be more than zero".to_owned());
        }
        if let Some(action) = self.telegram.as_ref().and_then(|t| t.action.as_deref())
            && action.is_empty()
        {
            return Err("telegram.action: must not be empty".to_owned());
        }
        for (field, empty) in [
            ("answers", self.answers.keys().any(String::is_empty)),
            ("delays", self.delays.keys().any(String::is_empty)),
        ] {
            if empty {
                return Err(format!("{field}: an action must not be empty"));
            }
        }
        Ok(())
    }

    /// Writes this scenario over `config`: the fields given replace those in it, `answers`,
    /// `delays` and `telegram.replies` add to them, and the fault schedule replaces its
    /// [`SimConfig::schedule`].
    pub fn apply(&self, config: &mut SimConfig) {
        if let Some(fidelity) = self.fidelity {
            config.fidelity = fidelity;
        }
        if let Some(deadline) = self.connection_deadline {
            config.connection_deadline = deadline.0;
        }
        config.answers.extend(self.answers.clone());
        config
            .delays
            .extend(self.delays.iter().map(|(action, d)| (action.clone(), d.0)));
        if let Some(telegram) = &self.telegram {
            if let Some(action) = &telegram.action {
                config.telegram_action.clone_from(action);
            }
            if let Some(status) = &telegram.status {
                config.status.clone_from(status);
            }
            config.telegram_replies.extend(telegram.replies.clone());
        }
        config.schedule.clone_from(&self.faults);
    }
}

/// Picks COMET requests for a scheduled fault by `action` (exact); left out, it picks every
/// valid request. Frames that are not valid requests (invalid, binary, malformed) match
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CometMatcher {
    /// E.g. `ECHO`, `Telegram`, `Status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl CometMatcher {
    /// Requests for `action`.
    pub fn action(action: impl Into<String>) -> Self {
        Self {
            action: Some(action.into()),
        }
    }
}

impl Matcher<Frame> for CometMatcher {
    fn matches(&self, frame: &Frame) -> bool {
        match Incoming::from_frame(frame) {
            Incoming::Request(request) => self
                .action
                .as_deref()
                .is_none_or(|action| request.action == action),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comet_socket::Request;
    use serde_json::json;

    #[test]
    fn the_matcher_picks_valid_requests_by_action() {
        let frame = |action: &str| Request::new(action, json!(1)).to_frame().unwrap();
        let status = CometMatcher::action("Status");
        assert!(status.matches(&frame("Status")));
        assert!(!status.matches(&frame("status")));
        assert!(CometMatcher::default().matches(&frame("ECHO")));
        assert!(!CometMatcher::default().matches(&Frame::json(&b"{}"[..])));
        assert!(!CometMatcher::default().matches(&Frame::binary("raw", &b"x"[..])));
        assert!(!CometMatcher::default().matches(&Frame::json(&b"[1"[..])));
    }
}
