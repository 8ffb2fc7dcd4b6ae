//! pycom end to end with pycom-proto's real `Coordinator`: Coordinator → tap → la4-sim gives
//! the same typed results as Coordinator → la4-sim; the recording decodes every message; the
//! recording replayed answers a new Coordinator with the same typed results; a malformed
//! request passes through; an upstream that refuses or drops leaves the tap listening.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{finish, recording_tap, temp_path, within};
use la4_sim::La4Sim;
use labwire_tap::replay::{self, ReplayConfig};
use labwire_tap::{Decoded, Direction, Event as RecordedEvent, Header, Pycom, Recording};
use pycom_proto::coordinator::{Error, Event, Response};
use pycom_proto::{Coordinator, Identity, Message, Row, Sequence, Slot, Verdict, wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn sim() -> La4Sim {
    La4Sim::builder()
        .boot_time(Duration::ZERO)
        .id("cafe0001")
        .start()
        .await
        .unwrap()
}

/// A coordinator with its own `id` (la4-sim sends `unit_info` once per coordinator id).
async fn coordinator(id: &str) -> Coordinator {
    let me = Identity::new(id, "labwire tests", "127.0.0.1", 0, "0.1.0", true);
    Coordinator::builder("127.0.0.1:0".parse().unwrap(), me)
        .call_timeout(Duration::from_secs(10))
        .start()
        .await
        .unwrap()
}

fn sequence() -> Sequence {
    Sequence::new([Row::ModelLight { power: 100 }, Row::LedFan { on: true }]).unwrap()
}

const COMMANDS: [&str; 2] = ["echo hello tap", "nope --version"];

/// The session every run goes through: two commands and a confirmed sequence.
async fn session(coordinator: &Coordinator, node: SocketAddr) -> Vec<Response> {
    let mut results = Vec::new();
    for command in COMMANDS {
        results.push(
            within(command, coordinator.call(node, command))
                .await
                .unwrap(),
        );
    }
    let sequence = sequence();
    let confirmed = coordinator.run_sequence_confirmed(node, &sequence, Slot::Normal);
    results.push(within("the sequence", confirmed).await.unwrap());
    results
}

/// The `unit_info`, outputs and messages a coordinator received, without the node's address
/// and port (which name the simulator, the tap or the replay).
fn heard(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            Event::UnitInfo { info, .. } => out.push(format!("unit_info {info:?}")),
            Event::Output { output, .. } => out.push(format!("output {output}")),
            Event::Message { message, .. } => out.push(format!("message {message}")),
            _ => {}
        }
    }
    out
}

/// Direct and tapped sessions against one simulator (same node identity and port); returns the
/// direct results and events, the tapped ones, the recording and the tapped coordinator's
/// identity.
async fn direct_and_tapped() -> (
    Vec<Response>,
    Vec<String>,
    Vec<Response>,
    Vec<String>,
    Recording,
    Identity,
) {
    let sim = sim().await;
    let direct = coordinator("c0000001").await;
    let mut direct_events = direct.events();
    let direct_results = session(&direct, sim.local_addr()).await;
    direct.shutdown().await;

    let (tap, path) = recording_tap(Pycom::default(), sim.local_addr(), "pycom-coordinator").await;
    let tapped = coordinator("c0000002").await;
    let mut tapped_events = tapped.events();
    let tapped_results = session(&tapped, tap.local_addr()).await;
    let identity = tapped.identity().clone();
    // The node saw the coordinator's identity as sent, apart from the advertised port.
    let seen = sim
        .state()
        .coordinators()
        .into_iter()
        .find(|c| c.identity.id == "c0000002")
        .expect("the node heard the tapped coordinator");
    assert_eq!(
        Identity {
            port: identity.port,
            ..seen.identity.clone()
        },
        identity
    );
    assert_ne!(seen.identity.port, identity.port, "the documented rewrite");
    tapped.shutdown().await;
    let heard_direct = heard(&mut direct_events);
    let heard_tapped = heard(&mut tapped_events);
    // Three requests, and one connection per event (unit_info, outputs, verdicts).
    let connections = 3 + heard_tapped.len() as u64;
    let recording = finish(tap, path, connections).await;
    sim.shutdown().await;
    (
        direct_results,
        heard_direct,
        tapped_results,
        heard_tapped,
        recording,
        identity,
    )
}

