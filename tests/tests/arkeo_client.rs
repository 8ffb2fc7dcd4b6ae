//! arkeo-proto's client against arkeo-sim over loopback sockets.

use std::time::Duration;

use arkeo_proto::{
    Client, Error, ParamKey, Request, RoutineState, Target, codes, json::lenient_f64,
};
use arkeo_sim::{ArkeoFault, ArkeoSim, Durations, Fault, SimClock};
use labwire_tests::{TEST_DEADLINE, eventually};
use serde_json::json;
use tokio::time::timeout;

/// Quick phases so that a whole workflow takes a fraction of a second of real time.
fn quick() -> Durations {
    Durations {
        initializing: Duration::from_millis(50),
        start_lag: Duration::from_millis(20),
        starting: Duration::from_millis(30),
        running: Duration::from_millis(200),
        ..Durations::default()
    }
}

async fn sim() -> ArkeoSim {
    ArkeoSim::builder()
        .durations(quick())
        .start()
        .await
        .unwrap()
}

/// A simulator whose clock moves only when the test advances it.
async fn manual_sim() -> ArkeoSim {
    ArkeoSim::builder()
        .clock(SimClock::manual())
        .start()
        .await
        .unwrap()
}

/// The device's error code behind a client error, if the device refused the request.
fn device_code(err: &Error) -> Option<i64> {
    err.device_error().and_then(|e| e.code())
}

/// After a fault injected for one request: that call fails and drops the connection, the
/// next call reconnects and is answered. Returns the failed call's error.
async fn fails_fatally_then_recovers(arkeo: &Client) -> Error {
    let err = arkeo.available_routines().await.unwrap_err();
    assert!(err.is_connection_fatal(), "{err:?}");
    arkeo.available_routines().await.unwrap();
    err
}

fn client(sim: &ArkeoSim) -> Client {
    Client::builder(sim.local_addr())
        .call_timeout(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(10))
        .build()
}

