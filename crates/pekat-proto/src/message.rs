//! The typed messages: requests, answers, and the two dialects that spell them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest request id accepted, in bytes.
pub const MAX_ID_LEN: usize = 32;

/// Longest project path accepted, in bytes of UTF-8.
///
/// Windows limits a path to 32,767 UTF-16 code units, so every ASCII path (and most others)
/// fits. A path of non-ASCII characters near the Windows limit can be longer in UTF-8; it is
/// refused with a typed error rather than silently cut.
pub const MAX_PATH_LEN: usize = 32_767;

/// Which version of the Projects Manager's TCP server to speak.
///
/// | | 3.18 | 3.19 |
/// |---|---|---|
/// | request | `start:C:\p` | `start\|C:\p`, optionally `7.start\|C:\p` |
/// | answer | `done`, `running`, `not-found`, `error:port` | `suc:done`, `suc:running`, `err:not-found`, `err:port` (with `7.` echoed) |
/// | bad command | `Unknown command` | `err:invalid-command` |
///
/// Answers are parsed leniently whatever the dialect: both spellings are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Dialect {
    /// Projects Manager 3.18: `command:path`, plain answers.
    #[default]
    #[serde(rename = "3.18")]
    V3_18,
    /// Projects Manager 3.19: `[id.]command|path`, `suc:`/`err:` answers, the id echoed back.
    #[serde(rename = "3.19")]
    V3_19,
}

impl Dialect {
    /// The byte between command and path: `:` for 3.18, `|` for 3.19.
    pub const fn separator(self) -> u8 {
        match self {
            Self::V3_18 => b':',
            Self::V3_19 => b'|',
        }
    }

    /// Whether requests may carry an `<id>.` prefix (3.19 only).
    pub const fn supports_ids(self) -> bool {
        matches!(self, Self::V3_19)
    }

    /// The version string, `3.18` or `3.19`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V3_18 => "3.18",
            Self::V3_19 => "3.19",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dialect name that is neither `3.18` nor `3.19`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PEKAT dialect {0:?} (expected 3.18 or 3.19)")]
pub struct UnknownDialect(pub String);

impl FromStr for Dialect {
    type Err = UnknownDialect;

    /// Accepts `3.18`/`3.19`, also with a patch version (`3.19.3`) or a leading `v`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        let mut parts = s.split('.');
        match (parts.next(), parts.next()) {
            (Some("3"), Some("18")) => Ok(Self::V3_18),
            (Some("3"), Some("19")) => Ok(Self::V3_19),
            _ => Err(UnknownDialect(s.to_owned())),
        }
    }
}

/// What a client writes after each request.
///
/// The vendor documents requests **without** a terminator: its Python example sends the bare
/// `start:C:\...` text, and that is the default here ([`Terminator::None`]). Integrators report
/// that the server also tolerates a trailing `\n` or `\r\n`, so a client talking to a gateway
/// or a line-based tool can choose one. The terminator is written in the same write as the
/// request; labwire's own server (and `pekat-sim`) ignores it, even when it arrives late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Terminator {
    /// Nothing after the request, as in the vendor's example (the default).
    #[default]
    None,
    /// `\n` after the request.
    Lf,
    /// `\r\n` after the request.
    CrLf,
}

impl Terminator {
    /// Every terminator.
    pub const ALL: [Self; 3] = [Self::None, Self::Lf, Self::CrLf];

    /// The bytes written after a request.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::None => b"",
            Self::Lf => b"\n",
            Self::CrLf => b"\r\n",
        }
    }

    /// The name: `none`, `lf` or `crlf`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lf => "lf",
            Self::CrLf => "crlf",
        }
    }
}

impl fmt::Display for Terminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A terminator name that is none of `none`, `lf`, `crlf` (or `\n`, `\r\n` spelled out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown terminator {0:?} (expected none, lf or crlf)")]
pub struct UnknownTerminator(pub String);

impl FromStr for Terminator {
    type Err = UnknownTerminator;

    /// Accepts `none`, `lf`, `crlf` in any case, and the escapes `\n`, `\r\n` as typed on a
    /// command line (or the real characters).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim_matches(' ').to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "lf" | "\\n" | "\n" => Ok(Self::Lf),
            "crlf" | "\\r\\n" | "\r\n" => Ok(Self::CrLf),
            _ => Err(UnknownTerminator(s.to_owned())),
        }
    }
}

