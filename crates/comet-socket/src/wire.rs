//! The COMET frame, sans IO: pure functions over byte buffers.
//!
//! ```text
//! u16 big-endian H | H bytes: JSON header | content-length bytes: content
//! ```
//!
//! The header is `{"byteorder": "little", "content-type": "text/json", "content-encoding":
//! "utf-8", "content-length": N}`, written with these keys in this order and Python's
//! separators, so our frames are byte-identical to COMET's. On receipt all four keys are
//! required, in any order, and other keys are ignored, as COMET does.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

use crate::error::{DecodeError, EncodeError};

/// Content type of JSON content.
pub const CONTENT_TYPE_JSON: &str = "text/json";
/// Content type a COMET server gives its answer to binary content.
pub const CONTENT_TYPE_SERVER_BINARY: &str = "binary/custom-server-binary-type";
/// Content type COMET's client gives binary content.
pub const CONTENT_TYPE_CLIENT_BINARY: &str = "binary/custom-client-binary-type";
/// Content encoding of JSON content.
pub const ENCODING_UTF8: &str = "utf-8";
/// Content encoding a COMET server gives binary answers.
pub const ENCODING_BINARY: &str = "binary";
/// The `byteorder` COMET writes (Python's `sys.byteorder` on x86 and ARM); never used.
pub const BYTEORDER_LITTLE: &str = "little";

/// Length of the header-length prefix.
pub const PREFIX_LEN: usize = 2;
/// Default limit on the JSON header (COMET's headers are about 110 bytes).
pub const DEFAULT_MAX_HEADER_LENGTH: usize = 1024;
/// Default limit on the content: 16 MiB.
pub const DEFAULT_MAX_CONTENT_LENGTH: usize = 16 * 1024 * 1024;

/// Size limits, checked before any memory is reserved and on encode too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON header accepted or written; never more than `u16::MAX` in effect.
    pub max_header_length: usize,
    /// Largest content accepted or written.
    pub max_content_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_length: DEFAULT_MAX_HEADER_LENGTH,
            max_content_length: DEFAULT_MAX_CONTENT_LENGTH,
        }
    }
}

impl Limits {
    fn header_max(&self) -> usize {
        self.max_header_length.min(usize::from(u16::MAX))
    }
}

/// One COMET frame: the header fields and the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `byteorder` header value; COMET never uses it.
    pub byteorder: String,
    /// `content-type`: exactly `text/json` means JSON, anything else is binary.
    pub content_type: String,
    /// `content-encoding`: the text encoding of JSON content (`utf-8`).
    pub content_encoding: String,
    /// The content; its length is the header's `content-length`.
    pub content: Bytes,
}

impl Frame {
    /// A JSON frame (`text/json`, `utf-8`, `little`) around already-encoded content.
    pub fn json(content: impl Into<Bytes>) -> Self {
        Self {
            byteorder: BYTEORDER_LITTLE.to_owned(),
            content_type: CONTENT_TYPE_JSON.to_owned(),
            content_encoding: ENCODING_UTF8.to_owned(),
            content: content.into(),
        }
    }

    /// A binary frame with the given content type (encoding `binary`, as COMET's server writes).
    pub fn binary(content_type: impl Into<String>, content: impl Into<Bytes>) -> Self {
        Self {
            byteorder: BYTEORDER_LITTLE.to_owned(),
            content_type: content_type.into(),
            content_encoding: ENCODING_BINARY.to_owned(),
            content: content.into(),
        }
    }

    /// Whether the content is JSON (content type exactly `text/json`, as COMET decides).
    pub fn is_json(&self) -> bool {
        self.content_type == CONTENT_TYPE_JSON
    }

    /// Whether the content is falsy as COMET sees it: for JSON content, a falsy value or
    /// nothing ([`json::is_falsy_content`](crate::json::is_falsy_content)); for binary content,
    /// no bytes at all (COMET holds binary content as Python `bytes`, falsy when empty).
    ///
    /// A real COMET server that receives such a request spins at 100 % CPU and never answers,
    /// whatever the content type; the client refuses to send it.
    pub fn has_falsy_content(&self) -> bool {
        if self.is_json() {
            crate::json::is_falsy_content(&self.content)
        } else {
            self.content.is_empty()
        }
    }

    /// The JSON header exactly as COMET writes it.
    ///
    /// # Errors
    /// Never for string fields; kept fallible for symmetry with the encoders.
    pub fn header_json(&self) -> Result<Vec<u8>, EncodeError> {
        let mut header = Vec::with_capacity(HEADER_CAPACITY + self.content_type.len());
        self.write_header(&mut header)?;
        Ok(header)
    }

