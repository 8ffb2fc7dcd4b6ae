//! tokio-util codecs over [`crate::wire`].
//!
//! - [`FrameCodec`]: raw payloads ([`Bytes`]) both ways.
//! - [`ClientCodec`]: encodes [`Request`]s, decodes [`Response`]s.
//! - [`ServerCodec`]: decodes requests (a [`Request`], or a [`BadRequest`] to answer),
//!   encodes [`Response`]s.
//!
//! Every codec takes its bounds from [`Limits`] (`::new()` for the defaults,
//! `::with_limits(limits)`). Every decoder checks the length prefix against `max_frame_length`
//! before reserving any memory, and grows its buffer in steps of at most [`RESERVE_STEP`] as
//! bytes actually arrive, so a header that claims 4 GiB costs nothing. Payload errors (bad
//! UTF-8, bad JSON, not a message) consume their frame and leave the stream in step
//! ([`DecodeError::is_fatal`] is false): [`ClientCodec`] returns them as errors, and a driver
//! that keeps calling `decode` continues with the next frame (note that tokio-util's `Framed`
//! stops after the first error of any kind); [`ServerCodec`] returns them as items
//! (`Err(BadRequest)`), because a device answers a bad request and carries on, so its only
//! error is the fatal [`DecodeError::FrameTooLarge`].

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::{self, DEFAULT_MAX_FRAME_LENGTH, HEADER_LEN, Limits};
use crate::{BadRequest, DecodeError, EncodeError, ParamKey, Request, Response};

/// Largest amount a decoder reserves at once while a frame is still arriving.
pub const RESERVE_STEP: usize = 64 * 1024;

/// Splits length-prefixed frames; items are the raw payloads.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_length: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec with [`DEFAULT_MAX_FRAME_LENGTH`].
    pub fn new() -> Self {
        Self {
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
        }
    }

    /// A codec with `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            max_frame_length: limits.max_frame_length,
        }
    }

    /// Sets the largest payload accepted and produced.
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_length = max;
        self
    }

    /// The largest payload accepted and produced.
    pub fn get_max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_length: self.max_frame_length,
        }
    }
}

impl FrameCodec {
    /// The length of the whole frame (header included) at the start of `src` once it has all
    /// arrived; until then `None`, with room reserved for the next step of it only (what has not
    /// arrived yet is not paid for).
    fn complete_frame(&self, src: &mut BytesMut) -> Result<Option<usize>, DecodeError> {
        let Some(len) = wire::frame_length(src, self.max_frame_length)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + len;
        if src.len() < total {
            src.reserve((total - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        Ok(Some(total))
    }

    /// Decodes the complete frame at the start of `src` with `decode`, straight from the
    /// buffer, and consumes it whatever the outcome.
    fn decode_with<T>(
        &self,
        src: &mut BytesMut,
        decode: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, DecodeError> {
        let Some(total) = self.complete_frame(src)? else {
            return Ok(None);
        };
        let item = decode(src.get(HEADER_LEN..total).unwrap_or_default());
        src.advance(total);
        Ok(Some(item))
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let Some(total) = self.complete_frame(src)? else {
            return Ok(None);
        };
        let mut frame = src.split_to(total);
        let _header = frame.split_to(HEADER_LEN);
        Ok(Some(frame.freeze()))
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = EncodeError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_frame(payload, self.max_frame_length, dst)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = EncodeError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_frame(&payload, self.max_frame_length, dst)
    }
}

/// The client side: writes [`Request`]s, reads [`Response`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCodec {
    frames: FrameCodec,
    key: ParamKey,
}

impl ClientCodec {
    /// A codec with [`DEFAULT_MAX_FRAME_LENGTH`] that writes `parameter`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with `limits` that writes `parameter`.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            frames: FrameCodec::with_limits(limits),
            key: ParamKey::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.frames.limits()
    }

    /// Sets the largest payload accepted and produced.
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.frames = self.frames.max_frame_length(max);
        self
    }

    /// Sets the key requests carry their parameters under.
    #[must_use]
    pub fn param_key(mut self, key: ParamKey) -> Self {
        self.key = key;
        self
    }
}

impl Decoder for ClientCodec {
    type Item = Response;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, DecodeError> {
        self.frames
            .decode_with(src, wire::decode_response)?
            .transpose()
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, request: &Request, dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_request(request, self.key, self.frames.max_frame_length, dst)
    }
}

impl Encoder<Request> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&request, dst)
    }
}