#[tokio::test]
async fn vendor_workflow_start_wait_apply_measure_poll_fetch_close() {
    let sim = sim().await;
    let arkeo = Client::builder(sim.local_addr())
        .poll_interval(Duration::from_millis(10))
        .connect()
        .await
        .unwrap();
    timeout(TEST_DEADLINE, async {
        assert!(arkeo.available_routines().await.unwrap().contains(&"Dark JV".to_owned()));
        arkeo.start_routine("Dark JV").await.unwrap();
        assert_eq!(arkeo.active_routine().await.unwrap().as_deref(), Some("Dark JV"));
        arkeo.wait_until(RoutineState::Ready, TEST_DEADLINE).await.unwrap();
        arkeo
            .apply_settings(json!({"scan_settings": {"scan": {"Start (V)": 0.0, "End (V)": 1.0, "Step (V)": 0.1}}}))
            .await
            .unwrap();
        arkeo.set_info("lab", "cell-7", 0.09).await.unwrap();
        arkeo.start_measurement().await.unwrap();
        let running = arkeo
            .wait_for(|s| s.routine_status == RoutineState::Running, TEST_DEADLINE)
            .await
            .unwrap();
        assert!(running.progress_pct().is_some());
        let done = arkeo.wait_until(RoutineState::Ready, TEST_DEADLINE).await.unwrap();
        assert_eq!(done.progress, None);
        let data = arkeo.test_data().await.unwrap();
        let scan = &data["scans"][0];
        assert_eq!(scan["data"].as_array().unwrap().len(), 11);
        assert_eq!(data["device"], "cell-7");
        // The simulator writes bare NaN / Infinity, as the vendor does; they arrive as strings.
        assert!(lenient_f64(&scan["parameters"]["voc"]["value"]).unwrap().is_nan());
        assert_eq!(lenient_f64(&scan["parameters"]["r_shunt"]["value"]), Some(f64::INFINITY));
        arkeo.close_routine().await.unwrap();
        assert_eq!(arkeo.active_routine().await.unwrap(), None);
    })
    .await
    .unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn manual_clock_steps_the_routine_deterministically() {
    let sim = manual_sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine("Luminescence").await.unwrap();
    assert_eq!(
        arkeo.test_status().await.unwrap().routine_status,
        RoutineState::Initializing
    );
    sim.clock().advance(Durations::default().initializing);
    assert_eq!(
        arkeo.test_status().await.unwrap().routine_status,
        RoutineState::Ready
    );
    arkeo.start_measurement().await.unwrap();
    let phases = Durations::default();
    sim.clock()
        .advance(phases.start_lag + phases.starting + phases.running / 4);
    let status = arkeo.test_status().await.unwrap();
    assert_eq!(status.routine_status, RoutineState::Running);
    assert_eq!(status.progress_pct(), Some(25.0));
    sim.clock().advance(Durations::default().running);
    assert_eq!(sim.state().routine_state(), Some(RoutineState::Ready));
    let data = arkeo.test_data().await.unwrap();
    assert_eq!(data["spectrum"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn device_errors_are_typed_values_not_transport_errors() {
    let sim = sim().await;
    let arkeo = client(&sim);
    let reply = arkeo
        .call(Request::new(Target::Routine, "StartMeasurement"))
        .await;
    let Err(Error::Device(refusal)) = reply else {
        panic!("expected a refusal, got {reply:?}")
    };
    assert_eq!(refusal.code(), Some(codes::NO_ACTIVE_ROUTINE));

    let err = arkeo
        .command(
            Target::Led,
            "SetValues",
            json!({"address": 1, "values": [0.1, 0.2]}),
        )
        .await
        .unwrap_err();
    let device = err.device_error().unwrap();
    assert_eq!(device.code(), Some(1001));
    assert_eq!(
        device.message(),
        "Invalid array size: 2. Must match number of channels: 12"
    );
    assert!(!err.is_connection_fatal());

    let err = arkeo.start_routine("Nonexistent").await.unwrap_err();
    assert_eq!(device_code(&err), Some(codes::UNKNOWN_ROUTINE));
    let err = arkeo
        .command(Target::Other("SPECTRO".into()), "GetStatus", json!({}))
        .await
        .unwrap_err();
    assert_eq!(device_code(&err), Some(codes::UNKNOWN_TARGET));
    let err = arkeo
        .command(
            Target::Tmpctl,
            "SetTemperature",
            json!({"temperature": "hot"}),
        )
        .await
        .unwrap_err();
    assert_eq!(device_code(&err), Some(codes::INVALID_PARAMETERS));
    // The same connection served all of it.
    assert_eq!(sim.connection_count(), 1);
}

#[tokio::test]
async fn a_routine_failure_ends_wait_until_with_its_status() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine("MPPT").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    assert!(sim.state().fail_routine("lamp failure"));
    let err = arkeo
        .wait_until(RoutineState::Running, TEST_DEADLINE)
        .await
        .unwrap_err();
    let Error::RoutineFailed(status) = err else {
        panic!("expected RoutineFailed, got {err:?}")
    };
    assert_eq!(status.error, Some(json!("lamp failure")));
    arkeo.clear_errors().await.unwrap();
    assert_eq!(
        arkeo.test_status().await.unwrap().routine_status,
        RoutineState::Ready
    );
}

#[tokio::test]
async fn wait_until_gives_up_at_its_deadline() {
    let sim = manual_sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine("JV").await.unwrap();
    let err = arkeo
        .wait_until(RoutineState::Ready, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn waiting_without_a_time_limit_is_allowed() {
    let sim = ArkeoSim::builder().speed(50.0).start().await.unwrap();
    let arkeo = Client::connect(sim.local_addr()).await.unwrap();
    arkeo.start_routine("JV").await.unwrap();
    // `Duration::MAX` means "no limit": it must not overflow the deadline.
    let status = timeout(
        TEST_DEADLINE,
        arkeo.wait_until(RoutineState::Ready, Duration::MAX),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.routine_status, RoutineState::Ready);
    sim.shutdown().await;
}

#[tokio::test]
async fn timeout_drops_connection_and_next_call_reconnects_without_the_stale_reply() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine("JV").await.unwrap();
    sim.faults()
        .set(Some(Fault::Delay(Duration::from_millis(300))));
    let err = arkeo
        .call_with_timeout(
            Request::new(Target::Main, "GetAvailableRoutines"),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connection_fatal(), "{err:?}");
    sim.faults().clear();
    // The late GetAvailableRoutines reply must not be taken for this call's reply.
    let active = arkeo.active_routine().await.unwrap();
    assert_eq!(active.as_deref(), Some("JV"));
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 1).await);
}

#[tokio::test]
async fn a_cancelled_call_never_leaves_its_reply_for_the_next_call() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine("TPR").await.unwrap();
    sim.faults()
        .set(Some(Fault::Delay(Duration::from_millis(200))));
    let call = arkeo.call(Request::new(Target::Main, "GetAvailableRoutines"));
    // Cancel it once the request is surely in flight.
    let cancelled = timeout(Duration::from_millis(50), call).await;
    assert!(cancelled.is_err());
    sim.faults().clear();
    assert_eq!(
        arkeo.active_routine().await.unwrap().as_deref(),
        Some("TPR")
    );
}

#[tokio::test]
async fn mismatched_request_id_fails_the_call_and_the_next_one_reconnects() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.available_routines().await.unwrap();
    sim.faults().push(Fault::Device(ArkeoFault::WrongRequestId));
    let err = fails_fatally_then_recovers(&arkeo).await;
    assert!(matches!(err, Error::RequestIdMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn a_dropped_connection_is_reported_and_the_next_call_reconnects() {
    let sim = sim().await;
    let arkeo = client(&sim);
    sim.faults().push(Fault::Close);
    let err = fails_fatally_then_recovers(&arkeo).await;
    assert!(matches!(err, Error::Closed | Error::Io(_)), "{err:?}");
}

#[tokio::test]
async fn an_unanswered_request_times_out() {
    let sim = sim().await;
    let arkeo = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_millis(100))
        .build();
    sim.faults().push(Fault::NoReply);
    let err = arkeo.available_routines().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // The next call (with a generous timeout of its own) reconnects and is answered.
    let reply = arkeo
        .call_with_timeout(
            Request::new(Target::Main, "GetAvailableRoutines"),
            TEST_DEADLINE,
        )
        .await
        .unwrap();
    assert!(!reply.is_error());
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let sim = sim().await;
    let addr = sim.local_addr();
    sim.shutdown().await;
    let err = Client::connect(addr).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_connection_fatal());
}

#[tokio::test]
async fn shutdown_disconnects_clients() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.available_routines().await.unwrap();
    timeout(TEST_DEADLINE, sim.shutdown()).await.unwrap();
    let err = arkeo.available_routines().await.unwrap_err();
    assert!(err.is_connection_fatal(), "{err:?}");
}