    /// Appends [`Frame::header_json`] to `out`.
    fn write_header<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        out.put_slice(b"{\"byteorder\": ");
        put_json_string(out, &self.byteorder)?;
        out.put_slice(b", \"content-type\": ");
        put_json_string(out, &self.content_type)?;
        out.put_slice(b", \"content-encoding\": ");
        put_json_string(out, &self.content_encoding)?;
        out.put_slice(b", \"content-length\": ");
        put_decimal(out, self.content.len());
        out.put_u8(b'}');
        Ok(())
    }

    /// The length of [`Frame::header_json`], without writing it.
    fn header_len(&self) -> Option<usize> {
        let strings = [&self.byteorder, &self.content_type, &self.content_encoding];
        let mut len = HEADER_FIXED_LEN + decimal_len(self.content.len());
        for s in strings {
            len += 2 + s.len();
            if needs_escape(s) {
                return None;
            }
        }
        Some(len)
    }
}

/// The header's bytes besides its three strings' contents and the length's digits.
const HEADER_FIXED_LEN: usize =
    r#"{"byteorder": , "content-type": , "content-encoding": , "content-length": }"#.len();
/// Room for a usual header, so that writing one allocates once.
const HEADER_CAPACITY: usize = 112;

/// Whether JSON (and Python's `json.dumps`) writes `s` other than as its bytes between quotes.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

fn put_json_string<B: BufMut>(out: &mut B, s: &str) -> Result<(), EncodeError> {
    if needs_escape(s) {
        let escaped = crate::json::to_vec(s).map_err(|e| EncodeError::Json(e.to_string()))?;
        out.put_slice(&escaped);
    } else {
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
    }
    Ok(())
}

fn decimal_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn put_decimal<B: BufMut>(out: &mut B, n: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            // `rest % 10` is below 10.
            *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        }
        rest /= 10;
        if rest == 0 || start == 0 {
            break;
        }
    }
    out.put_slice(digits.get(start..).unwrap_or_default());
}

/// Appends the encoded `frame` to `dst` (nothing is appended on error).
///
/// # Errors
/// [`EncodeError::ContentTooLong`] or [`EncodeError::HeaderTooLong`] past `limits`.
pub fn encode(frame: &Frame, limits: &Limits, dst: &mut BytesMut) -> Result<(), EncodeError> {
    if frame.content.len() > limits.max_content_length {
        return Err(EncodeError::ContentTooLong {
            len: frame.content.len(),
            max: limits.max_content_length,
        });
    }
    let max = limits.header_max();
    let prefix = |len: usize| match u16::try_from(len) {
        Ok(prefix) if len <= max => Ok(prefix),
        _ => Err(EncodeError::HeaderTooLong { len, max }),
    };
    match frame.header_len() {
        // The usual case: the header's length is known without writing it, so it is written
        // straight into `dst`, after the prefix that announces it.
        Some(header_len) => {
            let prefix = prefix(header_len)?;
            dst.reserve(PREFIX_LEN + header_len + frame.content.len());
            dst.put_u16(prefix);
            frame.write_header(dst)?;
        }
        None => {
            let header = frame.header_json()?;
            let prefix = prefix(header.len())?;
            dst.reserve(PREFIX_LEN + header.len() + frame.content.len());
            dst.put_u16(prefix);
            dst.extend_from_slice(&header);
        }
    }
    dst.extend_from_slice(&frame.content);
    Ok(())
}

/// Appends a JSON frame around `content` to `dst`: what [`encode`] appends for
/// `Frame::json(content)`, without building the frame (nothing is appended on error).
///
/// # Errors
/// [`EncodeError::ContentTooLong`] or [`EncodeError::HeaderTooLong`] past `limits`.
pub fn encode_json(content: &[u8], limits: &Limits, dst: &mut BytesMut) -> Result<(), EncodeError> {
    if content.len() > limits.max_content_length {
        return Err(EncodeError::ContentTooLong {
            len: content.len(),
            max: limits.max_content_length,
        });
    }
    let header_len = CANONICAL_HEADER_START.len() + decimal_len(content.len()) + 1;
    let max = limits.header_max();
    let prefix = match u16::try_from(header_len) {
        Ok(prefix) if header_len <= max => prefix,
        _ => {
            return Err(EncodeError::HeaderTooLong {
                len: header_len,
                max,
            });
        }
    };
    dst.reserve(PREFIX_LEN + header_len + content.len());
    dst.put_u16(prefix);
    dst.put_slice(CANONICAL_HEADER_START);
    put_decimal(dst, content.len());
    dst.put_u8(b'}');
    dst.extend_from_slice(content);
    Ok(())
}

