//! What the transport tests and the span test share: echo servers over duplex streams.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use comet_socket::client::Error;
use comet_socket::server::{Handlers, handler_fn, serve_stream};
use comet_socket::{Client, Connector, Request};
use serde_json::Value;
use tokio::io::DuplexStream;

const DEADLINE: Duration = Duration::from_secs(10);

fn echo() -> Handlers {
    Handlers::new().handler(handler_fn(|action, value| {
        Ok(if action == "ECHO" {
            value.clone()
        } else {
            Value::Null
        })
    }))
}

/// A duplex pair whose far end is served by [`echo`] in a task.
pub(crate) fn served_pair() -> DuplexStream {
    let (near, mut far) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        serve_stream(&mut far, SocketAddr::from(([127, 0, 0, 1], 0)), echo()).await;
    });
    near
}

/// A connector making served duplex pairs, counting them; the first one's far end is dropped
/// at once when `first_closed`.
pub(crate) fn counting(first_closed: bool) -> (Connector, Arc<AtomicUsize>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&opened);
    let connector = Connector::from_fn("duplex", move || {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 && first_closed {
                let (near, _far) = tokio::io::duplex(64);
                return Ok::<_, io::Error>(near);
            }
            Ok(served_pair())
        }
    });
    (connector, opened)
}

pub(crate) async fn echo_call(client: &Client, value: Value) -> Result<Value, Error> {
    let call = client.call(Request::new("ECHO", value));
    let answer = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("bounded")?;
    Ok(answer.result)
}
