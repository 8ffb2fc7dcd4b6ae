//! Sans-IO parsing and writing of PEKAT messages over plain byte slices.
//!
//! The wire has **no framing**: the sender writes one message in one `send`, and the receiver
//! takes what arrived as that message. A trailing `\n` or `\r\n` is tolerated and removed. So
//! these functions work on a *complete* message, and the `*_completeness` functions tell a
//! receiver whether what has arrived so far can be a whole message yet:
//!
//! - a request is incomplete while no separator (`:` or `|`) has arrived and the bytes are
//!   still the beginning of a valid command (`sta`, `7.swi`), or while it ends in a lone `\r`;
//! - an answer is incomplete while it is the strict beginning of a known answer (`runn`,
//!   `err:not-`) or of the `<id>.` echo the receiver waits for, unless a line ending (`\r` or
//!   `\n`) ends it.
//!
//! Anything else is taken as complete. A request whose *path* was split across two TCP segments
//! by the sender still looks complete after the first one; a server that wants to be safe
//! against that waits for a short quiet period before acting (the `server` module can).

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::message::{
    BadRequest, BadRequestKind, Command, Dialect, MAX_ID_LEN, MAX_PATH_LEN, ProjectState, Reply,
    Request, RequestId, Response, Terminator, is_id_byte, is_valid_id,
};

/// Bytes a request may hold besides its path: an id (32), `.`, the longest command (6),
/// the separator, and a `\r\n`, rounded up.
pub const REQUEST_OVERHEAD: usize = 64;

/// Default limit for one request: a path of [`MAX_PATH_LEN`] bytes plus [`REQUEST_OVERHEAD`].
pub const DEFAULT_MAX_REQUEST_LEN: usize = MAX_PATH_LEN + REQUEST_OVERHEAD;

/// Default limit for one answer, line ending excluded: the vendor's own client reads answers
/// with a single `recv(64)`, so a real server never sends more.
pub const DEFAULT_MAX_RESPONSE_LEN: usize = 64;

/// The port a Projects Manager's TCP server usually listens on.
pub const DEFAULT_PORT: u16 = 7002;

/// The size bounds of one message, line ending not counted: checked before more bytes are
/// buffered, and on encode. One struct for both codecs; `Default` gives the documented limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request accepted ([`DEFAULT_MAX_REQUEST_LEN`]).
    pub max_request_len: usize,
    /// Longest answer accepted or written ([`DEFAULT_MAX_RESPONSE_LEN`]).
    pub max_response_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
            max_response_len: DEFAULT_MAX_RESPONSE_LEN,
        }
    }
}

/// Bytes shown as lower-case hex, for trace logs: `tracing::trace!(hex = %Hex(&buf))`.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Whether the bytes received so far can be a whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Wait for more bytes (or take what is there once a deadline passes or the peer closes).
    NeedMore,
    /// Take all the bytes as one message.
    Complete,
}

/// The message without one trailing `\n`, `\r\n` or (leniently) lone `\r`.
pub fn strip_line_ending(msg: &[u8]) -> &[u8] {
    msg.strip_suffix(b"\r\n")
        .or_else(|| msg.strip_suffix(b"\n"))
        .or_else(|| msg.strip_suffix(b"\r"))
        .unwrap_or(msg)
}