#[tokio::test]
async fn a_coordinator_through_the_tap_and_against_the_replay_gets_the_direct_results() {
    let (direct, heard_direct, tapped, heard_tapped, recording, identity) =
        direct_and_tapped().await;
    assert_eq!(tapped, direct, "the same typed results through the tap");
    assert_eq!(direct[0].output, "hello tap\n");
    assert_eq!(direct[2].verdict, Some(Verdict::Ready));
    assert_eq!(
        heard_tapped, heard_direct,
        "the same events, in the same order"
    );
    assert!(heard_direct[0].starts_with("unit_info"), "{heard_direct:?}");

    // The recording: every message decodes; the requests are the coordinator's own bytes.
    for event in &recording.events {
        assert!(
            event.decoded.message().is_some(),
            "conn {}: {:?}",
            event.conn,
            event.decoded
        );
    }
    let requests: Vec<_> = recording
        .events
        .iter()
        .filter(|e| e.dir == Direction::ToDevice)
        .collect();
    assert_eq!(requests.len(), 3);
    for (event, command) in requests.iter().zip(COMMANDS) {
        let sent = wire::encode(
            &Message::cmd(identity.clone(), command),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(event.bytes, sent, "recorded as the coordinator sent it");
        assert!(event.note.as_deref().unwrap().contains("rewritten"));
    }
    let events: Vec<_> = recording
        .events
        .iter()
        .filter(|e| e.dir == Direction::ToClient)
        .collect();
    assert_eq!(events.len(), heard_tapped.len());
    for event in &events {
        let request = event.reply_to.expect("each event names its request");
        assert!(requests.iter().any(|r| r.conn == request));
        let message = wire::decode(&event.bytes, &Default::default()).unwrap();
        assert!(!message.identity.coordinator, "the node's own bytes");
    }

    // The replay answers a new coordinator as the node did.
    let device = replay::serve(recording.clone()).await.unwrap();
    let again = coordinator("c0000003").await;
    let mut replayed_events = again.events();
    let replayed = session(&again, device.local_addr()).await;
    assert_eq!(replayed, direct, "the replay gives the same typed results");
    assert_eq!(device.unmatched(), 0);
    assert_eq!(heard(&mut replayed_events), heard_direct);
    // A command the recording does not have: the node's form of a failure.
    let unknown = within(
        "refusal",
        again.call(device.local_addr(), "echo never recorded"),
    )
    .await
    .unwrap();
    assert_eq!(
        unknown.output,
        "labwire replay: not in the recording: echo never recorded\n"
    );
    assert_eq!(device.unmatched(), 1);
    again.shutdown().await;
    device.shutdown().await;
    // Counted once delivered; shutdown waits for every delivery.
    assert_eq!(device.events_delivered(), events.len() as u64 + 1);

    // Strict: nothing comes back, the coordinator times out.
    let strict = ReplayConfig {
        strict: true,
        report: false,
        ..ReplayConfig::new()
    };
    let device = replay::start(&recording, strict).await.unwrap();
    let again = coordinator("c0000004").await;
    let err = again
        .call_with_timeout(
            device.local_addr(),
            "echo never recorded",
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    again.shutdown().await;
    device.shutdown().await;
    assert_eq!(device.events_delivered(), 0);
}

#[tokio::test]
async fn a_replayed_recording_loads_from_its_file_and_is_matched_whatever_the_key_order() {
    // A hand-written recording: one request (keys in another order, another coordinator
    // identity) and its output event.
    let node = Identity::new(
        "cafe0001",
        "rigsters-controller",
        "127.0.0.1",
        5000,
        "0.14.0",
        false,
    );
    let output = wire::encode(&Message::output(node, "hi\n"), &Default::default()).unwrap();
    let request = br#"{"type_":"cmd","command":"echo hi","coordinator":true,"port":41000,"id":"x","name":"y","ip":"10.0.0.9","version":"9"}"#;
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let text = format!(
        "{}\n{}\n{}\n",
        r#"{"labwire_recording":1,"protocol":"pycom"}"#,
        serde_json::json!({"t": 0.1, "conn": 1, "dir": "to_device", "bytes": hex(request), "decoded": {}}),
        serde_json::json!({"t": 0.2, "conn": 2, "dir": "to_client", "bytes": hex(&output), "decoded": {}}),
    );
    let path = temp_path("pycom-hand");
    std::fs::write(&path, text).unwrap();
    let recording = Recording::load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let device = replay::serve(recording).await.unwrap();
    let again = coordinator("c0000005").await;
    let answer = within("answer", again.call(device.local_addr(), "echo hi"))
        .await
        .unwrap();
    assert_eq!(answer.output, "hi\n");
    // The event names the replay's address, so the coordinator took it as the node's.
    let node = again.node(device.local_addr()).expect("the node is known");
    assert_eq!(node.identity.unwrap().name, "rigsters-controller");
    again.shutdown().await;
    device.shutdown().await;
}

/// Sends raw bytes as one request and waits for the close.
async fn send_raw(node: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(node).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
}

#[tokio::test]
async fn a_malformed_request_passes_through_and_the_next_call_works() {
    let sim = sim().await;
    let (tap, path) = recording_tap(Pycom::default(), sim.local_addr(), "pycom-malformed").await;
    within("malformed", send_raw(tap.local_addr(), b"{\"id\": oops")).await;
    let coordinator = coordinator("c0000006").await;
    let answer = within(
        "next call",
        coordinator.call(tap.local_addr(), "echo after"),
    )
    .await
    .unwrap();
    assert_eq!(answer.output, "after\n");
    coordinator.shutdown().await;
    // The malformed request, the command, unit_info and the output.
    let recording = finish(tap, path, 4).await;
    sim.shutdown().await;
    let first = recording.stream(1, Direction::ToDevice).next().unwrap();
    assert_eq!(first.bytes, b"{\"id\": oops");
    assert!(first.decoded.error_text().is_some());
    assert!(first.note.is_none(), "forwarded unchanged");
}

#[tokio::test]
async fn an_upstream_that_refuses_or_drops_fails_the_call_and_the_tap_serves_the_next() {
    // Drops: accepts and closes at once.
    let dropping = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = dropping.local_addr().unwrap();
    let dropper = tokio::spawn(async move {
        while let Ok((stream, _)) = dropping.accept().await {
            drop(stream);
        }
    });
    let (tap, path) = recording_tap(Pycom::default(), upstream, "pycom-upstream").await;
    let coordinator = coordinator("c0000007").await;
    let short = Duration::from_millis(300);
    let err = coordinator
        .call_with_timeout(tap.local_addr(), "echo dropped", short)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(_) | Error::Connect { .. }),
        "{err:?}"
    );
    dropper.abort();
    let _ = dropper.await;
    // Refuses: nothing listens there now.
    let err = coordinator
        .call_with_timeout(tap.local_addr(), "echo refused", short)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(_) | Error::Connect { .. }),
        "{err:?}"
    );
    within("two connections", tap.wait_finished(2)).await;

    // The same port, a node again: the tap still listens and serves.
    let sim = La4Sim::builder()
        .listen(upstream)
        .boot_time(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let answer = within("after", coordinator.call(tap.local_addr(), "echo back"))
        .await
        .unwrap();
    assert_eq!(answer.output, "back\n");
    coordinator.shutdown().await;
    drop(finish(tap, path, 2).await);
    sim.shutdown().await;
}

