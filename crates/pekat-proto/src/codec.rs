//! tokio-util codecs for both sides, thin wrappers over [`wire`].
//!
//! There is no delimiter on the wire, so a decoder yields a message as soon as what has arrived
//! can be a whole one (see [`wire`] for the rule), taking **all** buffered bytes.
//! A sender that splits one message over two writes can therefore be read as two messages; the
//! vendor's own server has the same limit. Use [`ServerCodec`] behind a short quiet period if
//! you need to be safe against that (the `server` module has one as an option).
//!
//! Line endings that arrive on their own between two messages are the late tail of the one
//! before (a `\r` and its `\n` in two TCP segments, or a whole `\r\n` written after the
//! request): neither decoder ever makes a message of them.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{DecodeError, EncodeError};
use crate::message::{BadRequest, BadRequestKind, Dialect, Reply, Request, RequestId, Terminator};
use crate::wire::{
    self, Completeness, DEFAULT_MAX_RESPONSE_LEN, Limits, check_len, is_only_line_endings,
};

/// What a server receives: a request, or one it could not understand (answer it with
/// [`BadRequest::reply`]).
pub type Incoming = Result<Request, BadRequest>;

/// The client side: encodes [`Request`]s, decodes [`Reply`]s.
#[derive(Debug, Clone)]
pub struct ClientCodec {
    dialect: Dialect,
    terminator: Terminator,
    max_response_len: usize,
    /// The id of the last request encoded, until its answer is decoded.
    in_flight_id: Option<RequestId>,
}

impl ClientCodec {
    /// A codec for `dialect` with the default answer limit ([`DEFAULT_MAX_RESPONSE_LEN`]).
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            terminator: Terminator::None,
            max_response_len: DEFAULT_MAX_RESPONSE_LEN,
            in_flight_id: None,
        }
    }

    /// A codec for `dialect` with `limits` (only [`Limits::max_response_len`] concerns a
    /// client).
    pub fn with_limits(dialect: Dialect, limits: Limits) -> Self {
        Self::new(dialect).with_max_response_len(limits.max_response_len)
    }

    /// The same codec with another limit for one answer (line ending not counted).
    #[must_use]
    pub fn with_max_response_len(mut self, max: usize) -> Self {
        self.max_response_len = max;
        self
    }

    /// The same codec writing `terminator` after each request ([`Terminator::None`], as in
    /// the vendor's example, by default).
    #[must_use]
    pub fn with_terminator(mut self, terminator: Terminator) -> Self {
        self.terminator = terminator;
        self
    }

    /// The dialect requests are written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// What is written after each request.
    pub fn terminator(&self) -> Terminator {
        self.terminator
    }

    /// Tells the decoder the id of the request in flight (encoding a request does this), so
    /// that an answer split right after the first digits of its echoed id is not taken whole.
    pub fn expect_id(&mut self, id: Option<RequestId>) {
        self.in_flight_id = id;
    }

    fn take(&mut self, buf: &mut BytesMut) -> BytesMut {
        self.in_flight_id = None;
        let msg = buf.split();
        tracing::trace!(hex = %wire::Hex(&msg), "answer bytes");
        msg
    }

    /// The bytes of one whole answer (its line ending included), framed as [`Decoder::decode`]
    /// frames a [`Reply`], without parsing them: for raw answers.
    pub(crate) fn decode_message(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<BytesMut>, DecodeError> {
        // An answer never starts with a line ending: any is the tail of the previous answer.
        let stray = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        buf.advance(stray);
        check_len(buf, self.max_response_len)?;
        match wire::response_completeness(buf, self.in_flight_id.as_ref()) {
            Completeness::NeedMore => Ok(None),
            Completeness::Complete => Ok(Some(self.take(buf))),
        }
    }

    /// [`ClientCodec::decode_message`] at the end of the stream.
    pub(crate) fn decode_message_eof(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<BytesMut>, DecodeError> {
        if is_only_line_endings(buf) {
            buf.clear();
            return Ok(None);
        }
        check_len(buf, self.max_response_len)?;
        Ok(Some(self.take(buf)))
    }
}

impl Decoder for ClientCodec {
    type Item = Reply;
    type Error = DecodeError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, DecodeError> {
        self.decode_message(buf)?
            .map(|msg| wire::parse_response(&msg))
            .transpose()
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, DecodeError> {
        self.decode_message_eof(buf)?
            .map(|msg| wire::parse_response(&msg))
            .transpose()
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, request: &Request, dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_request(request, self.dialect, dst)?;
        dst.extend_from_slice(self.terminator.as_bytes());
        self.in_flight_id.clone_from(&request.id);
        Ok(())
    }
}

impl Encoder<Request> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&request, dst)
    }
}

