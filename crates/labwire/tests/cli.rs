//! The `labwire` binary against in-process simulators on loopback: each subcommand talks to its
//! device over a real socket and prints what the device answered.

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

/// Bound for one run of the binary; each of these finishes in well under a second.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

async fn labwire(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labwire"));
    cmd.args(args).kill_on_drop(true);
    tokio::time::timeout(RUN_DEADLINE, cmd.output())
        .await
        .expect("labwire finished in time")
        .expect("labwire started")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the run succeeded; returns what it printed on stdout.
fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
}

/// Asserts the run failed; returns everything it printed.
fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "{}", stdout(out));
    format!("{}{}", stdout(out), stderr(out))
}

#[tokio::test]
async fn demo_rejects_an_unknown_protocol_name_and_lists_the_known_ones() {
    let err = failed(&labwire(&["demo", "modbus"]).await);
    assert!(err.contains("no demo named \"modbus\""), "{err}");
    for name in ["arkeo", "pekat", "pycom", "comet"] {
        assert!(err.contains(name), "{err}");
    }
}

#[tokio::test]
async fn arkeo_routines_lists_what_the_device_offers() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&["arkeo", "--addr", &addr, "routines"]).await;
    let text = succeeded(&out);
    assert!(text.contains("Luminescence"), "{text}");
    assert!(sim.state().requests_handled() >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn arkeo_send_reports_the_device_error_and_fails() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    // No routine is active: the device refuses ROUTINE commands with error 4006.
    let out = labwire(&["arkeo", "--addr", &addr, "send", "ROUTINE", "GetTestStatus"]).await;
    let all = failed(&out);
    assert!(all.contains("4006"), "{all}");
    sim.shutdown().await;
}

#[tokio::test]
async fn arkeo_measure_prints_the_run_it_started_not_the_previous_one() {
    // A start lag of several polls: the application still says Ready after StartMeasurement.
    let sim = arkeo_sim::ArkeoSim::builder()
        .durations(arkeo_sim::Durations {
            initializing: Duration::ZERO,
            start_lag: Duration::from_millis(400),
            starting: Duration::from_millis(50),
            running: Duration::from_millis(100),
            ..arkeo_sim::Durations::default()
        })
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let start = |routine: &str| {
        arkeo_proto::Request::new(arkeo_proto::Target::Main, "StartRoutine")
            .param("routine", routine)
    };
    assert!(!sim.state().handle(&start("TPR")).is_error());
    for run in 1..=2 {
        let out = labwire(&["arkeo", "--addr", &addr, "measure", "--wait", "20"]).await;
        let data: serde_json::Value = serde_json::from_str(&succeeded(&out)).unwrap();
        assert_eq!(data["measurement"], run, "{data}");
    }
    // A start that never shows is reported, not answered with old data.
    sim.state().set_start_lag(Duration::from_secs(3600));
    let out = labwire(&[
        "arkeo",
        "--addr",
        &addr,
        "measure",
        "--wait",
        "20",
        "--start-grace",
        "0.5",
    ])
    .await;
    let all = failed(&out);
    assert!(all.contains("did not leave Ready"), "{all}");
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_status_then_start_changes_the_simulated_project() {
    let sim = pekat_sim::PekatSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let project = &pekat_sim::demo_projects()[0].path;
    let out = labwire(&["pekat", "--addr", &addr, "status", project]).await;
    let text = succeeded(&out);
    assert!(text.contains("stopped"), "{text}");

    let out = labwire(&["pekat", "--addr", &addr, "start", project, "--wait", "10"]).await;
    succeeded(&out);
    assert_eq!(
        sim.state().project_state(project),
        Some(pekat_proto::ProjectState::Running)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_unknown_project_is_reported_as_not_found() {
    let sim = pekat_sim::PekatSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&["pekat", "--addr", &addr, "start", r"C:\nowhere"]).await;
    let all = failed(&out);
    assert!(
        all.contains("not-found") || all.contains("not found"),
        "{all}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_raw_prints_the_answer_as_it_came_with_any_terminator() {
    let sim = pekat_sim::PekatSim::builder()
        .dialect(pekat_proto::Dialect::V3_19)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let project = &pekat_sim::demo_projects()[0].path;
    let request = format!("7.status|{project}");
    for terminator in ["none", "lf", "crlf"] {
        let args = [
            "pekat",
            "--addr",
            &addr,
            "--terminator",
            terminator,
            "raw",
            &request,
        ];
        let out = labwire(&args).await;
        assert_eq!(succeeded(&out), "7.suc:stopped\n", "{terminator}");
    }
    // A refusal is an answer like any other here.
    let out = labwire(&["pekat", "--addr", &addr, "raw", "launch|x"]).await;
    assert_eq!(succeeded(&out), "err:invalid-command\n");
    let out = labwire(&["pekat", "--addr", &addr, "--terminator", "cr", "raw", "x"]).await;
    let all = failed(&out);
    assert!(all.contains("crlf"), "{all}");
    assert_eq!(sim.requests(), 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn comet_send_prints_the_echoed_result_as_json() {
    let sim = comet_sim::CometSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&[
        "comet",
        "--addr",
        &addr,
        "send",
        "ECHO",
        r#"{"b": 1, "a": [true, null]}"#,
    ])
    .await;
    let printed: serde_json::Value = serde_json::from_str(succeeded(&out).trim()).unwrap();
    assert_eq!(printed, serde_json::json!({"b": 1, "a": [true, null]}));
    sim.shutdown().await;
}

#[tokio::test]
async fn comet_send_refuses_a_falsy_value_without_connecting() {
    let sim = comet_sim::CometSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&["comet", "--addr", &addr, "send", "ECHO", "{}"]).await;
    let all = failed(&out);
    assert!(all.contains("falsy"), "{all}");
    assert_eq!(sim.state().counters().requests, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn pycom_cmd_runs_a_command_on_the_simulated_node_and_prints_its_output() {
    let sim = la4_sim::La4Sim::builder()
        .boot_time(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&[
        "pycom",
        "--addr",
        &addr,
        "--listen",
        "127.0.0.1:0",
        "--ip",
        "127.0.0.1",
        "--timeout",
        "10",
        "cmd",
        "reboot",
    ])
    .await;
    let all = succeeded(&out);
    // The simulator never runs anything: an unknown program answers like sh.
    assert!(all.contains("sh: 1: reboot: not found"), "{all}");
    sim.shutdown().await;
}
