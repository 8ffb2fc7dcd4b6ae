//! tokio-util codecs for both sides, thin wrappers over [`wire`].
//!
//! There is no delimiter on the wire, so a decoder yields a message as soon as what has arrived
//! can be a whole one (see [`wire`] for the rule), taking **all** buffered bytes.
//! A sender that splits one message over two writes can therefore be read as two messages; the
//! vendor's own server has the same limit. Use [`ServerCodec`] behind a short quiet period if
//! you need to be safe against that (the `server` module does).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{DecodeError, EncodeError};
use crate::message::{BadRequest, BadRequestKind, Dialect, Reply, Request, RequestId};
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
    max_response_len: usize,
    /// The id of the last request encoded, until its answer is decoded.
    in_flight_id: Option<RequestId>,
}

impl ClientCodec {
    /// A codec for `dialect` with the default answer limit ([`DEFAULT_MAX_RESPONSE_LEN`]).
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
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

    /// The dialect requests are written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Tells the decoder the id of the request in flight (encoding a request does this), so
    /// that an answer split right after the first digits of its echoed id is not taken whole.
    pub fn expect_id(&mut self, id: Option<RequestId>) {
        self.in_flight_id = id;
    }

    fn take(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, DecodeError> {
        self.in_flight_id = None;
        let msg = buf.split();
        let reply = wire::parse_response(&msg)?;
        tracing::trace!(hex = %wire::Hex(&msg), "answer bytes");
        Ok(Some(reply))
    }
}

impl Decoder for ClientCodec {
    type Item = Reply;
    type Error = DecodeError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, DecodeError> {
        // An answer never starts with a line ending: any is the tail of the previous answer.
        let stray = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        buf.advance(stray);
        check_len(buf, self.max_response_len)?;
        match wire::response_completeness(buf, self.in_flight_id.as_ref()) {
            Completeness::NeedMore => Ok(None),
            Completeness::Complete => self.take(buf),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, DecodeError> {
        if is_only_line_endings(buf) {
            buf.clear();
            return Ok(None);
        }
        check_len(buf, self.max_response_len)?;
        self.take(buf)
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, request: &Request, dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_request(request, self.dialect, dst)?;
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
#[derive(Debug, Clone)]
pub struct ServerCodec {
    dialect: Dialect,
    limits: Limits,
    /// Bytes buffered when a request grew past the limit, once that happened.
    overflowed: Option<usize>,
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

    fn take(&self, buf: &mut BytesMut) -> Incoming {
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
        match wire::request_completeness(buf, self.dialect) {
            Completeness::NeedMore => Ok(None),
            Completeness::Complete => Ok(Some(self.take(buf))),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        if let Some(refused) = self.refuse_oversized(buf)? {
            return Ok(Some(refused));
        }
        if buf.is_empty() {
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
    fn server_codec_takes_a_partial_head_at_eof() {
        let mut codec = ServerCodec::new(Dialect::V3_18);
        let mut buf = BytesMut::from(&b"sta"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let bad = codec.decode_eof(&mut buf).unwrap().unwrap().unwrap_err();
        assert_eq!(bad.kind, BadRequestKind::MissingSeparator(b':'));
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }
}