/// The server side: decodes requests ([`Incoming`]), encodes [`Reply`]s.
///
/// A request that is not understood is an item (`Err(BadRequest)`), not a decoder error: the
/// server answers it and the connection goes on. Too many bytes for one request is an item
/// too ([`BadRequestKind::TooLarge`], so that the client is told), but the stream cannot be
/// resynchronised after it: every later call is a [`DecodeError::TooLarge`], and the
/// connection should be closed.
///
/// Once a request has been taken, line endings that follow it are its late tail, never a
/// request of their own: they are dropped with the next request (or at the end of the stream)
/// and get no answer, so a `\r` and its `\n` in two TCP segments cannot put a connection out
/// of step. Only as the first bytes of a connection is a bare line ending an (empty) request,
/// answered as one.
#[derive(Debug, Clone)]
pub struct ServerCodec {
    dialect: Dialect,
    limits: Limits,
    /// Bytes buffered when a request grew past the limit, once that happened.
    overflowed: Option<usize>,
    /// Whether a request has been taken: leading line endings are then its late tail.
    took_request: bool,
}

impl ServerCodec {
    /// A codec for `dialect` with the default limits ([`DEFAULT_MAX_REQUEST_LEN`](crate::DEFAULT_MAX_REQUEST_LEN),
    /// [`DEFAULT_MAX_RESPONSE_LEN`]).
    pub fn new(dialect: Dialect) -> Self {
        Self::with_limits(dialect, Limits::default())
    }

    /// A codec for `dialect` with `limits`.
    pub fn with_limits(dialect: Dialect, limits: Limits) -> Self {
        Self {
            dialect,
            limits,
            overflowed: None,
            took_request: false,
        }
    }

    /// The same codec with another limit for one request (line ending not counted).
    #[must_use]
    pub fn with_max_request_len(mut self, max: usize) -> Self {
        self.limits.max_request_len = max;
        self
    }

    /// The same codec with another limit for one answer.
    #[must_use]
    pub fn with_max_response_len(mut self, max: usize) -> Self {
        self.limits.max_response_len = max;
        self
    }

    /// The dialect requests are read in and answers written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many bytes at the start of `buf` are line endings left over from the request
    /// before (none before the first request).
    pub(crate) fn late_line_endings(&self, buf: &[u8]) -> usize {
        if !self.took_request {
            return 0;
        }
        buf.iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count()
    }

    fn take(&mut self, buf: &mut BytesMut) -> Incoming {
        let late = self.late_line_endings(buf);
        if late > 0 {
            tracing::trace!(late, "late line ending dropped");
            buf.advance(late);
        }
        self.took_request = true;
        let msg = buf.split();
        tracing::trace!(hex = %wire::Hex(&msg), "request bytes");
        wire::parse_request(&msg, self.dialect)
    }

    /// The oversized request as an item the first time (its bytes dropped), an error ever
    /// after; `None` while the buffer is within the limit.
    fn refuse_oversized(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        let max = self.limits.max_request_len;
        if let Some(len) = self.overflowed {
            return Err(DecodeError::TooLarge { len, max });
        }
        if check_len(buf, max).is_ok() {
            return Ok(None);
        }
        let len = buf.len();
        buf.clear();
        self.overflowed = Some(len);
        let kind = BadRequestKind::TooLarge { len, max };
        Ok(Some(Err(BadRequest { id: None, kind })))
    }
}

impl Decoder for ServerCodec {
    type Item = Incoming;
    type Error = DecodeError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        if let Some(refused) = self.refuse_oversized(buf)? {
            return Ok(Some(refused));
        }
        // Late line endings stay buffered (nothing is consumed while more is needed) until a
        // request follows them; the limit above counts them, so they cannot pile up.
        let rest = buf.get(self.late_line_endings(buf)..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        match wire::request_completeness(rest, self.dialect) {
            Completeness::NeedMore => Ok(None),
            Completeness::Complete => Ok(Some(self.take(buf))),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        if let Some(refused) = self.refuse_oversized(buf)? {
            return Ok(Some(refused));
        }
        if buf.len() == self.late_line_endings(buf) {
            buf.clear();
            return Ok(None);
        }
        Ok(Some(self.take(buf)))
    }
}

impl Encoder<Reply> for ServerCodec {
    type Error = EncodeError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&reply, dst)
    }
}

impl Encoder<&Reply> for ServerCodec {
    type Error = EncodeError;