#[tokio::test]
async fn params_key_is_understood_by_the_simulator() {
    let sim = sim().await;
    let arkeo = Client::builder(sim.local_addr())
        .param_key(ParamKey::Params)
        .build();
    arkeo.start_routine("IPCE").await.unwrap();
    assert_eq!(sim.state().active_routine().as_deref(), Some("IPCE"));
}

#[tokio::test]
async fn thirty_two_concurrent_clients_share_one_simulator() {
    let sim = sim().await;
    let shared = client(&sim);
    let mut tasks = Vec::new();
    for n in 0..32u32 {
        let own = client(&sim);
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                assert!(own.available_routines().await.unwrap().len() >= 9);
                // The LED state is global: each client writes its own board value and reads
                // a consistent status.
                let value = f64::from(n) / 32.0;
                own.command(
                    Target::Led,
                    "SetValues",
                    json!({"address": 1 + n % 2, "values": vec![value; 12]}),
                )
                .await
                .unwrap();
                let status = shared
                    .command(Target::Led, "GetStatus", json!({}))
                    .await
                    .unwrap();
                assert_eq!(status["boards"].as_array().unwrap().len(), 2);
            }
        }));
    }
    timeout(TEST_DEADLINE * 3, async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(sim.state().requests_handled(), 32 * 10 * 3);
}

