//! The simulator kit's faults and the simulator's own, seen on the wire over 127.0.0.1.

use std::time::Duration;

use arkeo_proto::{ClientCodec, DecodeError, Request, Response, RoutineState, Target, wire};
use arkeo_sim::{ArkeoFault, ArkeoSim, Fault};
use bytes::BytesMut;
use labwire_simkit::testing::TEST_DEADLINE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Encoder;

async fn connect(sim: &ArkeoSim) -> TcpStream {
    labwire_net::connect(sim.local_addr(), TEST_DEADLINE)
        .await
        .unwrap()
}

/// Sends `GetActiveRoutine` with `id`.
async fn send(stream: &mut TcpStream, id: u64) {
    let mut frame = BytesMut::new();
    ClientCodec::new()
        .encode(
            Request::new(Target::Main, "GetActiveRoutine").with_request_id(id),
            &mut frame,
        )
        .unwrap();
    stream.write_all(&frame).await.unwrap();
}

/// The next frame's payload.
async fn payload(stream: &mut TcpStream) -> Vec<u8> {
    timeout(TEST_DEADLINE, async {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await.unwrap();
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut payload).await.unwrap();
        payload
    })
    .await
    .unwrap()
}

async fn response(stream: &mut TcpStream) -> Response {
    wire::decode_response(&payload(stream).await).unwrap()
}

/// Everything until the simulator closes the connection.
async fn rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    timeout(TEST_DEADLINE, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    rest
}

#[tokio::test]
async fn each_fault_spoils_one_answer_the_way_it_says() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let mut s = connect(&sim).await;

    // No reply, and the connection goes on: the next answer is the next request's.
    sim.faults().push(Fault::NoReply);
    send(&mut s, 1).await;
    send(&mut s, 2).await;
    assert_eq!(response(&mut s).await.request_id, Some(2));

    sim.faults().push(Fault::Device(ArkeoFault::WrongRequestId));
    send(&mut s, 3).await;
    assert_eq!(response(&mut s).await.request_id, Some(1003));

    // Garbage is a well-framed payload that is not JSON; the connection goes on.
    sim.faults().push(Fault::Garbage);
    send(&mut s, 4).await;
    let garbage = wire::decode_response(&payload(&mut s).await).unwrap_err();
    assert!(
        matches!(
            garbage,
            DecodeError::InvalidUtf8(_) | DecodeError::InvalidJson(_)
        ),
        "{garbage:?}"
    );
    sim.faults().push(Fault::Delay(Duration::from_millis(100)));
    let sent = Instant::now();
    send(&mut s, 5).await;
    assert_eq!(response(&mut s).await.request_id, Some(5));
    assert!(sent.elapsed() >= Duration::from_millis(100));

    // Half of the answer, then the close.
    sim.faults().push(Fault::Truncate);
    send(&mut s, 6).await;
    let mut whole = BytesMut::new();
    wire::encode_response(
        &sim.state()
            .handle(&Request::new(Target::Main, "GetActiveRoutine").with_request_id(6)),
        usize::MAX,
        &mut whole,
    )
    .unwrap();
    assert_eq!(rest(&mut s).await, whole[..whole.len() / 2]);

    sim.faults().push(Fault::Close);
    let mut s = connect(&sim).await;
    send(&mut s, 7).await;
    assert!(rest(&mut s).await.is_empty());
    // Every request reached the device, whatever became of its answer.
    assert_eq!(sim.state().requests_handled(), 8);
    assert_eq!(sim.faults().applied(), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_frame_is_counted_and_a_time_scale_of_zero_stops_the_routine() {
    let sim = ArkeoSim::builder().time_scale(0.0).start().await.unwrap();
    let mut s = connect(&sim).await;
    s.write_all(b"\x00\x00\x00\x01x").await.unwrap();
    assert!(response(&mut s).await.is_error());
    let mut frame = BytesMut::new();
    ClientCodec::new()
        .encode(
            Request::new(Target::Main, "StartRoutine").param("routine", "JV"),
            &mut frame,
        )
        .unwrap();
    s.write_all(&frame).await.unwrap();
    assert!(!response(&mut s).await.is_error());
    assert_eq!((sim.requests(), sim.state().requests_handled()), (2, 1));
    assert!(sim.clock().is_manual());
    assert_eq!(
        sim.state().routine_state(),
        Some(RoutineState::Initializing)
    );
    sim.clock().advance(Duration::from_secs(1));
    assert_eq!(sim.state().routine_state(), Some(RoutineState::Ready));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_answer_too_large_for_the_limit_becomes_an_error_reply() {
    let sim = ArkeoSim::builder()
        .time_scale(0.0)
        .max_frame_length(1024)
        .start()
        .await
        .unwrap();
    sim.state()
        .handle(&Request::new(Target::Main, "StartRoutine").param("routine", "JV"));
    sim.clock().advance(Duration::from_secs(1));
    sim.state()
        .handle(&Request::new(Target::Routine, "StartMeasurement"));
    sim.clock().advance(Duration::from_secs(10));
    let mut s = connect(&sim).await;
    let mut frame = BytesMut::new();
    ClientCodec::new()
        .encode(
            Request::new(Target::Routine, "GetTestData").with_request_id(9),
            &mut frame,
        )
        .unwrap();
    s.write_all(&frame).await.unwrap();
    let refused = response(&mut s).await;
    assert_eq!(
        refused.error.and_then(|e| e.code),
        Some(arkeo_proto::codes::INVALID_STATE)
    );
    assert_eq!(refused.request_id, Some(9));
    sim.shutdown().await;
}