/// Whether `buf` holds nothing but line endings (a stray `\n` after a message).
pub fn is_only_line_endings(buf: &[u8]) -> bool {
    buf.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// Checks the length of a message against `max`, not counting one trailing line ending.
///
/// # Errors
/// [`DecodeError::TooLarge`] when the message body is longer than `max`.
pub fn check_len(buf: &[u8], max: usize) -> Result<(), DecodeError> {
    if buf.len() <= max {
        return Ok(());
    }
    // A trailing line ending, possibly not complete yet, is not counted.
    let body = if buf.ends_with(b"\r") {
        &buf[..buf.len() - 1]
    } else {
        strip_line_ending(buf)
    };
    if body.len() <= max {
        Ok(())
    } else {
        Err(DecodeError::TooLarge {
            len: buf.len(),
            max,
        })
    }
}

/// Whether the request bytes received so far can be a whole request (see the module docs).
pub fn request_completeness(buf: &[u8], dialect: Dialect) -> Completeness {
    if buf.is_empty() || buf.ends_with(b"\r") {
        return Completeness::NeedMore;
    }
    let separator = dialect.separator();
    if buf.iter().any(|&b| b == separator || b == b'\n') {
        return Completeness::Complete;
    }
    let is_command_prefix = |head: &[u8]| {
        Command::ALL
            .iter()
            .any(|c| c.as_str().as_bytes().starts_with(head))
    };
    let could_grow = match dialect {
        Dialect::V3_18 => is_command_prefix(buf),
        Dialect::V3_19 => match buf.iter().position(|&b| b == b'.') {
            Some(dot) => is_valid_id(&buf[..dot]) && is_command_prefix(&buf[dot + 1..]),
            // An id or a command still arriving.
            None => buf.len() <= MAX_ID_LEN && buf.iter().copied().all(is_id_byte),
        },
    };
    if could_grow {
        Completeness::NeedMore
    } else {
        Completeness::Complete
    }
}

/// Parses one complete request in `dialect`.
///
/// The path is everything after the **first** separator, kept exactly (so `start:C:\x` is
/// `start` of `C:\x`, and dots in a 3.19 path never look like an id), but for the trailing
/// line endings (`\n`, `\r\n`, a lone `\r`, or several), which are dropped. An empty path is
/// accepted here (a server answers `not-found`).
///
/// # Errors
/// A [`BadRequest`], which a server answers with the dialect's "unknown command" answer
/// (see [`BadRequest::reply`]).
pub fn parse_request(msg: &[u8], dialect: Dialect) -> Result<Request, BadRequest> {
    // Every trailing line ending goes, not only one: a path never holds CR or LF, and
    // `x\r\n\r\n` must be the same request whether its second `\r\n` came with it or late
    // (a server drops a late one).
    let end = msg
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |last| last + 1);
    let body = &msg[..end];
    let bad = |id: Option<RequestId>, kind| BadRequest { id, kind };
    if body.is_empty() {
        return Err(bad(None, BadRequestKind::Empty));
    }
    let separator = dialect.separator();
    let sep_at = body.iter().position(|&b| b == separator);
    let head = sep_at.map_or(body, |at| &body[..at]);
    let (id, command) = match dialect {
        Dialect::V3_18 => (None, head),
        Dialect::V3_19 => match head.iter().position(|&b| b == b'.') {
            Some(dot) => {
                let id_bytes = &head[..dot];
                let id = std::str::from_utf8(id_bytes)
                    .ok()
                    .and_then(|s| RequestId::new(s).ok());
                let Some(id) = id else {
                    return Err(bad(None, BadRequestKind::InvalidId(lossy(id_bytes))));
                };
                (Some(id), &head[dot + 1..])
            }
            None => (None, head),
        },
    };
    let Some(sep_at) = sep_at else {
        return Err(bad(id, BadRequestKind::MissingSeparator(separator)));
    };
    let Some(command) = Command::from_wire(command) else {
        return Err(bad(id, BadRequestKind::UnknownCommand(lossy(command))));
    };
    let path = &body[sep_at + 1..];
    let Ok(path) = std::str::from_utf8(path) else {
        return Err(bad(id, BadRequestKind::InvalidUtf8));
    };
    Ok(Request {
        id,
        command,
        path: path.to_owned(),
    })
}

/// At most 64 characters of `bytes`, for error messages and logs.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(64).collect()
}

fn check_text(text: &str) -> Result<(), EncodeError> {
    if has_control(text.as_bytes()) {
        Err(EncodeError::ControlCharacter)
    } else {
        Ok(())
    }
}

/// Whether `bytes` hold a CR, LF or NUL. A path is checked on every request sent and may be
/// 32 KiB long: it is scanned sixteen bytes at a time without an early exit (the tail copied
/// into a padded block), so that the scan is vectorised.
fn has_control(bytes: &[u8]) -> bool {
    const BLOCK: usize = 16;
    let is_control = |b: u8| u8::from(b == b'\r') | u8::from(b == b'\n') | u8::from(b == 0);
    let mut seen = [0u8; BLOCK];
    let mut scan = |block: &[u8]| {
        for (seen, &b) in seen.iter_mut().zip(block) {
            *seen |= is_control(b);
        }
    };
    let mut blocks = bytes.chunks_exact(BLOCK);
    for block in &mut blocks {
        scan(block);
    }
    let rest = blocks.remainder();
    let mut tail = [b' '; BLOCK];
    if let Some(start) = tail.get_mut(..rest.len()) {
        start.copy_from_slice(rest);
    }
    scan(&tail);
    seen.iter().any(|&b| b != 0)
}

/// Appends `request` to `dst` as `dialect` spells it, without any terminator.
///
/// # Errors
/// An empty or too long path, a CR/LF/NUL in the path, or an id in the 3.18 dialect.
/// Nothing is written on error.
pub fn encode_request(
    request: &Request,
    dialect: Dialect,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    if request.path.is_empty() {
        return Err(EncodeError::EmptyPath);
    }
    if request.path.len() > MAX_PATH_LEN {
        return Err(EncodeError::PathTooLong {
            len: request.path.len(),
            max: MAX_PATH_LEN,
        });
    }
    check_text(&request.path)?;
    if request.id.is_some() && !dialect.supports_ids() {
        return Err(EncodeError::IdNotSupported(dialect));
    }
    let command = request.command.as_str();
    let id_len = request.id.as_ref().map_or(0, |id| id.as_str().len() + 1);
    dst.reserve(id_len + command.len() + 1 + request.path.len());
    if let Some(id) = &request.id {
        dst.put_slice(id.as_str().as_bytes());
        dst.put_u8(b'.');
    }
    dst.put_slice(command.as_bytes());
    dst.put_u8(dialect.separator());
    dst.put_slice(request.path.as_bytes());
    Ok(())
}

