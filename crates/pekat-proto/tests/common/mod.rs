//! What the transport tests and the span test share: a device served over duplex streams.

use std::net::SocketAddr;

use labwire_net::service::serve_connection;
use labwire_net::{Exchange, Service};
use pekat_proto::{Dialect, Incoming, ProjectState, Reply, Response, ServerCodec};
use tokio::io::DuplexStream;

pub(crate) const PROJECT: &str = r"C:\Projects\Line 1";

/// One project, running; every other path is not found.
struct Device;

impl Service for Device {
    type Request = Incoming;
    type Response = Reply;

    async fn call(&self, _peer: SocketAddr, incoming: Incoming) -> Reply {
        match incoming {
            Ok(request) if request.path == PROJECT => {
                Reply::to(&request, Response::Status(ProjectState::Running))
            }
            Ok(request) => Reply::to(&request, Response::NotFound),
            Err(bad) => bad.reply(),
        }
    }
}

/// The device serving the other end of a duplex pair, in a task of its own.
pub(crate) fn serve(dialect: Dialect) -> DuplexStream {
    let (client, mut server) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let codec = ServerCodec::new(dialect);
        serve_connection(&mut server, peer, &Device, codec, &Exchange::new()).await;
    });
    client
}
