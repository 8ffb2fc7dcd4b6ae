//! The coordinator's requests over a stream you supply: here a TCP stream wrapped in a type of
//! your own that counts the bytes (a TLS stream, an SSH channel or a serial bridge plugs in the
//! same way), opened by your function for every request (pycom opens a connection per message).
//! The node's events still come back to the coordinator's TCP listener.
//!
//! ```text
//! cargo run -p pycom-proto --example custom_transport
//! ```

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use la4_sim::{Fault, La4Fault, La4Sim};
use labwire_net::Connector;
use pycom_proto::coordinator::Command;
use pycom_proto::{Coordinator, Identity, Row, Sequence, Slot};
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A node to talk to: the LA4 simulator on a free loopback port, booted at once.
    let node_sim = La4Sim::builder().boot_time(Duration::ZERO).start().await?;
    let node = node_sim.local_addr();

    let bytes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&bytes);
    let me = Identity::new(
        "7756f193",
        "custom transport",
        "127.0.0.1",
        0,
        "0.1.0",
        true,
    );
    let coordinator = Coordinator::builder(SocketAddr::from(([127, 0, 0, 1], 0)), me)
        // Called with the node's address for every request to it.
        .connector(move |node: SocketAddr| {
            let bytes = Arc::clone(&counter);
            Connector::from_fn(format!("metered {node}"), move || {
                let bytes = Arc::clone(&bytes);
                async move {
                    let inner = TcpStream::connect(node).await?;
                    inner.set_nodelay(true)?;
                    Ok(Metered { inner, bytes })
                }
            })
        })
        .start()
        .await?;

    let answer = coordinator.call(node, "echo over my stream").await?;
    assert_eq!(answer.output, "over my stream\n");
    let sequence = Sequence::new([Row::ModelLight { power: 80 }])?;
    node_sim.faults().push(Fault::Device(La4Fault::RunSeqError(
        "LED driver overheated".into(),
    )));
    let refused = coordinator
        .call(node, Command::sequence(&sequence, Slot::Normal))
        .await
        .expect_err("boardio refuses under the fault");
    assert!(refused.device_error().is_some());
    println!(
        "{node} answered {:?}; {refused}; {} bytes went over the metered streams",
        answer.output,
        bytes.load(Ordering::Relaxed)
    );
    coordinator.shutdown().await;
    node_sim.shutdown().await;
    Ok(())
}