/// Appends raw request `text`, then `terminator`, to `dst`: any command text, sent as it is
/// (a command this crate does not know, a request id of your own, a misspelling on purpose).
///
/// `max_len` bounds the text, terminator not counted (a client passes
/// [`Limits::max_request_len`]).
///
/// # Errors
/// Empty text, a CR, LF or NUL in it (a line ending is the terminator's job), or text longer
/// than `max_len`. Nothing is written on error.
pub fn encode_raw_request(
    text: &str,
    terminator: Terminator,
    max_len: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    if text.is_empty() {
        return Err(EncodeError::EmptyRequest);
    }
    if text.len() > max_len {
        return Err(EncodeError::TooLarge {
            len: text.len(),
            max: max_len,
        });
    }
    check_text(text)?;
    let terminator = terminator.as_bytes();
    dst.reserve(text.len() + terminator.len());
    dst.put_slice(text.as_bytes());
    dst.put_slice(terminator);
    Ok(())
}

/// The id a raw request carries, when it starts with a valid `<id>.` prefix: its echo is then
/// awaited whole, as for a typed request with an id.
pub fn raw_request_id(text: &str) -> Option<RequestId> {
    let (head, _) = text.split_once('.')?;
    RequestId::new(head).ok()
}

/// Every known answer, lower case, both dialects (ids aside).
const KNOWN_ANSWERS: &[&str] = &[
    "done",
    "success",
    "stopped",
    "stopping",
    "starting",
    "running",
    "not-found",
    "error:port",
    "unknown command",
    "suc:done",
    "suc:success",
    "suc:stopped",
    "suc:stopping",
    "suc:starting",
    "suc:running",
    "err:not-found",
    "err:port",
    "err:invalid-command",
    "unknown-command",
    "err:unknown-command",
];

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether `text` is a strict beginning of a known answer.
fn is_partial_answer(text: &[u8]) -> bool {
    KNOWN_ANSWERS
        .iter()
        .any(|known| known.len() > text.len() && starts_with_ignore_case(known.as_bytes(), text))
}

/// Whether the answer bytes received so far can be a whole answer (see the module docs).
///
/// `expected_id` is the id of the request in flight, if it had one: while the bytes are the
/// beginning of `<id>.`, more must follow.
pub fn response_completeness(buf: &[u8], expected_id: Option<&RequestId>) -> Completeness {
    if is_only_line_endings(buf) {
        return Completeness::NeedMore;
    }
    // A line ending ends an answer; a `\n` that may follow a `\r` is skipped by the decoder.
    if buf.ends_with(b"\n") || buf.ends_with(b"\r") {
        return Completeness::Complete;
    }
    if let Some(id) = expected_id {
        let id = id.as_str().as_bytes();
        if buf.len() <= id.len() && id.starts_with(buf) {
            return Completeness::NeedMore;
        }
    }
    let partial = is_partial_answer(buf)
        || buf.iter().position(|&b| b == b'.').is_some_and(|dot| {
            is_valid_id(&buf[..dot]) && (dot + 1 == buf.len() || is_partial_answer(&buf[dot + 1..]))
        });
    if partial {
        Completeness::NeedMore
    } else {
        Completeness::Complete
    }
}

/// The response that `text` spells exactly as a server writes it, in either dialect (no id, no
/// line ending): what nearly every answer is, recognised before the lenient reading, which
/// gives the same response for it.
#[inline(always)]
fn canonical(text: &[u8]) -> Option<Response> {
    use ProjectState::{Running, Starting, Stopped, Stopping};
    // By length first, then each candidate compared whole (a few word loads each), rather
    // than byte by byte.
    let is = |known: &[u8]| text == known;
    let response = match text.len() {
        4 if is(b"done") => Response::Done,
        7 if is(b"running") => Response::Status(Running),
        7 if is(b"success") => Response::Success,
        7 if is(b"stopped") => Response::Status(Stopped),
        8 if is(b"suc:done") => Response::Done,
        8 if is(b"stopping") => Response::Status(Stopping),
        8 if is(b"starting") => Response::Status(Starting),
        8 if is(b"err:port") => Response::PortInUse,
        9 if is(b"not-found") => Response::NotFound,
        10 if is(b"error:port") => Response::PortInUse,
        11 if is(b"suc:running") => Response::Status(Running),
        11 if is(b"suc:success") => Response::Success,
        11 if is(b"suc:stopped") => Response::Status(Stopped),
        12 if is(b"suc:stopping") => Response::Status(Stopping),
        12 if is(b"suc:starting") => Response::Status(Starting),
        13 if is(b"err:not-found") => Response::NotFound,
        15 if is(b"Unknown command") => Response::UnknownCommand,
        19 if is(b"err:invalid-command") => Response::UnknownCommand,
        _ => return None,
    };
    Some(response)
}

