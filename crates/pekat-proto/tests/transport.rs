//! The client over streams other than TCP (`tokio::io::duplex`), served by labwire-net's
//! `serve_connection` with the crate's `ServerCodec`. The `pekat.call` span is in
//! `call_span.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PROJECT, serve};
use labwire_net::Connector;
use pekat_proto::{Client, DeviceError, Dialect, ProjectState, Request, Response};
use tokio::io::DuplexStream;
use tokio::time::timeout;

const TEST_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_connection_per_call_from_the_users_function() {
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let connector = Connector::from_fn("duplex device", move || {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(serve(Dialect::V3_18)) }
    });
    let client = Client::builder(connector).build();
    for _ in 0..3 {
        let state = timeout(TEST_DEADLINE, client.status(PROJECT))
            .await
            .unwrap();
        assert_eq!(state.unwrap(), ProjectState::Running);
    }
    assert_eq!(opened.load(Ordering::Relaxed), 3);
    let err = client.call(Request::status("elsewhere")).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::NotFound));
    assert_eq!(client.peer(), "duplex device");
}

#[tokio::test]
async fn a_kept_client_over_one_stream_handed_over() {
    let connector = Connector::once(serve(Dialect::V3_19));
    let client = Client::builder(connector)
        .dialect(Dialect::V3_19)
        .request_ids(true)
        .keep_connection(true)
        .build();
    for _ in 0..3 {
        let answer = timeout(TEST_DEADLINE, client.call(Request::status(PROJECT)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, Response::Status(ProjectState::Running));
    }
    let reply = client
        .call_reply(Request::status("elsewhere"))
        .await
        .unwrap();
    assert_eq!(reply.response, Response::NotFound);
    assert!(reply.id.is_some());
}

#[tokio::test]
async fn a_stream_that_never_opens_is_a_connect_timeout() {
    let connector = Connector::from_fn("never", || {
        std::future::pending::<std::io::Result<DuplexStream>>()
    });
    let client = Client::builder(connector)
        .connect_timeout(Duration::from_millis(50))
        .build();
    let err = timeout(TEST_DEADLINE, client.status(PROJECT))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connection_fatal(), "{err:?}");
    assert!(
        labwire_net::error_chain(&err).starts_with("cannot connect to never: "),
        "{err}"
    );
}
