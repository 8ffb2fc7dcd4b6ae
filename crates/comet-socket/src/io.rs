//! Reading and writing whole frames on an async stream (features `client` or `server`).

use std::fmt::Write as _;
use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use crate::codec::{CodecError, CometCodec};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{self, Frame, Limits};

/// How much the read buffer grows at least at a time (a usual answer fits in the first step),
/// and at most.
const READ_STEP: usize = 1024;
const MAX_READ_STEP: usize = 64 * 1024;
/// Bytes of a frame shown in trace logs.
const TRACE_BYTES: usize = 512;

/// Why [`read_frame`] returned no frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading the stream failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The peer closed the stream before a whole frame arrived.
    #[error("peer closed the connection after {received} bytes, before a whole frame")]
    Closed {
        /// Bytes received before the end of the stream.
        received: usize,
    },
}

/// Reads one frame from `reader`, returning as soon as it is complete (never waiting for the
/// end of the stream). Bytes after the frame are read at most into the buffer and dropped.
///
/// Memory grows in steps as bytes arrive, never to what a header claims. Add your own deadline
/// (`tokio::time::timeout`): this function waits as long as the peer does.
///
/// # Errors
/// See [`ReadError`].
///
/// # Cancel safety
/// Not cancel safe: a cancelled read loses the bytes read so far; drop the stream.
pub async fn read_frame<R>(reader: &mut R, limits: &Limits) -> Result<Frame, ReadError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut codec = CometCodec::with_limits(*limits);
    let mut buf = BytesMut::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                tracing::trace!(
                    content_type = %frame.content_type,
                    content = %hex_preview(&frame.content, TRACE_BYTES),
                    "frame received"
                );
                return Ok(frame);
            }
            Ok(None) => {}
            Err(CodecError::Decode(e)) => return Err(e.into()),
            Err(CodecError::Io(e)) => return Err(e.into()),
            Err(CodecError::Encode(e)) => {
                return Err(io::Error::other(e).into());
            }
        }
        if buf.capacity() - buf.len() < READ_STEP / 2 {
            // Doubling as bytes arrive, never to what a header claims.
            buf.reserve(buf.len().clamp(READ_STEP, MAX_READ_STEP));
        }
        if reader.read_buf(&mut buf).await? == 0 {
            return Err(ReadError::Closed {
                received: buf.len(),
            });
        }
    }
}

/// Why [`write_frame`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Writing the stream failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
}

/// Encodes `frame` and writes it with one write call (the kernel may still split it), then
/// flushes.
///
/// # Errors
/// See [`WriteError`]; nothing is written when encoding fails.
///
/// # Cancel safety
/// Not cancel safe: a cancelled write may leave half a frame on the stream; drop the stream.
pub async fn write_frame<W>(
    writer: &mut W,
    frame: &Frame,
    limits: &Limits,
) -> Result<(), WriteError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let bytes = wire::encode_to_bytes(frame, limits)?;
    write_bytes(writer, &bytes).await?;
    Ok(())
}

/// Writes an already encoded frame with one write call, then flushes.
///
/// # Errors
/// The stream's error.
///
/// # Cancel safety
/// Not cancel safe, as [`write_frame`].
pub async fn write_bytes<W>(writer: &mut W, bytes: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    tracing::trace!(frame = %hex_preview(bytes, TRACE_BYTES), "frame sent");
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Bytes as hex for trace logs, cut after `max` bytes.
fn hex_preview(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) * 2 + 16);
    for byte in bytes.iter().take(max) {
        let _ = write!(out, "{byte:02x}");
    }
    if bytes.len() > max {
        let _ = write!(out, "... ({} bytes)", bytes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every `poll_write` call; accepts all bytes offered.
    #[derive(Default)]
    struct WriteRecorder {
        writes: Vec<Vec<u8>>,
    }

    impl AsyncWrite for WriteRecorder {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.get_mut().writes.push(buf.to_vec());
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_frame_goes_out_in_one_write_call() {
        let frame = Frame::json(&br#"{"result": "a reasonably long answer of some bytes"}"#[..]);
        let mut writer = WriteRecorder::default();
        write_frame(&mut writer, &frame, &Limits::default())
            .await
            .unwrap();
        let expected = wire::encode_to_bytes(&frame, &Limits::default()).unwrap();
        assert_eq!(writer.writes, vec![expected.to_vec()]);
    }

    #[tokio::test]
    async fn read_frame_returns_as_soon_as_the_content_is_complete() {
        let bytes =
            wire::encode_to_bytes(&Frame::json(&b"{\"result\": 1}"[..]), &Limits::default())
                .unwrap();
        // The writing half stays open: an answer must not wait for the end of the stream.
        let (mut near, mut far) = tokio::io::duplex(1024);
        far.write_all(&bytes).await.unwrap();
        let frame = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            read_frame(&mut near, &Limits::default()),
        )
        .await
        .expect("read_frame waited for EOF")
        .unwrap();
        assert_eq!(&frame.content[..], b"{\"result\": 1}");
        drop(far);
    }

    #[test]
    fn hex_preview_cuts_long_input() {
        assert_eq!(hex_preview(&[0, 0xab], 8), "00ab");
        assert_eq!(hex_preview(&[1, 2, 3], 2), "0102... (3 bytes)");
    }
}
