//! The client over streams other than TCP: in-memory duplex pairs whose far end a COMET server
//! serves, opened per call by a function or handed over once; what `connect()` opens. The
//! `comet.call` span is in `call_span.rs`.

mod common;

use std::io;
use std::sync::atomic::Ordering;

use comet_socket::client::Error;
use comet_socket::{Client, Connector};
use common::{counting, echo_call, served_pair};
use serde_json::json;
use tokio::io::DuplexStream;

#[tokio::test]
async fn a_function_opens_a_duplex_stream_per_call() {
    let (connector, opened) = counting(false);
    let client = Client::builder(connector).build();
    assert_eq!(client.peer(), "duplex");
    for i in 1..=3 {
        assert_eq!(echo_call(&client, json!(i)).await.unwrap(), json!(i));
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        3,
        "one connection per message"
    );
}

#[tokio::test]
async fn a_stream_handed_over_once_carries_one_call() {
    let client = Client::builder(Connector::once(served_pair())).build();
    assert_eq!(echo_call(&client, json!("x")).await.unwrap(), json!("x"));
    let err = echo_call(&client, json!("y")).await.unwrap_err();
    let Error::Connect { source, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(source.kind(), io::ErrorKind::NotConnected);
}

#[tokio::test]
async fn connect_opens_the_connection_the_first_call_uses() {
    let (connector, opened) = counting(false);
    let client = Client::builder(connector).connect().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert_eq!(echo_call(&client, json!(1)).await.unwrap(), json!(1));
    assert_eq!(opened.load(Ordering::SeqCst), 1, "the first call took it");
    assert_eq!(echo_call(&client, json!(2)).await.unwrap(), json!(2));
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connect_takes_a_stream_handed_over_once_for_the_first_call() {
    let client = Client::connect(Connector::once(served_pair()))
        .await
        .unwrap();
    assert_eq!(echo_call(&client, json!("x")).await.unwrap(), json!("x"));
}

#[tokio::test]
async fn a_connection_opened_in_advance_and_closed_by_the_device_is_replaced() {
    let (connector, opened) = counting(true);
    let client = Client::builder(connector).connect().await.unwrap();
    assert_eq!(echo_call(&client, json!(1)).await.unwrap(), json!(1));
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connect_reports_a_connector_that_fails() {
    let connector = Connector::from_fn("nowhere", || async {
        Err::<DuplexStream, _>(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
    });
    let err = Client::connect(connector).await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { ref peer, .. } if peer == "nowhere"),
        "{err}"
    );
    assert_eq!(
        labwire_net::error_chain(&err),
        "cannot connect to nowhere: refused"
    );
}

#[tokio::test]
async fn send_as_reads_the_result_as_the_type_asked_for() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Reading {
        sample: String,
        bias_v: f64,
    }
    let (connector, _) = counting(false);
    let client = Client::builder(connector).build();
    let value = json!({"sample": "W42-3", "bias_v": -150.0});
    let reading: Reading = client.send_as("ECHO", &value).await.unwrap();
    assert_eq!(reading.sample, "W42-3");
    let nobody: Option<Reading> = client.send_as("OTHER", &value).await.unwrap();
    assert_eq!(nobody, None);
    let err = client.send_as::<Vec<u8>>("ECHO", &value).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode(comet_socket::DecodeError::UnexpectedResult { .. })
        ),
        "{err}"
    );
}