/// `Unknown command` (3.18), `invalid-command` (3.19) or the integrator's `unknown-command`,
/// with a space, `-` or `_` between the words, in any case.
fn is_unknown_command(body: &str) -> bool {
    let Some((word, rest)) = body.split_at_checked(7) else {
        return false;
    };
    let Some(command) = rest.strip_prefix([' ', '-', '_']) else {
        return false;
    };
    (word.eq_ignore_ascii_case("unknown") || word.eq_ignore_ascii_case("invalid"))
        && command.eq_ignore_ascii_case("command")
}

/// The response that `text` spells in either dialect, if it is a known one.
/// Case and surrounding whitespace are ignored.
fn parse_known(text: &str) -> Option<Response> {
    canonical(text.as_bytes()).or_else(|| parse_lenient(text))
}

/// [`parse_known`] for any spelling.
fn parse_lenient(text: &str) -> Option<Response> {
    let text = text.trim();
    let body = [b"suc:".as_slice(), b"err:".as_slice()]
        .iter()
        .find(|p| starts_with_ignore_case(text.as_bytes(), p))
        .map_or(text, |p| &text[p.len()..]);
    let is = |word: &str| body.eq_ignore_ascii_case(word);
    let response = if is("done") {
        Response::Done
    } else if is("success") {
        Response::Success
    } else if let Some(state) = ProjectState::ALL.into_iter().find(|s| is(s.as_str())) {
        Response::Status(state)
    } else if is("not-found") {
        Response::NotFound
    } else if is("error:port") || is("port") {
        Response::PortInUse
    } else if is_unknown_command(body) {
        Response::UnknownCommand
    } else {
        return None;
    };
    Some(response)
}

/// Parses one complete answer, leniently: either dialect's spelling, any case, an optional
/// `<id>.` prefix, surrounding whitespace and one trailing line ending are all accepted.
/// Anything unknown becomes [`Response::Other`] with the text as it came.
///
/// An `<id>.` prefix is only taken as an id when what follows it is a known answer or starts
/// with `suc:`/`err:`, so an unknown answer with a dot in it is kept whole.
///
/// # Errors
/// [`DecodeError::InvalidUtf8`] when the answer is not UTF-8.
pub fn parse_response(msg: &[u8]) -> Result<Reply, DecodeError> {
    match exact_reply(msg) {
        Some(reply) => Ok(reply),
        None => parse_response_lenient(msg),
    }
}

/// The reply that `msg` spells exactly as a server writes it (an optional valid `<id>.`, then
/// a [`canonical`] answer, no line ending): what nearly every answer is, recognised before any
/// lenient reading, which gives the same reply for it. No known answer holds a `.`, so the
/// first one is where the id ends. Always inlined: the common path pays no call for it.
#[inline(always)]
fn exact_reply(msg: &[u8]) -> Option<Reply> {
    let (id, text) = match msg.iter().position(|&b| b == b'.') {
        Some(dot) => (msg.get(..dot), msg.get(dot + 1..)?),
        None => (None, msg),
    };
    let response = canonical(text)?;
    let id = match id {
        // A valid id is ASCII: the UTF-8 check is the cheap one.
        Some(id) => Some(RequestId::new(std::str::from_utf8(id).ok()?).ok()?),
        None => None,
    };
    Some(Reply { id, response })
}

/// [`parse_response`] for anything but an exact answer: a line ending, another case,
/// whitespace, an unknown answer.
#[cold]
#[inline(never)]
fn parse_response_lenient(msg: &[u8]) -> Result<Reply, DecodeError> {
    let body = strip_line_ending(msg);
    if body.len() != msg.len()
        && let Some(reply) = exact_reply(body)
    {
        return Ok(reply);
    }
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::InvalidUtf8)?;
    if let Some((id, rest)) = text.split_once('.')
        && is_valid_id(id.as_bytes())
    {
        let response = parse_known(rest).or_else(|| {
            let tagged = starts_with_ignore_case(rest.as_bytes(), b"suc:")
                || starts_with_ignore_case(rest.as_bytes(), b"err:");
            tagged.then(|| Response::Other(rest.to_owned()))
        });
        if let (Some(response), Ok(id)) = (response, RequestId::new(id)) {
            return Ok(Reply {
                id: Some(id),
                response,
            });
        }
    }
    let response = parse_known(text).unwrap_or_else(|| Response::Other(text.to_owned()));
    Ok(Reply { id: None, response })
}

