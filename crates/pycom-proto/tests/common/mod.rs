//! What the transport tests and the span test share: a node served over duplex streams.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use labwire_net::Connector;
use pycom_proto::node::{self, EventSender, NodeConfig, Request, Service};
use pycom_proto::{Body, Identity};

pub(crate) const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// The node's address as the coordinator knows it: events come from 127.0.0.1 with this port
/// in them. Nothing listens there: requests go over duplex streams.
pub(crate) const NODE: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5999);

/// A node that answers every command with `you said: <command>`, as an `output` event sent to
/// the coordinator's listener.
#[derive(Clone)]
struct Echo(EventSender);

impl Service for Echo {
    type Request = Request;
    type Response = ();

    async fn call(&self, _peer: SocketAddr, request: Request) {
        if let Body::Cmd { command } = &request.message.body {
            let sender = self.0.clone();
            let to = request.reply_addr();
            let output = Body::Output {
                output: format!("you said: {command}\n"),
            };
            tokio::spawn(async move { sender.send(to, output).await });
        }
    }
}

/// A connector making, for every request, a duplex pair whose far end the node serves.
pub(crate) fn duplex_node(connections: Arc<AtomicUsize>) -> impl Fn(SocketAddr) -> Connector {
    let identity = Identity::new(
        "81639cd4",
        "duplex node",
        "127.0.0.1",
        NODE.port(),
        "0",
        false,
    );
    let echo = Echo(EventSender::new(identity));
    move |node: SocketAddr| {
        assert_eq!(node, NODE);
        let echo = echo.clone();
        let connections = Arc::clone(&connections);
        Connector::from_fn("duplex node", move || {
            let echo = echo.clone();
            connections.fetch_add(1, Ordering::Relaxed);
            async move {
                let (near, mut far) = tokio::io::duplex(64 * 1024);
                tokio::spawn(async move {
                    let config = NodeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
                    // The coordinator on the other end is on loopback.
                    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
                    node::serve_stream(&mut far, peer, echo, &config).await;
                    // Dropped: the coordinator sees the close, the request was read.
                });
                Ok::<_, io::Error>(near)
            }
        })
    }
}

pub(crate) fn me() -> Identity {
    Identity::new("7756f193", "transport", "127.0.0.1", 0, "0.1.0", true)
}
