//! The one client contract (`docs/clients.md`): the same five-line program as for every
//! labwire client, against `pekat-sim` on loopback — an answer, a device refusal, a timeout, a
//! refused connect, and each cause printed once.

use std::time::Duration;

use labwire_net::Connector;
use pekat_proto::{Client, DeviceError, Error, ProjectState, Request, Response};
use pekat_sim::{Fault, PekatSim, demo_projects};
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

async fn sim() -> PekatSim {
    PekatSim::builder()
        .delays(Duration::ZERO, Duration::ZERO)
        .start()
        .await
        .unwrap()
}

fn project() -> String {
    demo_projects()[0].path.clone()
}

#[tokio::test]
async fn an_answer_is_ok() {
    let sim = sim().await;
    let (arm, printed) = timeout(
        TEST_DEADLINE,
        program(sim.local_addr(), Request::status(project())),
    )
    .await
    .unwrap();
    assert_eq!(arm, Arm::Answer);
    assert_eq!(
        printed,
        format!("{:?}", Response::Status(ProjectState::Stopped))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_device_refusal_is_a_typed_error_never_an_ok() {
    let sim = sim().await;
    let missing = Request::status(r"C:\Users\pekat\PekatVisionProjects\No Such Project");
    let (arm, printed) = timeout(TEST_DEADLINE, program(sim.local_addr(), missing))
        .await
        .unwrap();
    assert_eq!(arm, Arm::Refused, "{printed}");
    assert!(printed.contains("not-found"), "{printed}");

    let client = Client::builder(sim.local_addr()).build();
    let missing = Request::start(r"C:\nowhere");
    let err = client.call(missing).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::NotFound));
    assert!(!err.is_connection_fatal() && !err.is_timeout());
    assert!(matches!(err, Error::Device(DeviceError::NotFound)));
    sim.shutdown().await;
}

#[tokio::test]
async fn no_answer_is_a_timeout_of_the_call_timeout() {
    let sim = sim().await;
    sim.faults().set(Some(Fault::NoReply));
    let (arm, printed) = timeout(
        TEST_DEADLINE,
        program(sim.local_addr(), Request::status(project())),
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
    // A port nobody listens on: bound, then closed.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (arm, printed) = timeout(TEST_DEADLINE, program(addr, Request::status(project())))
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
        .call(Request::status(project()))
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
        .build();
    let errors = [
        {
            sim.faults().set(Some(Fault::Close));
            client.call(Request::status(project())).await.unwrap_err()
        },
        {
            sim.faults().set(Some(Fault::Garbage));
            client.call(Request::status(project())).await.unwrap_err()
        },
        {
            sim.faults().clear();
            client.call(Request::status("")).await.unwrap_err()
        },
        {
            sim.faults().clear();
            client
                .call(Request::start(r"C:\nowhere"))
                .await
                .unwrap_err()
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
    // The first call uses the connection opened early; the next one opens its own.
    assert_eq!(
        client.call(Request::status(project())).await.unwrap(),
        Response::Status(ProjectState::Stopped)
    );
    assert_eq!(sim.state().connections_accepted(), 1);
    client.call(Request::status(project())).await.unwrap();
    assert_eq!(sim.state().connections_accepted(), 2);
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
