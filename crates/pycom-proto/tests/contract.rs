//! The one client contract (`docs/clients.md`): the same five-line program as for every
//! labwire client, with pycom's `Coordinator`, against `la4-sim` on loopback — an answer, a
//! device refusal, a timeout, a refused connect, and each cause printed once.
#![cfg(all(feature = "client", feature = "server"))]

use std::net::SocketAddr;
use std::time::Duration;

use la4_sim::{Fault, La4Fault, La4Sim};
use pycom_proto::coordinator::{Command, Error};
use pycom_proto::{Coordinator, Identity, Limits, Row, Sequence, Slot, Verdict};
use tokio::time::timeout;

/// Bounds every test: nothing here waits for anything but a deadline of its own.
const TEST_DEADLINE: Duration = Duration::from_secs(10);
/// The call timeout of the program; the timeout case waits this long, once.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);

/// Which arm of the program ran.
#[derive(Debug, PartialEq, Eq)]
enum Arm {
    Answer,
    Refused,
    TimedOut,
    Other,
}

fn me() -> Identity {
    Identity::new("7756f193", "contract", "127.0.0.1", 0, "0.1.0", true)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The program of `docs/clients.md`, line for line (each arm also returns what it printed);
/// a coordinator is built with `start`, as it is also a listener.
async fn program(node: SocketAddr, request: Command) -> (Arm, String) {
    let coordinator = Coordinator::builder(loopback(), me())
        .call_timeout(CALL_TIMEOUT)
        .start()
        .await
        .unwrap();
    let (arm, printed) = match coordinator.call(node, request).await {
        Ok(answer) => (Arm::Answer, format!("{answer:?}")),
        Err(e) if e.device_error().is_some() => (Arm::Refused, format!("the device refused: {e}")),
        Err(e) if e.is_timeout() => (Arm::TimedOut, format!("no answer in time: {e}")),
        Err(e) => (Arm::Other, labwire_net::error_chain(&e)),
    };
    eprintln!("{printed}");
    coordinator.shutdown().await;
    (arm, printed)
}

/// A node on a free loopback port, booted at once (boardio answers sequences), reporting the
/// loading of a sequence as well as its run: a verdict for each boardio command, so that none
/// is awaited beyond the last (`verdict_settle` would outlast the program's call timeout).
async fn sim() -> La4Sim {
    La4Sim::builder()
        .boot_time(Duration::ZERO)
        .reports_load(true)
        .start()
        .await
        .unwrap()
}

fn sequence() -> Sequence {
    Sequence::new([Row::ModelLight { power: 60 }, Row::LedFan { on: true }]).unwrap()
}

/// A port nobody listens on: bound, then closed.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn an_answer_is_ok() {
    let sim = sim().await;
    let (arm, printed) = timeout(
        TEST_DEADLINE,
        program(sim.local_addr(), Command::new("echo hello")),
    )
    .await
    .unwrap();
    assert_eq!(arm, Arm::Answer, "{printed}");
    assert!(printed.contains(r#"output: "hello\n""#), "{printed}");

    // A sequence is answered by its output and boardio's verdict.
    let (arm, printed) = timeout(
        TEST_DEADLINE,
        program(
            sim.local_addr(),
            Command::sequence(&sequence(), Slot::Normal),
        ),
    )
    .await
    .unwrap();
    assert_eq!(arm, Arm::Answer, "{printed}");
    assert!(printed.contains("verdict: Some(Ready)"), "{printed}");
    assert_eq!(sim.state().lights().model_light, 60);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_device_refusal_is_a_typed_error_never_an_ok() {
    let sim = sim().await;
    let node = sim.local_addr();
    sim.faults().push(Fault::Device(La4Fault::RunSeqError(
        "LED driver overheated".into(),
    )));
    let (arm, printed) = timeout(
        TEST_DEADLINE,
        program(node, Command::sequence(&sequence(), Slot::Normal)),
    )
    .await
    .unwrap();
    assert_eq!(arm, Arm::Refused, "{printed}");
    assert_eq!(
        printed,
        format!(
            "the device refused: boardio on {node} refused the sequence: BOARDIO_ERROR: LED driver overheated"
        )
    );

    let coordinator = Coordinator::builder(loopback(), me())
        .start()
        .await
        .unwrap();
    sim.faults()
        .push(Fault::Device(La4Fault::RunSeqError("again".into())));
    let err = coordinator
        .run_sequence_confirmed(node, &sequence(), Slot::Normal)
        .await
        .unwrap_err();
    let refusal = err.device_error().unwrap();
    assert_eq!(refusal.message(), "BOARDIO_ERROR: again");
    assert_eq!(refusal.node, node);
    assert!(refusal.output.contains(r#"Sent: "runSeq""#), "{refusal:?}");
    assert!(!err.is_connection_fatal() && !err.is_timeout());
    assert!(matches!(err, Error::Device(_)));
    // The raw path returns the answer as it came, and the node goes on.
    sim.faults()
        .push(Fault::Device(La4Fault::RunSeqError("raw".into())));
    let raw = coordinator
        .call_response(
            node,
            Command::sequence(&sequence(), Slot::Normal),
            TEST_DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(
        raw.verdict,
        Some(Verdict::Error("BOARDIO_ERROR: raw".into()))
    );
    assert_eq!(raw.boardio_sent(), ["uSeq", "runSeq"]);
    let answer = coordinator.call(node, "echo on").await.unwrap();
    assert_eq!(answer.output, "on\n");
    coordinator.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn no_answer_is_a_timeout_of_the_call_timeout() {
    let sim = sim().await;
    sim.faults().set(Some(Fault::NoReply));
    let (arm, printed) = timeout(
        TEST_DEADLINE,
        program(sim.local_addr(), Command::new("echo lost")),
    )
    .await
    .unwrap();
    assert_eq!(arm, Arm::TimedOut, "{printed}");
    assert_eq!(
        printed,
        format!("no answer in time: no answer within {CALL_TIMEOUT:?}")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_prints_its_cause_once() {
    let addr = closed_port();
    let (arm, printed) = timeout(TEST_DEADLINE, program(addr, Command::new("echo x")))
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

    let coordinator = Coordinator::builder(loopback(), me())
        .start()
        .await
        .unwrap();
    let err = coordinator.call(addr, "echo x").await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_connection_fatal() && !err.is_timeout());
    assert_eq!(err.to_string(), format!("cannot connect to {addr}"));
    let err = coordinator.heartbeat(addr).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    coordinator.shutdown().await;
}

#[tokio::test]
async fn every_cause_in_the_chain_appears_once() {
    let sim = sim().await;
    let node = sim.local_addr();
    let coordinator = Coordinator::builder(loopback(), me())
        .call_timeout(CALL_TIMEOUT)
        .limits(Limits {
            max_message_len: 4096,
        })
        .start()
        .await
        .unwrap();
    let errors = [
        coordinator.call(closed_port(), "echo x").await.unwrap_err(),
        {
            sim.faults().push(Fault::NoReply);
            coordinator.call(node, "echo x").await.unwrap_err()
        },
        {
            let large = format!("echo {}", "x".repeat(5000));
            coordinator.call(node, large).await.unwrap_err()
        },
        {
            sim.faults()
                .push(Fault::Device(La4Fault::RunSeqError("no".into())));
            coordinator
                .call(node, Command::sequence(&sequence(), Slot::Normal))
                .await
                .unwrap_err()
        },
    ];
    assert!(matches!(errors[2], Error::Encode(_)), "{:?}", errors[2]);
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
    coordinator.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn start_binds_at_once_and_fails_early() {
    let coordinator = Coordinator::builder(loopback(), me())
        .start()
        .await
        .unwrap();
    // The listener is bound before start returns; its port is advertised.
    let taken = coordinator.local_addr();
    assert_eq!(coordinator.identity().port, taken.port());
    let err = Coordinator::builder(taken, me()).start().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    coordinator.shutdown().await;
}
