//! Replay: record a raw client → tap → simulator exchange, serve the recording, and the same
//! client gets the same bytes back; a request the recording lacks gets the protocol's refusal
//! (or a close with `strict`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arkeo_sim::ArkeoSim;
use comet_sim::CometSim;
use comet_socket::Limits;
use comet_socket::wire::encode_json_to_bytes;
use common::{finish, recording_tap, within};
use labwire_tap::replay::{self, ReplayConfig};
use labwire_tap::{Arkeo, Comet, Decoded, Direction, Event, Header, Pekat, Recording};
use pekat_proto::Dialect;
use pekat_proto::wire::{Completeness, response_completeness};
use pekat_sim::PekatSim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn quiet() -> ReplayConfig {
    ReplayConfig {
        report: false,
        ..ReplayConfig::new()
    }
}

fn strict() -> ReplayConfig {
    ReplayConfig {
        strict: true,
        ..quiet()
    }
}

// ---- ARKEO ----

fn arkeo_frame(payload: &str) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload.as_bytes());
    out
}

/// Writes each frame and reads its answer frame; returns every answer byte.
async fn arkeo_exchange(addr: SocketAddr, frames: &[Vec<u8>]) -> Vec<u8> {
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
    received
}

fn arkeo_requests(first_id: u64) -> Vec<Vec<u8>> {
    let id = |n: u64| first_id + n;
    vec![
        arkeo_frame(&format!(
            r#"{{"target": "MAIN", "command": "GetAvailableRoutines", "parameter": {{}}, "request_id": {}}}"#,
            id(0)
        )),
        arkeo_frame(&format!(
            r#"{{"target": "MAIN", "command": "GetActiveRoutine", "request_id": {}}}"#,
            id(1)
        )),
        arkeo_frame(r#"{"target": "MAIN", "command": oops"#),
        arkeo_frame(&format!(
            r#"{{"target": "MUX", "command": "GetStatus", "parameter": {{}}, "request_id": {}}}"#,
            id(2)
        )),
        // The same request again: answered with the second recorded answer.
        arkeo_frame(&format!(
            r#"{{"target": "MAIN", "command": "GetActiveRoutine", "request_id": {}}}"#,
            id(3)
        )),
    ]
}

async fn arkeo_recording() -> (Recording, Vec<u8>) {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let (tap, path) = recording_tap(Arkeo::default(), sim.local_addr(), "replay-arkeo").await;
    let answers = within(
        "tapped exchange",
        arkeo_exchange(tap.local_addr(), &arkeo_requests(1)),
    )
    .await;
    let recording = finish(tap, path, 1).await;
    sim.shutdown().await;
    (recording, answers)
}

fn arkeo_responses(mut bytes: &[u8]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some((payload, used)) = arkeo_proto::wire::split_frame(bytes, 1 << 20).unwrap() {
        out.push(serde_json::from_slice(payload).unwrap());
        bytes = &bytes[used..];
    }
    assert!(bytes.is_empty());
    out
}

#[tokio::test]
async fn arkeo_replay_answers_byte_identically_and_with_the_clients_own_request_ids() {
    let (recording, recorded) = arkeo_recording().await;
    assert_eq!(recording.stream_bytes(1, Direction::ToClient), recorded);
    let device = replay::serve(recording).await.unwrap();

    let same = within(
        "replayed exchange",
        arkeo_exchange(device.local_addr(), &arkeo_requests(1)),
    )
    .await;
    assert_eq!(same, recorded, "same requests, byte-identical answers");

    let shifted = within(
        "replayed with other ids",
        arkeo_exchange(device.local_addr(), &arkeo_requests(100)),
    )
    .await;
    let mut expected = arkeo_responses(&recorded);
    for (answer, id) in expected.iter_mut().zip([100, 101, 0, 102, 103]) {
        if answer.get("request_id").is_some() {
            answer["request_id"] = id.into();
        }
    }
    // The second round repeats the last recorded answer of each repeated request.
    expected[4] = {
        let mut v = arkeo_responses(&recorded)[4].clone();
        v["request_id"] = 103.into();
        v
    };
    assert_eq!(arkeo_responses(&shifted), expected);
    assert_eq!(device.unmatched(), 0);
    device.shutdown().await;
}

#[tokio::test]
async fn arkeo_unknown_request_gets_an_error_object_or_a_close_when_strict() {
    let (recording, _) = arkeo_recording().await;
    let unknown = arkeo_frame(r#"{"target": "LED", "command": "Blink", "request_id": 7}"#);

    let device = replay::start(&recording, quiet()).await.unwrap();
    let answer = within(
        "refusal",
        arkeo_exchange(device.local_addr(), std::slice::from_ref(&unknown)),
    )
    .await;
    let answer = &arkeo_responses(&answer)[0];
    assert_eq!(answer["request_id"], 7);
    assert_eq!(answer["error"]["code"], arkeo_proto::codes::UNKNOWN_COMMAND);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("labwire replay:")
    );
    assert_eq!(device.unmatched(), 1);
    device.shutdown().await;

    let device = replay::start(&recording, strict()).await.unwrap();
    let mut stream = TcpStream::connect(device.local_addr()).await.unwrap();
    stream.write_all(&unknown).await.unwrap();
    let mut rest = Vec::new();
    within("close", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "closed without an answer");
    device.shutdown().await;
}

// ---- PEKAT ----

const PROJECT: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";

async fn pekat_exchange(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<u8> {
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
    received
}

fn pekat_requests(dialect: Dialect, first_id: u32) -> Vec<Vec<u8>> {
    let id = |n: u32| first_id + n;
    let texts = match dialect {
        Dialect::V3_18 => vec![
            format!("status:{PROJECT}"),
            format!("stop:{PROJECT}"),
            format!("status:{PROJECT}"),
        ],
        Dialect::V3_19 => vec![
            format!("{}.status|{PROJECT}", id(0)),
            format!("{}.stop|{PROJECT}", id(1)),
            format!("{}.status|{PROJECT}", id(2)),
        ],
    };
    texts.into_iter().map(String::into_bytes).collect()
}

async fn pekat_recording(dialect: Dialect) -> (Recording, Vec<u8>) {
    let sim = PekatSim::builder()
        .dialect(dialect)
        .project(PROJECT, 8100)
        .start()
        .await
        .unwrap();
    let protocol = Pekat {
        dialect,
        ..Pekat::default()
    };
    let (tap, path) = recording_tap(protocol, sim.local_addr(), "replay-pekat").await;
    let answers = within(
        "tapped exchange",
        pekat_exchange(tap.local_addr(), &pekat_requests(dialect, 1)),
    )
    .await;
    let recording = finish(tap, path, 1).await;
    sim.shutdown().await;
    (recording, answers)
}

async fn pekat_replay_answers_identically(dialect: Dialect) {
    let (recording, recorded) = pekat_recording(dialect).await;
    let device = replay::serve(recording).await.unwrap();
    let same = within(
        "replayed exchange",
        pekat_exchange(device.local_addr(), &pekat_requests(dialect, 1)),
    )
    .await;
    assert_eq!(same, recorded);
    if dialect == Dialect::V3_19 {
        let shifted = within(
            "replayed with other ids",
            pekat_exchange(device.local_addr(), &pekat_requests(dialect, 40)),
        )
        .await;
        let expected = String::from_utf8(recorded)
            .unwrap()
            .replacen("1.", "40.", 1)
            .replacen("2.", "41.", 1)
            .replacen("3.", "42.", 1);
        assert_eq!(String::from_utf8(shifted).unwrap(), expected);
    }
    assert_eq!(device.unmatched(), 0);
    device.shutdown().await;
}

#[tokio::test]
async fn pekat_3_18_replay_answers_byte_identically() {
    pekat_replay_answers_identically(Dialect::V3_18).await;
}

#[tokio::test]
async fn pekat_3_19_replay_answers_byte_identically_with_the_clients_own_ids() {
    pekat_replay_answers_identically(Dialect::V3_19).await;
}

#[tokio::test]
async fn pekat_unknown_request_gets_the_dialects_unknown_command_or_a_close_when_strict() {
    let (recording, _) = pekat_recording(Dialect::V3_19).await;
    let device = replay::start(&recording, quiet()).await.unwrap();
    let unknown = format!("9.start|{PROJECT}").into_bytes();
    let answer = within(
        "refusal",
        pekat_exchange(device.local_addr(), std::slice::from_ref(&unknown)),
    )
    .await;
    let reply = pekat_proto::wire::parse_response(&answer).unwrap();
    assert_eq!(reply.response, pekat_proto::Response::UnknownCommand);
    assert_eq!(reply.id.unwrap().as_str(), "9");
    assert_eq!(device.unmatched(), 1);
    device.shutdown().await;

    let device = replay::start(&recording, strict()).await.unwrap();
    let mut stream = TcpStream::connect(device.local_addr()).await.unwrap();
    stream.write_all(&unknown).await.unwrap();
    let mut rest = Vec::new();
    within("close", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "closed without an answer");
    device.shutdown().await;
}

// ---- COMET ----

fn comet_frame(content: &str) -> Vec<u8> {
    encode_json_to_bytes(content.as_bytes(), &Limits::default())
        .unwrap()
        .to_vec()
}

async fn comet_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

fn comet_requests() -> Vec<Vec<u8>> {
    vec![
        comet_frame(r#"{"action": "ECHO", "value": {"b": 1, "a": [true, null, 2.5]}}"#),
        comet_frame(r#"{"action": "nobody", "value": "hi"}"#),
        comet_frame(r#"{"action": "ECHO", "value": "again"}"#),
    ]
}

async fn comet_recording() -> (Recording, Vec<Vec<u8>>) {
    let sim = CometSim::builder().start().await.unwrap();
    let (tap, path) = recording_tap(Comet::default(), sim.local_addr(), "replay-comet").await;
    let mut answers = Vec::new();
    for request in comet_requests() {
        answers.push(within("tapped", comet_exchange(tap.local_addr(), &request)).await);
    }
    let recording = finish(tap, path, 3).await;
    sim.shutdown().await;
    (recording, answers)
}

#[tokio::test]
async fn comet_replay_answers_byte_identically() {
    let (recording, recorded) = comet_recording().await;
    let device = replay::serve(recording).await.unwrap();
    for (request, expected) in comet_requests().iter().zip(&recorded) {
        let answer = within("replayed", comet_exchange(device.local_addr(), request)).await;
        assert_eq!(&answer, expected);
    }
    assert_eq!(device.unmatched(), 0);
    device.shutdown().await;
}

#[tokio::test]
async fn comet_unknown_request_gets_an_error_result_or_a_close_when_strict() {
    let (recording, _) = comet_recording().await;
    let unknown = comet_frame(r#"{"action": "ECHO", "value": "never recorded"}"#);
    let device = replay::start(&recording, quiet()).await.unwrap();
    let answer = within("refusal", comet_exchange(device.local_addr(), &unknown)).await;
    let (frame, _) = comet_socket::wire::decode(&answer, &Limits::default())
        .unwrap()
        .unwrap();
    let content: serde_json::Value = serde_json::from_slice(&frame.content).unwrap();
    assert!(
        content["result"]
            .as_str()
            .unwrap()
            .starts_with("Error: labwire replay:"),
        "{content}"
    );
    assert_eq!(device.unmatched(), 1);
    device.shutdown().await;

    let device = replay::start(&recording, strict()).await.unwrap();
    let answer = within("close", comet_exchange(device.local_addr(), &unknown)).await;
    assert!(answer.is_empty(), "closed without an answer");
    device.shutdown().await;
}

// ---- pacing ----

fn event(t: f64, dir: Direction, bytes: Vec<u8>) -> Event {
    Event {
        t,
        conn: 1,
        dir,
        bytes,
        decoded: Decoded::error("decoded again by the replay"),
        note: None,
        reply_to: None,
    }
}

/// Two ARKEO requests; the second was answered `delay` after it came.
fn paced_arkeo(delay: Duration) -> Recording {
    let answer = |id: u64| {
        arkeo_frame(&format!(
            r#"{{"status":"OK","data":{{"routine":null}},"request_id":{id}}}"#
        ))
    };
    let [first, second] = arkeo_requests_for_pacing();
    Recording {
        header: Some(Header::new("arkeo")),
        events: vec![
            event(1.0, Direction::ToDevice, first),
            event(1.0, Direction::ToClient, answer(1)),
            event(1.1, Direction::ToDevice, second),
            event(1.1 + delay.as_secs_f64(), Direction::ToClient, answer(2)),
        ],
    }
}

/// How long the second answer takes after its request, and the answers.
async fn second_answer_after(addr: SocketAddr) -> (Duration, Vec<u8>) {
    let requests = arkeo_requests_for_pacing();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut received = within("first", arkeo_exchange_on(&mut stream, &requests[0])).await;
    let start = Instant::now();
    received.extend(within("second", arkeo_exchange_on(&mut stream, &requests[1])).await);
    (start.elapsed(), received)
}

fn arkeo_requests_for_pacing() -> [Vec<u8>; 2] {
    [1, 2].map(|id| {
        arkeo_frame(&format!(
            r#"{{"target":"MAIN","command":"GetActiveRoutine","request_id":{id}}}"#
        ))
    })
}

async fn arkeo_exchange_on(stream: &mut TcpStream, frame: &[u8]) -> Vec<u8> {
    stream.write_all(frame).await.unwrap();
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).await.unwrap();
    [&header[..], &payload].concat()
}

#[tokio::test]
async fn pace_keeps_the_recorded_delay_and_the_default_answers_sooner() {
    let delay = Duration::from_millis(600);
    let recording = paced_arkeo(delay);
    let expected = recording.stream_bytes(1, Direction::ToClient);

    let paced = replay::start(
        &recording,
        ReplayConfig {
            pace: true,
            ..quiet()
        },
    )
    .await
    .unwrap();
    let (took, answers) = second_answer_after(paced.local_addr()).await;
    assert_eq!(answers, expected);
    assert!(took >= delay, "paced: {took:?} < the recorded {delay:?}");
    paced.shutdown().await;

    let fast = replay::start(&recording, quiet()).await.unwrap();
    let (took, answers) = second_answer_after(fast.local_addr()).await;
    assert_eq!(answers, expected);
    assert!(
        took < delay,
        "not paced: {took:?}, the recorded delay {delay:?}"
    );
    fast.shutdown().await;
}
