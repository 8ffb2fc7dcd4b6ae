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

/// At `max_connections` a new client is refused at once (accepted and closed), not left in the
/// backlog with no answer; the client holding the slot is still served, and once it leaves the
/// next client is served.
#[tokio::test]
async fn a_client_past_the_cap_is_refused_at_once() {
    let payload = br#"{"target":"MAIN","command":"GetActiveRoutine","request_id":1}"#;
    let mut request = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    request.extend_from_slice(payload);
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let config = TapConfig {
        max_connections: 1,
        ..TapConfig::new(sim.local_addr().to_string())
    };
    let tap = labwire_tap::start(Arc::new(Arkeo::default()), config)
        .await
        .unwrap();
    // An answer through the tap proves the holder has its slot.
    let mut holder = TcpStream::connect(tap.local_addr()).await.unwrap();
    holder.write_all(&request).await.unwrap();
    let mut buf = [0u8; 1024];
    assert!(
        within("the holder's answer", holder.read(&mut buf))
            .await
            .unwrap()
            > 0
    );

    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        closed_after(tap.local_addr(), &request),
    )
    .await
    .expect("a client past the cap is closed promptly, not left hanging");
    assert!(refused.is_empty(), "refused without an answer: {refused:?}");

    holder.write_all(&request).await.unwrap();
    assert!(
        within("the holder's second answer", holder.read(&mut buf))
            .await
            .unwrap()
            > 0
    );
    drop(holder);
    within("the holder's end", tap.wait_finished(1)).await;
    assert!(
        !answer(tap.local_addr(), &request).await.is_empty(),
        "served once the slot is free"
    );
    within("tap shutdown", tap.shutdown()).await.unwrap();
    sim.shutdown().await;
}
