//! Recordings: JSON Lines, one event a line.
//!
//! ```text
//! {"labwire_recording":1,"protocol":"arkeo"}
//! {"t":0.000412,"conn":1,"dir":"to_device","bytes":"0000002c7b22...","decoded":{"target":"MAIN",...}}
//! {"t":0.000731,"conn":1,"dir":"to_client","bytes":"000000517b22...","decoded":{"status":"OK",...}}
//! ```
//!
//! - `t`: seconds since the tap started; `conn`: the connection number (from 1, in accept
//!   order); `dir`: `to_device` (client → device) or `to_client` (device → client).
//! - `bytes`: lower-case hex of **one decoded message** exactly as it crossed the wire (ARKEO
//!   length prefix, COMET header, PEKAT line ending included). Bytes the decoder could not
//!   make a message of are recorded too: after decoding of a direction stopped (a frame over
//!   the protocol's limit, a stream that cannot be resynchronised), each read is one event, and
//!   an incomplete message at the end of a stream is one last event. So the concatenated
//!   `bytes` of one connection and direction are the stream exactly as the sender sent it,
//!   byte for byte: what a replay needs to send, and what a test compares with. (Where the
//!   tap forwarded something else, the event's `note` says so: pycom's port rewrites, and a
//!   cut message, recorded as received but not forwarded.)
//! - `decoded`: the message as the protocol crate's serde types write it, or
//!   `{"error": "..."}` when the bytes did not decode.
//! - `note` (optional): what the tap did besides forwarding these bytes unchanged — pycom's
//!   `port` rewrites, or a connection cut because a message went over the protocol's limit
//!   ([`TapConfig::cut_oversize`](crate::TapConfig::cut_oversize)).
//! - `reply_to` (optional, pycom events): the connection number of the request the event is
//!   taken to answer; [`replay`](crate::replay) sends the event back for that request.
//!
//! The first line may be a [`Header`] (`labwire_recording`, `protocol`): the tap writes one, so
//! that a replay knows which protocol it serves; [`Recording::load`] accepts files without it
//! (hand-written golden data).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version written in [`Header::labwire_recording`].
pub const FORMAT_VERSION: u32 = 1;

/// Which way bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client to the device (requests).
    ToDevice,
    /// From the device to the client (answers).
    ToClient,
}

impl Direction {
    /// `to_device` or `to_client`, as in the recording.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToDevice => "to_device",
            Self::ToClient => "to_client",
        }
    }
}

impl Direction {
    /// The other way.
    pub fn reverse(self) -> Self {
        match self {
            Self::ToDevice => Self::ToClient,
            Self::ToClient => Self::ToDevice,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the bytes of an event decoded to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Decoded {
    /// The bytes did not decode: `{"error": "..."}` (exactly that one key, a string).
    Error(DecodeFailure),
    /// The typed message as JSON.
    Message(Value),
}

impl Decoded {
    /// A decode failure saying `error`.
    pub fn error(error: impl Into<String>) -> Self {
        Self::Error(DecodeFailure {
            error: error.into(),
        })
    }

    /// The message, unless the bytes did not decode.
    pub fn message(&self) -> Option<&Value> {
        match self {
            Self::Message(value) => Some(value),
            Self::Error(_) => None,
        }
    }

    /// The decode error, if the bytes did not decode.
    pub fn error_text(&self) -> Option<&str> {
        match self {
            Self::Error(failure) => Some(&failure.error),
            Self::Message(_) => None,
        }
    }
}

/// `{"error": "..."}`: why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeFailure {
    /// What was wrong, in words.
    pub error: String,
}

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the tap started.
    pub t: f64,
    /// Connection number, from 1 in accept order.
    pub conn: u64,
    /// Which way the bytes travelled.
    pub dir: Direction,
    /// The bytes of one message (or of one undecoded read), exactly as on the wire.
    #[serde(with = "hex")]
    pub bytes: Vec<u8>,
    /// The message, or why it did not decode.
    pub decoded: Decoded,
    /// What the tap did besides forwarding these bytes unchanged (only pycom: the advertised
    /// `port` it rewrote in the forwarded copy); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// pycom events only: the connection number of the request this event is taken to answer
    /// (the latest request from the same coordinator the tap had forwarded when the event
    /// came; pycom events carry no correlation id). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
}

/// The optional first line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format version ([`FORMAT_VERSION`]).
    pub labwire_recording: u32,
    /// The protocol, as `labwire tap` names it (`arkeo`, `pekat`, `comet`, ...).
    pub protocol: String,
    /// Protocol options a replay needs, e.g. PEKAT's dialect (`{"dialect": "3.19"}`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, Value>,
}

impl Header {
    /// A header for `protocol` with no options.
    pub fn new(protocol: impl Into<String>) -> Self {
        Self {
            labwire_recording: FORMAT_VERSION,
            protocol: protocol.into(),
            options: serde_json::Map::new(),
        }
    }
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A line is not an event (nor, first, a header).
    #[error("{path}:{line}: not a recording event")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What serde_json said (field, column).
        #[source]
        source: serde_json::Error,
    },
}

/// A loaded recording.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recording {
    /// The header line, when the file has one.
    pub header: Option<Header>,
    /// The events, in file order.
    pub events: Vec<Event>,
}

