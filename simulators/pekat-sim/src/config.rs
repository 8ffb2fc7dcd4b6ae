//! The simulator's configuration and the projects file format.

use std::time::Duration;

use bytes::Bytes;
use pekat_proto::{DEFAULT_MAX_REQUEST_LEN, Dialect, server};

/// A project the simulator knows: its folder path and the port it serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSpec {
    /// The folder path, e.g. `C:\Users\pekat\PekatVisionProjects\Test Project 1`.
    pub path: String,
    /// The project's port.
    pub port: u16,
}

impl ProjectSpec {
    /// A project at `path` on `port`.
    pub fn new(path: impl Into<String>, port: u16) -> Self {
        Self {
            path: path.into(),
            port,
        }
    }
}

/// A `PATH=PORT` entry or projects file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectSpecError {
    /// No `=` in the entry.
    #[error("line {line}: expected PATH=PORT, got {text:?}")]
    MissingEquals {
        /// 1-based line number (1 for a command-line entry).
        line: usize,
        /// The entry.
        text: String,
    },
    /// The path before `=` is empty.
    #[error("line {line}: the project path is empty")]
    EmptyPath {
        /// 1-based line number.
        line: usize,
    },
    /// The port after the last `=` is not a number in 1..=65535.
    #[error("line {line}: {port:?} is not a port number (1-65535)")]
    BadPort {
        /// 1-based line number.
        line: usize,
        /// The text after `=`.
        port: String,
    },
}

impl std::str::FromStr for ProjectSpec {
    type Err = ProjectSpecError;

    /// Parses `PATH=PORT`, splitting on the **last** `=` (Windows folder names may hold `=`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_entry(s, 1)
    }
}

fn parse_entry(text: &str, line: usize) -> Result<ProjectSpec, ProjectSpecError> {
    let Some((path, port)) = text.rsplit_once('=') else {
        return Err(ProjectSpecError::MissingEquals {
            line,
            text: text.to_owned(),
        });
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(ProjectSpecError::EmptyPath { line });
    }
    match port.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(ProjectSpec::new(path, port)),
        _ => Err(ProjectSpecError::BadPort {
            line,
            port: port.to_owned(),
        }),
    }
}

/// Parses a projects file: one `PATH=PORT` a line, split on the last `=`; blank lines and lines
/// starting with `#` are ignored; spaces around path and port are trimmed (spaces *inside* the
/// path are kept); a leading UTF-8 byte order mark is ignored.
///
/// ```text
/// # PEKAT projects
/// C:\Users\pekat\PekatVisionProjects\Test Project 1 = 8000
/// D:\Lines\Line A=8100
/// ```
///
/// # Errors
/// The first malformed line.
pub fn parse_projects_file(text: &str) -> Result<Vec<ProjectSpec>, ProjectSpecError> {
    // A UTF-8 byte order mark (Windows editors write one) is not part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(index, line)| parse_entry(line, index + 1))
        .collect()
}

/// The projects a simulator has when none are configured: three projects of the vendor's
/// example layout, the first and third sharing port 8000 (so `error:port` can be shown).
pub fn demo_projects() -> Vec<ProjectSpec> {
    let dir = r"C:\Users\pekat\PekatVisionProjects";
    vec![
        ProjectSpec::new(format!(r"{dir}\Test Project 1"), 8000),
        ProjectSpec::new(format!(r"{dir}\Test Project 2"), 8001),
        ProjectSpec::new(format!(r"{dir}\Test Project 3"), 8000),
    ]
}

/// What [`SimConfig::garbage`] is by default: bytes that are not UTF-8, which no PEKAT client
/// can read as an answer.
pub const DEFAULT_GARBAGE: &[u8] = b"\xff\xfe\xfd";

