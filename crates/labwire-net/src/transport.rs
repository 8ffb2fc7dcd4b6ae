//! What a client talks over: TCP by default, or any byte stream the user supplies — a TLS
//! stream, an SSH channel, a serial bridge, [`tokio::io::duplex`] in tests — the way
//! tokio-modbus attaches a client to any transport.
//!
//! A client holds a [`Connector`] and asks it for a [`Stream`] whenever it needs a connection:
//! once for a persistent connection (ARKEO, PEKAT with a kept connection), once per call for
//! protocols with one exchange per connection (COMET, pycom, PEKAT's default). TCP stays a
//! concrete stream (no boxing, no dynamic dispatch on the hot path); other streams are boxed.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Any byte stream a client can talk over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// One connection of a client: a TCP stream, or a stream the user supplied.
pub enum Stream {
    /// A TCP connection (`TCP_NODELAY` on, see [`crate::connect`]).
    Tcp(TcpStream),
    /// Any other stream.
    Other(Box<dyn AsyncStream>),
}

impl Stream {
    /// Wraps any stream.
    pub fn new(stream: impl AsyncStream) -> Self {
        Self::Other(Box::new(stream))
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(stream) => f.debug_tuple("Tcp").field(stream).finish(),
            Self::Other(_) => f.write_str("Other(..)"),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Self {
        Self::Tcp(stream)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Other(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Other(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Other(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Other(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Other(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(stream) => stream.is_write_vectored(),
            Self::Other(stream) => stream.is_write_vectored(),
        }
    }
}

type Connect = dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>> + Send + Sync;

/// Opens a client's connections. Cheap to clone (clones share the way of connecting).
#[derive(Clone)]
pub struct Connector {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// `host:port`, resolved on every connect.
    Tcp(Arc<str>),
    /// The user's function, and a name for logs and errors.
    Custom(Arc<Connect>, Arc<str>),
    /// One stream handed over once.
    Once(Arc<Mutex<Option<Stream>>>),
}

impl Connector {
    /// TCP to `addr` (`host:port`, resolved on every connect).
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self {
            kind: Kind::Tcp(Arc::from(addr.into())),
        }
    }

    /// Calls `connect` for every connection (a TLS handshake over TCP, an SSH channel, the
    /// client end of a [`tokio::io::duplex`] whose other end goes to a server task, ...).
    /// `name` stands for the peer in logs and errors.
    pub fn from_fn<F, Fut, S>(name: impl Into<String>, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncStream,
    {
        let connect = move || -> Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>> {
            let connecting = connect();
            Box::pin(async move { connecting.await.map(Stream::new) })
        };
        Self {
            kind: Kind::Custom(Arc::new(connect), Arc::from(name.into())),
        }
    }

    /// Hands over `stream` for the first connection; any later one fails with
    /// [`io::ErrorKind::NotConnected`]. For a client with a persistent connection (ARKEO, a
    /// PEKAT client keeping its connection) over a stream that was opened elsewhere.
    pub fn once(stream: impl AsyncStream) -> Self {
        Self {
            kind: Kind::Once(Arc::new(Mutex::new(Some(Stream::new(stream))))),
        }
    }

    /// The peer as logs and errors name it: the address for TCP, the given name otherwise.
    pub fn peer(&self) -> &str {
        match &self.kind {
            Kind::Tcp(addr) => addr,
            Kind::Custom(_, name) => name,
            Kind::Once(_) => "attached stream",
        }
    }

    /// Opens a connection within `timeout`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the deadline passes first, otherwise the connector's
    /// own error (`ConnectionRefused`, a TLS error, ...); [`io::ErrorKind::NotConnected`] once a
    /// [`Connector::once`] stream has been used.
    ///
    /// # Cancel safety
    /// Cancel safe for TCP; for [`Connector::from_fn`], as safe as the user's function.
    pub async fn connect(&self, timeout: Duration) -> io::Result<Stream> {
        match &self.kind {
            Kind::Tcp(addr) => crate::connect(&**addr, timeout).await.map(Stream::Tcp),
            Kind::Custom(connect, _) => tokio::time::timeout(timeout, connect())
                .await
                .unwrap_or_else(|_| Err(timed_out(timeout))),
            Kind::Once(slot) => slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the attached stream was already used (or closed)",
                    )
                }),
        }
    }
}

fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connect did not complete within {timeout:?}"),
    )
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Connector").field(&self.peer()).finish()
    }
}

impl From<&str> for Connector {
    fn from(addr: &str) -> Self {
        Self::tcp(addr)
    }
}

impl From<String> for Connector {
    fn from(addr: String) -> Self {
        Self::tcp(addr)
    }
}

impl From<std::net::SocketAddr> for Connector {
    fn from(addr: std::net::SocketAddr) -> Self {
        Self::tcp(addr.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn tcp_connects_with_nodelay() {
        let listener = crate::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let connector = Connector::from(listener.local_addr().unwrap());
        let stream = connector.connect(Duration::from_secs(5)).await.unwrap();
        match stream {
            Stream::Tcp(stream) => assert!(stream.nodelay().unwrap()),
            Stream::Other(_) => panic!("TCP is not boxed"),
        }
    }

    #[tokio::test]
    async fn a_function_makes_each_connection() {
        let connector = Connector::from_fn("echo", || async {
            let (client, mut server) = tokio::io::duplex(64);
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                server.read_exact(&mut buf).await.unwrap();
                server.write_all(&buf).await.unwrap();
            });
            Ok(client)
        });
        assert_eq!(connector.peer(), "echo");
        for _ in 0..2 {
            let mut stream = connector.connect(Duration::from_secs(5)).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_function_that_never_connects_times_out() {
        let connector = Connector::from_fn("never", || {
            std::future::pending::<io::Result<tokio::io::DuplexStream>>()
        });
        let error = connector.connect(Duration::from_secs(3)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn an_attached_stream_is_handed_over_once() {
        let (client, _server) = tokio::io::duplex(64);
        let connector = Connector::once(client);
        assert!(connector.connect(Duration::from_secs(1)).await.is_ok());
        let error = connector.connect(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotConnected);
    }
}
