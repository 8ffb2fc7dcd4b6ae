//! The simulator as a library: handlers, state, fidelity mode and faults, over loopback.

use std::time::Duration;

use bytes::Bytes;
use comet_sim::{CometFault, CometSim, Fault, SimConfig};
use comet_socket::client::Error;
use comet_socket::wire::CONTENT_TYPE_CLIENT_BINARY;
use comet_socket::{Client, DecodeError, Frame};
use labwire_simkit::testing::{TEST_DEADLINE as DEADLINE, eventually};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn device_error() -> Fault {
    Fault::Device(CometFault::Error("Error: SMU not connected".into()))
}

async fn start(config: SimConfig) -> (CometSim, Client) {
    let sim = CometSim::start(config).await.unwrap();
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(Duration::from_secs(5))
        .build();
    (sim, client)
}

/// Writes `frame` on a raw connection and returns every byte the simulator sends back.
async fn raw_exchange(sim: &CometSim, frame: &Frame) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(sim.local_addr())
        .await
        .unwrap();
    let bytes = comet_socket::wire::encode_to_bytes(frame, &Default::default()).unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

#[tokio::test]
async fn echo_answers_the_value_and_other_actions_get_null() {
    let (sim, client) = start(SimConfig::default()).await;
    assert_eq!(
        client.send("ECHO", &json!([1, "two"])).await.unwrap(),
        json!([1, "two"])
    );
    assert_eq!(client.send("PING", &json!("x")).await.unwrap(), Value::Null);
    let received = sim.state().received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].action, "PING");
    assert_eq!(sim.state().counters().requests, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn fixed_answers_come_from_config_and_can_change_at_run_time() {
    let mut config = SimConfig::default();
    config
        .answers
        .insert("Status".into(), json!({"state": "idle"}));
    let (sim, client) = start(config).await;
    assert_eq!(
        client.send("Status", &json!(1)).await.unwrap(),
        json!({"state": "idle"})
    );
    sim.state().set_answer("Status", json!("busy"));
    assert_eq!(
        client.send("Status", &json!(1)).await.unwrap(),
        json!("busy")
    );
    // A fixed answer overrides ECHO; a falsy one lets ECHO answer again.
    sim.state().set_answer("ECHO", json!("fixed"));
    assert_eq!(
        client.send("ECHO", &json!("x")).await.unwrap(),
        json!("fixed")
    );
    sim.state().set_answer("ECHO", json!(""));
    assert_eq!(client.send("ECHO", &json!("x")).await.unwrap(), json!("x"));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_telegram_handler_answers_per_chat() {
    let (sim, client) = start(SimConfig {
        status: "measuring IV".into(),
        ..SimConfig::default()
    })
    .await;
    let answer = client
        .send("Telegram", &json!({"123456": "Status?"}))
        .await
        .unwrap();
    assert_eq!(answer, json!({"123456": "Status: measuring IV"}));
    let messages = sim.state().telegram_messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].chat_id, "123456");
    // Not the Telegram shape: the handler fails and nobody else answers.
    assert_eq!(
        client.send("Telegram", &json!("text")).await.unwrap(),
        Value::Null
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_get_comets_error_string() {
    let (sim, client) = start(SimConfig::default()).await;
    let response = client
        .send_content(&json!({"action": "ECHO", "value": {}}))
        .await
        .unwrap();
    assert_eq!(
        response.result,
        json!("Error: invalid action and or value ECHO, {}")
    );
    assert_eq!(sim.state().counters().invalid, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn fidelity_mode_holds_falsy_content_unanswered_like_comet() {
    let (sim, _) = start(SimConfig {
        fidelity: true,
        connection_deadline: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    // No answer: the connection is closed at the deadline with nothing written.
    let answer = raw_exchange(&sim, &Frame::json(&b"{}"[..])).await;
    assert!(answer.is_empty());
    sim.shutdown().await;
}

/// Runs the future `test` makes on a current-thread runtime whose clock is paused, and fails
/// if it has not finished within `real` (real time).
///
/// A paused clock jumps to the next timer only when every task is parked. A task that keeps
/// running — a busy loop, even one that yields to the scheduler — stops it, so a test that
/// waits out a virtual deadline then never ends and runs into `real` instead.
fn on_paused_clock<F>(real: Duration, test: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(test());
        let _ = done.send(());
    });
    match finished.recv_timeout(real) {
        Ok(()) => thread.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
            "not finished within {real:?} of real time: the paused clock could not advance, \
             so some task never parked (a busy loop)"
        ),
    }
}

#[test]
fn fidelity_mode_holds_falsy_content_open_and_idle_until_the_deadline() {
    const HOLD: Duration = Duration::from_secs(30);
    on_paused_clock(DEADLINE, || async {
        let sim = CometSim::builder()
            .fidelity(true)
            .connection_deadline(HOLD)
            .start()
            .await
            .unwrap();
        let falsy = [
            // An empty binary content is falsy too: COMET hangs on it as on `{}`.
            Frame::binary(CONTENT_TYPE_CLIENT_BINARY, Bytes::new()),
            Frame::json(&b"{}"[..]),
            Frame::json(&b"[]"[..]),
        ];
        for (sent, frame) in (1..).zip(falsy) {
            let mut stream = tokio::net::TcpStream::connect(sim.local_addr())
                .await
                .unwrap();
            let bytes = comet_socket::wire::encode_to_bytes(&frame, &Default::default()).unwrap();
            stream.write_all(&bytes).await.unwrap();
            assert!(eventually(HOLD, || sim.requests() == sent).await);
            let held_from = tokio::time::Instant::now();
            let mut buf = [0_u8; 256];
            // No answer and no close while the deadline runs (on the paused clock, which only
            // gets there if the simulator sits parked meanwhile)...
            let early =
                tokio::time::timeout(HOLD - Duration::from_secs(1), stream.read(&mut buf)).await;
            assert!(
                early.is_err(),
                "{frame:?}: answered or closed before the deadline: {early:?}"
            );
            // ...then closed at the deadline, still without an answer.
            let late = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{frame:?}: still open after the deadline"));
            assert_eq!(late.unwrap(), 0, "{frame:?}: an answer after the deadline");
            assert!(held_from.elapsed() >= HOLD - Duration::from_secs(1));
        }
        assert_eq!(sim.state().counters().held, 3);
        sim.shutdown().await;
    });
}

#[tokio::test]
async fn without_fidelity_empty_binary_content_gets_comets_binary_answer() {
    let (sim, _) = start(SimConfig::default()).await;
    let answer = raw_exchange(
        &sim,
        &Frame::binary(CONTENT_TYPE_CLIENT_BINARY, Bytes::new()),
    )
    .await;
    let (frame, _) = comet_socket::wire::decode(&answer, &Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(&frame.content[..], b"First 10 bytes of request: ");
    assert_eq!(sim.state().counters().binary, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn non_finite_values_are_truthy_and_dispatched_as_comet_does() {
    let (sim, client) = start(SimConfig::default()).await;
    sim.state().set_answer("Status", json!("ok"));
    let result = |answer: Frame| comet_socket::Response::from_frame(&answer).unwrap().result;
    for literal in ["NaN", "Infinity", "-Infinity"] {
        let content = format!(r#"{{"action": "Status", "value": {literal}}}"#);
        let answer = client.exchange(&Frame::json(content)).await.unwrap();
        assert_eq!(result(answer), json!("ok"), "{literal}");
    }
    // Not dispatched for its empty action: the error renders it as Python's str() does.
    let answer = client
        .exchange(&Frame::json(&br#"{"action": "", "value": -Infinity}"#[..]))
        .await
        .unwrap();
    assert_eq!(
        result(answer),
        json!("Error: invalid action and or value , -inf")
    );
    let counters = sim.state().counters();
    assert_eq!((counters.requests, counters.invalid), (3, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn without_fidelity_falsy_content_gets_the_invalid_answer() {
    let (sim, _) = start(SimConfig::default()).await;
    let answer = raw_exchange(&sim, &Frame::json(&b"{}"[..])).await;
    let (frame, _) = comet_socket::wire::decode(&answer, &Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        comet_socket::Response::from_frame(&frame).unwrap().result,
        json!("Error: invalid action and or value None, None")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn no_reply_fault_makes_the_client_time_out() {
    let (sim, _) = start(SimConfig::default()).await;
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(Duration::from_millis(200))
        .build();
    sim.faults().push(Fault::NoReply);
    let err = client.send("ECHO", &json!(1)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // One-shot: the next call is answered.
    assert_eq!(client.send("ECHO", &json!(1)).await.unwrap(), json!(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn close_truncate_and_garbage_faults_are_reported_as_such() {
    let (sim, client) = start(SimConfig::default()).await;
    sim.faults().push(Fault::Close);
    sim.faults().push(Fault::Truncate);
    sim.faults().push(Fault::Garbage);
    let err = client.send("ECHO", &json!("x")).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    let err = client.send("ECHO", &json!("x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::Truncated { received }) if received > 0),
        "{err}"
    );
    let err = client.send("ECHO", &json!("x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::HeaderTooLong { .. })),
        "{err}"
    );
    assert_eq!(sim.faults().applied(), 3);
    // Every faulted request still reached the device.
    assert_eq!(sim.state().counters().requests, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn device_error_fault_answers_the_error_string() {
    let (sim, client) = start(SimConfig::default()).await;
    sim.faults().set(Some(device_error()));
    for _ in 0..2 {
        let err = client.send("ECHO", &json!(1)).await.unwrap_err();
        assert_eq!(
            err.device_error().map(|e| e.message()),
            Some("Error: SMU not connected"),
            "{err}"
        );
    }
    // The raw path returns the answer as it came.
    let answer = client
        .send_content(&json!({"action": "ECHO", "value": 1}))
        .await
        .unwrap();
    assert_eq!(answer.result, json!("Error: SMU not connected"));
    sim.faults().clear();
    assert_eq!(client.send("ECHO", &json!(1)).await.unwrap(), json!(1));
    sim.shutdown().await;
}

// Real time: paused tokio time would jump past the client's timeout while real sockets work.
#[tokio::test]
async fn a_delay_fault_holds_the_answer_in_real_time_whatever_the_time_scale() {
    let (sim, client) = start(SimConfig::default()).await;
    sim.faults().push(Fault::Delay(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    assert_eq!(client.send("ECHO", &json!(1)).await.unwrap(), json!(1));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_handlers_run_on_the_scaled_clock() {
    let sim = CometSim::builder().speed(100.0).start().await.unwrap();
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(Duration::from_secs(5))
        .build();
    assert_eq!(sim.clock().speed(), 100.0);
    sim.faults()
        .push(Fault::Device(CometFault::Slow(Duration::from_secs(30))));
    let started = std::time::Instant::now();
    assert_eq!(client.send("ECHO", &json!(1)).await.unwrap(), json!(1));
    // 30 simulated seconds at 100x: 0.3 real seconds, far below the 5 s answer timeout.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_time_scale_of_zero_stops_the_clock_until_advanced() {
    let sim = CometSim::builder().time_scale(0.0).start().await.unwrap();
    assert!(sim.clock().is_manual());
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(DEADLINE)
        .build();
    sim.faults()
        .push(Fault::Device(CometFault::Slow(Duration::from_secs(60))));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.send("ECHO", &json!("slow")).await }
    });
    assert!(eventually(DEADLINE, || sim.faults().applied() == 1).await);
    assert!(sim.clock().now().is_zero());
    assert!(!slow.is_finished());
    assert!(sim.state().received().is_empty(), "still in the handlers");
    sim.clock().advance(Duration::from_secs(60));
    let answer = tokio::time::timeout(DEADLINE, slow).await.unwrap().unwrap();
    assert_eq!(answer.unwrap(), json!("slow"));
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_disconnects_held_clients() {
    let (sim, _) = start(SimConfig::default()).await;
    sim.faults().set(Some(Fault::NoReply));
    let mut stream = tokio::net::TcpStream::connect(sim.local_addr())
        .await
        .unwrap();
    let bytes = comet_socket::Request::new("ECHO", json!(1))
        .to_frame()
        .unwrap();
    let bytes = comet_socket::wire::encode_to_bytes(&bytes, &Default::default()).unwrap();
    stream.write_all(&bytes).await.unwrap();
    assert!(
        eventually(DEADLINE, || sim.faults().applied() == 1).await,
        "the request arrived"
    );
    tokio::time::timeout(DEADLINE, sim.shutdown())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(read.is_err() || rest.is_empty());
}

#[tokio::test]
async fn binary_and_malformed_requests_are_treated_as_comet_does_and_counted() {
    let (sim, client) = start(SimConfig::default()).await;
    let answer = client
        .exchange(&Frame::binary(
            "binary/custom-client-binary-type",
            &b"hello world"[..],
        ))
        .await
        .unwrap();
    assert_eq!(answer.content_type, "binary/custom-server-binary-type");
    assert_eq!(
        &answer.content[..],
        b"First 10 bytes of request: hello worl"
    );
    let silent = raw_exchange(&sim, &Frame::json(&br#"["ECHO", "x"]"#[..])).await;
    assert!(
        silent.is_empty(),
        "no answer to content that is not an object"
    );
    let counters = sim.state().counters();
    assert_eq!((counters.binary, counters.malformed), (1, 1));
    sim.shutdown().await;
}

/// Sends a request whose handlers are slow, then a prompt one while the first waits; returns
/// whether the prompt one reached the handlers first.
async fn prompt_request_overtakes_a_delayed_one(fidelity: bool) -> bool {
    let (sim, client) = start(SimConfig {
        fidelity,
        ..SimConfig::default()
    })
    .await;
    sim.faults()
        .push(Fault::Device(CometFault::Slow(Duration::from_secs(1))));
    let delayed = tokio::spawn({
        let client = client.clone();
        async move { client.send("ECHO", &json!("delayed")).await }
    });
    assert!(
        eventually(DEADLINE, || sim.faults().applied() == 1).await,
        "the delayed request arrived"
    );
    let prompt = client.send("ECHO", &json!("prompt")).await.unwrap();
    assert_eq!(prompt, json!("prompt"));
    assert_eq!(delayed.await.unwrap().unwrap(), json!("delayed"));
    // The log records requests as the handlers get them.
    let order: Vec<Value> = sim
        .state()
        .received()
        .into_iter()
        .map(|r| r.value)
        .collect();
    sim.shutdown().await;
    order == [json!("prompt"), json!("delayed")]
}

#[tokio::test]
async fn requests_run_concurrently_unless_in_fidelity_mode() {
    assert!(prompt_request_overtakes_a_delayed_one(false).await);
    assert!(!prompt_request_overtakes_a_delayed_one(true).await);
}

#[tokio::test]
async fn echo_returns_object_keys_in_the_order_sent_byte_for_byte() {
    let (sim, _) = start(SimConfig::default()).await;
    let content = r#"{"action": "ECHO", "value": {"b": 1, "a": 2, "z": [{"y": null, "x": "é"}]}}"#;
    let answer = raw_exchange(&sim, &Frame::json(content.as_bytes().to_vec())).await;
    let (frame, _) = comet_socket::wire::decode(&answer, &Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&frame.content).unwrap(),
        r#"{"result": {"b": 1, "a": 2, "z": [{"y": null, "x": "é"}]}}"#
    );
    // What the state recorded keeps the order too.
    let received = sim.state().received();
    let keys: Vec<&String> = received[0].value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["b", "a", "z"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_builder_sets_answers_status_and_a_fault_from_the_start() {
    let sim = CometSim::builder()
        .answer("Status", json!({"state": "idle"}))
        .status("measuring")
        .telegram_action("Bot")
        .fault(device_error())
        .backlog(64)
        .max_connections(8)
        .start()
        .await
        .unwrap();
    assert!(sim.local_addr().ip().is_loopback());
    assert_eq!(sim.clock().speed(), 1.0);
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(Duration::from_secs(5))
        .build();
    let err = client.send("ECHO", &json!(1)).await.unwrap_err();
    assert_eq!(
        err.device_error().map(|e| e.message()),
        Some("Error: SMU not connected"),
        "{err}"
    );
    assert_eq!(sim.faults().standing(), Some(device_error()));
    sim.faults().clear();
    assert_eq!(
        client.send("Status", &json!(1)).await.unwrap(),
        json!({"state": "idle"})
    );
    assert_eq!(
        client.send("Bot", &json!({"7": "status"})).await.unwrap(),
        json!({"7": "Status: measuring"})
    );
    assert_eq!(sim.faults().applied(), 1);
    sim.shutdown().await;
    assert_eq!(sim.connection_count(), 0);
}

#[tokio::test]
async fn a_config_struct_and_the_builder_start_the_same_simulator() {
    let mut config = SimConfig::default();
    config.answers.insert("A".into(), json!("from config"));
    let sim = CometSim::builder()
        .config(config)
        .answer("B", json!("from builder"))
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr().to_string()).build();
    assert_eq!(
        client.send("A", &json!(1)).await.unwrap(),
        json!("from config")
    );
    assert_eq!(
        client.send("B", &json!(1)).await.unwrap(),
        json!("from builder")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_the_parent_token_or_the_shutdown_token_stops_the_simulator() {
    let parent = comet_socket::server::CancellationToken::new();
    let sim = CometSim::builder()
        .stop_on(parent.clone())
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr().to_string())
        .connect_timeout(Duration::from_secs(2))
        .call_timeout(Duration::from_secs(2))
        .build();
    assert_eq!(client.send("ECHO", &json!(1)).await.unwrap(), json!(1));
    parent.cancel();
    tokio::time::timeout(DEADLINE, sim.shutdown_token().cancelled())
        .await
        .expect("the simulator's token follows its parent");
    tokio::time::timeout(DEADLINE, sim.shutdown())
        .await
        .unwrap();
    assert!(client.send("ECHO", &json!(1)).await.is_err());
}
