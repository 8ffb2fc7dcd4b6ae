//! Sans-IO framing: a u32 big-endian payload length, then that many bytes of UTF-8 JSON.
//!
//! These functions work on plain byte slices and never allocate more than what has arrived;
//! [`crate::codec`] wraps them for tokio-util.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::message::{FastRequest, FastResponse};
use crate::{BadRequest, DecodeError, EncodeError, ParamKey, Request, Response};

/// Length of the frame header (the u32 length prefix).
pub const HEADER_LEN: usize = 4;

/// Default maximum payload length: 16 MiB. Large enough for long measurement data sets
/// (a JV scan or a spectrum with tens of thousands of points), small enough that a corrupt or
/// hostile header cannot make a peer allocate gigabytes.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// The bounds every decoder and encoder enforces. Public fields; start from
/// [`Limits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted and produced ([`DEFAULT_MAX_FRAME_LENGTH`]); checked against
    /// the length prefix before anything is reserved.
    pub max_frame_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
        }
    }
}

/// Finds the first frame in `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the payload slice and the number of bytes
/// the whole frame occupies (header included).
///
/// # Errors
/// [`DecodeError::FrameTooLarge`] as soon as the header is readable and claims more than
/// `max_frame_length`.
pub fn split_frame(
    buf: &[u8],
    max_frame_length: usize,
) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(len) = frame_length(buf, max_frame_length)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + len;
    Ok(buf.get(HEADER_LEN..total).map(|payload| (payload, total)))
}

/// How long the frame at the start of `buf` is, its header included, once its length prefix
/// has arrived (`None` before). Not checked against a limit (the codec does that first): this is
/// what a server's frame budget reads to allocate a frame once
/// (`labwire_net::budget::ClaimedLength`).
pub fn claimed_length(buf: &[u8]) -> Option<usize> {
    let prefix = buf.first_chunk::<HEADER_LEN>()?;
    usize::try_from(u32::from_be_bytes(*prefix))
        .ok()?
        .checked_add(HEADER_LEN)
}

/// Reads and checks the header: `Ok(None)` when fewer than 4 bytes are there, otherwise the
/// payload length (not yet necessarily arrived).
///
/// # Errors
/// [`DecodeError::FrameTooLarge`] when the length exceeds `max_frame_length`.
pub fn frame_length(buf: &[u8], max_frame_length: usize) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header);
    match usize::try_from(len) {
        Ok(len) if len <= max_frame_length => Ok(Some(len)),
        _ => Err(DecodeError::FrameTooLarge {
            len: u64::from(len),
            max: max_frame_length,
        }),
    }
}

/// Decodes a payload as lenient JSON (see [`crate::json`]); a payload that fails and is not
/// UTF-8 is reported as [`DecodeError::InvalidUtf8`].
///
/// # Errors
/// [`DecodeError::InvalidUtf8`] or [`DecodeError::InvalidJson`].
pub fn parse_payload(payload: &[u8]) -> Result<Value, DecodeError> {
    // Valid payloads take serde_json's path alone; the UTF-8 check only classifies failures.
    crate::json::parse(payload).map_err(|e| match std::str::from_utf8(payload) {
        Err(utf8) => DecodeError::InvalidUtf8(utf8),
        Ok(_) => DecodeError::InvalidJson(e),
    })
}

/// Decodes a request payload.
///
/// # Errors
/// Any payload error ([`DecodeError::InvalidUtf8`], [`DecodeError::InvalidJson`],
/// [`DecodeError::InvalidMessage`]).
pub fn decode_request(payload: &[u8]) -> Result<Request, DecodeError> {
    match fast::<FastRequest>(payload) {
        Some(FastRequest(request)) => Ok(request),
        None => Request::from_value(parse_payload(payload)?),
    }
}

/// Decodes a request payload on the device side, where a payload that is not a request is
/// answered rather than fatal: the error comes with the payload's `request_id` when it could
/// be read, for the error reply ([`BadRequest::response`]) to echo.
///
/// # Errors
/// [`BadRequest`] with any payload error.
pub fn decode_incoming(payload: &[u8]) -> Result<Request, BadRequest> {
    if let Some(FastRequest(request)) = fast(payload) {
        return Ok(request);
    }
    let value = parse_payload(payload).map_err(|error| BadRequest {
        error,
        request_id: None,
    })?;
    let request_id = value.get("request_id").and_then(Value::as_u64);
    Request::from_value(value).map_err(|error| BadRequest { error, request_id })
}

/// Decodes a response payload.
///
/// # Errors
/// Any payload error ([`DecodeError::InvalidUtf8`], [`DecodeError::InvalidJson`],
/// [`DecodeError::InvalidMessage`]).
//
// `#[inline]`: the decoder (`serde_json`'s `Value` parser above all) is then compiled in the
// caller's crate, as the caller's own `serde_json` calls are. Compiled in this crate, the same
// instructions (callgrind: 0.5 % fewer than a derived struct's) ran about 12 % slower on a
// large `data`: `serde_json`'s number parsing placed and inlined differently among this
// crate's codegen units (issue 11).
#[inline]
pub fn decode_response(payload: &[u8]) -> Result<Response, DecodeError> {
    match fast::<FastResponse>(payload) {
        Some(FastResponse(response)) => Ok(response),
        None => Response::from_value(parse_payload(payload)?),
    }
}