/// A hand-written recording: `echo hi` answered `after` its request.
fn echo_hi(after: Duration) -> Recording {
    let node = Identity::new(
        "cafe0001",
        "rigsters-controller",
        "127.0.0.1",
        5000,
        "0.14.0",
        false,
    );
    let output = wire::encode(&Message::output(node, "hi\n"), &Default::default()).unwrap();
    let me = Identity::new("c", "c", "127.0.0.1", 41000, "1", true);
    let request = wire::encode(&Message::cmd(me, "echo hi"), &Default::default()).unwrap();
    let event = |t: f64, conn: u64, dir: Direction, bytes: Vec<u8>| RecordedEvent {
        t,
        conn,
        dir,
        bytes,
        decoded: Decoded::error("decoded again by the replay"),
        note: None,
        reply_to: None,
    };
    Recording {
        header: Some(Header::new("pycom")),
        events: vec![
            event(2.0, 1, Direction::ToDevice, request),
            event(2.0 + after.as_secs_f64(), 2, Direction::ToClient, output),
        ],
    }
}

/// How long `echo hi` takes against a replay of [`echo_hi`].
async fn echo_hi_takes(after: Duration, pace: bool) -> Duration {
    let config = ReplayConfig {
        pace,
        report: false,
        ..ReplayConfig::new()
    };
    let device = replay::start(&echo_hi(after), config).await.unwrap();
    let again = coordinator("c0000008").await;
    let start = std::time::Instant::now();
    let answer = within("answer", again.call(device.local_addr(), "echo hi"))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(answer.output, "hi\n");
    again.shutdown().await;
    device.shutdown().await;
    took
}

#[tokio::test]
async fn paced_events_keep_their_recorded_delay_and_unpaced_ones_come_sooner() {
    let after = Duration::from_millis(500);
    let paced = echo_hi_takes(after, true).await;
    assert!(paced >= after, "paced: {paced:?} < the recorded {after:?}");
    let fast = echo_hi_takes(after, false).await;
    assert!(
        fast < after,
        "not paced: {fast:?}, the recorded delay {after:?}"
    );
}