/// [`encode_json`] as one buffer, ready for a single write.
///
/// # Errors
/// As [`encode_json`].
pub fn encode_json_to_bytes(content: &[u8], limits: &Limits) -> Result<Bytes, EncodeError> {
    let mut dst = BytesMut::new();
    encode_json(content, limits, &mut dst)?;
    Ok(dst.freeze())
}

/// The encoded `frame` as one buffer, ready for a single write.
///
/// # Errors
/// As [`encode`].
pub fn encode_to_bytes(frame: &Frame, limits: &Limits) -> Result<Bytes, EncodeError> {
    let mut dst = BytesMut::new();
    encode(frame, limits, &mut dst)?;
    Ok(dst.freeze())
}

/// A parsed header: everything about a frame but its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `byteorder` header value.
    pub byteorder: String,
    /// `content-type` header value.
    pub content_type: String,
    /// `content-encoding` header value.
    pub content_encoding: String,
    /// `content-length`, already checked against the limit.
    pub content_length: usize,
    /// Offset of the content: the prefix plus the header.
    pub header_end: usize,
}

impl Head {
    /// Length of the whole frame.
    pub fn frame_len(&self) -> usize {
        self.header_end + self.content_length
    }

    /// The frame, given its content.
    pub fn into_frame(self, content: Bytes) -> Frame {
        Frame {
            byteorder: self.byteorder,
            content_type: self.content_type,
            content_encoding: self.content_encoding,
            content,
        }
    }
}

/// How long the frame at the start of `buf` is, once its prefix and header have arrived
/// (`None` before, or when the header is invalid: the codec reports that). Not checked against
/// the content limit (the codec does that first): this is what a server's frame budget reads to
/// allocate a frame once (`labwire_net::budget::ClaimedLength`).
pub fn claimed_length(buf: &[u8]) -> Option<usize> {
    let limits = Limits {
        max_header_length: usize::MAX,
        max_content_length: usize::MAX,
    };
    decode_head(buf, &limits)
        .ok()
        .flatten()
        .map(|head| head.frame_len())
}

/// Parses the prefix and header at the start of `buf`.
///
/// `Ok(None)` means more bytes are needed. Limits are enforced as soon as the lengths are
/// known: a prefix announcing a header over the limit fails after 2 bytes, a header announcing
/// content over the limit fails before any content is awaited.
///
/// # Errors
/// Any header problem as a [`DecodeError`].
pub fn decode_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, DecodeError> {
    let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
        return Ok(None);
    };
    let header_len = usize::from(u16::from_be_bytes(*prefix));
    let max = limits.header_max();
    if header_len > max {
        return Err(DecodeError::HeaderTooLong {
            len: header_len,
            max,
        });
    }
    let header_end = PREFIX_LEN + header_len;
    let Some(header) = buf.get(PREFIX_LEN..header_end) else {
        return Ok(None);
    };
    if let Some(head) = canonical_head(header, header_end, limits)? {
        return Ok(Some(head));
    }
    const KEYS: [&str; 4] = [
        "byteorder",
        "content-length",
        "content-type",
        "content-encoding",
    ];
    let [byteorder, content_length, content_type, content_encoding] =
        match crate::json::pick_members(header, KEYS) {
            Ok(Some(members)) => members,
            Ok(None) => return Err(DecodeError::HeaderNotObject),
            Err(e) => {
                return Err(DecodeError::InvalidHeaderJson {
                    reason: e.to_string(),
                });
            }
        };
    // COMET checks the keys in this order.
    for (key, member) in KEYS.into_iter().zip([
        &byteorder,
        &content_length,
        &content_type,
        &content_encoding,
    ]) {
        if member.is_none() {
            return Err(DecodeError::MissingHeaderField(key));
        }
    }
    let content_length =
        content_length
            .as_ref()
            .and_then(Value::as_u64)
            .ok_or(DecodeError::InvalidHeaderField {
                field: "content-length",
                reason: "expected a non-negative integer",
            })?;
    let content_length = match usize::try_from(content_length) {
        Ok(len) if len <= limits.max_content_length => len,
        _ => {
            return Err(DecodeError::ContentTooLong {
                len: content_length,
                max: limits.max_content_length,
            });
        }
    };
    let string_field = |field: &'static str, value: Option<Value>| match value {
        Some(Value::String(s)) => Ok(s),
        _ => Err(DecodeError::InvalidHeaderField {
            field,
            reason: "expected a string",
        }),
    };
    Ok(Some(Head {
        byteorder: string_field("byteorder", byteorder)?,
        content_type: string_field("content-type", content_type)?,
        content_encoding: string_field("content-encoding", content_encoding)?,
        content_length,
        header_end,
    }))
}

