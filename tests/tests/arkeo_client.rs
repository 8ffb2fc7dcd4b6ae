//! arkeo-proto's client against arkeo-sim over loopback sockets.

use std::time::Duration;

use arkeo_proto::{
    Client, Error, ParamKey, Reply, Request, RoutineState, Target, codes, json::lenient_f64,
};
use arkeo_sim::{ArkeoFault, ArkeoSim, Durations, Fault, SimClock};
use labwire_tests::{TEST_DEADLINE, eventually};
use serde_json::json;
use tokio::time::timeout;

/// Quick phases so that a whole workflow takes a fraction of a second of real time.
fn quick() -> Durations {
    Durations {
        initializing: Duration::from_millis(50),
        starting: Duration::from_millis(30),
        running: Duration::from_millis(200),
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
        .timeout(Duration::from_secs(5))
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
    sim.clock()
        .advance(Durations::default().starting + Durations::default().running / 4);
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
        .await
        .unwrap();
    let Reply::Refused(refusal) = reply else {
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
        .timeout(Duration::from_millis(100))
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
    assert!(reply.is_ok());
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
        .max_frame_length(1024)
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
    arkeo.set_temperature_controller(2, 1).await.unwrap();
    arkeo.set_temperature(40.0).await.unwrap();
    arkeo.set_temperature_enabled(true).await.unwrap();
    sim.clock().advance(Duration::from_secs(120));
    let status = arkeo.tmpctl_status().await.unwrap();
    assert_eq!(status["address"], 2);
    assert_eq!(status["temperature"], 40.0);

    let err = arkeo.set_relays(&[true; 16]).await.unwrap_err();
    assert_eq!(device_code(&err), Some(codes::INVALID_STATE));
    arkeo.mux_connect().await.unwrap();
    let mut relays = [false; 16];
    relays[3] = true;
    arkeo.set_relays(&relays).await.unwrap();
    let mux = arkeo.mux_status().await.unwrap();
    assert!(mux.connected);
    assert_eq!(mux.relays, relays);
    let err = arkeo.set_relays(&[true; 4]).await.unwrap_err();
    assert_eq!(device_code(&err), Some(codes::INVALID_ARRAY_SIZE));
    arkeo.mux_disconnect().await.unwrap();
    assert!(!arkeo.mux_status().await.unwrap().connected);

    arkeo.set_led_values(1, &[0.5; 12]).await.unwrap();
    assert_eq!(
        arkeo.led_status().await.unwrap()["boards"][0]["values"][7],
        0.5
    );
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
    let single = arkeo
        .routine_command("AcquireSingle", json!({}))
        .await
        .unwrap();
    assert_eq!(single["spectrum"].as_array().unwrap().len(), 3);

    arkeo.start_measurement().await.unwrap();
    sim.clock().advance(Durations::default().starting);
    assert_eq!(
        arkeo.test_status().await.unwrap().routine_status,
        RoutineState::Running
    );
    assert_eq!(arkeo.stop_measurement().await.unwrap()["stopped"], true);
    assert_eq!(sim.state().routine_state(), Some(RoutineState::Ready));
    sim.shutdown().await;
}
