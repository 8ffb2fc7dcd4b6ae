//! The client over a stream you supply: here a TCP stream wrapped in a type of your own that
//! counts the bytes (a TLS stream, an SSH channel or a serial bridge plugs in the same way),
//! opened by your function whenever the client (re)connects. `Connector::once(stream)` hands
//! over one stream opened elsewhere instead.
//!
//! ```text
//! cargo run -p arkeo-proto --example custom_transport
//! ```

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arkeo_proto::server::{self, Service};
use arkeo_proto::{Client, Connector, Request, Response, Target, codes};
use serde_json::json;
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

/// A device to talk to: it knows `MAIN GetAvailableRoutines` and refuses anything else.
struct Device;

impl Service for Device {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
        match (&request.target, request.command.as_str()) {
            (Target::Main, "GetAvailableRoutines") => Response::ok(
                json!({ "routines": ["JV", "Luminescence"] }),
                request.request_id,
            ),
            _ => Response::error(
                codes::UNKNOWN_COMMAND,
                "Unknown command",
                request.request_id,
            ),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = server::serve("127.0.0.1:0".parse::<SocketAddr>()?, Device).await?;
    let addr = device.local_addr();

    let bytes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&bytes);
    // Called whenever the client connects: once, as ARKEO keeps its connection.
    let connector = Connector::from_fn("metered device", move || {
        let bytes = Arc::clone(&counter);
        async move {
            let inner = TcpStream::connect(addr).await?;
            inner.set_nodelay(true)?;
            Ok(Metered { inner, bytes })
        }
    });
    let client = Client::builder(connector).build();
    let routines = client.available_routines().await?;
    assert_eq!(routines, ["JV", "Luminescence"]);
    let refused = client
        .call(Request::new(Target::Main, "Reboot"))
        .await
        .expect_err("the device refuses Reboot");
    assert!(refused.device_error().is_some());
    println!(
        "{} offers {}; {refused}; {} bytes went over the metered stream",
        client.peer(),
        routines.join(", "),
        bytes.load(Ordering::Relaxed)
    );
    device.shutdown().await;
    Ok(())
}
