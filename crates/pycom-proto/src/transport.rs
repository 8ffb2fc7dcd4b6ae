//! Reading and writing one message per connection, under a size limit and a deadline.
//!
//! Both roles use the same two steps: the receiver reads to EOF ([`read_message`]); the sender
//! connects, writes the encoded message in one write, shuts its side down ([`send_message`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use bytes::BytesMut;
use tokio_util::codec::Decoder as _;

use crate::codec::PycomCodec;
use crate::message::Message;
use crate::wire::{self, DecodeError, EncodeError, Limits};

/// Deadline for reading one whole message when none is configured.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for connecting and writing one message when none is configured.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Bytes of a message's first read, into a buffer of the read's own (most messages are
/// smaller).
const FIRST_READ: usize = 512;
/// Room a read buffer grows by at least, and at most in one step.
const READ_STEP: usize = 1024;
const MAX_READ_STEP: usize = 64 * 1024;

/// Why a message could not be received on a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The bytes were not a valid message (or reading them failed).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The peer did not finish (close its side) within the deadline.
    #[error("no complete message within {0:?}")]
    TimedOut(Duration),
}

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message cannot be encoded (too large).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Connecting to the receiver failed (refused, unreachable, ...).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The receiver.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the message failed.
    #[error("cannot write to {addr}")]
    Write {
        /// The receiver.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Connecting and writing did not finish within the deadline.
    #[error("sending to {addr} did not finish within {after:?}")]
    TimedOut {
        /// The receiver.
        addr: SocketAddr,
        /// The deadline.
        after: Duration,
    },
}

impl SendError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        match self {
            SendError::TimedOut { .. } => true,
            SendError::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }
}

/// Reads one message: everything up to the peer's EOF, at most `limits.max_message_len` bytes,
/// within `timeout`.
///
/// # Errors
/// [`ReceiveError::TimedOut`] when the peer keeps the connection open past the deadline, a
/// [`DecodeError`] for anything else; a peer sending more than the limit is stopped at the limit.
///
/// # Cancel safety
/// Not cancel safe: bytes read so far are lost with the future (drop the connection then).
pub async fn read_message<R>(
    reader: &mut R,
    limits: &Limits,
    timeout: Duration,
) -> Result<Message, ReceiveError>
where
    R: AsyncRead + Unpin,
{
    match tokio::time::timeout(timeout, read_to_eof(reader, limits)).await {
        Err(_) => Err(ReceiveError::TimedOut(timeout)),
        Ok(received) => Ok(received?),
    }
}

/// [`read_message`] without the deadline: the caller bounds it.
pub(crate) async fn read_to_eof<R>(reader: &mut R, limits: &Limits) -> Result<Message, DecodeError>
where
    R: AsyncRead + Unpin,
{
    // The production path is the fuzzed codec: every chunk is checked against the limit as it
    // arrives, and the message is decoded at EOF.
    let mut codec = PycomCodec::with_limits(*limits);
    let mut buf = BytesMut::new();
    // One byte over the limit is enough to know the peer went over it.
    let cap = u64::try_from(limits.max_message_len)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut limited = reader.take(cap);
    // The first bytes go to a small buffer of the read's own: a connection that has sent
    // nothing yet holds no read buffer, and a usual message is taken in one piece.
    let mut first = [0u8; FIRST_READ];
    let n = limited.read(&mut first).await?;
    if let Some(first) = first.get(..n).filter(|first| !first.is_empty()) {
        buf.reserve(n + READ_STEP);
        buf.extend_from_slice(first);
        codec.decode(&mut buf)?;
        loop {
            if buf.capacity() - buf.len() < READ_STEP / 2 {
                // Grows in steps as bytes arrive (doubling, within the limit the reader has).
                buf.reserve(buf.len().clamp(READ_STEP, MAX_READ_STEP));
            }
            if limited.read_buf(&mut buf).await? == 0 {
                break;
            }
            codec.decode(&mut buf)?;
        }
    }
    tracing::trace!(len = buf.len(), bytes = %hex(&buf), "received");
    let message = codec.decode_eof(&mut buf)?.ok_or(DecodeError::Empty)?;
    tracing::debug!(?message, "received message");
    Ok(message)
}