/// The fast path: the message deserialized straight from the payload (with the non-finite
/// tokens quoted first when there are any, as [`crate::json::parse`] does), or `None` for
/// the slow path to decide — it gives the same message and the right error, so a payload the
/// fast path gives up on decodes exactly as before, only slower.
fn fast<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    if let Ok(message) = serde_json::from_slice(payload) {
        return Some(message);
    }
    let quoted = crate::json::quote_non_finite(payload)?;
    serde_json::from_slice(&quoted).ok()
}

/// Appends one frame (header and payload, contiguous) to `dst`.
///
/// # Errors
/// [`EncodeError::FrameTooLarge`] when `payload` is longer than `max_frame_length` (or than
/// a u32 can say); `dst` is left unchanged.
pub fn encode_frame(
    payload: &[u8],
    max_frame_length: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let too_large = || EncodeError::FrameTooLarge {
        len: payload.len(),
        max: max_frame_length,
    };
    if payload.len() > max_frame_length {
        return Err(too_large());
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_u32(len);
    dst.extend_from_slice(payload);
    Ok(())
}

/// Serializes `message` as JSON and appends it as one frame to `dst`.
///
/// The JSON is written straight after a placeholder header, which is then filled in, so the
/// frame is built in one buffer without an intermediate copy.
///
/// # Errors
/// [`EncodeError::Json`] or [`EncodeError::FrameTooLarge`]; `dst` is left unchanged.
pub fn encode_json<T: Serialize + ?Sized>(
    message: &T,
    max_frame_length: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_with(max_frame_length, dst, |dst| {
        message.serialize(&mut serde_json::Serializer::new(Appender(dst)))
    })
}

/// Appends one frame whose payload `write` appends, checking its length afterwards.
fn encode_with(
    max_frame_length: usize,
    dst: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> serde_json::Result<()>,
) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.put_u32(0);
    let result = write(dst);
    let len = dst.len() - start - HEADER_LEN;
    let checked = match result {
        Err(e) => Err(EncodeError::Json(e)),
        Ok(()) if len > max_frame_length => Err(EncodeError::FrameTooLarge {
            len,
            max: max_frame_length,
        }),
        Ok(()) => u32::try_from(len).map_err(|_| EncodeError::FrameTooLarge {
            len,
            max: max_frame_length,
        }),
    };
    match checked {
        Ok(len) => {
            if let Some(header) = dst.get_mut(start..start + HEADER_LEN) {
                header.copy_from_slice(&len.to_be_bytes());
            }
            Ok(())
        }
        Err(e) => {
            dst.truncate(start);
            Err(e)
        }
    }
}

/// `dst` as the [`std::io::Write`] `serde_json` writes to, appending each piece with one
/// `extend_from_slice`. `serde_json` writes a message in many small pieces (a brace, a quote, a
/// key); through `BufMut::writer` each went through the default `write_all` loop, which made
/// encoding three times as slow as `serde_json` into a `Vec`. Passed to the serializer by value:
/// through a `&mut` the calls were not inlined.
struct Appender<'a>(&'a mut BytesMut);

impl std::io::Write for Appender<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }

    #[inline]
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes a request as one frame, writing its parameters under `key`.
///
/// # Errors
/// See [`encode_json`].
pub fn encode_request(
    request: &Request,
    key: ParamKey,
    max_frame_length: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_with(max_frame_length, dst, |dst| {
        write_request(dst, request, key)
    })
}

/// Encodes a response as one frame.
///
/// # Errors
/// See [`encode_json`].
pub fn encode_response(
    response: &Response,
    max_frame_length: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_with(max_frame_length, dst, |dst| write_response(dst, response))
}

/// Appends `value` as JSON.
fn write_value<T: Serialize + ?Sized>(dst: &mut BytesMut, value: &T) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::new(Appender(dst)))
}

/// Appends `request` as JSON: the bytes its `Serialize` impl makes `serde_json` write
/// (`{"target":…,"command":…,"<key>":{…},"request_id":…}`), with the fixed parts appended whole
/// rather than brace, quote and key one piece at a time. The values go through `serde_json`.
fn write_request(dst: &mut BytesMut, request: &Request, key: ParamKey) -> serde_json::Result<()> {
    dst.extend_from_slice(b"{\"target\":");
    write_value(dst, request.target.as_str())?;
    dst.extend_from_slice(b",\"command\":");
    write_value(dst, &request.command)?;
    dst.extend_from_slice(match key {
        ParamKey::Parameter => b",\"parameter\":",
        ParamKey::Params => b",\"params\":",
    });
    write_value(dst, &request.parameter)?;
    if let Some(id) = request.request_id {
        dst.extend_from_slice(b",\"request_id\":");
        write_value(dst, &id)?;
    }
    dst.extend_from_slice(b"}");
    Ok(())
}