/// What a request asks the Projects Manager to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// Start the project; answered `done` (or `error:port`, `not-found`).
    Start,
    /// Stop the project; answered `done`.
    Stop,
    /// Ask for the project's state; answered `stopped`, `stopping`, `starting` or `running`.
    Status,
    /// Stop every project, then start this one; answered `success`.
    Switch,
}

impl Command {
    /// Every command, in wire order.
    pub const ALL: [Self; 4] = [Self::Start, Self::Stop, Self::Status, Self::Switch];

    /// The command as it is written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Status => "status",
            Self::Switch => "switch",
        }
    }

    /// The command written exactly as `s` (commands are case-sensitive on the wire).
    pub fn from_wire(s: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str().as_bytes() == s)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request id (3.19): 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_`.
///
/// The server echoes it as the `<id>.` prefix of its answer, which lets a client check that an
/// answer belongs to the request it sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

/// A string that cannot be a [`RequestId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid request id {0:?}: 1 to {MAX_ID_LEN} ASCII letters, digits, '-' or '_' are allowed"
)]
pub struct InvalidRequestId(pub String);

impl RequestId {
    /// Checks and wraps `id`.
    ///
    /// # Errors
    /// When `id` is empty, longer than [`MAX_ID_LEN`], or holds another character.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidRequestId> {
        let id = id.into();
        if is_valid_id(id.as_bytes()) {
            Ok(Self(id))
        } else {
            Err(InvalidRequestId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `bytes` spell a valid request id.
pub(crate) fn is_valid_id(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.len() <= MAX_ID_LEN && bytes.iter().copied().all(is_id_byte)
}

pub(crate) const fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        Self(n.to_string())
    }
}

impl TryFrom<String> for RequestId {
    type Error = InvalidRequestId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> Self {
        id.0
    }
}

impl FromStr for RequestId {
    type Err = InvalidRequestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One request: a command, the project's path exactly as the Projects Manager knows it
/// (a Windows path, backslashes and spaces kept), and an optional id (3.19 only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// Echoed back by a 3.19 server; must be `None` in 3.18.
    pub id: Option<RequestId>,
    /// What to do.
    pub command: Command,
    /// The project folder, e.g. `C:\Users\pekat\PekatVisionProjects\Test Project 1`.
    pub path: String,
}

impl Request {
    /// A request without an id.
    pub fn new(command: Command, path: impl Into<String>) -> Self {
        Self {
            id: None,
            command,
            path: path.into(),
        }
    }

    /// `start` the project at `path`.
    pub fn start(path: impl Into<String>) -> Self {
        Self::new(Command::Start, path)
    }

    /// `stop` the project at `path`.
    pub fn stop(path: impl Into<String>) -> Self {
        Self::new(Command::Stop, path)
    }

    /// Ask for the `status` of the project at `path`.
    pub fn status(path: impl Into<String>) -> Self {
        Self::new(Command::Status, path)
    }

    /// `switch` to the project at `path` (stop all, start this one).
    pub fn switch(path: impl Into<String>) -> Self {
        Self::new(Command::Switch, path)
    }

    /// The same request with an id (3.19).
    #[must_use]
    pub fn with_id(mut self, id: RequestId) -> Self {
        self.id = Some(id);
        self
    }
}

/// The state of a project as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectState {
    /// Not running.
    Stopped,
    /// Shutting down.
    Stopping,
    /// Loading; not yet serving.
    Starting,
    /// Serving on its port.
    Running,
}

impl ProjectState {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::Stopped, Self::Stopping, Self::Starting, Self::Running];

    /// The state as it is written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Stopping => "stopping",
            Self::Starting => "starting",
            Self::Running => "running",
        }
    }
}

impl fmt::Display for ProjectState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the Projects Manager answered, whatever the dialect's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// `done`: start or stop succeeded.
    Done,
    /// `success`: switch succeeded.
    Success,
    /// The answer to `status`.
    Status(ProjectState),
    /// `not-found`: no such project, or the folder is not a PEKAT project.
    NotFound,
    /// `error:port` (3.19 `err:port`): another project or program holds the project's port.
    PortInUse,
    /// `Unknown command` (3.19 `err:invalid-command`; an integrator's tool spells it
    /// `unknown-command`, also understood): the request was not understood.
    UnknownCommand,
    /// Anything else, kept as the text that arrived (without the id and trailing line ending).
    Other(String),
}

impl Response {
    /// Whether this answer reports success (`done`, `success`, or any status).
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Done | Self::Success | Self::Status(_))
    }
}

