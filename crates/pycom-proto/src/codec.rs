//! A thin tokio-util codec over [`crate::wire`].

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::message::Message;
use crate::wire::{self, DecodeError, EncodeError, Limits};

/// Codec for pycom connections: one JSON object per connection, ended by EOF.
///
/// [`Decoder::decode`] never yields a message: until the peer closes, the bytes so far are only
/// checked against the size limit (so a peer that never stops costs at most the limit).
/// [`Decoder::decode_eof`] decodes what arrived. A connection closed without any byte yields no
/// message (the stream simply ends), the way a port probe looks.
///
/// Use it with `FramedRead` on the read half of a connection; `FramedWrite` writes one
/// message, after which the writer must shut the connection down.
#[derive(Debug, Clone, Default)]
pub struct PycomCodec {
    limits: Limits,
}

impl PycomCodec {
    /// A codec with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self { limits }
    }

    /// The limits in use.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl Decoder for PycomCodec {
    type Item = Message;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        wire::check_len(src.len(), &self.limits)?;
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        if src.is_empty() {
            return Ok(None);
        }
        let result = wire::decode(src, &self.limits);
        src.clear();
        result.map(Some)
    }
}

impl Encoder<&Message> for PycomCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let bytes = wire::encode(item, &self.limits)?;
        dst.put_slice(&bytes);
        Ok(())
    }
}

impl Encoder<Message> for PycomCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Identity;

    fn sample() -> Message {
        Message::cmd(
            Identity::new("7756f193", "app", "127.0.0.1", 5001, "0.1.0", true),
            "cat /home/rigsters/la4_sequence.csv",
        )
    }

    #[test]
    fn decode_waits_for_eof_then_yields_the_message() {
        let mut codec = PycomCodec::new();
        let mut buf = BytesMut::new();
        codec.encode(&sample(), &mut buf).unwrap();
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(sample()));
        assert!(buf.is_empty());
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn decode_rejects_a_buffer_over_the_limit_before_eof() {
        let mut codec = PycomCodec::with_limits(Limits { max_message_len: 8 });
        let mut buf = BytesMut::from(&b"{\"id\":\"123456"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::TooLarge { len: 13, max: 8 })
        ));
    }

    #[test]
    fn truncated_message_at_eof_is_invalid_json() {
        let mut codec = PycomCodec::new();
        let mut buf = BytesMut::new();
        codec.encode(sample(), &mut buf).unwrap();
        buf.truncate(buf.len() - 1);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(DecodeError::InvalidJson(_))
        ));
    }
}
