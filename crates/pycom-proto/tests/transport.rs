//! Any transport: the coordinator's requests over `tokio::io::duplex` streams from a
//! `Connector` of the user's, each served by the crate's own node side
//! (`node::serve_stream`); the connector's name in errors. The `pycom.call` span is in
//! `call_span.rs`.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{NODE, TEST_DEADLINE, duplex_node, me};
use labwire_net::Connector;
use pycom_proto::Coordinator;
use pycom_proto::coordinator::Error;

#[tokio::test]
async fn requests_go_over_the_users_streams_and_answers_come_back_as_events() {
    let connections = Arc::new(AtomicUsize::new(0));
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connector(duplex_node(Arc::clone(&connections)))
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        let answer =
            tokio::time::timeout(TEST_DEADLINE, coordinator.call(NODE, format!("echo {i}")))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(answer.output, format!("you said: echo {i}\n"));
    }
    // One connection per message, as pycom has it.
    assert_eq!(connections.load(Ordering::Relaxed), 3);
    tokio::time::timeout(TEST_DEADLINE, coordinator.heartbeat(NODE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connections.load(Ordering::Relaxed), 4);
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_connector_that_fails_is_a_connect_error_named_after_it() {
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connector(|_| {
            Connector::from_fn("nowhere", || async {
                Err::<tokio::io::DuplexStream, _>(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "refused",
                ))
            })
        })
        .start()
        .await
        .unwrap();
    let err = coordinator.call(NODE, "echo x").await.unwrap_err();
    assert!(
        matches!(&err, Error::Connect { peer, .. } if peer == "nowhere"),
        "{err:?}"
    );
    assert_eq!(
        labwire_net::error_chain(&err),
        "cannot connect to nowhere: refused"
    );
    coordinator.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_connector_that_never_connects_times_out_at_the_connect_timeout() {
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connect_timeout(Duration::from_secs(2))
        .call_timeout(Duration::from_secs(60))
        .connector(|_| {
            Connector::from_fn("never", || {
                std::future::pending::<io::Result<tokio::io::DuplexStream>>()
            })
        })
        .start()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = coordinator.call(NODE, "echo x").await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_timeout() && err.is_connection_fatal());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    coordinator.shutdown().await;
}