/// Every known answer's text, by dialect (3.18, 3.19) and [`known_index`].
const KNOWN_TEXTS: [[&str; 9]; 2] = [
    [
        "done",
        "success",
        "stopped",
        "stopping",
        "starting",
        "running",
        "not-found",
        "error:port",
        "Unknown command",
    ],
    [
        "suc:done",
        "suc:success",
        "suc:stopped",
        "suc:stopping",
        "suc:starting",
        "suc:running",
        "err:not-found",
        "err:port",
        "err:invalid-command",
    ],
];

/// Where a known `response`'s text is in [`KNOWN_TEXTS`]; `None` for [`Response::Other`].
#[inline]
fn known_index(response: &Response) -> Option<usize> {
    let index = match response {
        Response::Done => 0,
        Response::Success => 1,
        Response::Status(ProjectState::Stopped) => 2,
        Response::Status(ProjectState::Stopping) => 3,
        Response::Status(ProjectState::Starting) => 4,
        Response::Status(ProjectState::Running) => 5,
        Response::NotFound => 6,
        Response::PortInUse => 7,
        Response::UnknownCommand => 8,
        Response::Other(_) => return None,
    };
    Some(index)
}

/// The text of a known `response` in `dialect`; `None` for [`Response::Other`].
#[inline]
fn known_text(response: &Response, dialect: Dialect) -> Option<&'static str> {
    let texts = match dialect {
        Dialect::V3_18 => &KNOWN_TEXTS[0],
        Dialect::V3_19 => &KNOWN_TEXTS[1],
    };
    known_index(response).map(|index| texts[index])
}

/// The text of `response` in `dialect`.
pub fn response_text(response: &Response, dialect: Dialect) -> &str {
    match response {
        Response::Other(text) => text,
        known => known_text(known, dialect).unwrap_or_default(),
    }
}

/// Appends `reply` to `dst` as `dialect` spells it, without any terminator.
///
/// # Errors
/// An id in the 3.18 dialect, an empty or CR/LF/NUL-holding [`Response::Other`], or an answer
/// longer than `max_len`. Nothing is written on error.
pub fn encode_reply(
    reply: &Reply,
    dialect: Dialect,
    max_len: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    // A known answer: its text from the table, checked only for an id the dialect lacks and
    // for the length. Only a text of the caller's own can be empty or hold a line ending.
    let Some(text) = known_text(&reply.response, dialect) else {
        return encode_other_reply(reply, dialect, max_len, dst);
    };
    let text = text.as_bytes();
    match &reply.id {
        None => {
            if text.len() > max_len {
                check_reply(reply, "", dialect, text.len(), max_len)?;
            }
        }
        Some(id) => {
            let id = id.as_str().as_bytes();
            let len = id.len() + 1 + text.len();
            if !dialect.supports_ids() || len > max_len {
                check_reply(reply, "", dialect, len, max_len)?;
            }
            // Inlined: a one-byte store, where `put_u8` would be one more call.
            dst.extend_from_slice(id);
            dst.extend_from_slice(b".");
        }
    }
    dst.extend_from_slice(text);
    Ok(())
}

/// [`encode_reply`] for a [`Response::Other`]: its text checked, then written.
#[cold]
#[inline(never)]
fn encode_other_reply(
    reply: &Reply,
    dialect: Dialect,
    max_len: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let text = response_text(&reply.response, dialect);
    let id = reply.id.as_ref().map(|id| id.as_str().as_bytes());
    let len = id.map_or(0, |id| id.len() + 1) + text.len();
    check_reply(reply, text, dialect, len, max_len)?;
    if let Some(id) = id {
        dst.extend_from_slice(id);
        dst.put_u8(b'.');
    }
    dst.extend_from_slice(text.as_bytes());
    Ok(())
}

