//! arkeo-sim's device: a conversation of requests through the sans-IO `Device::handle_timed`,
//! the handler behind every simulator connection.
//!
//! Input: one byte picking the starting device (the defaults or one of the simulator's example
//! scenarios), then records of a time-step byte (the simulated time advances by its square in
//! milliseconds: 0 to 65 s) followed by one frame as a client sends it, decoded by arkeo-proto's
//! own `ServerCodec` (2 KiB limit). A partial frame ends the conversation, as a connection that
//! stops sending; a frame over the limit ends it with the fatal `FrameTooLarge`.
//!
//! Contract, for every frame: exactly one reply, an OK with data or an error with a known code,
//! echoing the request's `request_id`; it encodes as the simulator writes it (measurement data
//! with bare non-finite numbers) within the default frame limit, and arkeo-proto's client codec
//! reads it back as the same response. A request is counted once; only an accepted blocking
//! routine command takes time, at most `MAX_ACQUISITION`. After every request the device holds
//! its invariants: the reported routine state is the routine's state, its name one of the
//! available routines, its settings within `MAX_SETTINGS_LEN`; the relays keep their count; LED
//! values stay within 0..1 and temperatures finite; measurements only grow; the state the
//! control channel shows serializes. Replaying the same requests at the same times on a fresh
//! device gives the same replies (the simulator is deterministic).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arkeo_proto::serde_json::{self, Value};
use arkeo_proto::{
    ClientCodec, DecodeError, Request, Response, ServerCodec, Status, Target, codes,
};
use arkeo_proto::{json, wire};
use arkeo_sim::device::{LED_CHANNELS, MAX_ACQUISITION, MAX_SETTINGS_LEN, MUX_RELAYS};
use arkeo_sim::{ArkeoScenario, Device, Durations};
use bytes::{Buf, BytesMut};
use libfuzzer_sys::fuzz_target;

#[path = "common/json.rs"]
mod common_json;
use common_json::same;
use tokio_util::codec::{Decoder, Encoder};

/// The request limit: small, so `FrameTooLarge` is reached within `-max_len`.
const MAX_FRAME: usize = 2048;

const KNOWN_CODES: &[i64] = &[
    codes::INVALID_JSON,
    codes::INVALID_PARAMETERS,
    codes::INVALID_REQUEST,
    codes::UNKNOWN_TARGET,
    codes::UNKNOWN_COMMAND,
    codes::INVALID_ARRAY_SIZE,
    codes::NO_ACTIVE_ROUTINE,
    codes::INVALID_STATE,
    codes::UNKNOWN_ROUTINE,
];

/// The starting devices: the defaults, then the simulator's example scenarios.
fn devices() -> &'static [Device] {
    static DEVICES: OnceLock<Vec<Device>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let scenarios = [
            (
                "default.yaml",
                include_str!("../../simulators/arkeo-sim/scenarios/default.yaml"),
            ),
            (
                "degraded.yaml",
                include_str!("../../simulators/arkeo-sim/scenarios/degraded.yaml"),
            ),
            (
                "flaky.yaml",
                include_str!("../../simulators/arkeo-sim/scenarios/flaky.yaml"),
            ),
        ];
        let mut devices = vec![Device::new(Durations::default())];
        for (file, text) in scenarios {
            let scenario = ArkeoScenario::from_yaml(text, file).expect("an example scenario loads");
            devices.push(Device::from_scenario(
                Durations::default(),
                &scenario,
                Duration::ZERO,
            ));
        }
        devices
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, conversation)) = data.split_first() else {
        return;
    };
    let start = &devices()[usize::from(pick) % devices().len()];
    let mut device = start.clone();
    let mut handled: Vec<(Request, Duration, Response, Duration)> = Vec::new();
    let mut codec = ServerCodec::new().max_frame_length(MAX_FRAME);
    let mut buf = BytesMut::from(conversation);
    let mut now = Duration::ZERO;
    while let Some(&step) = buf.first() {
        buf.advance(1);
        now += Duration::from_millis(u64::from(step).pow(2));
        let before = buf.len();
        let item = match codec.decode(&mut buf) {
            Ok(Some(item)) => item,
            Ok(None) => {
                assert_eq!(buf.len(), before, "need-more consumed bytes");
                break;
            }
            Err(DecodeError::FrameTooLarge { len, max }) => {
                assert!(len > max as u64 && max == MAX_FRAME);
                break;
            }
            Err(other) => panic!("a request decoder error other than FrameTooLarge: {other}"),
        };
        assert!(buf.len() < before, "a frame consumed nothing");
        match item {
            Ok(request) => {
                let counted = device.requests_handled();
                let measured = device.measurements_completed();
                let (response, busy) = device.handle_timed(&request, now);
                assert_eq!(device.requests_handled(), counted + 1);
                assert!(device.measurements_completed() >= measured);
                check_response(&response, request.request_id);
                if busy > Duration::ZERO {
                    assert!(!response.is_error() && request.target == Target::Routine);
                }
                assert!(busy <= MAX_ACQUISITION);
                check_status_report(&device, &request, &response);
                check_invariants(&device);
                let bare = matches!(
                    request.command.as_str(),
                    "GetTestData" | "GetMonochromatorStatus"
                ) && !response.is_error();
                check_reply_round_trip(&response, bare);
                handled.push((request, now, response, busy));
            }
            Err(bad) => {
                assert!(!bad.error.is_fatal());
                let response = bad.response();
                check_response(&response, bad.request_id);
                let code = response.error.as_ref().and_then(|e| e.code);
                assert!(matches!(
                    code,
                    Some(codes::INVALID_JSON | codes::INVALID_REQUEST)
                ));
                check_reply_round_trip(&response, false);
            }
        }
    }

    // Deterministic: the same requests at the same times give the same replies.
    let mut twin = start.clone();
    for (request, at, response, busy) in &handled {
        assert_eq!(&twin.handle_timed(request, *at), &(response.clone(), *busy));
    }
});

