//! ARKEO through the tap: a raw vendor-style client → tap → arkeo-sim, compared with the same
//! exchange straight to the simulator.

mod common;

use std::net::SocketAddr;

use arkeo_sim::ArkeoSim;
use common::{finish, recording_tap, within};
use labwire_tap::{Arkeo, Direction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// What the vendor's example does: write a frame, read the answer frame, next; then close
/// and read whatever else comes. Returns every byte received.
async fn exchange(addr: SocketAddr, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut received = Vec::new();
    for frame in frames {
        stream.write_all(frame).await.unwrap();
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await.unwrap();
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut payload).await.unwrap();
        received.extend_from_slice(&header);
        received.extend_from_slice(&payload);
    }
    stream.shutdown().await.unwrap();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

fn requests() -> Vec<Vec<u8>> {
    [
        &br#"{"target": "MAIN", "command": "GetAvailableRoutines", "parameter": {}, "request_id": 1}"#[..],
        br#"{"target": "MAIN", "command": "GetActiveRoutine", "request_id": 2}"#,
        br#"{"target": "MAIN", "command": oops"#,
        br#"{"target": "MAIN", "command": "StartRoutine", "params": {"routine": "JV"}, "request_id": 3}"#,
        br#"{"target": "MUX", "command": "GetStatus", "parameter": {}, "request_id": 4}"#,
    ]
    .iter()
    .map(|p| frame(p))
    .collect()
}

async fn sim() -> ArkeoSim {
    ArkeoSim::builder().start().await.unwrap()
}

#[tokio::test]
async fn tapped_exchange_is_byte_identical_and_every_message_is_recorded() {
    let requests = requests();
    let direct_sim = sim().await;
    let direct = within(
        "direct exchange",
        exchange(direct_sim.local_addr(), &requests),
    )
    .await;
    direct_sim.shutdown().await;

    let tapped_sim = sim().await;
    let (tap, path) = recording_tap(Arkeo::default(), tapped_sim.local_addr(), "arkeo").await;
    let tapped = within("tapped exchange", exchange(tap.local_addr(), &requests)).await;
    let recording = finish(tap, path, 1).await;
    tapped_sim.shutdown().await;

    assert_eq!(
        tapped, direct,
        "the client sees the same bytes through the tap"
    );
    assert_eq!(recording.header.as_ref().unwrap().protocol, "arkeo");
    assert_eq!(
        recording.stream_bytes(1, Direction::ToDevice),
        requests.concat(),
        "the simulator received exactly what the client sent"
    );
    assert_eq!(recording.stream_bytes(1, Direction::ToClient), tapped);

    let sent: Vec<_> = recording.stream(1, Direction::ToDevice).collect();
    assert_eq!(sent.len(), requests.len(), "one event per request");
    for (event, request) in sent.iter().zip(&requests) {
        assert_eq!(&event.bytes, request);
    }
    assert!(
        sent[2].decoded.error_text().is_some(),
        "bad JSON is a decode error"
    );
    for (i, event) in sent.iter().enumerate().filter(|(i, _)| *i != 2) {
        let message = event
            .decoded
            .message()
            .unwrap_or_else(|| panic!("request {i}"));
        assert!(message.get("command").is_some(), "{message}");
    }
    assert_eq!(
        sent[3].decoded.message().unwrap()["parameter"]["routine"],
        "JV"
    );

    let answers: Vec<_> = recording.stream(1, Direction::ToClient).collect();
    assert_eq!(answers.len(), requests.len(), "one event per answer");
    for event in &answers {
        let answer = event.decoded.message().expect("every answer decodes");
        assert!(answer.get("status").is_some(), "{answer}");
    }
    // The device answered the malformed frame itself (error 100); the tap changed nothing.
    assert_eq!(answers[2].decoded.message().unwrap()["error"]["code"], 100);
}

#[tokio::test]
async fn a_frame_over_the_limit_is_forwarded_and_stops_decoding_that_direction() {
    let requests = requests();
    let direct_sim = sim().await;
    let direct = within(
        "direct exchange",
        exchange(direct_sim.local_addr(), &requests),
    )
    .await;
    direct_sim.shutdown().await;

    let tapped_sim = sim().await;
    let mut small = Arkeo::default();
    small.limits.max_frame_length = 70;
    let (tap, path) = recording_tap(small, tapped_sim.local_addr(), "arkeo-limit").await;
    let tapped = within("tapped exchange", exchange(tap.local_addr(), &requests)).await;
    let recording = finish(tap, path, 1).await;
    tapped_sim.shutdown().await;

    assert_eq!(tapped, direct);
    assert_eq!(
        recording.stream_bytes(1, Direction::ToDevice),
        requests.concat()
    );
    let sent: Vec<_> = recording.stream(1, Direction::ToDevice).collect();
    let error = sent[0]
        .decoded
        .error_text()
        .expect("first frame is over 70 bytes");
    assert!(error.contains("exceeds"), "{error}");
    assert!(
        sent[1..].iter().all(|e| e.decoded.error_text().is_some()),
        "nothing is decoded after the limit was hit"
    );
    assert_eq!(recording.stream_bytes(1, Direction::ToClient), tapped);
}

#[tokio::test]
async fn an_upstream_that_refuses_closes_the_client_and_the_tap_serves_the_next() {
    // A port with nothing listening: bind one, note it, close it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = free.local_addr().unwrap();
    drop(free);
    let (tap, path) = recording_tap(Arkeo::default(), upstream, "arkeo-refused").await;

    let mut refused = TcpStream::connect(tap.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let read = within("the close", refused.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "client sees a close: {read:?}"
    );
    within("first connection", tap.wait_finished(1)).await;

    let sim = ArkeoSim::builder().listen(upstream).start().await.unwrap();
    let requests = requests();
    let answers = within("exchange after", exchange(tap.local_addr(), &requests)).await;
    assert!(!answers.is_empty());
    let recording = finish(tap, path, 2).await;
    sim.shutdown().await;
    assert_eq!(recording.connections(), vec![2]);
    assert_eq!(recording.stream_bytes(2, Direction::ToClient), answers);
}
