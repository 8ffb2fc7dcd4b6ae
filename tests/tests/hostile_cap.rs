//! The connection cap (issue 16, failure 3): once a simulator serves as many connections as
//! it may, a new client is refused at once (accepted and closed), never left with a finished
//! handshake and no answer; once a slot frees, clients are served again.

use std::net::SocketAddr;
use std::time::Duration;

use comet_sim::CometSim;
use labwire_tests::{TEST_DEADLINE, eventually};
use pekat_sim::PekatSim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const CAP: usize = 4;

async fn connect(addr: SocketAddr) -> TcpStream {
    labwire_net::connect(addr, TEST_DEADLINE).await.unwrap()
}

/// Fills the cap with clients that have sent nothing (their connections are served, idle).
async fn hold_the_cap(addr: SocketAddr, count: impl Fn() -> usize) -> Vec<TcpStream> {
    let mut holders = Vec::new();
    for _ in 0..CAP {
        holders.push(connect(addr).await);
    }
    assert!(eventually(TEST_DEADLINE, || count() == CAP).await);
    holders
}

/// A client past the cap sees its connection end (EOF or a reset) within 1 s, even after
/// sending its request.
async fn assert_refused(addr: SocketAddr, request: &[u8]) {
    let mut s = connect(addr).await;
    let _ = s.write_all(request).await;
    let mut rest = Vec::new();
    let ended = timeout(Duration::from_secs(1), s.read_to_end(&mut rest)).await;
    match ended {
        Ok(Ok(_)) => assert!(rest.is_empty(), "an answer past the cap: {rest:?}"),
        Ok(Err(_)) => {} // reset: refused too
        Err(_) => panic!("a client past the cap was left hanging"),
    }
}

#[tokio::test]
async fn arkeo_sim_refuses_a_client_past_the_cap_at_once() {
    let sim = arkeo_sim::ArkeoSim::builder()
        .max_connections(CAP)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let holders = hold_the_cap(addr, || sim.connection_count()).await;
    let request = br#"{"target":"MAIN","command":"GetActiveRoutine","request_id":1}"#;
    let mut frame = u32::try_from(request.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(request);
    assert_refused(addr, &frame).await;
    drop(holders);
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 0).await);
    let client = arkeo_proto::Client::builder(addr)
        .call_timeout(Duration::from_secs(1))
        .build();
    client.available_routines().await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_sim_refuses_a_client_past_the_cap_at_once() {
    let sim = PekatSim::builder()
        .max_connections(CAP)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let holders = hold_the_cap(addr, || sim.connection_count()).await;
    assert_refused(addr, b"status:C:\\nothing").await;
    drop(holders);
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 0).await);
    let mut s = connect(addr).await;
    s.write_all(b"status:C:\\nothing").await.unwrap();
    let mut answer = [0u8; 64];
    let n = timeout(Duration::from_secs(1), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0, "served again once the holders left");
    sim.shutdown().await;
}

#[tokio::test]
async fn comet_sim_refuses_a_client_past_the_cap_at_once() {
    let sim = CometSim::builder()
        .max_connections(CAP)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let holders = hold_the_cap(addr, || sim.connection_count()).await;
    let frame = comet_socket::wire::encode_json_to_bytes(
        br#"{"Status": 1}"#,
        &comet_socket::wire::Limits::default(),
    )
    .unwrap();
    assert_refused(addr, &frame).await;
    drop(holders);
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 0).await);
    let client = comet_socket::Client::builder(addr.to_string())
        .call_timeout(Duration::from_secs(2))
        .build();
    // Any answer, the device's refusal included: the point is that it is served.
    let answer = client.send("Status", &serde_json::json!(1)).await;
    assert!(
        answer.is_ok() || answer.as_ref().is_err_and(|e| e.device_error().is_some()),
        "{answer:?}"
    );
    sim.shutdown().await;
}
