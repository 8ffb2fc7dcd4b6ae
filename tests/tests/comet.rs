//! COMET end to end: the `comet-socket` client against `comet-sim` and against a
//! `comet-socket` server, over loopback, including bursts of concurrent connections.

use std::time::Duration;

use bytes::Bytes;
use comet_sim::{CometSim, Fault};
use comet_socket::client::Error;
use comet_socket::server::{Handlers, handler_fn, serve};
use comet_socket::wire::CONTENT_TYPE_CLIENT_BINARY;
use comet_socket::{Client, Frame, Limits, Refusal};
use labwire_tests::{TEST_DEADLINE, eventually};
use serde_json::{Value, json};

async fn sim() -> (CometSim, Client) {
    let sim = CometSim::builder().start().await.unwrap();
    let client = Client::builder(sim.local_addr().to_string()).build();
    (sim, client)
}

/// Sends 400 requests for `action` at once, `value(i)` each, and checks every answer is
/// `expected(i)`.
async fn burst(
    client: &Client,
    action: &'static str,
    value: fn(i64) -> Value,
    expected: fn(i64) -> Value,
) {
    let calls: Vec<_> = (1..=400)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { (i, client.send(action, &value(i)).await) })
        })
        .collect();
    for call in calls {
        let (i, result) = tokio::time::timeout(TEST_DEADLINE, call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result.unwrap(), expected(i));
    }
}

#[tokio::test]
async fn client_against_sim_covers_echo_telegram_fixed_answers_and_refusals() {
    let (sim, client) = sim().await;
    let value = json!({"k": "välue", "n": [1, 2.5, null, true], "big": 1e20});
    assert_eq!(client.send("ECHO", &value).await.unwrap(), value);
    assert_eq!(
        client
            .send("Telegram", &json!({"42": "help"}))
            .await
            .unwrap(),
        json!({"42": "Commands: ping, status, help"})
    );
    sim.state().set_answer("Temperature", json!(21.5));
    assert_eq!(
        client.send("Temperature", &json!(true)).await.unwrap(),
        json!(21.5)
    );
    assert_eq!(
        client.send("Unknown", &json!(1)).await.unwrap(),
        Value::Null
    );
    let err = client.send("ECHO", &json!({})).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    let counters = sim.state().counters();
    assert_eq!(counters.requests, 4, "the refused call never left");
    assert_eq!(counters.connections, 4, "one fresh connection per message");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_client_refuses_empty_binary_content_before_connecting() {
    // Fidelity mode: had the frame gone out, the simulator would hold it, as COMET hangs on it.
    let sim = CometSim::builder()
        .fidelity(true)
        .connection_deadline(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(TEST_DEADLINE)
        .build();
    let empty = Frame::binary(CONTENT_TYPE_CLIENT_BINARY, Bytes::new());
    let err = client.exchange(&empty).await.unwrap_err();
    assert!(
        matches!(err, Error::Invalid(Refusal::FalsyContent)),
        "{err}"
    );
    // Binary content that is not empty still goes out and gets COMET's binary answer.
    let answer = client
        .exchange(&Frame::binary(
            CONTENT_TYPE_CLIENT_BINARY,
            &b"hello world"[..],
        ))
        .await
        .unwrap();
    assert_eq!(
        &answer.content[..],
        b"First 10 bytes of request: hello worl"
    );
    let counters = sim.state().counters();
    assert_eq!(
        (counters.connections, counters.binary, counters.held),
        (1, 1, 0),
        "the refused frame never left"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_clients_is_served_by_the_sim() {
    let (sim, client) = sim().await;
    burst(&client, "ECHO", |i| json!([i, "x"]), |i| json!([i, "x"])).await;
    assert_eq!(sim.state().counters().requests, 400);
    assert_eq!(sim.state().counters().connections, 400);
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 0).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_clients_is_served_by_a_comet_socket_server() {
    let double = Handlers::new().handler(handler_fn(|action, value| {
        Ok(if action == "DOUBLE" {
            json!(value.as_i64().unwrap_or(0) * 2)
        } else {
            Value::Null
        })
    }));
    let handle = serve("127.0.0.1:0".parse().unwrap(), double).await.unwrap();
    let client = Client::builder(handle.local_addr().to_string()).build();
    burst(&client, "DOUBLE", |i| json!(i), |i| json!(i * 2)).await;
    handle.shutdown().await;
}

#[tokio::test]
async fn a_stalled_connection_does_not_block_the_others() {
    let (sim, client) = sim().await;
    sim.faults().push(Fault::NoReply);
    let stalled = tokio::spawn({
        let client = client.clone();
        async move { client.send("ECHO", &json!("first")).await }
    });
    assert!(eventually(TEST_DEADLINE, || sim.faults().applied() == 1).await);
    assert_eq!(
        client.send("ECHO", &json!("second")).await.unwrap(),
        json!("second")
    );
    assert!(!stalled.is_finished());
    sim.shutdown().await;
    let err = tokio::time::timeout(TEST_DEADLINE, stalled)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(!matches!(err, Error::Invalid(_)), "{err}");
}

#[tokio::test]
async fn large_values_pass_and_client_limits_refuse_oversized_requests_and_answers() {
    let (sim, client) = sim().await;
    let big = json!("x".repeat(200_000));
    assert_eq!(client.send("ECHO", &big).await.unwrap(), big);
    let small = Client::builder(sim.local_addr().to_string())
        .limits(Limits {
            max_content_length: 1_000,
            ..Limits::default()
        })
        .call_timeout(Duration::from_secs(5))
        .build();
    let err = small.send("ECHO", &json!("y".repeat(500))).await;
    assert!(err.is_ok(), "{err:?}");
    let err = small
        .send("ECHO", &json!("y".repeat(5_000)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, comet_socket::client::Error::Encode(_)),
        "{err}"
    );
    sim.state().set_answer("BIG", json!("z".repeat(5_000)));
    let err = small.send("BIG", &json!(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            comet_socket::client::Error::Decode(comet_socket::DecodeError::ContentTooLong { .. })
        ),
        "{err}"
    );
    sim.shutdown().await;
}