#[tokio::test]
async fn clones_queue_their_calls_on_one_connection() {
    let sim = sim().await;
    let arkeo = client(&sim);
    sim.faults()
        .set(Some(Fault::Delay(Duration::from_millis(5))));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let arkeo = arkeo.clone();
            tokio::spawn(async move { arkeo.available_routines().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.connection_count(), 1);
}

#[tokio::test]
async fn a_reply_larger_than_the_client_limit_is_refused_before_it_is_buffered() {
    let sim = manual_sim().await;
    let arkeo = Client::builder(sim.local_addr())
        .limits(arkeo_proto::Limits {
            max_frame_length: 1024,
        })
        .build();
    arkeo.start_routine("JV").await.unwrap();
    sim.clock().advance(Duration::from_secs(1));
    arkeo.start_measurement().await.unwrap();
    sim.clock().advance(Duration::from_secs(10));
    let err = arkeo.test_data().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode(arkeo_proto::DecodeError::FrameTooLarge { max: 1024, .. })
        ),
        "{err:?}"
    );
    assert!(err.is_connection_fatal());
    // The rest of the big reply died with the connection; small calls go on.
    assert_eq!(arkeo.active_routine().await.unwrap().as_deref(), Some("JV"));
}

#[tokio::test]
async fn sequential_round_trips_are_not_stalled_by_nagle() {
    let sim = sim().await;
    let arkeo = Client::builder(sim.local_addr()).connect().await.unwrap();
    let start = std::time::Instant::now();
    for _ in 0..200 {
        arkeo.active_routine().await.unwrap();
    }
    // A 40 ms delayed-ACK stall per round trip would take 8 s; loopback needs milliseconds.
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "200 round trips took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_connection_closed_by_the_device_while_idle_is_replaced_transparently() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.available_routines().await.unwrap();
    // The device drops the connection after the next request, without answering it.
    sim.faults().push(Fault::Close);
    fails_fatally_then_recovers(&arkeo).await;
    // Now close the idle connection from the device side: a restart of the application.
    let addr = sim.local_addr();
    sim.shutdown().await;
    let restarted = ArkeoSim::builder().listen(addr).start().await.unwrap();
    assert!(eventually(TEST_DEADLINE, || restarted.connection_count() == 0).await);
    arkeo.available_routines().await.unwrap();
    assert_eq!(restarted.connection_count(), 1);
}

#[tokio::test]
async fn a_burst_of_256_connections_is_served() {
    let sim = sim().await;
    let addr = sim.local_addr();
    let tasks: Vec<_> = (0..256)
        .map(|_| {
            tokio::spawn(async move {
                let arkeo = Client::connect(addr).await?;
                arkeo.active_routine().await
            })
        })
        .collect();
    timeout(TEST_DEADLINE * 3, async {
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), None);
        }
    })
    .await
    .unwrap();
    assert_eq!(sim.state().requests_handled(), 256);
}

