//! pycom through the tap: a raw vendor-style coordinator (one JSON object per connection, its
//! own listener for the node's events) → tap → la4-sim, compared with a direct run.
//!
//! What must differ, and only that: the `port` value in the request the node receives (the
//! tap's event listener instead of the coordinator's), and the `port` value in the events the
//! coordinator receives (the tap's own port instead of the node's: the coordinator sent its
//! request to the tap).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{finish, recording_tap, within};
use la4_sim::La4Sim;
use labwire_tap::pycom::rewrite_port;
use labwire_tap::{Direction, Pycom};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn sim() -> La4Sim {
    La4Sim::builder()
        .boot_time(Duration::ZERO)
        .id("cafe0001")
        .start()
        .await
        .unwrap()
}

/// The vendor coordinator's request bytes, advertising `port`.
fn request(port: u16, command: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "0badc0de", "name": "vendor", "ip": "127.0.0.1", "port": port,
        "version": "1.0", "coordinator": true, "type_": "cmd", "command": command,
    }))
    .unwrap()
}

async fn send(node: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(node).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
}

/// Events received on `events` until an `output` one: the output event's bytes.
async fn output_event(events: &TcpListener) -> Vec<u8> {
    loop {
        let (mut stream, _) = events.accept().await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        if value["type_"] == "output" {
            return bytes;
        }
    }
}

/// One command run by a coordinator listening on `events`, sent to `node`.
async fn run(node: SocketAddr, events: &TcpListener, command: &str) -> Vec<u8> {
    let port = events.local_addr().unwrap().port();
    send(node, &request(port, command)).await;
    within("the output event", output_event(events)).await
}

#[tokio::test]
async fn a_command_output_reaches_the_coordinator_through_the_tap_with_only_its_port_changed() {
    // One node for both runs: its events carry its own listening port.
    let tapped_sim = sim().await;
    let events = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct = run(tapped_sim.local_addr(), &events, "echo hello tap").await;

    let (tap, path) = recording_tap(Pycom::default(), tapped_sim.local_addr(), "pycom").await;
    let events = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tapped = run(tap.local_addr(), &events, "echo hello tap").await;
    let tap_port = tap.local_addr().port();
    assert_eq!(
        tapped,
        rewrite_port(&direct, tap_port).unwrap(),
        "the coordinator receives the same output event, naming the tap's port"
    );
    let sent = request(events.local_addr().unwrap().port(), "echo hello tap");
    // The malformed request: passes through (the node drops it), recorded as a decode error.
    send(tap.local_addr(), b"{\"id\": oops").await;
    // The request, the output event, the malformed request (unit_info went to the direct run).
    let recording = finish(tap, path, 3).await;
    tapped_sim.shutdown().await;

    assert_eq!(
        recording.stream_bytes(1, Direction::ToDevice),
        sent,
        "original bytes kept"
    );
    let first = recording.stream(1, Direction::ToDevice).next().unwrap();
    assert!(
        first.note.as_deref().unwrap().contains("rewritten"),
        "{:?}",
        first.note
    );
    assert_eq!(
        first.decoded.message().unwrap()["command"],
        "echo hello tap"
    );
    let mut outputs = 0;
    let mut malformed = 0;
    for event in &recording.events {
        match event.decoded.message() {
            Some(message) if event.dir == Direction::ToClient => {
                if message["type_"] == "output" {
                    outputs += 1;
                    assert_eq!(event.bytes, direct, "the node's own bytes recorded");
                    assert_eq!(event.reply_to, Some(1), "the output answers request 1");
                    assert!(
                        event
                            .note
                            .as_deref()
                            .unwrap()
                            .contains("the tap's own port")
                    );
                }
            }
            Some(_) => {}
            None => {
                malformed += 1;
                assert_eq!(event.bytes, b"{\"id\": oops");
                assert_eq!(event.dir, Direction::ToDevice);
            }
        }
    }
    assert_eq!((outputs, malformed), (1, 1));
}

#[tokio::test]
async fn a_refusing_upstream_leaves_the_tap_listening() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (tap, path) = recording_tap(Pycom::default(), closed, "pycom-refused").await;
    let events = TcpListener::bind("127.0.0.1:0").await.unwrap();
    within(
        "refused",
        send(
            tap.local_addr(),
            &request(events.local_addr().unwrap().port(), "echo x"),
        ),
    )
    .await;
    within(
        "refused again",
        send(tap.local_addr(), &request(1, "echo y")),
    )
    .await;
    let recording = finish(tap, path, 2).await;
    assert!(recording.events.is_empty());
}
