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

#[tokio::test]
async fn request_id_faults_echo_the_id_as_a_float_or_a_string() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let mut s = connect(&sim).await;
    sim.faults()
        .push(Fault::Device(ArkeoFault::RequestIdAsFloat));
    sim.faults()
        .push(Fault::Device(ArkeoFault::RequestIdAsString));
    for (id, echoed) in [(1001, "1001.0"), (1002, "\"1002\""), (1003, "1003")] {
        send(&mut s, id).await;
        let payload = payload(&mut s).await;
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["request_id"].to_string(), echoed);
        // arkeo-proto reads each back as the integer.
        assert_eq!(
            wire::decode_response(&payload).unwrap().request_id,
            Some(id)
        );
    }
    sim.shutdown().await;
}

/// Sends one request and returns its response.
async fn ask(stream: &mut TcpStream, request: Request) -> Response {
    let mut frame = BytesMut::new();
    ClientCodec::new().encode(request, &mut frame).unwrap();
    stream.write_all(&frame).await.unwrap();
    response(stream).await
}

#[tokio::test]
async fn the_start_lag_is_set_in_the_builder_or_on_the_state_and_reads_ready_over_the_wire() {
    let lag = Duration::from_secs(3);
    let sim = ArkeoSim::builder()
        .time_scale(0.0)
        .start_lag(lag)
        .start()
        .await
        .unwrap();
    let mut s = connect(&sim).await;
    let status = || Request::new(Target::Routine, "GetTestStatus");
    ask(
        &mut s,
        Request::new(Target::Main, "StartRoutine").param("routine", "TPR"),
    )
    .await;
    sim.clock().advance(Duration::from_secs(1));
    let started = ask(&mut s, Request::new(Target::Routine, "StartMeasurement")).await;
    assert!(!started.is_error(), "{started:?}");
    sim.clock().advance(lag - Duration::from_millis(1));
    let data = ask(&mut s, status()).await.data.unwrap();
    assert_eq!(data["routine_status"], "Ready");
    sim.clock().advance(Duration::from_millis(1));
    assert_eq!(sim.state().routine_state(), Some(RoutineState::Starting));

    // On the state: no lag at all, the status changes inside the reply.
    sim.state().set_start_lag(Duration::ZERO);
    ask(&mut s, Request::new(Target::Routine, "StopMeasurement")).await;
    ask(&mut s, Request::new(Target::Routine, "StartMeasurement")).await;
    let data = ask(&mut s, status()).await.data.unwrap();
    assert_eq!(data["routine_status"], "Starting");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_blocking_command_answers_after_its_hardware_time_on_the_simulated_clock() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let mut s = connect(&sim).await;
    ask(
        &mut s,
        Request::new(Target::Main, "StartRoutine").param("routine", "Luminescence"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settings = Request::new(Target::Routine, "ApplySettings")
        .param("integration_time", 4000)
        .param("averages", 2);
    assert!(!ask(&mut s, settings).await.is_error());
    let asked = Instant::now();
    let single = tokio::spawn(async move {
        let single = ask(&mut s, Request::new(Target::Routine, "AcquireSingle")).await;
        (single, asked.elapsed())
    });
    // Meanwhile the device answers others: the state is not locked while the hardware works.
    let mut other = connect(&sim).await;
    let active = ask(&mut other, Request::new(Target::Main, "GetActiveRoutine")).await;
    assert_eq!(active.data.unwrap()["routine"], "Luminescence");
    assert!(asked.elapsed() < Duration::from_secs(8));
    let (single, took) = single.await.unwrap();
    assert_eq!(
        single.data.unwrap()["spectrum"].as_array().unwrap().len(),
        3
    );
    assert!(took >= Duration::from_secs(8), "{took:?}");
    sim.shutdown().await;
}