#[tokio::test]
async fn request_ids_are_assigned_in_order_or_kept_when_given() {
    let sim = sim().await;
    let arkeo = client(&sim);
    let first = arkeo
        .call_response(
            Request::new(Target::Main, "GetActiveRoutine"),
            TEST_DEADLINE,
        )
        .await
        .unwrap();
    let second = arkeo
        .call_response(
            Request::new(Target::Main, "GetActiveRoutine"),
            TEST_DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(second.request_id, first.request_id.map(|id| id + 1));
    let mine = arkeo
        .call_response(
            Request::new(Target::Main, "GetActiveRoutine").with_request_id(4242),
            TEST_DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(mine.request_id, Some(4242));
    // The older command names are answered too.
    arkeo.start_routine("JV").await.unwrap();
    let old = arkeo
        .command(Target::Routine, "GetStatus", json!({}))
        .await
        .unwrap();
    assert_eq!(old["routine_name"], "JV");
}

#[tokio::test]
async fn temperature_mux_and_led_helpers() {
    let sim = manual_sim().await;
    let arkeo = client(&sim);
    arkeo.set_temperature_controller(1, 2).await.unwrap();
    arkeo.set_temperature(40.0).await.unwrap();
    arkeo.set_temperature_enabled(true).await.unwrap();
    sim.clock().advance(Duration::from_secs(120));
    let controllers = arkeo.tmpctl_status().await.unwrap();
    let chuck = controllers.iter().find(|c| c.channel == Some(2)).unwrap();
    assert_eq!(chuck.object_temperature(), 40.0);
    assert_eq!(chuck.target_temperature(), Some(40.0));

    let err = arkeo.set_relays(&[true; 4]).await.unwrap_err();
    assert_eq!(device_code(&err), Some(codes::INVALID_STATE));
    arkeo.mux_connect().await.unwrap();
    let relays = [false, false, false, true];
    arkeo.set_relays(&relays).await.unwrap();
    let mux = arkeo.mux_status().await.unwrap();
    assert!(mux.connected);
    assert_eq!(mux.relays, relays);
    let err = arkeo.set_relays(&[true; 16]).await.unwrap_err();
    assert_eq!(device_code(&err), Some(codes::INVALID_ARRAY_SIZE));
    arkeo.mux_disconnect().await.unwrap();
    assert!(!arkeo.mux_status().await.unwrap().connected);

    arkeo.set_led_values(1, &[0.5; 12]).await.unwrap();
    assert_eq!(arkeo.led_status().await.unwrap().boards[0].values[7], 0.5);
    assert_eq!(sim.state().with(|d| d.led_values(1)), Some([0.5; 12]));
}

#[tokio::test]
async fn a_reply_cut_short_or_garbled_fails_the_call_and_the_next_call_reconnects() {
    let sim = sim().await;
    let arkeo = client(&sim);
    sim.faults().push(Fault::Truncate);
    let err = fails_fatally_then_recovers(&arkeo).await;
    assert!(matches!(err, Error::Closed), "{err:?}");

    sim.faults().push(Fault::Garbage);
    let err = fails_fatally_then_recovers(&arkeo).await;
    assert!(
        matches!(
            err,
            Error::Decode(
                arkeo_proto::DecodeError::InvalidJson(_) | arkeo_proto::DecodeError::InvalidUtf8(_)
            )
        ),
        "{err:?}"
    );
    // The garbled connection is gone once the simulator sees the client's close.
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 1).await);
}

#[tokio::test]
async fn settings_custom_commands_and_stop_measurement_helpers() {
    let sim = manual_sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine("Luminescence").await.unwrap();
    sim.clock().advance(Durations::default().initializing);
    let commands = arkeo.custom_commands().await.unwrap();
    assert!(
        commands.contains(&"AcquireSingle".to_owned()),
        "{commands:?}"
    );
    arkeo
        .apply_settings(json!({"integration_time": 250}))
        .await
        .unwrap();
    assert_eq!(
        arkeo.settings().await.unwrap()["settings"]["integration_time"],
        250
    );
    // AcquireSingle blocks for its integration time (250 ms) on the simulator's clock, which
    // this test steps by hand once the request is in.
    let handled = sim.state().requests_handled();
    let single = tokio::spawn({
        let arkeo = arkeo.clone();
        async move { arkeo.acquire_single().await }
    });
    assert!(eventually(TEST_DEADLINE, || sim.state().requests_handled() > handled).await);
    sim.clock().advance(Duration::from_millis(250));
    let single = timeout(TEST_DEADLINE, single)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(single.spectrum.len(), 3);

    arkeo.start_measurement().await.unwrap();
    let phases = Durations::default();
    sim.clock().advance(phases.start_lag + phases.starting);
    assert_eq!(
        arkeo.test_status().await.unwrap().routine_status,
        RoutineState::Running
    );
    assert_eq!(arkeo.stop_measurement().await.unwrap()["stopped"], true);
    assert_eq!(sim.state().routine_state(), Some(RoutineState::Ready));
    sim.shutdown().await;
}

// ---- Vendor fidelity (issue 10): the commands, parameters and reply shapes of the project's
// protocol reference, the start lag, blocking commands and request_id echoes. ----

/// A simulator with `routine` active and Ready, and a client for it.
async fn ready(routine: &str) -> (ArkeoSim, Client) {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.start_routine(routine).await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    (sim, arkeo)
}