/// Delivers `message` to `addr`: connect, one write, shut down the sending side. When
/// `await_close` is set, then waits (within the same deadline) for the receiver to close the
/// connection, which a pycom node does once it has read the request; a receiver that does not
/// close by the deadline still counts as delivered.
///
/// # Errors
/// [`SendError`] for a message over the limit, a refused or failed connection, or the
/// deadline passing before the message was written.
///
/// # Cancel safety
/// Cancel safe in that nothing stays open; whether the receiver got the message is then unknown.
pub async fn send_message(
    addr: SocketAddr,
    message: &Message,
    limits: &Limits,
    timeout: Duration,
    await_close: bool,
) -> Result<(), SendError> {
    let bytes = wire::encode(message, limits)?;
    tracing::debug!(%addr, ?message, "sending message");
    send_bytes(addr, &bytes, timeout, await_close).await
}

/// Like [`send_message`] for bytes already encoded (or deliberately not a message, as a
/// simulator's fault injection sends).
///
/// # Errors
/// As [`send_message`].
pub async fn send_bytes(
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
    await_close: bool,
) -> Result<(), SendError> {
    send_bytes_within(addr, bytes, timeout, timeout, await_close).await
}

/// Like [`send_bytes`], with a deadline of its own for connecting: at most `connect_timeout`
/// (and within `timeout` for the whole hand-over). A receiver that does not even accept the
/// connection (its backlog full, an address that drops packets) is given up sooner than one
/// that is slow to read.
///
/// # Errors
/// As [`send_message`]; [`SendError::is_timeout`] when either deadline passed.
pub async fn send_bytes_within(
    addr: SocketAddr,
    bytes: &[u8],
    connect_timeout: Duration,
    timeout: Duration,
    await_close: bool,
) -> Result<(), SendError> {
    let deadline = deadline_after(timeout);
    let mut stream = labwire_net::connect(addr, connect_timeout.min(timeout))
        .await
        .map_err(|source| SendError::Connect { addr, source })?;
    send_on(&mut stream, addr, bytes, (deadline, timeout), await_close).await
}

/// Writes `bytes` on `stream` (already connected to `addr`, any transport) in one write,
/// shuts the sending side down and, when `await_close` is set, waits for the receiver to close,
/// all by `deadline` (`timeout` after the hand-over began); as [`send_bytes`] after its connect.
pub(crate) async fn send_on<S>(
    stream: &mut S,
    addr: SocketAddr,
    bytes: &[u8],
    (deadline, timeout): (Instant, Duration),
    await_close: bool,
) -> Result<(), SendError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tracing::trace!(%addr, len = bytes.len(), bytes = %hex(bytes), "sending");
    let write = async {
        // One write per message: the whole object in a single segment where the OS allows it.
        stream.write_all(bytes).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout_at(deadline, write).await {
        Err(_) => {
            return Err(SendError::TimedOut {
                addr,
                after: timeout,
            });
        }
        Ok(Err(source)) => return Err(SendError::Write { addr, source }),
        Ok(Ok(())) => {}
    }
    if await_close {
        let drain = async {
            let mut scratch = [0u8; 256];
            // Anything the receiver sends back is not part of the protocol: discard it.
            while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
        };
        if tokio::time::timeout_at(deadline, drain).await.is_err() {
            tracing::debug!(%addr, "receiver kept the connection open past the deadline");
        }
    }
    Ok(())
}

/// `timeout` from now; a duration too large to represent (`Duration::MAX` for "no limit") is
/// capped at a century instead of overflowing.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(CENTURY)).unwrap_or(now)
}

/// Lower-case hex of `bytes`, for trace logs.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Identity;

    fn sample() -> Message {
        Message::heartbeat(Identity::new("a", "b", "127.0.0.1", 1, "v", true))
    }

    #[tokio::test]
    async fn reads_a_whole_message_written_in_pieces() {
        let bytes = wire::encode(&sample(), &Limits::default()).unwrap();
        let (mid, rest) = bytes.split_at(10);
        let mut reader = tokio_test_reader(&[mid, rest]);
        let message = read_message(&mut reader, &Limits::default(), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(message, sample());
    }

    #[tokio::test]
    async fn stops_reading_one_byte_past_the_limit() {
        let endless = tokio::io::repeat(b'x');
        let mut reader = endless;
        let limits = Limits {
            max_message_len: 1000,
        };
        let err = read_message(&mut reader, &limits, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ReceiveError::Decode(DecodeError::TooLarge {
                len: 1001,
                max: 1000
            })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_closes_times_out() {
        let (_keep_open, mut reader) = tokio::io::duplex(64);
        let err = read_message(&mut reader, &Limits::default(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ReceiveError::TimedOut(_)));
    }

    #[test]
    fn hex_is_lower_case_pairs() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    fn tokio_test_reader(parts: &[&[u8]]) -> impl AsyncRead + Unpin + use<> {
        let data: Vec<u8> = parts.concat();
        std::io::Cursor::new(data)
    }
}