/// The simulated device, for those who prefer a struct to
/// [`PekatSim::builder`](crate::PekatSim::builder)'s setters (give it to
/// [`PekatSimBuilder::config`](crate::PekatSimBuilder::config)). Public fields; start from
/// [`SimConfig::default`]. Where and how fast the simulator runs (address, backlog, connection
/// cap, time scale) are the shared host settings of the builder instead.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Dialect spoken (default 3.18).
    pub dialect: Dialect,
    /// The projects (default [`demo_projects`]).
    pub projects: Vec<ProjectSpec>,
    /// Simulated time from `start` to `running` (default 1 s).
    pub start_delay: Duration,
    /// Simulated time from `stop` to `stopped` (default 500 ms).
    pub stop_delay: Duration,
    /// Simulated time the target of a `switch` takes to start once every other project has
    /// stopped (default `None`: the start delay).
    pub switch_delay: Option<Duration>,
    /// Answer nothing at all to `start` and `stop` (the state still changes), as reported for
    /// some 3.19 servers (default off). A setting rather than a fault: see
    /// [`PekatFault`](crate::PekatFault).
    pub silent_start_stop: bool,
    /// What [`Fault::Garbage`](crate::Fault::Garbage) sends instead of an answer (default
    /// [`DEFAULT_GARBAGE`]).
    pub garbage: Bytes,
    /// Close each connection after one answer (default: serve several requests per connection).
    pub one_request_per_connection: bool,
    /// Close a connection that sends nothing for this long, or that does not take an answer
    /// (a client that sends but never reads, once the socket buffers are full) for this long
    /// (default 60 s).
    pub idle_timeout: Duration,
    /// Deadline for the rest of a request once its first byte arrived (default 2 s): a request
    /// still incomplete then is answered as it is (the dialect's error answer).
    pub request_timeout: Duration,
    /// Quiet period: once a request looks complete, bytes arriving within this time still
    /// belong to it. Default none (zero): what one read delivers is the request, answered at
    /// once, as on the real server. A few milliseconds guard against a sender that splits a
    /// request inside its path over several writes, at that cost on every answer.
    pub quiet_period: Duration,
    /// Largest request accepted (default [`DEFAULT_MAX_REQUEST_LEN`]); more gets the error
    /// answer and the connection is closed.
    pub max_request_len: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            dialect: Dialect::V3_18,
            projects: demo_projects(),
            start_delay: Duration::from_secs(1),
            stop_delay: Duration::from_millis(500),
            switch_delay: None,
            silent_start_stop: false,
            garbage: Bytes::from_static(DEFAULT_GARBAGE),
            one_request_per_connection: false,
            idle_timeout: server::DEFAULT_IDLE_TIMEOUT,
            request_timeout: server::DEFAULT_READ_TIMEOUT,
            quiet_period: server::DEFAULT_QUIET_PERIOD,
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
        }
    }
}

impl SimConfig {
    /// The same configuration in `dialect`.
    #[must_use]
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The same configuration with these projects.
    #[must_use]
    pub fn with_projects(mut self, projects: impl IntoIterator<Item = ProjectSpec>) -> Self {
        self.projects = projects.into_iter().collect();
        self
    }

    /// The same configuration with these delays.
    #[must_use]
    pub fn with_delays(mut self, start: Duration, stop: Duration) -> Self {
        self.start_delay = start;
        self.stop_delay = stop;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_on_the_last_equals_sign() {
        let spec: ProjectSpec = r"C:\a=b\Project 1=8000".parse().unwrap();
        assert_eq!(spec, ProjectSpec::new(r"C:\a=b\Project 1", 8000));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        assert!(matches!(
            "C:\\x".parse::<ProjectSpec>(),
            Err(ProjectSpecError::MissingEquals { .. })
        ));
        assert!(matches!(
            "=80".parse::<ProjectSpec>(),
            Err(ProjectSpecError::EmptyPath { .. })
        ));
        for port in ["0", "70000", "x", ""] {
            assert!(matches!(
                format!("C:\\x={port}").parse::<ProjectSpec>(),
                Err(ProjectSpecError::BadPort { .. })
            ));
        }
    }

    #[test]
    fn a_byte_order_mark_at_the_start_of_a_projects_file_is_ignored() {
        // Windows editors often save UTF-8 with a BOM; it is not part of the first path.
        assert_eq!(
            parse_projects_file("\u{feff}C:\\A=8000\r\n").unwrap(),
            vec![ProjectSpec::new(r"C:\A", 8000)]
        );
        assert_eq!(
            parse_projects_file("\u{feff}# comment\nC:\\B=8001").unwrap(),
            vec![ProjectSpec::new(r"C:\B", 8001)]
        );
    }

    #[test]
    fn projects_files_skip_comments_and_blank_lines() {
        let text = "# projects\n\nC:\\A B = 8000\r\n  # indented comment\nD:\\C=8001\n";
        assert_eq!(
            parse_projects_file(text).unwrap(),
            vec![
                ProjectSpec::new(r"C:\A B", 8000),
                ProjectSpec::new(r"D:\C", 8001)
            ]
        );
        assert_eq!(
            parse_projects_file("ok=1\nbroken\n"),
            Err(ProjectSpecError::MissingEquals {
                line: 2,
                text: "broken".into()
            })
        );
    }
}
