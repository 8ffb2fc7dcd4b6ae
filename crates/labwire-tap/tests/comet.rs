//! COMET through the tap: a raw vendor-style client (one request per connection, read until the
//! server closes) → tap → comet-sim, compared with the same exchanges straight to the simulator.

mod common;

use std::net::SocketAddr;

use comet_sim::CometSim;
use comet_socket::Limits;
use comet_socket::wire::encode_json_to_bytes;
use common::{finish, recording_tap, within};
use labwire_tap::{Comet, Direction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// COMET's client: connect, send one frame, read until the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

fn requests() -> Vec<Vec<u8>> {
    let frame = |content: &str| {
        encode_json_to_bytes(content.as_bytes(), &Limits::default())
            .unwrap()
            .to_vec()
    };
    vec![
        frame(r#"{"action": "ECHO", "value": {"b": 1, "a": [true, null, 2.5]}}"#),
        frame(r#"{"action": "nobody", "value": "hi"}"#),
        frame(r#"{"action": "", "value": 0}"#),
        // Malformed content: COMET closes without an answer.
        frame(r#"{"action": "ECHO", "value": oops"#),
    ]
}

#[tokio::test]
async fn tapped_exchanges_are_byte_identical_and_every_message_is_recorded() {
    let requests = requests();
    let direct_sim = CometSim::builder().start().await.unwrap();
    let mut direct = Vec::new();
    for request in &requests {
        direct.push(within("direct", exchange(direct_sim.local_addr(), request)).await);
    }
    direct_sim.shutdown().await;

    let tapped_sim = CometSim::builder().start().await.unwrap();
    let (tap, path) = recording_tap(Comet::default(), tapped_sim.local_addr(), "comet").await;
    let mut tapped = Vec::new();
    for request in &requests {
        tapped.push(within("tapped", exchange(tap.local_addr(), request)).await);
    }
    let recording = finish(tap, path, requests.len() as u64).await;
    tapped_sim.shutdown().await;

    assert_eq!(tapped, direct, "each client sees the same bytes");
    assert!(tapped[3].is_empty(), "no answer to malformed content");
    assert_eq!(recording.connections(), vec![1, 2, 3, 4]);
    for (i, request) in requests.iter().enumerate() {
        let conn = i as u64 + 1;
        assert_eq!(&recording.stream_bytes(conn, Direction::ToDevice), request);
        assert_eq!(recording.stream_bytes(conn, Direction::ToClient), tapped[i]);
        let sent: Vec<_> = recording.stream(conn, Direction::ToDevice).collect();
        assert_eq!(sent.len(), 1, "one request on connection {conn}");
        if i == 3 {
            assert!(sent[0].decoded.error_text().is_some());
        } else {
            let request = sent[0].decoded.message().expect("request decodes");
            assert!(request.get("action").is_some(), "{request}");
            let answers: Vec<_> = recording.stream(conn, Direction::ToClient).collect();
            assert_eq!(answers.len(), 1);
            let answer = answers[0].decoded.message().expect("answer decodes");
            assert!(answer.get("result").is_some(), "{answer}");
        }
    }
    let echo = recording.stream(1, Direction::ToClient).next().unwrap();
    assert_eq!(
        echo.decoded.message().unwrap()["result"],
        serde_json::json!({"b": 1, "a": [true, null, 2.5]})
    );
}
