//! The one client contract (`docs/clients.md`): the same five-line program as for every
//! labwire client, against `arkeo-sim` on loopback — an answer, a device refusal, a timeout, a
//! refused connect, and each cause printed once.
#![cfg(all(feature = "client", feature = "server"))]

use std::time::Duration;

use arkeo_proto::{Client, Error, Limits, Request, Target, codes};
use arkeo_sim::{ArkeoSim, Fault};
use labwire_net::Connector;
use serde_json::json;
use tokio::time::timeout;

/// Bounds every test: nothing here waits for anything but a deadline of its own.
const TEST_DEADLINE: Duration = Duration::from_secs(10);
/// The call timeout of the program; the timeout case waits this long, once.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);

/// Which arm of the program ran, and what it printed.
#[derive(Debug, PartialEq, Eq)]
enum Arm {
    Answer,
    Refused,
    TimedOut,
    Other,
}

/// The program of `docs/clients.md`, line for line (each arm also returns what it printed).
async fn program(addr: impl Into<Connector>, request: Request) -> (Arm, String) {
    let client = Client::builder(addr).call_timeout(CALL_TIMEOUT).build();
    let (arm, printed) = match client.call(request).await {
        Ok(answer) => (Arm::Answer, format!("{answer:?}")),
        Err(e) if e.device_error().is_some() => (Arm::Refused, format!("the device refused: {e}")),
        Err(e) if e.is_timeout() => (Arm::TimedOut, format!("no answer in time: {e}")),
        Err(e) => (Arm::Other, labwire_net::error_chain(&e)),
    };
    eprintln!("{printed}");
    (arm, printed)
}

async fn sim() -> ArkeoSim {
    ArkeoSim::builder().start().await.unwrap()
}

fn routines() -> Request {
    Request::new(Target::Main, "GetAvailableRoutines")
}

#[tokio::test]
async fn an_answer_is_ok() {
    let sim = sim().await;
    let (arm, printed) = timeout(TEST_DEADLINE, program(sim.local_addr(), routines()))
        .await
        .unwrap();
    assert_eq!(arm, Arm::Answer, "{printed}");
    assert!(printed.contains("Luminescence"), "{printed}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_device_refusal_is_a_typed_error_never_an_ok() {
    let sim = sim().await;
    // No routine is active: the device refuses with 4006.
    let start = Request::new(Target::Routine, "StartMeasurement");
    let (arm, printed) = timeout(TEST_DEADLINE, program(sim.local_addr(), start.clone()))
        .await
        .unwrap();
    assert_eq!(arm, Arm::Refused, "{printed}");
    assert!(
        printed.starts_with("the device refused: ROUTINE StartMeasurement refused: 4006"),
        "{printed}"
    );

    let client = Client::builder(sim.local_addr()).build();
    let err = client.call(start.clone()).await.unwrap_err();
    let refusal = err.device_error().unwrap();
    assert_eq!(refusal.code(), Some(codes::NO_ACTIVE_ROUTINE));
    assert_eq!(refusal.target, Target::Routine);
    assert!(!err.is_connection_fatal() && !err.is_timeout());
    assert!(matches!(err, Error::Device(_)));
    // The raw path returns the answer as it came, and the connection went on.
    let raw = client.call_response(start, TEST_DEADLINE).await.unwrap();
    assert!(raw.is_error());
    assert_eq!(
        raw.error.and_then(|e| e.code),
        Some(codes::NO_ACTIVE_ROUTINE)
    );
    assert_eq!(sim.connection_count(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn no_answer_is_a_timeout_of_the_call_timeout() {
    let sim = sim().await;
    sim.faults().set(Some(Fault::NoReply));
    let (arm, printed) = timeout(TEST_DEADLINE, program(sim.local_addr(), routines()))
        .await
        .unwrap();
    assert_eq!(arm, Arm::TimedOut, "{printed}");
    assert_eq!(
        printed,
        format!("no answer in time: no reply within {CALL_TIMEOUT:?}")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_prints_its_cause_once() {
    // A port nobody listens on: bound, then closed.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (arm, printed) = timeout(TEST_DEADLINE, program(addr, routines()))
        .await
        .unwrap();
    assert_eq!(arm, Arm::Other, "{printed}");
    assert!(
        printed.starts_with(&format!("cannot connect to {addr}: ")),
        "{printed}"
    );
    assert_eq!(
        printed.to_lowercase().matches("refused").count(),
        1,
        "{printed}"
    );

    let err = Client::builder(addr)
        .build()
        .call(routines())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_connection_fatal() && !err.is_timeout());
    assert_eq!(err.to_string(), format!("cannot connect to {addr}"));
}

#[tokio::test]
async fn every_cause_in_the_chain_appears_once() {
    let sim = sim().await;
    let client = Client::builder(sim.local_addr())
        .call_timeout(CALL_TIMEOUT)
        .limits(Limits {
            max_frame_length: 4096,
        })
        .build();
    let errors = [
        {
            sim.faults().set(Some(Fault::Close));
            client.call(routines()).await.unwrap_err()
        },
        {
            sim.faults().set(Some(Fault::Garbage));
            client.call(routines()).await.unwrap_err()
        },
        {
            sim.faults().clear();
            let large = routines().param("pad", "x".repeat(5000));
            client.call(large).await.unwrap_err()
        },
        {
            sim.faults().clear();
            client
                .call(Request::new(Target::Routine, "StartMeasurement"))
                .await
                .unwrap_err()
        },
        {
            sim.faults().clear();
            let bad = Request::new(Target::Main, "StartRoutine").with_parameter(json!({}));
            client.call(bad).await.unwrap_err()
        },
    ];
    for err in errors {
        let chain = labwire_net::error_chain(&err);
        let mut parts: Vec<&str> = chain.split(": ").collect();
        let all = parts.len();
        parts.dedup();
        assert_eq!(parts.len(), all, "a cause repeats in {chain:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            assert!(
                !err.to_string().contains(&cause.to_string()),
                "{err} repeats its cause {cause}"
            );
            source = cause.source();
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn connect_opens_first_and_fails_early() {
    let sim = sim().await;
    let client = timeout(TEST_DEADLINE, Client::connect(sim.local_addr()))
        .await
        .unwrap()
        .unwrap();
    // ARKEO keeps its connection: every call goes over the one opened first.
    for _ in 0..3 {
        client.call(routines()).await.unwrap();
    }
    assert_eq!(sim.connection_count(), 1);
    let addr = sim.local_addr();
    sim.shutdown().await;
    drop(sim);
    let err = Client::builder(addr)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}
