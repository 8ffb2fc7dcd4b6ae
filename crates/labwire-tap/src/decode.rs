//! The side decoders: what a protocol plugs into the tap.
//!
//! A [`Protocol`] makes one [`Framing`] per direction of each connection. A [`Framing`] finds
//! the next message in the bytes buffered so far, using the protocol crate's sans-IO decoders
//! and [`Limits`](arkeo_proto::Limits); [`SideDecoder`] around it does the buffering, enforces
//! the bound, and turns everything into recording events, so a framing never sees more than
//! its limit plus one read.
//!
//! # Why `Protocol` has more than `framing`
//! Three of the four protocols are plain request/answer over the connection the client
//! opened, and a framing per direction is all they need. pycom is not: the LA4 node answers on
//! a **new** connection to the `port` the coordinator advertised in its request. A pycom tap
//! therefore needs its own event listener, must rewrite the advertised port in the forwarded
//! request (so the node's events reach the tap), and forward each event to the coordinator's
//! real port. [`Protocol::name`] and [`Protocol::header`] are what a recording needs;
//! [`Protocol::pycom_limits`] is the hook that switches the proxy to pycom's handling
//! ([`crate::pycom`] says exactly which bytes it changes and why).

use std::fmt::Write as _;

use serde_json::Value;

use crate::recording::{Decoded, Direction, Header};

/// One message found by a [`Framing`].
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// How many bytes at the start of the buffer the message took (all of them go into the
    /// event's `bytes`).
    pub used: usize,
    /// The message, or why these bytes are not one (the stream is still in step).
    pub decoded: Decoded,
    /// A one-line summary for the console.
    pub summary: String,
}

/// The stream cannot be decoded any further (a frame over the limit, a header that cannot be
/// resynchronised): decoding of this direction stops; forwarding goes on (or, for a message
/// over the limit with [`TapConfig::cut_oversize`](crate::TapConfig::cut_oversize), the
/// connection is cut).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Fatal {
    /// What was wrong, in words.
    pub reason: String,
    /// Whether a message is larger than the protocol's limits allow (a length prefix or header
    /// claiming more, or more unframed bytes than one message may hold).
    pub over_limit: bool,
}

impl Fatal {
    /// A stream that cannot be decoded any further for another reason than its size.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            over_limit: false,
        }
    }

    /// A message over the protocol's limits.
    pub fn over_limit(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            over_limit: true,
        }
    }
}

/// Finds messages in one direction of one connection.
pub trait Framing: Send {
    /// The next message at the start of `buf`: `Ok(None)` while more bytes are needed.
    ///
    /// # Errors
    /// [`Fatal`] when the stream cannot be decoded any further.
    fn next(&mut self, buf: &[u8]) -> Result<Option<Found>, Fatal>;

    /// The stream ended with `buf` still buffered (never empty): a message that only the end of
    /// the stream completes (PEKAT's unframed text), or `None` to record it as incomplete.
    fn at_eof(&mut self, buf: &[u8]) -> Option<Found> {
        let _ = buf;
        None
    }

    /// The most bytes a message may take (the protocol's limit, headers included): the side
    /// decoder buffers no more than this plus one read.
    fn max_message(&self) -> usize;
}

/// A protocol the tap can decode.
pub trait Protocol: Send + Sync + 'static {
    /// The name `labwire tap` uses (`arkeo`, `pekat`, `comet`).
    fn name(&self) -> &'static str;

    /// The recording's header line.
    fn header(&self) -> Header {
        Header::new(self.name())
    }

    /// A fresh framing for `dir` of a new connection.
    fn framing(&self, dir: Direction) -> Box<dyn Framing>;

    /// pycom's limits when the device answers on new connections to a port the client
    /// advertised (see [`crate::pycom`]); `None` (the default) for request/answer protocols.
    fn pycom_limits(&self) -> Option<pycom_proto::Limits> {
        None
    }
}

/// What [`SideDecoder`] produced from some bytes: an event's `bytes`, `decoded` and summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What they decoded to.
    pub decoded: Decoded,
    /// The console summary.
    pub summary: String,
}

/// Buffers one direction's bytes for its [`Framing`], bounded, and stops for good after a
/// fatal error (every later read is then one undecoded piece).
pub struct SideDecoder {
    framing: Box<dyn Framing>,
    buf: Vec<u8>,
    stopped: bool,
    over_limit: bool,
}

impl std::fmt::Debug for SideDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideDecoder")
            .field("buffered", &self.buf.len())
            .field("stopped", &self.stopped)
            .field("over_limit", &self.over_limit)
            .finish_non_exhaustive()
    }
}

impl SideDecoder {
    /// A decoder over `framing`.
    pub fn new(framing: Box<dyn Framing>) -> Self {
        Self {
            framing,
            buf: Vec::new(),
            stopped: false,
            over_limit: false,
        }
    }

    /// Whether decoding stopped after a fatal error.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether decoding stopped because a message went over the protocol's limits.
    pub fn over_limit(&self) -> bool {
        self.over_limit
    }

