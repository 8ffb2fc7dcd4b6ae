//! Property tests of the simulated device: any sequence of requests at any times.

use std::time::Duration;

use arkeo_proto::{Request, RoutineState, Status, Target};
use arkeo_sim::{Device, Durations};
use proptest::prelude::*;
use serde_json::Value;

const COMMANDS: &[(&str, &str)] = &[
    ("MAIN", "StartRoutine"),
    ("MAIN", "GetActiveRoutine"),
    ("MAIN", "GetAvailableRoutines"),
    ("ROUTINE", "StartMeasurement"),
    ("ROUTINE", "StopMeasurement"),
    ("ROUTINE", "CloseRoutine"),
    ("ROUTINE", "ApplySettings"),
    ("ROUTINE", "GetSettings"),
    ("ROUTINE", "GetTestStatus"),
    ("ROUTINE", "GetTestData"),
    ("ROUTINE", "SetInfo"),
    ("ROUTINE", "ClearErrors"),
    ("ROUTINE", "GetCustomCommands"),
    ("ROUTINE", "AcquireSingle"),
    ("ROUTINE", "SetLaser"),
    ("ROUTINE", "SetWavelength"),
    ("ROUTINE", "SetShutter"),
    ("ROUTINE", "StartCalibration"),
    ("ROUTINE", "GetMonochromatorStatus"),
    ("ROUTINE", "GetRates"),
    ("ROUTINE", "ApplyCurrent"),
    ("ROUTINE", "SetDeviceDimensions"),
    ("ROUTINE", "SetOutput"),
    ("ROUTINE", "AutoExposure"),
    ("TMPCTL", "SetController"),
    ("TMPCTL", "SetEnable"),
    ("TMPCTL", "SetTemperature"),
    ("TMPCTL", "GetStatus"),
    ("MUX", "Connect"),
    ("MUX", "SetStatus"),
    ("LED", "SetValues"),
    ("LED", "GetStatus"),
    ("NOPE", "Anything"),
];

fn parameter() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5.0f64..5.0).prop_map(Value::from),
        "JV|Dark JV|Luminescence|IPCE|TCSPC|Resistivity|Connection Test|bogus"
            .prop_map(Value::from),
    ];
    let field = prop_oneof![
        scalar.clone(),
        prop::collection::vec(scalar, 0..14).prop_map(Value::Array),
    ];
    prop::collection::btree_map(
        "routine|channel|duty_cycle|temperature|address|values|state|channels|wavelength|shutter_status|path|current|thickness|length|width|output|laser|port_id|enable|user_name|device_name|device_area|integration_time|averages",
        field,
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn step() -> impl Strategy<Value = (usize, Value, u64)> {
    (0..COMMANDS.len(), parameter(), 0u64..1500)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_request_sequence_gets_a_well_formed_answer_and_consistent_status(
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut device = Device::new(Durations::default());
        let mut now = Duration::ZERO;
        for (n, (index, parameter, advance_ms)) in steps.into_iter().enumerate() {
            now += Duration::from_millis(advance_ms);
            let (target, command) = COMMANDS[index];
            let id = n as u64;
            let request = Request::new(Target::parse(target), command)
                .with_parameter(parameter)
                .with_request_id(id);
            let (response, busy) = device.handle_timed(&request, now);
            prop_assert!(busy <= arkeo_sim::device::MAX_ACQUISITION.max(Durations::default().calibration));
            prop_assert_eq!(response.request_id, Some(id));
            match response.status {
                Some(Status::Ok) => prop_assert!(response.error.is_none() && response.data.is_some()),
                Some(Status::Error) => prop_assert!(response.error.as_ref().and_then(|e| e.code).is_some()),
                other => prop_assert!(false, "unexpected status {:?}", other),
            }
            // Whatever happened, the status report obeys the documented invariants.
            let status = device.handle(&Request::new(Target::Routine, "GetTestStatus"), now);
            if let Some(data) = status.data {
                let state = RoutineState::parse(data["routine_status"].as_str().unwrap_or(""));
                prop_assert_eq!(data["progress"].is_null(), state != RoutineState::Running);
                prop_assert_eq!(data["error"].is_null(), state != RoutineState::Error);
            } else {
                prop_assert_eq!(status.error.and_then(|e| e.code), Some(4006));
                prop_assert!(device.routine().is_none());
            }
        }
    }
}
