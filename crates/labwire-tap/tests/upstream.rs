//! An upstream that drops the connection, then one that refuses it: for ARKEO, PEKAT and
//! COMET the client sees a close each time and the tap keeps listening; a simulator started on
//! the same port is then served through the same tap. (pycom: `pycom_coordinator.rs`.)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::within;
use labwire_tap::{Arkeo, Comet, Pekat, Protocol, TapConfig, TapHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Writes `request`, then reads until the tap closes the connection; returns what came.
async fn closed_after(tap: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(tap).await.unwrap();
    // The tap may close before the request is written: that is the close we wait for.
    let _ = stream.write_all(request).await;
    let mut got = Vec::new();
    let _ = within("the close", stream.read_to_end(&mut got)).await;
    got
}

/// Writes `request` and reads the first bytes of the answer.
async fn answer(tap: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(tap).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = within("the answer", stream.read(&mut buf)).await.unwrap();
    buf[..n].to_vec()
}

/// A tap whose upstream first drops a connection, then refuses one; the client sees a close
/// each time. Returns the tap, still listening, and the upstream address (now free).
async fn after_drop_and_refusal(
    protocol: impl Protocol,
    request: &[u8],
) -> (TapHandle, SocketAddr) {
    let dropping = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = dropping.local_addr().unwrap();
    let dropper = tokio::spawn(async move {
        while let Ok((stream, _)) = dropping.accept().await {
            drop(stream);
        }
    });
    let tap = labwire_tap::start(Arc::new(protocol), TapConfig::new(upstream.to_string()))
        .await
        .unwrap();
    assert!(
        closed_after(tap.local_addr(), request).await.is_empty(),
        "dropped"
    );
    within("the dropped connection", tap.wait_finished(1)).await;
    dropper.abort();
    let _ = dropper.await;
    assert!(
        closed_after(tap.local_addr(), request).await.is_empty(),
        "refused"
    );
    within("the refused connection", tap.wait_finished(2)).await;
    (tap, upstream)
}

#[tokio::test]
async fn arkeo_survives_an_upstream_that_drops_or_refuses() {
    let payload = br#"{"target":"MAIN","command":"GetActiveRoutine","request_id":1}"#;
    let mut request = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    request.extend_from_slice(payload);
    let (tap, upstream) = after_drop_and_refusal(Arkeo::default(), &request).await;
    let sim = arkeo_sim::ArkeoSim::builder()
        .listen(upstream)
        .start()
        .await
        .unwrap();
    assert!(
        !answer(tap.local_addr(), &request).await.is_empty(),
        "served again"
    );
    within("tap shutdown", tap.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_survives_an_upstream_that_drops_or_refuses() {
    let request = br"status:C:\x";
    let (tap, upstream) = after_drop_and_refusal(Pekat::default(), request).await;
    let sim = pekat_sim::PekatSim::builder()
        .listen(upstream)
        .start()
        .await
        .unwrap();
    assert!(
        !answer(tap.local_addr(), request).await.is_empty(),
        "served again"
    );
    within("tap shutdown", tap.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn comet_survives_an_upstream_that_drops_or_refuses() {
    let request = comet_socket::wire::encode_json_to_bytes(
        br#"{"action":"ECHO","value":1}"#,
        &comet_socket::Limits::default(),
    )
    .unwrap()
    .to_vec();
    let (tap, upstream) = after_drop_and_refusal(Comet::default(), &request).await;
    let sim = comet_sim::CometSim::builder()
        .listen(upstream)
        .start()
        .await
        .unwrap();
    assert!(
        !answer(tap.local_addr(), &request).await.is_empty(),
        "served again"
    );
    within("tap shutdown", tap.shutdown()).await.unwrap();
    sim.shutdown().await;
}