    /// Bytes buffered, waiting for the rest of a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes `bytes` (one read) and appends what they complete to `out`.
    ///
    /// Returns `Some(at)` when these bytes made decoding stop because a message went over the
    /// protocol's limits: that message begins at `at` in `bytes` (0 when it began in an
    /// earlier read), and it is the last piece appended. What comes before `at` are whole
    /// messages (or bytes of earlier reads).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Piece>) -> Option<usize> {
        if self.stopped {
            out.push(Piece {
                bytes: bytes.to_vec(),
                decoded: Decoded::error("not decoded: decoding of this direction stopped"),
                summary: format!("{} bytes (not decoded)", bytes.len()),
            });
            return None;
        }
        let before = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            let rest = self.buf.get(start..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            match self.framing.next(rest) {
                Ok(Some(found)) => {
                    let used = found.used.clamp(1, rest.len());
                    out.push(Piece {
                        bytes: rest.get(..used).unwrap_or_default().to_vec(),
                        decoded: found.decoded,
                        summary: found.summary,
                    });
                    start += used;
                }
                Ok(None) if rest.len() > self.framing.max_message() => {
                    let max = self.framing.max_message();
                    self.stop(start, format!("message exceeds {max} bytes"), out);
                    self.over_limit = true;
                    return Some(start.saturating_sub(before));
                }
                Ok(None) => break,
                Err(fatal) => {
                    self.stop(start, fatal.reason, out);
                    self.over_limit = fatal.over_limit;
                    return fatal.over_limit.then(|| start.saturating_sub(before));
                }
            }
        }
        self.buf.drain(..start);
        None
    }

    fn stop(&mut self, start: usize, why: String, out: &mut Vec<Piece>) {
        let bytes = self.buf.split_off(start.min(self.buf.len()));
        self.buf = Vec::new();
        self.stopped = true;
        out.push(Piece {
            summary: format!("decode error: {why}; decoding of this direction stops"),
            bytes,
            decoded: Decoded::error(why),
        });
    }

    /// The stream ended: what is still buffered becomes a last piece.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            return;
        }
        let piece = match self.framing.at_eof(&buf) {
            Some(found) => Piece {
                bytes: buf,
                decoded: found.decoded,
                summary: found.summary,
            },
            None => Piece {
                summary: format!("{} bytes: incomplete message at end of stream", buf.len()),
                decoded: Decoded::error("incomplete message at end of stream"),
                bytes: buf,
            },
        };
        out.push(piece);
    }
}

/// Shortens `text` for a console line.
pub(crate) fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

/// A compact JSON rendering of `value`, shortened.
pub(crate) fn short_json(value: &Value, max: usize) -> String {
    short(&value.to_string(), max)
}

/// `text` with an error appended, for console summaries of decode errors.
pub(crate) fn error_summary(what: &str, error: &dyn std::error::Error) -> (Decoded, String) {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    let summary = format!("decode error ({what}): {text}");
    (Decoded::error(text), summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Newline-terminated lines, at most 8 bytes; `!` at the start of a line is fatal.
    struct Lines;

    impl Framing for Lines {
        fn next(&mut self, buf: &[u8]) -> Result<Option<Found>, Fatal> {
            if buf.first() == Some(&b'!') {
                return Err(Fatal::new("bang"));
            }
            Ok(buf.iter().position(|&b| b == b'\n').map(|i| Found {
                used: i + 1,
                decoded: Decoded::Message(String::from_utf8_lossy(&buf[..i]).into()),
                summary: String::new(),
            }))
        }

        fn max_message(&self) -> usize {
            8
        }
    }

    fn bytes(pieces: &[Piece]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.bytes.clone()).collect()
    }

    #[test]
    fn messages_split_across_reads_come_out_whole_and_every_byte_is_kept() {
        let mut side = SideDecoder::new(Box::new(Lines));
        let mut out = Vec::new();
        side.push(b"ab\ncd", &mut out);
        side.push(b"\nef", &mut out);
        side.finish(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].decoded, Decoded::Message("cd".into()));
        assert!(out[2].decoded.error_text().is_some());
        assert_eq!(bytes(&out), b"ab\ncd\nef");
    }

    #[test]
    fn a_message_over_the_limit_stops_decoding_and_buffers_nothing_more() {
        let mut side = SideDecoder::new(Box::new(Lines));
        let mut out = Vec::new();
        side.push(b"ok\n0123456789", &mut out);
        assert!(side.stopped());
        assert_eq!(side.buffered(), 0);
        side.push(b"more\n", &mut out);
        assert_eq!(out.len(), 3);
        assert!(out[2].decoded.error_text().is_some());
        assert_eq!(bytes(&out), b"ok\n0123456789more\n");
    }

    #[test]
    fn push_says_where_in_the_read_the_message_over_the_limit_begins() {
        let mut side = SideDecoder::new(Box::new(Lines));
        let mut out = Vec::new();
        assert_eq!(side.push(b"ok\n0123456789", &mut out), Some(3));
        assert!(side.over_limit());
        // Begun in an earlier read: it begins at 0 of the read that went over.
        let mut side = SideDecoder::new(Box::new(Lines));
        assert_eq!(side.push(b"ok\n0123", &mut out), None);
        assert_eq!(side.push(b"456789", &mut out), Some(0));
        // A fatal error that is not about size is not a cut.
        let mut side = SideDecoder::new(Box::new(Lines));
        assert_eq!(side.push(b"a\n!x\n", &mut out), None);
        assert!(side.stopped() && !side.over_limit());
    }

    #[test]
    fn a_fatal_error_stops_decoding() {
        let mut side = SideDecoder::new(Box::new(Lines));
        let mut out = Vec::new();
        side.push(b"a\n!x\nb\n", &mut out);
        assert!(side.stopped());
        assert_eq!(out.len(), 2);
        assert_eq!(bytes(&out), b"a\n!x\nb\n");
    }
}
