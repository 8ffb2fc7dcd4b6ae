//! What the transport tests and the span test share: a device served over duplex streams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arkeo_proto::server::{self, ServerBuilder, Service};
use arkeo_proto::{Request, Response, Target, codes};
use serde_json::json;
use tokio::io::DuplexStream;

/// Knows `MAIN GetActiveRoutine` (and counts the requests it answers); refuses the rest.
#[derive(Default)]
pub(crate) struct Device {
    pub(crate) answered: AtomicUsize,
}

impl Service for Device {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
        match (&request.target, request.command.as_str()) {
            (Target::Main, "GetActiveRoutine") => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                Response::ok(json!({ "routine": "JV" }), request.request_id)
            }
            _ => Response::error(
                codes::UNKNOWN_COMMAND,
                "Unknown command",
                request.request_id,
            ),
        }
    }
}

/// `device` serving the other end of a duplex pair, in a task of its own.
pub(crate) fn serve(device: &Arc<Device>) -> DuplexStream {
    let (client, mut server) = tokio::io::duplex(1024);
    let device = Arc::clone(device);
    tokio::spawn(async move {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = ServerBuilder::new(peer);
        server::serve_connection(&mut server, peer, device, &config).await;
    });
    client
}
