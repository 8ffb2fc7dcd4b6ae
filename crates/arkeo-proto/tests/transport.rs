//! The client over streams other than TCP (`tokio::io::duplex`), served by the crate's own
//! `server::serve_connection`. The `arkeo.call` span is in `call_span.rs`.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arkeo_proto::{Client, Connector, Request, Target, codes};
use common::{Device, serve};
use tokio::io::DuplexStream;
use tokio::time::timeout;

const TEST_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_kept_connection_over_one_stream_handed_over() {
    let device = Arc::new(Device::default());
    let client = Client::builder(Connector::once(serve(&device))).build();
    for _ in 0..3 {
        let routine = timeout(TEST_DEADLINE, client.active_routine())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(routine.as_deref(), Some("JV"));
    }
    // A refusal leaves the connection as it was: the one stream serves on.
    let err = client
        .call(Request::new(Target::Main, "Reboot"))
        .await
        .unwrap_err();
    assert_eq!(
        err.device_error().and_then(|e| e.code()),
        Some(codes::UNKNOWN_COMMAND)
    );
    assert_eq!(
        client.active_routine().await.unwrap().as_deref(),
        Some("JV")
    );
    assert_eq!(device.answered.load(Ordering::Relaxed), 4);
    assert_eq!(client.peer(), "attached stream");
}

#[tokio::test]
async fn an_eager_client_over_one_stream_uses_it_for_its_calls() {
    let device = Arc::new(Device::default());
    let client = timeout(
        TEST_DEADLINE,
        Client::connect(Connector::once(serve(&device))),
    )
    .await
    .unwrap()
    .unwrap();
    for _ in 0..2 {
        client.active_routine().await.unwrap();
    }
    assert_eq!(device.answered.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn the_users_function_opens_a_connection_per_reconnect() {
    let device = Arc::new(Device::default());
    let opened = Arc::new(AtomicUsize::new(0));
    let connector = {
        let (device, opened) = (Arc::clone(&device), Arc::clone(&opened));
        Connector::from_fn("duplex device", move || {
            opened.fetch_add(1, Ordering::Relaxed);
            let stream = serve(&device);
            async move { Ok(stream) }
        })
    };
    let client = Client::builder(connector).build();
    for _ in 0..3 {
        timeout(TEST_DEADLINE, client.active_routine())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(opened.load(Ordering::Relaxed), 1);
    // Dropped, the connection is opened again by the same function.
    client.disconnect().await;
    client.active_routine().await.unwrap();
    assert_eq!(opened.load(Ordering::Relaxed), 2);
    assert_eq!(client.peer(), "duplex device");
}

#[tokio::test]
async fn a_stream_handed_over_once_is_not_opened_again() {
    let device = Arc::new(Device::default());
    let client = Client::builder(Connector::once(serve(&device))).build();
    client.active_routine().await.unwrap();
    client.disconnect().await;
    let err = timeout(TEST_DEADLINE, client.active_routine())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, arkeo_proto::Error::Connect { .. }), "{err:?}");
    assert!(err.is_connection_fatal() && !err.is_timeout());
}

#[tokio::test]
async fn a_stream_that_never_opens_is_a_connect_timeout() {
    let connector = Connector::from_fn("never", || {
        std::future::pending::<std::io::Result<DuplexStream>>()
    });
    let client = Client::builder(connector)
        .connect_timeout(Duration::from_millis(50))
        .build();
    let err = timeout(TEST_DEADLINE, client.active_routine())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connection_fatal(), "{err:?}");
    assert!(
        labwire_net::error_chain(&err).starts_with("cannot connect to never: "),
        "{err}"
    );
}

/// A device that never answers: the call ends at its timeout, whatever the stream.
#[tokio::test(start_paused = true)]
async fn a_silent_stream_is_a_call_timeout() {
    let (client_end, _silent) = tokio::io::duplex(1024);
    let client = Client::builder(Connector::once(client_end))
        .call_timeout(Duration::from_secs(2))
        .build();
    let err = client.active_routine().await.unwrap_err();
    assert!(
        matches!(err, arkeo_proto::Error::Timeout(t) if t == Duration::from_secs(2)),
        "{err:?}"
    );
}