/// One reply: OK with data, or an error with a known code; the request's id echoed.
fn check_response(response: &Response, request_id: Option<u64>) {
    assert_eq!(response.request_id, request_id, "the reply echoes the id");
    assert!(response.extra.is_empty());
    match (&response.status, &response.data, &response.error) {
        (Some(Status::Ok), Some(_), None) => {}
        (Some(Status::Error), None, Some(error)) => {
            let code = error.code.expect("a device error has a code");
            assert!(KNOWN_CODES.contains(&code), "unknown code {code}");
            assert!(error.extra.is_empty());
            assert!(!error.message.is_empty());
        }
        other => panic!("neither an OK nor an error reply: {other:?}"),
    }
}

/// The routine's state as the status reports it is the state the device holds.
fn check_status_report(device: &Device, request: &Request, response: &Response) {
    let is_status = request.target == Target::Routine
        && matches!(request.command.as_str(), "GetStatus" | "GetTestStatus");
    if !is_status || response.is_error() {
        return;
    }
    let routine = device.routine().expect("a status OK needs a routine");
    let reported = response
        .data
        .as_ref()
        .and_then(|d| d.get("routine_status"))
        .and_then(Value::as_str);
    assert_eq!(reported, Some(routine.state().as_str()));
}

fn check_invariants(device: &Device) {
    if let Some(routine) = device.routine() {
        assert!(
            device
                .available_routines()
                .iter()
                .any(|r| r == routine.name())
        );
        let settings = serde_json::to_vec(routine.settings()).expect("settings serialize");
        assert!(settings.len() <= MAX_SETTINGS_LEN);
    }
    assert_eq!(device.relays().len(), MUX_RELAYS);
    for address in 0..8 {
        if let Some(values) = device.led_values(address) {
            assert_eq!(values.len(), LED_CHANNELS);
            assert!(values.iter().all(|v| (0.0..=1.0).contains(v)), "{values:?}");
        }
        for channel in 0..4 {
            if let Some(t) = device.temperature(address, channel) {
                assert!(t.is_finite());
            }
        }
    }
    serde_json::to_vec(&device.state_json()).expect("the control channel's state serializes");
}

/// The reply encodes as the simulator writes it and the client reads it back unchanged.
fn check_reply_round_trip(response: &Response, bare_non_finite: bool) {
    let mut frame = BytesMut::new();
    let max = wire::DEFAULT_MAX_FRAME_LENGTH;
    if bare_non_finite {
        let payload = json::to_vec_non_finite(response).expect("the reply serializes");
        wire::encode_frame(&payload, max, &mut frame).expect("the reply fits a frame");
    } else {
        ServerCodec::new()
            .encode(response, &mut frame)
            .expect("the reply encodes");
    }
    let total = frame.len();
    let decoded = ClientCodec::new()
        .decode(&mut frame)
        .expect("the client decodes the reply")
        .expect("the reply is one whole frame");
    assert!(frame.is_empty(), "{} of {total} bytes left", frame.len());
    let (a, b) = (
        serde_json::to_value(&decoded).expect("serializes"),
        serde_json::to_value(response).expect("serializes"),
    );
    assert!(same(&a, &b), "the client read {a} for {b}");
}