/// The header COMET and labwire write for JSON content, up to the content length's digits.
const CANONICAL_HEADER_START: &[u8] = br#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": "#;

/// The header read without a JSON parser when it is byte for byte the one COMET writes for
/// JSON content (nearly every header): the same [`Head`] the parser would give, or `Ok(None)`
/// for any other header, which the parser reads.
///
/// # Errors
/// [`DecodeError::ContentTooLong`], as the parser would report it.
fn canonical_head(
    header: &[u8],
    header_end: usize,
    limits: &Limits,
) -> Result<Option<Head>, DecodeError> {
    let Some(digits) = header
        .strip_prefix(CANONICAL_HEADER_START)
        .and_then(|rest| rest.strip_suffix(b"}"))
    else {
        return Ok(None);
    };
    // A JSON integer: no sign, no leading zero, and here no more than u64 holds (a longer one
    // the parser reads as a float, which it refuses as a length).
    let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
    if digits.is_empty() || leading_zero || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let mut content_length = 0_u64;
    for &digit in digits {
        match content_length
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit - b'0')))
        {
            Some(n) => content_length = n,
            None => return Ok(None),
        }
    }
    let content_length = match usize::try_from(content_length) {
        Ok(len) if len <= limits.max_content_length => len,
        _ => {
            return Err(DecodeError::ContentTooLong {
                len: content_length,
                max: limits.max_content_length,
            });
        }
    };
    Ok(Some(Head {
        byteorder: BYTEORDER_LITTLE.to_owned(),
        content_type: CONTENT_TYPE_JSON.to_owned(),
        content_encoding: ENCODING_UTF8.to_owned(),
        content_length,
        header_end,
    }))
}