    fn encode(&mut self, reply: &Reply, dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_reply(reply, self.dialect, self.limits.max_response_len, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ProjectState, Response};

    #[test]
    fn client_codec_waits_for_a_split_answer_and_skips_a_late_line_ending() {
        let mut codec = ClientCodec::new(Dialect::V3_18);
        let mut buf = BytesMut::from(&b"runn"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"ing");
        let reply = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(reply.response, Response::Status(ProjectState::Running));
        buf.extend_from_slice(b"\r");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\n");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
        // An answer ended by a lone `\r` is whole; the `\n` that follows is skipped.
        buf.extend_from_slice(b"done\r");
        let reply = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(reply.response, Response::Done);
        // ... also when the next answer arrives with it.
        buf.extend_from_slice(b"\n7.suc:done");
        let reply = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(reply.id, Some(crate::RequestId::from(7)));
        buf.extend_from_slice(b"\n");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
    }

    #[test]
    fn client_codec_takes_a_partial_answer_at_eof() {
        let mut codec = ClientCodec::new(Dialect::V3_18);
        let mut buf = BytesMut::from(&b"do"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let reply = codec.decode_eof(&mut buf).unwrap().unwrap();
        assert_eq!(reply.response, Response::Other("do".into()));
    }

    #[test]
    fn an_oversized_answer_is_an_error_before_buffering_more() {
        let mut codec = ClientCodec::new(Dialect::V3_18);
        let mut buf = BytesMut::from(&[b'x'; 65][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::TooLarge { len: 65, max: 64 })
        ));
    }

    #[test]
    fn an_answer_that_is_not_utf8_is_consumed_and_reported() {
        let mut codec = ClientCodec::new(Dialect::V3_18);
        let mut buf = BytesMut::from(&b"\xff\xfe"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(!err.is_fatal());
        assert!(buf.is_empty());
    }

    #[test]
    fn server_codec_yields_bad_requests_as_items() {
        let mut codec = ServerCodec::new(Dialect::V3_19);
        let mut buf = BytesMut::from(&b"4.jump|x"[..]);
        let bad = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::UnknownCommand("jump".into()));
        let mut out = BytesMut::new();
        codec.encode(bad.reply(), &mut out).unwrap();
        assert_eq!(&out[..], b"4.err:invalid-command");
    }

    #[test]
    fn server_codec_answers_an_endless_request_then_refuses_to_go_on() {
        let limits = Limits {
            max_request_len: 16,
            ..Limits::default()
        };
        let mut codec = ServerCodec::with_limits(Dialect::V3_18, limits);
        let mut buf = BytesMut::from(&b"start:0123456789abcdef"[..]);
        let bad = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::TooLarge { len: 22, max: 16 });
        assert_eq!(bad.reply(), Reply::new(Response::UnknownCommand));
        assert!(buf.is_empty());
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::TooLarge { max: 16, .. })
        ));
        assert!(codec.decode_eof(&mut buf).is_err());
    }

    #[test]
    fn server_codec_never_makes_a_request_of_a_late_line_ending() {
        let mut codec = ServerCodec::new(Dialect::V3_18);
        // The first bytes of a connection: a bare line ending is an (empty) request.
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        let bad = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::Empty);
        // After a request, line endings are its tail: kept until a request follows them.
        for tail in [&b"\r"[..], b"\n", b"\r\n", b"\n\r\n"] {
            buf.extend_from_slice(b"stop:x");
            assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
            buf.extend_from_slice(tail);
            assert!(codec.decode(&mut buf).unwrap().is_none(), "{tail:?}");
            assert_eq!(&buf[..], tail, "nothing consumed while more is needed");
            buf.extend_from_slice(b"sta");
            assert!(codec.decode(&mut buf).unwrap().is_none(), "{tail:?}");
            buf.extend_from_slice(b"tus:C:\\p");
            let request = codec.decode(&mut buf).unwrap().unwrap().unwrap();
            assert_eq!(request, Request::status(r"C:\p"), "{tail:?}");
            assert!(buf.is_empty());
        }
        // At the end of the stream they are dropped, not taken.
        buf.extend_from_slice(b"\r\n");
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
        buf.extend_from_slice(b"\nsta");
        let bad = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::MissingSeparator(b':'));
    }

    #[test]
    fn server_codec_bounds_late_line_endings_by_the_request_limit() {
        let mut codec = ServerCodec::new(Dialect::V3_18).with_max_request_len(8);
        let mut buf = BytesMut::from(&b"stop:x"[..]);
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
        buf.extend_from_slice(&[b'\n'; 16]);
        let bad = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert!(matches!(bad.kind, BadRequestKind::TooLarge { max: 8, .. }));
    }

    #[test]
    fn client_codec_writes_the_terminator_after_each_request() {
        let mut out = BytesMut::new();
        let mut codec = ClientCodec::new(Dialect::V3_18);
        assert_eq!(codec.terminator(), Terminator::None);
        codec.encode(Request::stop("x"), &mut out).unwrap();
        let mut codec = codec.with_terminator(Terminator::CrLf);
        codec.encode(Request::stop("y"), &mut out).unwrap();
        assert_eq!(&out[..], b"stop:xstop:y\r\n");
    }

    #[test]
    fn server_codec_takes_a_partial_head_at_eof() {
        let mut codec = ServerCodec::new(Dialect::V3_18);
        let mut buf = BytesMut::from(&b"sta"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let bad = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::MissingSeparator(b':'));
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }
}
