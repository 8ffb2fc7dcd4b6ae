//! The client over a stream you supply: here a TCP stream wrapped in a type of your own that
//! counts the bytes (a TLS stream, an SSH channel or a serial bridge plugs in the same way),
//! opened by your function for every connection the client makes.
//!
//! ```text
//! cargo run -p pekat-proto --example custom_transport
//! ```

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use pekat_proto::server::{ServerBuilder, Service};
use pekat_proto::{Client, Connector, ProjectState, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Your transport: any `AsyncRead + AsyncWrite + Send + Unpin + 'static`.
struct Metered {
    inner: TcpStream,
    bytes: Arc<AtomicUsize>,
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.bytes.fetch_add(read, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.bytes.fetch_add(n, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A device to talk to: every project is running.
struct AlwaysRunning;

impl Service for AlwaysRunning {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, _request: Request) -> Response {
        Response::Status(ProjectState::Running)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ServerBuilder::new()
        .listen("127.0.0.1:0".parse()?)
        .serve(AlwaysRunning)
        .await?;
    let addr = server.local_addr();

    let bytes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&bytes);
    // Called for every connection: a connection per request by default.
    let connector = Connector::from_fn("metered device", move || {
        let bytes = Arc::clone(&counter);
        async move {
            let inner = TcpStream::connect(addr).await?;
            inner.set_nodelay(true)?;
            Ok(Metered { inner, bytes })
        }
    });
    let client = Client::builder(connector).build();
    let state = client.status(r"C:\Projects\Line 1").await?;
    assert_eq!(state, ProjectState::Running);
    println!(
        "{} says {state}; {} bytes went over the metered stream",
        client.peer(),
        bytes.load(Ordering::Relaxed)
    );
    server.shutdown().await;
    Ok(())
}