#[tokio::test]
async fn ipce_set_shutter_sends_the_vendors_shutter_status() {
    let (sim, arkeo) = ready("IPCE").await;
    assert_eq!(
        arkeo.set_shutter(true).await.unwrap(),
        json!({"state": "OK"})
    );
    let mono = arkeo.monochromator_status().await.unwrap();
    assert_eq!(mono.shutter_open(), Some(true));
    arkeo.set_wavelength(633.0).await.unwrap();
    assert_eq!(
        arkeo.monochromator_status().await.unwrap().wavelength,
        Some(633.0)
    );
    assert!(arkeo.chopper_frequency().await.unwrap() > 0.0);
    // The old spelling is not the vendor's and is refused as invalid parameters.
    let err = arkeo
        .routine_command("SetShutter", json!({"open": false}))
        .await
        .unwrap_err();
    assert_eq!(device_code(&err), Some(codes::INVALID_PARAMETERS));
    sim.shutdown().await;
}

#[tokio::test]
async fn tcspc_get_rates_answers_sync_rate_input_rate_and_ratio() {
    let (sim, arkeo) = ready("TCSPC").await;
    arkeo.set_tcspc_laser(1, true).await.unwrap();
    let rates = arkeo.rates().await.unwrap();
    assert!(rates.sync_rate > 0.0 && rates.input_rate > 0.0);
    assert!((rates.ratio - rates.input_rate / rates.sync_rate).abs() < 1e-12);
    // The vendor advises 1-5 % before measuring.
    assert!((0.01..0.05).contains(&rates.ratio), "{rates:?}");
    let raw = arkeo.routine_command("GetRates", json!({})).await.unwrap();
    assert!(raw.get("count_rate").is_none(), "{raw}");
    sim.shutdown().await;
}

#[tokio::test]
async fn resistivity_and_connection_test_custom_commands_exist() {
    let (sim, arkeo) = ready("Resistivity").await;
    arkeo.apply_current(0.03).await.unwrap();
    arkeo
        .set_device_dimensions(100.0, 25.0, 20.0)
        .await
        .unwrap();
    let data = arkeo.measure(TEST_DEADLINE).await.unwrap();
    // Only the latest point, with the vendor's keys.
    assert_eq!(data["Current (A)"], 0.03);
    assert!(
        data["Corrected 2D Sheet Resistance (Ohm/Sq)"].is_number(),
        "{data}"
    );
    arkeo.close_routine().await.unwrap();

    arkeo.start_routine("Connection Test").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    assert_eq!(arkeo.custom_commands().await.unwrap(), ["SetOutput"]);
    arkeo.start_measurement().await.unwrap();
    arkeo
        .wait_for(|s| s.routine_status == RoutineState::Running, TEST_DEADLINE)
        .await
        .unwrap();
    arkeo.set_output(0.5).await.unwrap();
    arkeo.wait_for_measurement(TEST_DEADLINE).await.unwrap();
    let data = arkeo.test_data().await.unwrap();
    assert_eq!(data["Voltage (V)"], 0.5);
    assert!(data["Current (A)"].is_number(), "{data}");
    sim.shutdown().await;
}

#[tokio::test]
async fn led_values_outside_zero_to_one_are_coerced_not_refused() {
    let sim = sim().await;
    let arkeo = client(&sim);
    let mut values = [1.5; 12];
    values[0] = -0.2;
    values[5] = 0.25;
    arkeo.set_led_values(2, &values).await.unwrap();
    let status = arkeo.led_status().await.unwrap();
    assert!(status.connected);
    assert_eq!(status.driver.as_deref(), Some("LVVISA"));
    let board = status.boards.iter().find(|b| b.address == 2).unwrap();
    let mut expected = [1.0; 12];
    expected[0] = 0.0;
    expected[5] = 0.25;
    assert_eq!(board.values, expected);
    assert!(board.connected);
    sim.shutdown().await;
}