/// Parses one frame at the start of `buf`; returns it and the bytes it used, or `Ok(None)` when
/// more bytes are needed. Bytes after the frame are not looked at.
///
/// # Errors
/// As [`decode_head`].
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, DecodeError> {
    let Some(head) = decode_head(buf, limits)? else {
        return Ok(None);
    };
    let end = head.frame_len();
    let Some(content) = buf.get(head.header_end..end) else {
        return Ok(None);
    };
    let content = Bytes::copy_from_slice(content);
    Ok(Some((head.into_frame(content), end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(header: &str, content: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(header.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn falsy_content_is_falsy_whatever_the_content_type() {
        assert!(Frame::binary(CONTENT_TYPE_CLIENT_BINARY, Bytes::new()).has_falsy_content());
        assert!(!Frame::binary(CONTENT_TYPE_CLIENT_BINARY, &b"\0"[..]).has_falsy_content());
        // Binary content is bytes to COMET, never parsed: `{}` is two truthy bytes.
        assert!(!Frame::binary(CONTENT_TYPE_CLIENT_BINARY, &b"{}"[..]).has_falsy_content());
        assert!(Frame::json(&b"{}"[..]).has_falsy_content());
        assert!(Frame::json(Bytes::new()).has_falsy_content());
        assert!(!Frame::json(&b"NaN"[..]).has_falsy_content());
    }

    #[test]
    fn header_is_written_byte_for_byte_as_comet_writes_it() {
        let frame = Frame::json(&b"{\"result\": null}"[..]);
        let bytes = encode_to_bytes(&frame, &Limits::default()).unwrap();
        let expected = frame_bytes(
            r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 16}"#,
            b"{\"result\": null}",
        );
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(&bytes[..2], &[0x00, 0x67]);
    }

    #[test]
    fn a_json_frame_is_written_the_same_with_or_without_a_frame() {
        for content in [&b""[..], b"{}", &[b'x'; 12345][..]] {
            let limits = Limits::default();
            assert_eq!(
                encode_json_to_bytes(content, &limits).unwrap(),
                encode_to_bytes(&Frame::json(content.to_vec()), &limits).unwrap()
            );
        }
        let limits = Limits {
            max_header_length: 100,
            max_content_length: 4,
        };
        assert_eq!(
            encode_json_to_bytes(b"12345", &limits).unwrap_err(),
            EncodeError::ContentTooLong { len: 5, max: 4 }
        );
        let limits = Limits {
            max_header_length: 100,
            ..Limits::default()
        };
        assert!(matches!(
            encode_json_to_bytes(b"{}", &limits).unwrap_err(),
            EncodeError::HeaderTooLong { max: 100, .. }
        ));
        let mut dst = BytesMut::from(&b"kept"[..]);
        assert!(encode_json(b"{}", &limits, &mut dst).is_err());
        assert_eq!(&dst[..], b"kept");
    }

    #[test]
    fn header_keys_are_accepted_in_any_order_with_extra_keys() {
        let bytes = frame_bytes(
            r#"{"content-length":2,"x":1,"content-encoding":"utf-8","content-type":"text/json","byteorder":"big"}"#,
            b"{}trailing",
        );
        let (frame, used) = decode(&bytes, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, bytes.len() - "trailing".len());
        assert_eq!(&frame.content[..], b"{}");
        assert_eq!(frame.byteorder, "big");
        assert!(frame.is_json());
    }

    #[test]
    fn each_missing_header_key_is_named() {
        for (missing, header) in [
            (
                "byteorder",
                r#"{"content-type": "text/json", "content-encoding": "utf-8", "content-length": 0}"#,
            ),
            (
                "content-length",
                r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8"}"#,
            ),
            (
                "content-type",
                r#"{"byteorder": "little", "content-encoding": "utf-8", "content-length": 0}"#,
            ),
            (
                "content-encoding",
                r#"{"byteorder": "little", "content-type": "text/json", "content-length": 0}"#,
            ),
        ] {
            let err = decode(&frame_bytes(header, b""), &Limits::default()).unwrap_err();
            assert_eq!(err, DecodeError::MissingHeaderField(missing));
        }
    }

    #[test]
    fn header_over_the_limit_fails_after_the_prefix_alone() {
        let limits = Limits {
            max_header_length: 100,
            ..Limits::default()
        };
        let err = decode(&[0x00, 0x65], &limits).unwrap_err();
        assert_eq!(err, DecodeError::HeaderTooLong { len: 101, max: 100 });
    }

    #[test]
    fn huge_content_length_fails_before_any_content_arrives() {
        let bytes = frame_bytes(
            r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 18446744073709551615}"#,
            b"",
        );
        let err = decode(&bytes, &Limits::default()).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::ContentTooLong { len: u64::MAX, .. }
        ));
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let limits = Limits::default();
        type Check = fn(&DecodeError) -> bool;
        let cases: [(&str, Check); 5] = [
            ("", |e| matches!(e, DecodeError::InvalidHeaderJson { .. })),
            ("[1]", |e| matches!(e, DecodeError::HeaderNotObject)),
            (
                r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": -1}"#,
                |e| {
                    matches!(
                        e,
                        DecodeError::InvalidHeaderField {
                            field: "content-length",
                            ..
                        }
                    )
                },
            ),
            (
                r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 1.0}"#,
                |e| {
                    matches!(
                        e,
                        DecodeError::InvalidHeaderField {
                            field: "content-length",
                            ..
                        }
                    )
                },
            ),
            (
                r#"{"byteorder": "little", "content-type": 5, "content-encoding": "utf-8", "content-length": 0}"#,
                |e| {
                    matches!(
                        e,
                        DecodeError::InvalidHeaderField {
                            field: "content-type",
                            ..
                        }
                    )
                },
            ),
        ];
        for (header, check) in cases {
            let err = decode(&frame_bytes(header, b""), &limits).unwrap_err();
            assert!(check(&err), "{header}: {err:?}");
        }
    }

    #[test]
    fn encode_refuses_content_over_the_limit() {
        let limits = Limits {
            max_content_length: 4,
            ..Limits::default()
        };
        let err = encode_to_bytes(&Frame::json(&b"12345"[..]), &limits).unwrap_err();
        assert_eq!(err, EncodeError::ContentTooLong { len: 5, max: 4 });
    }

    #[test]
    fn encode_refuses_a_header_the_prefix_cannot_announce() {
        let frame = Frame::binary("x".repeat(70_000), Bytes::new());
        let limits = Limits {
            max_header_length: usize::MAX,
            ..Limits::default()
        };
        let err = encode_to_bytes(&frame, &limits).unwrap_err();
        assert!(matches!(err, EncodeError::HeaderTooLong { max: 65535, .. }));
    }
}
