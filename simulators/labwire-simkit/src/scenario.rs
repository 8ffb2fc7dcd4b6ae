//! Scenario files (feature `scenario`): a YAML file that describes a simulated device — its
//! identity, initial state, timings, canned data and a fault schedule — in the simulator's own
//! serde-derived schema, so that a test needs no Rust to set a device up (pyvisa-sim's idea).
//!
//! Each simulator documents its schema (`#[serde(deny_unknown_fields)]`: a misspelt field is
//! an error, not silently ignored) and keeps its fault schedule under `faults:`, a list of
//! [`ScheduledFault`](crate::ScheduledFault)s. Durations are written with their unit
//! (`200ms`, `1.5s`, `2min`; [`crate::duration`]).
//!
//! A file that cannot be used is a [`ScenarioError`] naming the file, line, column and field:
//!
//! ```text
//! scenario.yaml:7:5: faults[1].fault: unknown variant `no_replyy`, expected one of `delay`, `no_reply`, ...
//! ```
//!
//! ```
//! # #[cfg(feature = "scenario")] {
//! use labwire_simkit::{Fault, ScheduledFault};
//! use labwire_simkit::scenario;
//!
//! #[derive(Debug, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct MyScenario {
//!     #[serde(default)]
//!     name: String,
//!     #[serde(default)]
//!     faults: Vec<ScheduledFault>,
//! }
//!
//! let text = "name: bench\nfaults:\n  - { request: 3, fault: no_reply }\n";
//! let s: MyScenario = scenario::from_str(text, "bench.yaml").unwrap();
//! assert_eq!(s.faults[0].fault, Fault::NoReply);
//!
//! let error = scenario::from_str::<MyScenario>("nmae: x\n", "bench.yaml").unwrap_err();
//! assert!(error.to_string().starts_with("bench.yaml:1:1: unknown field `nmae`"), "{error}");
//! # }
//! ```

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Largest scenario file read: 1 MiB.
pub const MAX_SCENARIO_LEN: u64 = 1024 * 1024;

/// Why a scenario file cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file cannot be read.
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is larger than [`MAX_SCENARIO_LEN`].
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The file is not a scenario for this simulator.
    Invalid {
        /// The file.
        file: PathBuf,
        /// Where (from 1), when known.
        line: Option<usize>,
        /// Where (from 1), when known.
        column: Option<usize>,
        /// What is wrong, starting with the field's path (`faults[1].fault: ..`) when known.
        message: String,
    },
}

impl ScenarioError {
    /// A scenario that reads well but cannot be used (a check a simulator makes after
    /// reading it), where no line can be named.
    pub fn invalid(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// The file.
    pub fn file(&self) -> &Path {
        match self {
            Self::Read { file, .. } | Self::TooLarge { file, .. } | Self::Invalid { file, .. } => {
                file
            }
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, source } => write!(f, "{}: cannot read: {source}", file.display()),
            Self::TooLarge { file, max } => {
                write!(f, "{}: larger than {max} bytes", file.display())
            }
            Self::Invalid {
                file,
                line: Some(line),
                column: Some(column),
                message,
            } => write!(f, "{}:{line}:{column}: {message}", file.display()),
            Self::Invalid { file, message, .. } => write!(f, "{}: {message}", file.display()),
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads the scenario in `path` (at most [`MAX_SCENARIO_LEN`] bytes).
///
/// # Errors
/// When the file cannot be read, is too large, or is not a `T`.
pub fn load<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, ScenarioError> {
    let path = path.as_ref();
    let read = |source| ScenarioError::Read {
        file: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(MAX_SCENARIO_LEN + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_SCENARIO_LEN {
        return Err(ScenarioError::TooLarge {
            file: path.to_owned(),
            max: MAX_SCENARIO_LEN,
        });
    }
    from_str(&text, path)
}

/// The scenario files (`.yaml`, `.yml`) in `dir`, sorted by name: a simulator's examples, for
/// tests that load every one of them.
///
/// # Errors
/// When `dir` or one of its entries cannot be read.
pub fn files_in(dir: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a scenario from `text`; `file` names it in errors.
///
/// # Errors
/// When `text` is not a `T`.
pub fn from_str<T: DeserializeOwned>(
    text: &str,
    file: impl Into<PathBuf>,
) -> Result<T, ScenarioError> {
    serde_norway::from_str(text).map_err(|e| {
        let location = e.location();
        let mut message = e.to_string();
        if let Some(at) = &location {
            // serde_norway ends its message with the place; the error names it up front.
            let suffix = format!(" at line {} column {}", at.line(), at.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        ScenarioError::Invalid {
            file: file.into(),
            line: location.as_ref().map(serde_norway::Location::line),
            column: location.as_ref().map(serde_norway::Location::column),
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fault, ScheduledFault};
    use std::time::Duration;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scenario {
        #[serde(default)]
        faults: Vec<ScheduledFault<String, String>>,
    }

    const GOOD: &str = "\
faults:
  - { request: 3, fault: no_reply }
  - matching: GetTestData
    fault: { delay: 200ms }
    count: 1
  - { fault: { device: drop_output }, count: 2 }
  - { fault: garbage, until_cleared: true }
";

    #[test]
    fn a_fault_schedule_reads_every_form() {
        let s: Scenario = from_str(GOOD, "s.yaml").unwrap();
        assert_eq!(
            s.faults,
            [
                ScheduledFault::next(Fault::NoReply).from_request(3),
                ScheduledFault::next(Fault::Delay(Duration::from_millis(200)))
                    .matching("GetTestData".to_owned()),
                ScheduledFault::next(Fault::Device("drop_output".to_owned())).count(2),
                ScheduledFault::next(Fault::Garbage).until_cleared(),
            ]
        );
    }

    #[test]
    fn errors_name_the_file_line_column_and_field() {
        let text = "faults:\n  - { request: 3, fault: no_reply }\n  - fault: no_replyy\n";
        let error = from_str::<Scenario>(text, "scenario.yaml").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("scenario.yaml:3:12: faults[1].fault: unknown variant `no_replyy`"),
            "{message}"
        );
        for (text, expected) in [
            ("faults:\n  - { fault: { delay: 200 } }\n", "with a unit"),
            (
                "faults:\n  - { fault: close, count: 0 }\n",
                "`count` must be 1 or more",
            ),
            (
                "faults:\n  - { fault: close, count: 2, until_cleared: true }\n",
                "not both",
            ),
            (
                "faults:\n  - { fault: close, cuont: 2 }\n",
                "unknown field `cuont`",
            ),
            ("falts: []\n", "s.yaml:1:1: unknown field `falts`"),
            ("faults: [\n", "s.yaml:"),
        ] {
            let error = from_str::<Scenario>(text, "s.yaml")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.starts_with("s.yaml:"), "{error}");
        }
    }

    #[test]
    fn a_missing_or_huge_file_is_refused() {
        let error = load::<Scenario>("/nonexistent/scenario.yaml").unwrap_err();
        assert!(matches!(error, ScenarioError::Read { .. }), "{error}");
        let dir = std::env::temp_dir().join(format!("simkit-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let huge = dir.join("huge.yaml");
        std::fs::write(&huge, vec![b'#'; MAX_SCENARIO_LEN as usize + 10]).unwrap();
        let error = load::<Scenario>(&huge).unwrap_err();
        assert!(matches!(error, ScenarioError::TooLarge { .. }), "{error}");
        let good = dir.join("good.yaml");
        std::fs::write(&good, GOOD).unwrap();
        assert_eq!(load::<Scenario>(&good).unwrap().faults.len(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