#[tokio::test]
async fn tmpctl_status_is_an_array_of_controllers_with_the_vendors_keys() {
    let sim = manual_sim().await;
    let arkeo = client(&sim);
    // The raw reply: the vendor's keys, with spaces and dots.
    let raw = arkeo
        .command(Target::Tmpctl, "GetStatus", json!({}))
        .await
        .unwrap();
    let first = &raw.as_array().unwrap()[0];
    assert!(first["DeviceStatus"]["Error Number"].is_number(), "{first}");
    let measured = &first["LatestMeasurement"];
    assert!(measured["Time Stamp"].is_string());
    assert!(measured["Temp. Measurement"]["Object Temperature"].is_number());
    assert!(measured["Temp. Measurement"]["Sink Temperature"].is_number());
    for key in [
        "Temp. Control",
        "Output Stage Monitoring",
        "Sink Temp. General",
        "Fan Controller",
    ] {
        assert!(measured[key].is_object(), "{key}");
    }
    // The typed view.
    arkeo.set_temperature_controller(1, 1).await.unwrap();
    arkeo.set_temperature(30.0).await.unwrap();
    arkeo.set_temperature_enabled(true).await.unwrap();
    sim.clock().advance(Duration::from_secs(60));
    let controllers = arkeo.tmpctl_status().await.unwrap();
    assert_eq!(controllers.len(), 2);
    let stage = &controllers[0];
    assert_eq!((stage.address, stage.channel), (Some(1), Some(1)));
    assert_eq!(stage.device_status.state, "Running");
    assert_eq!(stage.device_status.error_number, 0);
    assert!((stage.object_temperature() - 30.0).abs() < 0.1);
    assert_eq!(stage.latest_measurement.temp_measurement.stable, "Stable");
    assert_eq!(controllers[1].device_status.state, "Ready");
    sim.shutdown().await;
}