/// [`encode_reply`]'s checks, in their order, for a reply that may fail one: an id in a
/// dialect without ids, a text of the caller's own, or a length over the limit.
#[cold]
#[inline(never)]
fn check_reply(
    reply: &Reply,
    text: &str,
    dialect: Dialect,
    len: usize,
    max_len: usize,
) -> Result<(), EncodeError> {
    if reply.id.is_some() && !dialect.supports_ids() {
        return Err(EncodeError::IdNotSupported(dialect));
    }
    if let Response::Other(_) = reply.response {
        if text.is_empty() {
            return Err(EncodeError::EmptyAnswer);
        }
        check_text(text)?;
    }
    if len > max_len {
        return Err(EncodeError::TooLarge { len, max: max_len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";

    fn encode(request: &Request, dialect: Dialect) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_request(request, dialect, &mut buf).unwrap();
        buf.to_vec()
    }

    fn reply_bytes(reply: &Reply, dialect: Dialect) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_reply(reply, dialect, DEFAULT_MAX_RESPONSE_LEN, &mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn requests_are_spelled_as_the_vendor_documents() {
        let start = Request::start(PATH);
        assert_eq!(
            encode(&start, Dialect::V3_18),
            format!("start:{PATH}").as_bytes()
        );
        assert_eq!(
            encode(&start, Dialect::V3_19),
            format!("start|{PATH}").as_bytes()
        );
        let with_id = Request::status(PATH).with_id(RequestId::from(12));
        assert_eq!(
            encode(&with_id, Dialect::V3_19),
            format!("12.status|{PATH}").as_bytes()
        );
    }

    #[test]
    fn a_path_with_a_colon_splits_on_the_first_separator_only() {
        let request = parse_request(br"start:C:\x", Dialect::V3_18).unwrap();
        assert_eq!(request, Request::start(r"C:\x"));
        let request = parse_request(br"stop|C:\a|b", Dialect::V3_19).unwrap();
        assert_eq!(request, Request::stop(r"C:\a|b"));
    }

    #[test]
    fn dots_in_a_3_19_path_are_not_taken_for_an_id() {
        let request = parse_request(br"switch|C:\v1.2\proj.x", Dialect::V3_19).unwrap();
        assert_eq!(request, Request::switch(r"C:\v1.2\proj.x"));
        let request = parse_request(br"ab-1.start|C:\v1.2", Dialect::V3_19).unwrap();
        assert_eq!(
            request,
            Request::start(r"C:\v1.2").with_id(RequestId::new("ab-1").unwrap())
        );
    }

    #[test]
    fn a_trailing_line_ending_is_tolerated() {
        for msg in [
            &b"status:C:\\p\n"[..],
            b"status:C:\\p\r\n",
            b"status:C:\\p\r",
            b"status:C:\\p\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(msg, Dialect::V3_18).unwrap(),
                Request::status(r"C:\p")
            );
        }
        assert_eq!(parse_response(b"running\r\n").unwrap().response, {
            Response::Status(ProjectState::Running)
        });
    }

    #[test]
    fn spaces_and_backslashes_in_paths_are_kept_exactly() {
        let path = r" C:\My Projects\\double  space\ ";
        let request = Request::start(path);
        let wire = encode(&request, Dialect::V3_18);
        assert_eq!(parse_request(&wire, Dialect::V3_18).unwrap(), request);
    }

    #[test]
    fn bad_requests_say_what_was_wrong_and_keep_a_readable_id() {
        let kind = |msg: &[u8], d| parse_request(msg, d).unwrap_err().kind;
        assert_eq!(kind(b"", Dialect::V3_18), BadRequestKind::Empty);
        assert_eq!(kind(b"\r\n", Dialect::V3_19), BadRequestKind::Empty);
        assert_eq!(
            kind(b"start", Dialect::V3_18),
            BadRequestKind::MissingSeparator(b':')
        );
        assert_eq!(
            kind(br"start:C:\x", Dialect::V3_19),
            BadRequestKind::MissingSeparator(b'|')
        );
        assert_eq!(
            kind(b"launch:C:\\x", Dialect::V3_18),
            BadRequestKind::UnknownCommand("launch".into())
        );
        assert_eq!(
            kind(b"start:\xff\xfe", Dialect::V3_18),
            BadRequestKind::InvalidUtf8
        );
        assert_eq!(
            kind(b"a b.start|x", Dialect::V3_19),
            BadRequestKind::InvalidId("a b".into())
        );
        let bad = parse_request(b"9.launch|x", Dialect::V3_19).unwrap_err();
        assert_eq!(bad.id, Some(RequestId::from(9)));
        assert_eq!(
            reply_bytes(&bad.reply(), Dialect::V3_19),
            b"9.err:invalid-command"
        );
        let bad = parse_request(b"Start:x", Dialect::V3_18).unwrap_err();
        assert_eq!(
            reply_bytes(&bad.reply(), Dialect::V3_18),
            b"Unknown command"
        );
    }

    #[test]
    fn an_empty_path_parses_so_the_server_can_answer_not_found() {
        assert_eq!(
            parse_request(b"status:", Dialect::V3_18).unwrap(),
            Request::status("")
        );
    }

    #[test]
    fn requests_that_cannot_be_sent_are_refused_before_writing() {
        let mut buf = BytesMut::new();
        let err = |r: &Request, d| {
            let mut buf = BytesMut::new();
            let e = encode_request(r, d, &mut buf).unwrap_err();
            assert!(buf.is_empty());
            e
        };
        assert!(matches!(
            err(&Request::start(""), Dialect::V3_18),
            EncodeError::EmptyPath
        ));
        assert!(matches!(
            err(&Request::start("a\nb"), Dialect::V3_18),
            EncodeError::ControlCharacter
        ));
        assert!(matches!(
            err(
                &Request::start("x".repeat(MAX_PATH_LEN + 1)),
                Dialect::V3_18
            ),
            EncodeError::PathTooLong { .. }
        ));
        assert!(matches!(
            err(&Request::start("x").with_id(1.into()), Dialect::V3_18),
            EncodeError::IdNotSupported(Dialect::V3_18)
        ));
        encode_request(
            &Request::start("x".repeat(MAX_PATH_LEN)),
            Dialect::V3_19,
            &mut buf,
        )
        .unwrap();
        assert!(buf.len() <= DEFAULT_MAX_REQUEST_LEN);
    }

    #[test]
    fn answers_are_spelled_per_dialect() {
        let cases = [
            (Response::Done, "done", "suc:done"),
            (Response::Success, "success", "suc:success"),
            (
                Response::Status(ProjectState::Starting),
                "starting",
                "suc:starting",
            ),
            (Response::NotFound, "not-found", "err:not-found"),
            (Response::PortInUse, "error:port", "err:port"),
            (
                Response::UnknownCommand,
                "Unknown command",
                "err:invalid-command",
            ),
        ];
        for (response, v18, v19) in cases {
            let reply = Reply::new(response.clone());
            assert_eq!(reply_bytes(&reply, Dialect::V3_18), v18.as_bytes());
            assert_eq!(reply_bytes(&reply, Dialect::V3_19), v19.as_bytes());
            assert_eq!(parse_response(v18.as_bytes()).unwrap(), reply);
            assert_eq!(parse_response(v19.as_bytes()).unwrap(), reply);
        }
    }

    #[test]
    fn control_characters_are_found_anywhere_in_a_text() {
        for len in 0..40 {
            let plain = "a\tb".repeat(len);
            assert!(!has_control(plain.as_bytes()), "{len}");
            for at in 0..plain.len() {
                for control in [b'\r', b'\n', 0] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = control;
                    assert!(has_control(&bytes), "{len} {at} {control}");
                }
            }
        }
        assert!(!has_control("\u{e9}\u{1f600}\u{7f}\u{0e}".as_bytes()));
    }

    #[test]
    fn the_exact_spellings_read_as_the_lenient_reading_reads_them() {
        let responses = [
            Response::Done,
            Response::Success,
            Response::NotFound,
            Response::PortInUse,
            Response::UnknownCommand,
        ]
        .into_iter()
        .chain(ProjectState::ALL.map(Response::Status));
        for response in responses {
            for dialect in [Dialect::V3_18, Dialect::V3_19] {
                let text = response_text(&response, dialect);
                assert_eq!(canonical(text.as_bytes()), Some(response.clone()), "{text}");
                assert_eq!(parse_lenient(text), Some(response.clone()), "{text}");
            }
        }
        assert_eq!(canonical(b"DONE"), None);
        assert_eq!(canonical(b"7.done"), None);
    }

    #[test]
    fn answers_are_parsed_leniently() {
        let parsed = |s: &[u8]| parse_response(s).unwrap();
        assert_eq!(parsed(b"DONE").response, Response::Done);
        assert_eq!(parsed(b"  running \n").response.to_string(), "running");
        assert_eq!(parsed(b"ERR:PORT").response, Response::PortInUse);
        assert_eq!(parsed(b"err:error:port").response, Response::PortInUse);
        let reply = parsed(b"17.suc:stopped");
        assert_eq!(reply.id, Some(RequestId::from(17)));
        assert_eq!(reply.response, Response::Status(ProjectState::Stopped));
        assert_eq!(
            parsed(b"7.err:license").response,
            Response::Other("err:license".into())
        );
        // A dot in an unknown answer is not an id.
        assert_eq!(
            parsed(b"3.19 says hello"),
            Reply::new(Response::Other("3.19 says hello".into()))
        );
        assert!(matches!(
            parse_response(b"\xff"),
            Err(DecodeError::InvalidUtf8)
        ));
    }

    #[test]
    fn every_spelling_of_unknown_command_is_recognised() {
        for text in [
            &b"Unknown command"[..],
            b"unknown-command",
            b"err:unknown-command",
            b"ERR:Unknown-Command",
            b"err:invalid-command",
            b"invalid-command",
            b"err:unknown_command",
            b"8.err:unknown-command\r\n",
        ] {
            let reply = parse_response(text).unwrap();
            assert_eq!(reply.response, Response::UnknownCommand, "{text:?}");
        }
        assert_eq!(
            parse_response(b"8.err:unknown-command").unwrap().id,
            Some(RequestId::from(8))
        );
        for other in [
            &b"unknown"[..],
            b"unknown  command",
            b"unknowncommand",
            b"unknown-commands",
        ] {
            assert!(matches!(
                parse_response(other).unwrap().response,
                Response::Other(_)
            ));
        }
        // The integrator's spelling, cut short, waits for the rest.
        assert_eq!(
            response_completeness(b"err:unknown-", None),
            Completeness::NeedMore
        );
    }

    #[test]
    fn raw_requests_are_sent_as_they_are_with_the_terminator() {
        let raw = |text: &str, t| {
            let mut buf = BytesMut::new();
            encode_raw_request(text, t, 16, &mut buf).map(|()| buf.to_vec())
        };
        assert_eq!(raw("Start:x", Terminator::None).unwrap(), b"Start:x");
        assert_eq!(raw("start:x", Terminator::Lf).unwrap(), b"start:x\n");
        assert_eq!(raw("start:x", Terminator::CrLf).unwrap(), b"start:x\r\n");
        assert_eq!(raw(&"x".repeat(16), Terminator::CrLf).unwrap().len(), 18);
        assert!(matches!(
            raw("", Terminator::Lf),
            Err(EncodeError::EmptyRequest)
        ));
        assert!(matches!(
            raw("a\nb", Terminator::None),
            Err(EncodeError::ControlCharacter)
        ));
        assert!(matches!(
            raw(&"x".repeat(17), Terminator::None),
            Err(EncodeError::TooLarge { len: 17, max: 16 })
        ));
        assert_eq!(raw_request_id("7.status|C:\\x"), Some(RequestId::from(7)));
        assert_eq!(raw_request_id("status|C:\\v1.2"), None);
        assert_eq!(raw_request_id("status:x"), None);
    }

    #[test]
    fn unknown_answers_keep_their_text() {
        let reply = parse_response(b"license expired").unwrap();
        assert_eq!(reply.response, Response::Other("license expired".into()));
    }

    #[test]
    fn answers_that_cannot_be_sent_are_refused() {
        let mut buf = BytesMut::new();
        let other = |s: &str| Reply::new(Response::Other(s.into()));
        assert!(matches!(
            encode_reply(&other(""), Dialect::V3_18, 64, &mut buf),
            Err(EncodeError::EmptyAnswer)
        ));
        assert!(matches!(
            encode_reply(&other(&"x".repeat(65)), Dialect::V3_18, 64, &mut buf),
            Err(EncodeError::TooLarge { len: 65, max: 64 })
        ));
        assert!(matches!(
            encode_reply(
                &Reply::new(Response::Done).clone_with_id(),
                Dialect::V3_18,
                64,
                &mut buf
            ),
            Err(EncodeError::IdNotSupported(_))
        ));
        assert!(buf.is_empty());
    }

    impl Reply {
        fn clone_with_id(mut self) -> Self {
            self.id = Some(RequestId::from(1));
            self
        }
    }

    #[test]
    fn partial_requests_need_more_until_the_separator_arrives() {
        use Completeness::{Complete, NeedMore};
        let c18 = |b: &[u8]| request_completeness(b, Dialect::V3_18);
        let c19 = |b: &[u8]| request_completeness(b, Dialect::V3_19);
        assert_eq!(c18(b""), NeedMore);
        assert_eq!(c18(b"sta"), NeedMore);
        assert_eq!(c18(b"switch"), NeedMore);
        assert_eq!(c18(b"start:"), Complete);
        assert_eq!(c18(b"start:C:\\x\r"), NeedMore);
        assert_eq!(c18(b"hello"), Complete);
        assert_eq!(c18(b"sta\n"), Complete);
        assert_eq!(c19(b"12"), NeedMore);
        assert_eq!(c19(b"12.sto"), NeedMore);
        assert_eq!(c19(b"12.xyz"), Complete);
        assert_eq!(c19(b"start|x"), Complete);
        assert_eq!(c19(&[0xff]), Complete);
    }

    #[test]
    fn partial_answers_need_more() {
        use Completeness::{Complete, NeedMore};
        assert_eq!(response_completeness(b"runn", None), NeedMore);
        assert_eq!(response_completeness(b"running", None), Complete);
        assert_eq!(response_completeness(b"7.", None), NeedMore);
        assert_eq!(response_completeness(b"7.err:not", None), NeedMore);
        assert_eq!(response_completeness(b"done\r", None), Complete);
        assert_eq!(response_completeness(b"\r", None), NeedMore);
        assert_eq!(response_completeness(b"whatever", None), Complete);
        assert_eq!(response_completeness(b"do\n", None), Complete);
        let id = RequestId::from(123);
        assert_eq!(response_completeness(b"12", None), Complete);
        assert_eq!(response_completeness(b"12", Some(&id)), NeedMore);
        assert_eq!(response_completeness(b"123", Some(&id)), NeedMore);
        assert_eq!(response_completeness(b"done", Some(&id)), Complete);
    }

    #[test]
    fn hex_shows_every_byte_as_two_digits() {
        assert_eq!(Hex(b"ok\n\x00").to_string(), "6f6b0a00");
    }

    #[test]
    fn length_limits_do_not_count_one_line_ending() {
        assert!(check_len(b"done", 4).is_ok());
        assert!(check_len(b"done\r", 4).is_ok());
        assert!(check_len(b"done\r\n", 4).is_ok());
        assert!(matches!(
            check_len(b"dones", 4),
            Err(DecodeError::TooLarge { len: 5, max: 4 })
        ));
    }
}