/// The device side: reads requests, writes [`Response`]s.
///
/// Each frame decodes to `Ok(request)`, or to `Err(BadRequest)` when its payload is not a
/// request: the device answers that with [`BadRequest::response`] (the error reply the
/// simulator and [`server`](crate#server-feature-server) send) and goes on with the next frame. The only
/// decode error is the fatal [`DecodeError::FrameTooLarge`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCodec {
    frames: FrameCodec,
}

impl ServerCodec {
    /// A codec with [`DEFAULT_MAX_FRAME_LENGTH`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            frames: FrameCodec::with_limits(limits),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.frames.limits()
    }

    /// Sets the largest payload accepted and produced.
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.frames = self.frames.max_frame_length(max);
        self
    }
}

impl Decoder for ServerCodec {
    type Item = Result<Request, BadRequest>;
    type Error = DecodeError;

    fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Result<Request, BadRequest>>, DecodeError> {
        self.frames.decode_with(src, wire::decode_incoming)
    }
}

impl Encoder<&Response> for ServerCodec {
    type Error = EncodeError;

    fn encode(&mut self, response: &Response, dst: &mut BytesMut) -> Result<(), EncodeError> {
        wire::encode_response(response, self.frames.max_frame_length, dst)
    }
}

impl Encoder<Response> for ServerCodec {
    type Error = EncodeError;

    fn encode(&mut self, response: Response, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&response, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    #[test]
    fn huge_claimed_length_reserves_nothing() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        let before = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert_eq!(buf.capacity(), before);
    }

    #[test]
    fn a_large_legal_frame_reserves_in_bounded_steps() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(10_000_000u32).to_be_bytes());
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= HEADER_LEN + RESERVE_STEP * 2,
            "{}",
            buf.capacity()
        );
    }

    #[test]
    fn a_bad_payload_consumes_its_frame_and_the_next_frame_decodes() {
        let mut codec = ClientCodec::new();
        let mut buf = BytesMut::new();
        FrameCodec::new()
            .encode(&b"not json"[..], &mut buf)
            .unwrap();
        ServerCodec::new()
            .encode(Response::ok(serde_json::json!(1), Some(2)), &mut buf)
            .unwrap();
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(!err.is_fatal());
        let next = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(next.request_id, Some(2));
        assert!(buf.is_empty());
    }

    #[test]
    fn the_server_codec_yields_a_bad_request_as_an_item_with_its_error_reply() {
        let mut codec = ServerCodec::new();
        let mut buf = BytesMut::new();
        let mut frames = FrameCodec::new();
        frames.encode(&b"not json"[..], &mut buf).unwrap();
        frames.encode(&b"\"\xff\""[..], &mut buf).unwrap();
        frames
            .encode(&br#"{"target":"MAIN","request_id":5}"#[..], &mut buf)
            .unwrap();
        frames.encode(&b"[1,2,3]"[..], &mut buf).unwrap();
        ClientCodec::new()
            .encode(&Request::new(Target::Main, "GetActiveRoutine"), &mut buf)
            .unwrap();
        let mut replies = Vec::new();
        for _ in 0..4 {
            let bad = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
            let reply = bad.response();
            replies.push((reply.error.unwrap().code, reply.request_id));
        }
        use crate::codes::{INVALID_JSON, INVALID_REQUEST};
        assert_eq!(
            replies,
            [
                (Some(INVALID_JSON), None),
                (Some(INVALID_JSON), None),
                (Some(INVALID_REQUEST), Some(5)),
                (Some(INVALID_REQUEST), None),
            ]
        );
        let next = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(next.command, "GetActiveRoutine");
        assert!(buf.is_empty());
    }

    #[test]
    fn with_limits_sets_the_frame_limit_of_every_codec() {
        let limits = Limits {
            max_frame_length: 8,
        };
        let mut buf = BytesMut::from(&[0, 0, 0, 9][..]);
        assert!(ServerCodec::with_limits(limits).decode(&mut buf).is_err());
        assert!(ClientCodec::with_limits(limits).decode(&mut buf).is_err());
        assert_eq!(FrameCodec::with_limits(limits).limits(), limits);
        assert_eq!(ServerCodec::new().limits(), Limits::default());
    }

    #[test]
    fn client_and_server_codecs_agree() {
        let mut buf = BytesMut::new();
        let request = Request::new(Target::Led, "SetValues")
            .param("address", 1)
            .with_request_id(5);
        ClientCodec::new()
            .param_key(ParamKey::Params)
            .encode(&request, &mut buf)
            .unwrap();
        let decoded = ServerCodec::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(decoded.ok(), Some(request));
        let response = Response::error(101, "Invalid parameters", Some(5));
        ServerCodec::new().encode(&response, &mut buf).unwrap();
        assert_eq!(ClientCodec::new().decode(&mut buf).unwrap(), Some(response));
    }
}
