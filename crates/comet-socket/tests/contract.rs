//! The program of `docs/clients.md` — build, call, handle a device refusal, handle a timeout,
//! print the error chain — against comet-sim, the same five lines as in every labwire crate.

use std::time::Duration;

use comet_sim::{CometFault, CometSim, Fault};
use comet_socket::{Client, Request};
use serde_json::json;

/// Bounds every test: nothing here waits for a deadline longer than this.
const DEADLINE: Duration = Duration::from_secs(10);

/// What the five lines did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Answered(String),
    Refused(String),
    TimedOut(String),
    Failed(String),
}

/// The program of `docs/clients.md`, with `println!`/`eprintln!` recorded instead.
async fn five_lines(addr: impl Into<comet_socket::Connector>, call_timeout: Duration) -> Outcome {
    let client = Client::builder(addr).call_timeout(call_timeout).build();
    let request = Request::new("ECHO", json!({"sample": 7}));
    match tokio::time::timeout(DEADLINE, client.call(request))
        .await
        .expect("bounded")
    {
        Ok(answer) => Outcome::Answered(format!("{answer:?}")),
        Err(e) if e.device_error().is_some() => {
            Outcome::Refused(format!("the device refused: {e}"))
        }
        Err(e) if e.is_timeout() => Outcome::TimedOut(format!("no answer in time: {e}")),
        Err(e) => Outcome::Failed(labwire_net::error_chain(&e)),
    }
}

#[tokio::test]
async fn an_answer() {
    let sim = CometSim::builder().start().await.unwrap();
    let outcome = five_lines(sim.local_addr(), DEADLINE).await;
    assert_eq!(
        outcome,
        Outcome::Answered(format!(
            "{:?}",
            comet_socket::Response::new(json!({"sample": 7}))
        ))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_device_refusal() {
    let sim = CometSim::builder()
        .fault(Fault::Device(CometFault::Error(
            "Error: SMU not connected".into(),
        )))
        .start()
        .await
        .unwrap();
    let outcome = five_lines(sim.local_addr(), DEADLINE).await;
    assert_eq!(
        outcome,
        Outcome::Refused("the device refused: Error: SMU not connected".into())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_timeout() {
    let sim = CometSim::builder()
        .fault(Fault::NoReply)
        .start()
        .await
        .unwrap();
    let outcome = five_lines(sim.local_addr(), Duration::from_millis(200)).await;
    assert_eq!(
        outcome,
        Outcome::TimedOut("no answer in time: no answer within 200ms".into())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_prints_its_cause_once() {
    let sim = CometSim::builder().start().await.unwrap();
    let addr = sim.local_addr();
    sim.shutdown().await;
    let Outcome::Failed(chain) = five_lines(addr, DEADLINE).await else {
        panic!("a refused connect is neither an answer, a refusal nor a timeout");
    };
    assert!(
        chain.starts_with(&format!("cannot connect to {addr}: ")),
        "{chain}"
    );
    assert_eq!(
        chain.to_lowercase().matches("refused").count(),
        1,
        "{chain}"
    );
}
