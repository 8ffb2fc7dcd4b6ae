//! A peer that sends more than the protocol's limits: by default every byte is still forwarded
//! unchanged (decoding of that direction stops, the recording says why); with `cut_oversize`
//! the oversize message is not forwarded, both sides are closed, and the recording notes the
//! cut. The upstream here is a raw listener that reports every byte it received.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{finish, temp_path, within};
use labwire_tap::proxy::CUT_NOTE;
use labwire_tap::{Arkeo, Comet, Direction, Pekat, Protocol, Pycom, Recording, TapConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A raw upstream that accepts one connection and reports what it read until the close.
async fn upstream() -> (SocketAddr, oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // A reset ends it as well as a close.
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(got);
    });
    (addr, rx)
}

struct Outcome {
    /// What the upstream received.
    upstream: Vec<u8>,
    /// Whether the client's read ended (close or reset) without the client closing first.
    client_closed_by_tap: bool,
    recording: Recording,
}

/// `sent` in one write from a client through a tap of `protocol` (cut or not) to a raw
/// upstream. The client closes its side only when the tap has not closed it first.
async fn through(protocol: impl Protocol, cut: bool, sent: &[u8]) -> Outcome {
    let (addr, received) = upstream().await;
    let path = temp_path("oversize");
    let mut config = TapConfig::new(addr.to_string());
    config.record = Some(path.clone());
    config.cut_oversize = cut;
    let tap = labwire_tap::start(Arc::new(protocol), config)
        .await
        .unwrap();
    let mut client = TcpStream::connect(tap.local_addr()).await.unwrap();
    client.write_all(sent).await.unwrap();
    let client_closed_by_tap = if cut {
        let mut rest = Vec::new();
        // The tap closes both sides: the client's read ends (EOF, or a reset).
        let read = within("the cut", client.read_to_end(&mut rest)).await;
        assert!(rest.is_empty(), "nothing came back: {read:?}");
        true
    } else {
        client.shutdown().await.unwrap();
        false
    };
    let upstream = within("the upstream's close", received).await.unwrap();
    drop(client);
    let recording = finish(tap, path, 1).await;
    Outcome {
        upstream,
        client_closed_by_tap,
        recording,
    }
}

fn arkeo_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// One valid request, then a frame whose prefix claims 3 GiB, with a few payload bytes.
fn arkeo_bytes() -> (Vec<u8>, Vec<u8>) {
    let first = arkeo_frame(br#"{"target":"MAIN","command":"GetActiveRoutine","request_id":1}"#);
    let mut sent = first.clone();
    sent.extend_from_slice(&0xC000_0000u32.to_be_bytes());
    sent.extend_from_slice(b"{\"target\":");
    (first, sent)
}

fn assert_cut(outcome: &Outcome, dir: Direction) {
    assert!(outcome.client_closed_by_tap);
    let events: Vec<_> = outcome.recording.stream(1, dir).collect();
    let last = events.last().expect("the oversize message is recorded");
    assert_eq!(last.note.as_deref(), Some(CUT_NOTE));
    assert!(last.decoded.error_text().is_some(), "{:?}", last.decoded);
}

#[tokio::test]
async fn arkeo_a_length_prefix_over_the_limit_is_forwarded_unchanged_by_default() {
    let (_, sent) = arkeo_bytes();
    let outcome = through(Arkeo::default(), false, &sent).await;
    assert_eq!(outcome.upstream, sent, "every byte forwarded");
    let events: Vec<_> = outcome.recording.stream(1, Direction::ToDevice).collect();
    assert!(events[0].decoded.message().is_some());
    let error = events[1].decoded.error_text().unwrap();
    assert!(
        error.contains("exceeds") || error.contains("large"),
        "{error}"
    );
    assert!(events.iter().all(|e| e.note.is_none()));
    assert_eq!(outcome.recording.stream_bytes(1, Direction::ToDevice), sent);
}

#[tokio::test]
async fn arkeo_a_length_prefix_over_the_limit_is_cut_with_the_flag() {
    let (first, sent) = arkeo_bytes();
    let outcome = through(Arkeo::default(), true, &sent).await;
    assert_eq!(
        outcome.upstream, first,
        "the whole request before it went on, nothing of the oversize frame"
    );
    assert_cut(&outcome, Direction::ToDevice);
    // The recording holds what the client sent, the cut message included.
    assert_eq!(outcome.recording.stream_bytes(1, Direction::ToDevice), sent);
}

/// A 3.18 request longer than a 16-byte request limit.
fn pekat() -> (Pekat, Vec<u8>) {
    let mut protocol = Pekat::default();
    protocol.limits.max_request_len = 16;
    let sent = br"status:C:\Users\pekat\PekatVisionProjects\Test Project 1".to_vec();
    (protocol, sent)
}

#[tokio::test]
async fn pekat_text_longer_than_the_limit_is_forwarded_unchanged_by_default() {
    let (protocol, sent) = pekat();
    let outcome = through(protocol, false, &sent).await;
    assert_eq!(outcome.upstream, sent);
    let events: Vec<_> = outcome.recording.stream(1, Direction::ToDevice).collect();
    assert!(events[0].decoded.error_text().is_some());
    assert_eq!(outcome.recording.stream_bytes(1, Direction::ToDevice), sent);
}

#[tokio::test]
async fn pekat_text_longer_than_the_limit_is_cut_with_the_flag() {
    let (protocol, sent) = pekat();
    let outcome = through(protocol, true, &sent).await;
    assert!(outcome.upstream.is_empty(), "nothing forwarded");
    assert_cut(&outcome, Direction::ToDevice);
}

#[tokio::test]
async fn comet_a_header_over_the_limit_is_forwarded_by_default_and_cut_with_the_flag() {
    let mut comet = Comet::default();
    comet.limits.max_header_length = 8;
    let sent = comet_socket::wire::encode_json_to_bytes(
        br#"{"action":"ECHO","value":1}"#,
        &comet_socket::Limits::default(),
    )
    .unwrap()
    .to_vec();
    let outcome = through(comet, false, &sent).await;
    assert_eq!(outcome.upstream, sent);
    let outcome = through(comet, true, &sent).await;
    assert!(outcome.upstream.is_empty());
    assert_cut(&outcome, Direction::ToDevice);
}

#[tokio::test]
async fn pycom_a_request_over_the_limit_is_forwarded_by_default_and_cut_with_the_flag() {
    let mut pycom = Pycom::default();
    pycom.limits.max_message_len = 64;
    let sent = serde_json::to_vec(&serde_json::json!({
        "id": "0badc0de", "name": "vendor", "ip": "127.0.0.1", "port": 5001, "version": "1.0",
        "coordinator": true, "type_": "cmd", "command": "echo a command longer than the limit",
    }))
    .unwrap();
    let outcome = through(pycom, false, &sent).await;
    assert_eq!(
        outcome.upstream, sent,
        "forwarded unchanged, no port rewrite"
    );
    let outcome = through(pycom, true, &sent).await;
    assert!(outcome.upstream.is_empty());
    assert_cut(&outcome, Direction::ToDevice);
}