#[tokio::test]
async fn mux_has_four_relays_the_vendors_firmware_and_takes_channels_or_state() {
    let sim = sim().await;
    let arkeo = client(&sim);
    arkeo.mux_connect().await.unwrap();
    let mux = arkeo.mux_status().await.unwrap();
    assert_eq!(mux.firmware.as_deref(), Some("Multiplexer_v1.1"));
    assert_eq!(mux.nr_relays, Some(4));
    assert_eq!(mux.relays.len(), 4);
    // The prose's `channels`, and the example's `state` (what set_relays sends).
    arkeo
        .command(
            Target::Mux,
            "SetStatus",
            json!({"channels": [true, false, true, false]}),
        )
        .await
        .unwrap();
    assert_eq!(
        sim.state().with(|d| d.relays().to_vec()),
        [true, false, true, false]
    );
    arkeo.set_relays(&[false, true, false, true]).await.unwrap();
    assert_eq!(
        arkeo.mux_status().await.unwrap().relays,
        [false, true, false, true]
    );
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn waiting_for_ready_straight_after_start_reads_the_previous_run_on_the_simulator() {
    // The trap the simulator reproduces (its default start lag): the application still says
    // Ready for a moment after StartMeasurement, so this hand-rolled wait returns at once.
    let sim = ArkeoSim::builder().start().await.unwrap();
    let arkeo = client(&sim);
    arkeo.start_routine("TPR").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    let first = arkeo.measure(TEST_DEADLINE).await.unwrap();
    assert_eq!(first["measurement"], 1);

    arkeo.start_measurement().await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    let stale = arkeo.test_data().await.unwrap();
    assert_eq!(stale["measurement"], 1, "the previous run's data");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn measure_waits_for_the_run_it_started_not_the_previous_one() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let arkeo = client(&sim);
    arkeo.start_routine("TPR").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    for run in 1..=3 {
        let data = arkeo.measure(TEST_DEADLINE).await.unwrap();
        assert_eq!(data["measurement"], run);
    }
    // The same with a lag of several polls, and with none at all.
    for lag in [Duration::from_secs(2), Duration::ZERO] {
        sim.state().set_start_lag(lag);
        let data = arkeo.measure(TEST_DEADLINE).await.unwrap();
        assert_eq!(
            data["measurement"],
            sim.state().with(|d| d.measurements_completed())
        );
    }
    assert_eq!(sim.state().with(|d| d.measurements_completed()), 5);
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn measure_with_progress_hands_over_the_devices_progress_while_it_runs() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let arkeo = client(&sim);
    arkeo.start_routine("TPR").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let data = arkeo
        .measure_with_progress(TEST_DEADLINE, |status| {
            seen.push((status.routine_status.clone(), status.progress_pct()));
        })
        .await
        .unwrap();
    assert_eq!(data["measurement"], 1);
    assert!(
        seen.iter()
            .any(|(state, pct)| *state == RoutineState::Running && pct.is_some()),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(|(state, _)| state),
        Some(&RoutineState::Ready)
    );
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_measurement_that_never_leaves_ready_ends_the_wait_at_the_start_grace() {
    let sim = ArkeoSim::builder()
        .start_lag(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let arkeo = Client::builder(sim.local_addr())
        .start_grace(Duration::from_secs(2))
        .build();
    arkeo.start_routine("MPPT").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = arkeo.measure(Duration::from_secs(600)).await.unwrap_err();
    assert!(
        matches!(err, Error::MeasurementNotStarted { grace } if grace == Duration::from_secs(2)),
        "{err:?}"
    );
    assert!(!err.is_connection_fatal());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A routine failing during the wait ends it with its status.
    sim.state().set_start_lag(Duration::ZERO);
    arkeo.stop_measurement().await.unwrap();
    arkeo.start_measurement().await.unwrap();
    assert!(sim.state().fail_routine("lamp failure"));
    let err = arkeo
        .wait_for_measurement(Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RoutineFailed(_)), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn blocking_commands_get_the_blocking_timeout_instead_of_the_5_s_call_timeout() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    // A call timeout of 5 s, shorter than the acquisitions below.
    let arkeo = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_secs(5))
        .build();
    arkeo.start_routine("Luminescence").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    arkeo
        .apply_settings(json!({"integration_time": 8000, "averages": 1}))
        .await
        .unwrap();
    // 8 s of integration: longer than the call timeout, and answered.
    let started = tokio::time::Instant::now();
    let single = arkeo
        .routine_command("AcquireSingle", json!({}))
        .await
        .unwrap();
    assert_eq!(single["spectrum"].as_array().unwrap().len(), 3);
    assert!(started.elapsed() >= Duration::from_secs(8));
    assert_eq!(arkeo.acquire_single().await.unwrap().spectrum.len(), 3);
    assert_eq!(arkeo.acquire_dark().await.unwrap().spectrum.len(), 2);
    // AutoExposure: 6 s on the simulator.
    let started = tokio::time::Instant::now();
    let exposure = arkeo.auto_exposure().await.unwrap();
    assert!(exposure.integration_time > 0.0);
    assert!(started.elapsed() >= Duration::from_secs(6));
    // No call ran out of time: one connection served them all.
    assert_eq!(sim.connection_count(), 1);
    // A per-call timeout shorter than the hardware needs still applies.
    let err = arkeo
        .call_with_timeout(
            Request::new(Target::Routine, "AutoExposure"),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        arkeo.timeout_for(&Request::new(Target::Routine, "StartCalibration")),
        arkeo_proto::client::DEFAULT_BLOCKING_TIMEOUT
    );
    assert_eq!(
        arkeo.timeout_for(&Request::new(Target::Routine, "GetTestStatus")),
        Duration::from_secs(5)
    );

    // IPCE StartCalibration: a minute-long lamp sweep.
    arkeo.close_routine().await.unwrap();
    arkeo.start_routine("IPCE").await.unwrap();
    arkeo
        .wait_until(RoutineState::Ready, TEST_DEADLINE)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    arkeo
        .start_calibration(r"C:\Arkeo\calibration\photodiode.txt")
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(60));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_id_echoed_as_a_float_or_a_string_is_accepted() {
    let sim = sim().await;
    let arkeo = client(&sim);
    sim.faults()
        .push(Fault::Device(ArkeoFault::RequestIdAsFloat));
    sim.faults()
        .push(Fault::Device(ArkeoFault::RequestIdAsString));
    arkeo.available_routines().await.unwrap();
    arkeo.available_routines().await.unwrap();
    assert_eq!(sim.faults().applied(), 2);
    // Accepted, not taken for an out-of-step connection.
    assert_eq!(sim.connection_count(), 1);
    // A float id that is another request's still is.
    sim.faults().push(Fault::Device(ArkeoFault::WrongRequestId));
    let err = fails_fatally_then_recovers(&arkeo).await;
    assert!(matches!(err, Error::RequestIdMismatch { .. }), "{err:?}");
}
