//! `tokio-util` codecs over [`crate::wire`]: [`CometCodec`] for frames, [`ServerCodec`] for a
//! server's side (requests sorted as COMET sorts them, answers out).

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::dispatch::{Answer, Incoming};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{self, Frame, Head, Limits};

/// Frames COMET's wire format for `tokio_util::codec::{FramedRead, FramedWrite, Framed}`.
///
/// The header is parsed once, as soon as it is complete, and its limits checked before any
/// content is awaited; the buffer is never grown to what a header merely claims.
#[derive(Debug, Clone, Default)]
pub struct CometCodec {
    limits: Limits,
    head: Option<Head>,
}

impl CometCodec {
    /// A codec with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self { limits, head: None }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Errors of [`CometCodec`]: the stream's own, or a bad frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing the stream failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// The received bytes are not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl Decoder for CometCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if self.head.is_none() {
            self.head = wire::decode_head(src, &self.limits)?;
        }
        let Some(head) = &self.head else {
            return Ok(None);
        };
        if src.len() < head.frame_len() {
            return Ok(None);
        }
        let Some(head) = self.head.take() else {
            return Ok(None);
        };
        let mut frame = src.split_to(head.frame_len());
        let content = frame.split_off(head.header_end).freeze();
        Ok(Some(head.into_frame(content)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(DecodeError::Truncated {
                received: src.len(),
            }
            .into()),
        }
    }
}

impl Encoder<&Frame> for CometCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        wire::encode(frame, &self.limits, dst).map_err(CodecError::from)
    }
}

impl Encoder<Frame> for CometCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        wire::encode(&frame, &self.limits, dst).map_err(CodecError::from)
    }
}

impl Encoder<Answer> for CometCodec {
    type Error = CodecError;

    /// Writes the answer's frame; [`Answer::Close`] and [`Answer::Hold`] write nothing.
    fn encode(&mut self, answer: Answer, dst: &mut BytesMut) -> Result<(), CodecError> {
        match answer {
            // Straight from the content: the same bytes as its frame's.
            Answer::Response(response) => Ok(wire::encode_json(
                &response.to_content()?,
                &self.limits,
                dst,
            )?),
            answer => match answer.into_frame()? {
                Some(frame) => Ok(wire::encode(&frame, &self.limits, dst)?),
                None => Ok(()),
            },
        }
    }
}

/// The server's side of the wire: each frame is decoded and sorted as COMET sorts it
/// ([`Incoming::from_frame`]), and [`Answer`]s are encoded ([`Answer::Close`] and
/// [`Answer::Hold`] as nothing; keeping the connection open for `Hold` is the serve loop's
/// part). What the `server` module (feature `server`) serves a COMET `Service` with.
///
/// A frame that cannot be decoded at all (a bad header, a frame over the limits, the stream
/// ending inside one) is a [`CodecError`]: the connection ends without an answer, as in COMET.
#[derive(Debug, Clone, Default)]
pub struct ServerCodec {
    frames: CometCodec,
}

impl ServerCodec {
    /// A codec with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            frames: CometCodec::with_limits(limits),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        self.frames.limits()
    }
}

impl Decoder for ServerCodec {
    type Item = Incoming;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        Ok(self
            .frames
            .decode(src)?
            .map(|frame| Incoming::from_frame(&frame)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        Ok(self
            .frames
            .decode_eof(src)?
            .map(|frame| Incoming::from_frame(&frame)))
    }
}

impl Encoder<Answer> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, answer: Answer, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.frames.encode(answer, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frames_one_after_another_from_one_buffer() {
        let mut codec = CometCodec::new();
        let mut buf = BytesMut::new();
        codec.encode(Frame::json(&b"[1]"[..]), &mut buf).unwrap();
        codec
            .encode(Frame::binary("x/y", &b"raw"[..]), &mut buf)
            .unwrap();
        let first = codec.decode(&mut buf).unwrap().unwrap();
        let second = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&first.content[..], b"[1]");
        assert_eq!(&second.content[..], b"raw");
        assert!(buf.is_empty());
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn eof_inside_a_frame_is_a_truncation_error() {
        let mut codec = CometCodec::new();
        let mut buf = BytesMut::from(&[0x00, 0x67, b'{'][..]);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Decode(DecodeError::Truncated { received: 3 })
        ));
    }

    #[test]
    fn the_server_codec_sorts_requests_and_writes_nothing_for_a_close() {
        let mut codec = ServerCodec::new();
        let mut buf = BytesMut::new();
        CometCodec::new()
            .encode(Frame::json(&b"[1]"[..]), &mut buf)
            .unwrap();
        let incoming = codec.decode(&mut buf).unwrap().unwrap();
        assert!(matches!(
            incoming,
            Incoming::Malformed(DecodeError::ContentNotObject)
        ));
        let mut out = BytesMut::new();
        codec.encode(incoming.default_answer(), &mut out).unwrap();
        assert!(out.is_empty());
        codec
            .encode(Answer::result(serde_json::json!(1)), &mut out)
            .unwrap();
        assert_eq!(&out[2..], br#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 13}{"result": 1}"#);
    }

    #[test]
    fn a_huge_claim_reserves_nothing() {
        let mut codec = CometCodec::with_limits(Limits {
            max_content_length: 1 << 30,
            ..Limits::default()
        });
        let header = br#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 1000000000}"#;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&u16::try_from(header.len()).unwrap().to_be_bytes());
        buf.extend_from_slice(header);
        let capacity = buf.capacity();
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.capacity(), capacity);
    }
}
