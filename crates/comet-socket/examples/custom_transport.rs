//! A COMET client over a stream you supply instead of a TCP connection: here the near end of
//! an in-memory [`tokio::io::duplex`] pair, whose far end a COMET server serves. A TLS stream,
//! an SSH channel or a serial bridge plugs in the same way: [`Connector::from_fn`] opens one
//! per call (COMET carries one exchange per connection), [`Connector::once`] hands over one
//! stream opened elsewhere, for one call.
//!
//! ```text
//! cargo run -p comet-socket --example custom_transport
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use comet_socket::server::{Handlers, handler_fn, serve_stream};
use comet_socket::{Client, Connector, Request};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), comet_socket::client::Error> {
    // Every connection the client asks for is a fresh duplex pair; a task serves the far end
    // with a COMET server's dispatch (here: ECHO).
    let connector = Connector::from_fn("in-memory device", || async {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let peer = SocketAddr::from(([127, 0, 0, 1], 0));
            let echo = Handlers::new().handler(handler_fn(|action, value| {
                Ok(if action == "ECHO" {
                    value.clone()
                } else {
                    Value::Null
                })
            }));
            serve_stream(&mut far, peer, echo).await;
        });
        Ok(near)
    });
    let client = Client::builder(connector)
        .call_timeout(Duration::from_secs(2))
        .build();
    for value in [json!({"sample": "W42-3", "bias_V": -150.0}), json!("hello")] {
        let answer = client.call(Request::new("ECHO", value.clone())).await?;
        assert_eq!(answer.result, value);
        println!("ECHO over {} -> {}", client.peer(), answer.result);
    }
    Ok(())
}