impl fmt::Display for Response {
    /// The 3.18 spelling (`Other` as it came).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Done => f.write_str("done"),
            Self::Success => f.write_str("success"),
            Self::Status(state) => f.write_str(state.as_str()),
            Self::NotFound => f.write_str("not-found"),
            Self::PortInUse => f.write_str("error:port"),
            Self::UnknownCommand => f.write_str("Unknown command"),
            Self::Other(text) => f.write_str(text),
        }
    }
}

/// One answer on the wire: the response and the id it echoes (3.19).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply {
    /// The `<id>.` prefix, when the answer had one.
    pub id: Option<RequestId>,
    /// What the server said.
    pub response: Response,
}

impl Reply {
    /// An answer without an id.
    pub fn new(response: Response) -> Self {
        Self { id: None, response }
    }

    /// The answer to `request`: echoes its id.
    pub fn to(request: &Request, response: Response) -> Self {
        Self {
            id: request.id.clone(),
            response,
        }
    }
}

/// Why a received request could not be understood. The server answers it with the dialect's
/// "unknown command" answer (echoing the id when one could be read) and goes on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BadRequest {
    /// The id, when the request started with a readable `<id>.` prefix (3.19).
    pub id: Option<RequestId>,
    /// What was wrong.
    pub kind: BadRequestKind,
}

/// What was wrong with a [`BadRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum BadRequestKind {
    /// Nothing but (at most) a line ending.
    #[error("empty request")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("request is not valid UTF-8")]
    InvalidUtf8,
    /// No `:` (3.18) or `|` (3.19) between command and path.
    #[error("no '{}' between command and path", char::from(*.0))]
    MissingSeparator(u8),
    /// The command is not `start`, `stop`, `status` or `switch` (kept, lossily, for logs).
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A 3.19 `<id>.` prefix that is not a valid [`RequestId`].
    #[error("invalid request id {0:?}")]
    InvalidId(String),
    /// More bytes arrived for one request than the limit allows. The server answers it, then
    /// closes the connection (the codec's next call is a [`DecodeError::TooLarge`]).
    ///
    /// [`DecodeError::TooLarge`]: crate::DecodeError::TooLarge
    #[error("request of at least {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes buffered when the limit was hit.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

impl BadRequest {
    /// The answer a server gives: the dialect's "unknown command", echoing the id.
    pub fn reply(&self) -> Reply {
        Reply {
            id: self.id.clone(),
            response: Response::UnknownCommand,
        }
    }
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for BadRequest {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_parses_minor_and_patch_versions() {
        assert_eq!("3.18".parse(), Ok(Dialect::V3_18));
        assert_eq!("3.19.3".parse(), Ok(Dialect::V3_19));
        assert_eq!("v3.19".parse(), Ok(Dialect::V3_19));
        assert!("3.2".parse::<Dialect>().is_err());
        assert!("".parse::<Dialect>().is_err());
    }

    #[test]
    fn request_ids_accept_word_characters_only() {
        assert!(RequestId::new("42").is_ok());
        assert!(RequestId::new("a-b_C9").is_ok());
        assert!(RequestId::new("").is_err());
        assert!(RequestId::new("1.2").is_err());
        assert!(RequestId::new("a|b").is_err());
        assert!(RequestId::new("x".repeat(MAX_ID_LEN)).is_ok());
        assert!(RequestId::new("x".repeat(MAX_ID_LEN + 1)).is_err());
        assert_eq!(RequestId::from(7).as_str(), "7");
    }

    #[test]
    fn terminators_default_to_none_as_in_the_vendors_example() {
        assert_eq!(Terminator::default(), Terminator::None);
        assert_eq!(Terminator::None.as_bytes(), b"");
        assert_eq!(Terminator::Lf.as_bytes(), b"\n");
        assert_eq!(Terminator::CrLf.as_bytes(), b"\r\n");
        for t in Terminator::ALL {
            assert_eq!(t.to_string().parse(), Ok(t));
        }
        assert_eq!("CRLF".parse(), Ok(Terminator::CrLf));
        assert_eq!(r"\r\n".parse(), Ok(Terminator::CrLf));
        assert_eq!(r"\n".parse(), Ok(Terminator::Lf));
        assert_eq!("\n".parse(), Ok(Terminator::Lf));
        assert!("cr".parse::<Terminator>().is_err());
    }

    #[test]
    fn commands_are_case_sensitive_on_the_wire() {
        assert_eq!(Command::from_wire(b"start"), Some(Command::Start));
        assert_eq!(Command::from_wire(b"Start"), None);
        assert_eq!(Command::from_wire(b"switch"), Some(Command::Switch));
    }
}
