//! Waiting for an idle connection's next bytes at the smallest possible cost.
//!
//! An idle connection's task is all the memory it costs, and a task is as large as the largest
//! state of its future: whatever a connection holds while it waits for bytes is paid by every
//! idle connection a server keeps. So these waits hold no buffer, no codec and no intrusive
//! waiter — only the socket (whose readiness the socket itself keeps, see
//! [`TcpStream::poll_read_ready`]) and, with a limit, one timer. A serve loop waits here, then
//! runs the exchange that follows in a boxed future.
//!
//! Both waits use the readiness that [`AsyncRead`](tokio::io::AsyncRead) reads use: only the
//! task that reads the stream may wait here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::service::ConnectionEnd;

/// Bytes [`first_bytes_within`] takes at most.
pub const FIRST_BYTES: usize = 64;

/// Waits until `stream` has bytes to read, its end or an error, for at most `limit` (`None`:
/// no limit). Nothing is consumed: a wake-up is confirmed by peeking at one byte (a fresh
/// socket reports itself ready before anything has arrived).
///
/// Resolves to [`ConnectionEnd::Idle`] when `limit` passes first; the end of the stream and
/// socket errors are left for the read that follows to report.
pub fn readable_within(stream: &TcpStream, limit: Option<Duration>) -> Idle<'_, Peek> {
    Idle::new(stream, limit)
}

/// Waits (at most `limit`) for the first bytes of `stream` and takes up to [`FIRST_BYTES`] of
/// them, without a buffer of the caller's: what arrives is returned by value.
///
/// Resolves to [`ConnectionEnd::Closed`] at the end of the stream, [`ConnectionEnd::Io`] on a
/// socket error and [`ConnectionEnd::Idle`] when `limit` passes first.
pub fn first_bytes_within(stream: &TcpStream, limit: Option<Duration>) -> Idle<'_, Take> {
    Idle::new(stream, limit)
}

/// What [`first_bytes_within`] took.
#[derive(Clone, Copy)]
pub struct FirstBytes {
    bytes: [u8; FIRST_BYTES],
    len: usize,
}

impl FirstBytes {
    /// The bytes taken (at least one).
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Debug for FirstBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FirstBytes").field(&self.as_slice()).finish()
    }
}

/// How an [`Idle`] wait looks at a ready socket.
pub trait Arrival: sealed::Sealed {
    /// What the wait resolves to once bytes are there.
    type Output;

    /// `Ready` once the socket has something for a read (or must report its end or an error).
    #[doc(hidden)]
    fn poll_arrival(
        stream: &TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Output, ConnectionEnd>>;
}

/// [`readable_within`]: nothing is consumed.
#[derive(Debug)]
pub enum Peek {}

/// [`first_bytes_within`]: the first bytes are taken.
#[derive(Debug)]
pub enum Take {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Peek {}
    impl Sealed for super::Take {}
}

impl Arrival for Peek {
    type Output = ();

    fn poll_arrival(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionEnd>> {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        // Data, the end of the stream or an error: all are for the read that follows.
        stream.poll_peek(cx, &mut buf).map(|_| Ok(()))
    }
}

impl Arrival for Take {
    type Output = FirstBytes;

    fn poll_arrival(
        stream: &TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<FirstBytes, ConnectionEnd>> {
        loop {
            if stream.poll_read_ready(cx).is_pending() {
                return Poll::Pending;
            }
            let mut first = FirstBytes {
                bytes: [0; FIRST_BYTES],
                len: 0,
            };
            match stream.try_read(&mut first.bytes) {
                Ok(0) => return Poll::Ready(Err(ConnectionEnd::Closed)),
                Ok(len) => {
                    first.len = len;
                    return Poll::Ready(Ok(first));
                }
                // Not ready after all: the read cleared the readiness, so the next poll
                // registers for the real one.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(ConnectionEnd::Io(error))),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`readable_within`] and [`first_bytes_within`]: the socket and, with a
    /// limit, one timer.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct Idle<'a, A> {
        stream: &'a TcpStream,
        #[pin]
        timer: Option<Sleep>,
        limit: Duration,
        arrival: std::marker::PhantomData<A>,
    }
}

impl<'a, A> Idle<'a, A> {
    fn new(stream: &'a TcpStream, limit: Option<Duration>) -> Self {
        Self {
            stream,
            timer: limit.map(tokio::time::sleep),
            limit: limit.unwrap_or_default(),
            arrival: std::marker::PhantomData,
        }
    }
}

impl<A: Arrival> Future for Idle<'_, A> {
    type Output = Result<A::Output, ConnectionEnd>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(arrived) = A::poll_arrival(this.stream, cx) {
            return Poll::Ready(arrived);
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(ConnectionEnd::Idle(*this.limit))),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn readable_returns_once_bytes_arrive_and_consumes_nothing() {
        let (mut client, server) = pair().await;
        let wait = tokio::spawn(async move {
            readable_within(&server, Some(Duration::from_secs(5)))
                .await
                .unwrap();
            server
        });
        client.write_all(b"hello").await.unwrap();
        let server = wait.await.unwrap();
        let mut buf = [0u8; 8];
        let n = server.try_read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }

    #[tokio::test]
    async fn readable_returns_at_the_end_of_the_stream() {
        let (client, server) = pair().await;
        drop(client);
        readable_within(&server, None).await.unwrap();
        assert_eq!(server.try_read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limit_ends_either_wait_on_a_fresh_socket() {
        // A fresh socket reports itself ready before any byte: the waits must not believe it.
        let (_client, server) = pair().await;
        let limit = Duration::from_secs(30);
        let end = readable_within(&server, Some(limit)).await.unwrap_err();
        assert!(matches!(end, ConnectionEnd::Idle(l) if l == limit));
        let end = first_bytes_within(&server, Some(limit)).await.unwrap_err();
        assert!(matches!(end, ConnectionEnd::Idle(l) if l == limit));
    }

    #[tokio::test]
    async fn first_bytes_takes_what_arrived_up_to_its_size() {
        let (mut client, server) = pair().await;
        let long = [7u8; 100];
        client.write_all(&long).await.unwrap();
        let first = first_bytes_within(&server, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!first.as_slice().is_empty() && first.as_slice().len() <= FIRST_BYTES);
        assert!(first.as_slice().iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn first_bytes_reports_the_end_of_the_stream() {
        let (client, server) = pair().await;
        drop(client);
        let end = first_bytes_within(&server, None).await.unwrap_err();
        assert!(matches!(end, ConnectionEnd::Closed));
    }
}