impl Recording {
    /// Reads a recording file. Blank lines are skipped.
    ///
    /// # Errors
    /// [`LoadError::Io`], or [`LoadError::Line`] naming the first line that is not an event.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let io_error = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        Self::read(BufReader::new(file), path)
    }

    /// [`Recording::load`] from any reader; `path` only names the source in errors.
    ///
    /// # Errors
    /// As [`Recording::load`].
    pub fn read(reader: impl BufRead, path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let mut recording = Self::default();
        for (index, line) in reader.lines().enumerate() {
            let line = line.map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            if index == 0
                && let Ok(header) = serde_json::from_str::<Header>(&line)
            {
                recording.header = Some(header);
                continue;
            }
            let event = serde_json::from_str(&line).map_err(|source| LoadError::Line {
                path: path.to_owned(),
                line: index + 1,
                source,
            })?;
            recording.events.push(event);
        }
        Ok(recording)
    }

    /// The events of connection `conn` going `dir`, in order.
    pub fn stream(&self, conn: u64, dir: Direction) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |e| e.conn == conn && e.dir == dir)
    }

    /// The bytes of connection `conn` going `dir`, concatenated: the stream as it crossed.
    pub fn stream_bytes(&self, conn: u64, dir: Direction) -> Vec<u8> {
        self.stream(conn, dir)
            .flat_map(|e| e.bytes.iter().copied())
            .collect()
    }

    /// The connection numbers that appear, in order of first appearance.
    pub fn connections(&self) -> Vec<u64> {
        let mut seen = Vec::new();
        for event in &self.events {
            if !seen.contains(&event.conn) {
                seen.push(event.conn);
            }
        }
        seen
    }
}

/// Capacity of the writer's buffer; every line is flushed, so this only bounds one line's
/// copying, not what waits.
const WRITE_BUFFER: usize = 64 * 1024;

/// Writes a recording, one line per call, flushed at once (a crash or Ctrl-C loses at most
/// the line being written).
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: BufWriter<W>,
    line: Vec<u8>,
}

impl Writer<File> {
    /// Creates (or truncates) `path`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(File::create(path)?))
    }
}

impl<W: Write> Writer<W> {
    /// A writer over `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(WRITE_BUFFER, out),
            line: Vec::new(),
        }
    }

    /// Writes the header line.
    ///
    /// # Errors
    /// Write errors.
    pub fn write_header(&mut self, header: &Header) -> io::Result<()> {
        self.write_line(header)
    }

    /// Writes one event line.
    ///
    /// # Errors
    /// Write errors.
    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        self.write_line(event)
    }

    /// Writes event lines, then flushes once (a crash or Ctrl-C loses at most these lines).
    ///
    /// # Errors
    /// Write errors; the lines before the failing one are written.
    pub fn write_events<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> io::Result<()> {
        for event in events {
            self.buffer_line(event)?;
        }
        self.out.flush()
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        self.buffer_line(value)?;
        self.out.flush()
    }

    fn buffer_line<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).map_err(io::Error::other)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    /// The underlying writer (flushed).
    ///
    /// # Errors
    /// When the last flush fails.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Lower-case hex for `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Bytes from hex (either case).
///
/// # Errors
/// An odd length or a character that is not a hex digit.
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("{:?} is not a hex digit", char::from(c))),
    };
    let (pairs, rest) = text.as_bytes().as_chunks::<2>();
    if !rest.is_empty() {
        return Err(format!("odd number of hex digits ({})", text.len()));
    }
    pairs
        .iter()
        .map(|[hi, lo]| Ok((digit(*hi)? << 4) | digit(*lo)?))
        .collect()
}

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(decoded: Decoded) -> Event {
        Event {
            note: None,
            reply_to: None,
            t: 0.25,
            conn: 3,
            dir: Direction::ToClient,
            bytes: vec![0, 1, 0xab, 0xff],
            decoded,
        }
    }

    #[test]
    fn an_event_is_one_line_with_the_documented_fields() {
        let line = serde_json::to_string(&event(Decoded::Message(
            serde_json::json!({"status": "OK"}),
        )))
        .unwrap();
        assert_eq!(
            line,
            r#"{"t":0.25,"conn":3,"dir":"to_client","bytes":"0001abff","decoded":{"status":"OK"}}"#
        );
    }

    #[test]
    fn a_decode_error_reads_back_as_an_error_and_a_message_with_an_error_object_does_not() {
        let failed: Event =
            serde_json::from_str(&serde_json::to_string(&event(Decoded::error("bad"))).unwrap())
                .unwrap();
        assert_eq!(failed.decoded.error_text(), Some("bad"));
        let arkeo_error = serde_json::json!({"error": {"code": 101, "message": "x"}});
        let line = serde_json::to_string(&event(Decoded::Message(arkeo_error.clone()))).unwrap();
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back.decoded.message(), Some(&arkeo_error));
    }

    #[test]
    fn writer_and_reader_round_trip_with_header() {
        let mut writer = Writer::new(Vec::new());
        writer.write_header(&Header::new("arkeo")).unwrap();
        let events = [
            event(Decoded::error("x")),
            event(Decoded::Message(1.into())),
        ];
        for e in &events {
            writer.write_event(e).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let back = Recording::read(&bytes[..], "mem").unwrap();
        assert_eq!(back.header, Some(Header::new("arkeo")));
        assert_eq!(back.events, events);
        assert_eq!(back.stream_bytes(3, Direction::ToClient).len(), 8);
    }

    #[test]
    fn a_bad_line_is_named_by_number() {
        let text = "{\"labwire_recording\":1,\"protocol\":\"comet\"}\n\n{\"t\":1}\n";
        let err = Recording::read(text.as_bytes(), "rec.jsonl").unwrap_err();
        assert!(err.to_string().starts_with("rec.jsonl:3:"), "{err}");
    }

    #[test]
    fn hex_round_trips_and_refuses_bad_digits() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&all)).unwrap(), all);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}