/// Appends `response` as JSON: the bytes its `Serialize` impl makes `serde_json` write, with
/// the fixed parts appended whole (see [`write_request`]).
fn write_response(dst: &mut BytesMut, response: &Response) -> serde_json::Result<()> {
    let mut first = true;
    let mut key = |dst: &mut BytesMut, key: &[u8]| {
        dst.extend_from_slice(if first { b"{" } else { b"," });
        first = false;
        dst.extend_from_slice(key);
    };
    if let Some(status) = &response.status {
        key(dst, b"\"status\":");
        write_value(dst, status.as_str())?;
    }
    if let Some(data) = &response.data {
        key(dst, b"\"data\":");
        write_value(dst, data)?;
    }
    if let Some(error) = &response.error {
        key(dst, b"\"error\":");
        write_value(dst, error)?;
    }
    if let Some(id) = response.request_id {
        key(dst, b"\"request_id\":");
        write_value(dst, &id)?;
    }
    for (name, value) in &response.extra {
        if !matches!(
            name.as_str(),
            "status" | "state" | "data" | "error" | "request_id"
        ) {
            key(dst, b"");
            write_value(dst, name)?;
            dst.extend_from_slice(b":");
            write_value(dst, value)?;
        }
    }
    dst.extend_from_slice(if first { b"{}" } else { b"}" });
    Ok(())
}

/// Formats bytes as hex for `trace` logs, cut after [`Hex::MAX_SHOWN`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl Hex<'_> {
    /// Bytes shown before the output is cut short.
    pub const MAX_SHOWN: usize = 512;
}

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.get(..Self::MAX_SHOWN).unwrap_or(self.0);
        for b in shown {
            write!(f, "{b:02x}")?;
        }
        if shown.len() < self.0.len() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    #[test]
    fn a_frame_is_a_big_endian_length_then_the_payload() {
        let mut buf = BytesMut::new();
        encode_frame(b"{}", 16, &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x00\x00\x00\x02{}");
        assert_eq!(split_frame(&buf, 16).unwrap(), Some((&b"{}"[..], 6)));
    }

    #[test]
    fn header_claiming_four_gib_is_rejected_before_the_payload_arrives() {
        let err = split_frame(&[0xFF, 0xFF, 0xFF, 0xFF], DEFAULT_MAX_FRAME_LENGTH).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::FrameTooLarge {
                len: 0xFFFF_FFFF,
                ..
            }
        ));
        assert!(err.is_fatal());
    }

    #[test]
    fn incomplete_header_or_payload_needs_more() {
        assert_eq!(split_frame(&[0, 0, 0], 16).unwrap(), None);
        assert_eq!(split_frame(&[0, 0, 0, 3, b'{'], 16).unwrap(), None);
    }

    #[test]
    fn zero_length_frame_is_a_frame_with_an_invalid_payload() {
        let (payload, used) = split_frame(&[0, 0, 0, 0], 16).unwrap().unwrap();
        assert_eq!(used, 4);
        assert!(matches!(
            decode_request(payload),
            Err(DecodeError::InvalidJson(_))
        ));
    }

    #[test]
    fn non_utf8_payload_is_invalid_utf8() {
        let err = decode_response(&[b'"', 0xFF, b'"']).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidUtf8(_)));
        assert!(!err.is_fatal());
    }

    #[test]
    fn encoder_enforces_the_limit_and_leaves_the_buffer_untouched() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        let r = Request::new(Target::Main, "GetAvailableRoutines");
        let err = encode_request(&r, ParamKey::Parameter, 10, &mut buf).unwrap_err();
        assert!(matches!(err, EncodeError::FrameTooLarge { max: 10, .. }));
        assert_eq!(&buf[..], b"xy");
        assert!(encode_frame(&[0; 11], 10, &mut buf).is_err());
        assert_eq!(&buf[..], b"xy");
    }

    #[test]
    fn encode_json_writes_a_correct_header() {
        let mut buf = BytesMut::new();
        let r = Request::new(Target::Main, "GetActiveRoutine").with_request_id(1);
        encode_request(&r, ParamKey::Params, 1024, &mut buf).unwrap();
        let (payload, used) = split_frame(&buf, 1024).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(decode_request(payload).unwrap(), r);
        assert!(
            std::str::from_utf8(payload)
                .unwrap()
                .contains("\"params\":{}")
        );
    }

    #[test]
    fn hex_is_cut_short_for_long_frames() {
        assert_eq!(Hex(&[0, 0xab]).to_string(), "00ab");
        let long = Hex(&[0; 600]).to_string();
        assert!(long.ends_with("... (600 bytes)"));
    }
}
