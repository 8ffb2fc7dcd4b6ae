//! PEKAT through the tap, in both dialects: a raw vendor-style client (one write per request,
//! one read per answer) → tap → pekat-sim, compared with the same exchange straight to the
//! simulator.

mod common;

use std::net::SocketAddr;

use common::{finish, recording_tap, within};
use labwire_tap::{Direction, Pekat};
use pekat_proto::Dialect;
use pekat_proto::wire::{Completeness, response_completeness};
use pekat_sim::PekatSim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROJECT: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";

/// Writes each request, reads its whole answer; then closes and reads to the end.
async fn exchange(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut received = Vec::new();
    for request in requests {
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        while answer.is_empty() || response_completeness(&answer, None) == Completeness::NeedMore {
            let mut buf = [0u8; 64];
            let n = stream.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "answer to {:?}", String::from_utf8_lossy(request));
            answer.extend_from_slice(&buf[..n]);
        }
        received.extend_from_slice(&answer);
    }
    stream.shutdown().await.unwrap();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

fn requests(dialect: Dialect) -> Vec<Vec<u8>> {
    let texts = match dialect {
        Dialect::V3_18 => vec![
            format!("status:{PROJECT}"),
            "launch:C:\\x".to_owned(),
            format!("status:{PROJECT} 2\r\n"),
            format!("stop:{PROJECT}"),
        ],
        Dialect::V3_19 => vec![
            format!("1.status|{PROJECT}"),
            "2.launch|C:\\x".to_owned(),
            format!("3.status|{PROJECT} 2\r\n"),
            format!("stop|{PROJECT}"),
        ],
    };
    texts.into_iter().map(String::into_bytes).collect()
}

async fn sim(dialect: Dialect) -> PekatSim {
    PekatSim::builder()
        .dialect(dialect)
        .project(PROJECT, 8100)
        .start()
        .await
        .unwrap()
}

async fn tapped_exchange_is_byte_identical(dialect: Dialect) {
    let requests = requests(dialect);
    let direct_sim = sim(dialect).await;
    let direct = within(
        "direct exchange",
        exchange(direct_sim.local_addr(), &requests),
    )
    .await;
    direct_sim.shutdown().await;

    let tapped_sim = sim(dialect).await;
    let protocol = Pekat {
        dialect,
        ..Pekat::default()
    };
    let (tap, path) = recording_tap(protocol, tapped_sim.local_addr(), "pekat").await;
    let tapped = within("tapped exchange", exchange(tap.local_addr(), &requests)).await;
    let recording = finish(tap, path, 1).await;
    tapped_sim.shutdown().await;

    assert_eq!(tapped, direct, "{dialect}: the client sees the same bytes");
    let header = recording.header.as_ref().unwrap();
    assert_eq!(header.options["dialect"], dialect.as_str());
    assert_eq!(
        recording.stream_bytes(1, Direction::ToDevice),
        requests.concat()
    );
    assert_eq!(recording.stream_bytes(1, Direction::ToClient), tapped);

    let sent: Vec<_> = recording.stream(1, Direction::ToDevice).collect();
    assert_eq!(
        sent.len(),
        requests.len(),
        "{dialect}: one event per request"
    );
    for (i, event) in sent.iter().enumerate() {
        assert_eq!(event.bytes, requests[i]);
        if i == 1 {
            assert!(event.decoded.error_text().is_some(), "an unknown command");
        } else {
            let request = event.decoded.message().expect("request decodes");
            assert!(request["path"].as_str().unwrap().starts_with(PROJECT));
        }
    }
    let answers: Vec<_> = recording.stream(1, Direction::ToClient).collect();
    assert_eq!(
        answers.len(),
        requests.len(),
        "{dialect}: one event per answer"
    );
    for event in &answers {
        let answer = event.decoded.message().expect("every answer decodes");
        assert!(answer.get("response").is_some(), "{answer}");
    }
    if dialect == Dialect::V3_19 {
        assert_eq!(answers[0].decoded.message().unwrap()["id"], "1");
    }
}

#[tokio::test]
async fn tapped_exchange_is_byte_identical_in_3_18() {
    tapped_exchange_is_byte_identical(Dialect::V3_18).await;
}

#[tokio::test]
async fn tapped_exchange_is_byte_identical_in_3_19() {
    tapped_exchange_is_byte_identical(Dialect::V3_19).await;
}

#[tokio::test]
async fn a_request_over_the_limit_is_forwarded_and_stops_decoding_that_direction() {
    let sim = sim(Dialect::V3_18).await;
    let mut protocol = Pekat::default();
    protocol.limits.max_request_len = 16;
    let (tap, path) = recording_tap(protocol, sim.local_addr(), "pekat-limit").await;
    let requests = requests(Dialect::V3_18);
    let tapped = within(
        "tapped exchange",
        exchange(tap.local_addr(), &requests[..1]),
    )
    .await;
    let recording = finish(tap, path, 1).await;
    sim.shutdown().await;
    assert_eq!(&tapped, b"stopped");
    let sent: Vec<_> = recording.stream(1, Direction::ToDevice).collect();
    assert!(sent[0].decoded.error_text().is_some());
    assert_eq!(recording.stream_bytes(1, Direction::ToDevice), requests[0]);
}
