//! The `labwire` binary against in-process simulators on loopback: each subcommand talks to its
//! device over a real socket and prints what the device answered; `--json` output parses;
//! every failure has its exit status; progress shows on stderr; no colour codes off a terminal.

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::process::Command;

/// Bound for one run of the binary; each of these finishes in well under a second.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

async fn labwire(args: &[&str]) -> Output {
    labwire_with_env(args, &[]).await
}

/// Runs the binary with `args` and the environment variables `env` (the `LABWIRE_*` ones of
/// the test's own environment removed first), stdout and stderr piped: not a terminal.
async fn labwire_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labwire"));
    cmd.args(args).kill_on_drop(true).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("LABWIRE_") || name == "NO_COLOR" {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
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

/// Asserts the run ended with exit status `code`, and printed nothing on stdout when it
/// failed; returns its stderr.
fn exited(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

/// Asserts a failure's stderr is one `error:` line (and at most a `hint:` line), with no
/// backtrace and no colour.
fn one_plain_error(err: &str) {
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2 && lines[0].starts_with("error: "),
        "{err}"
    );
    assert!(
        lines.iter().skip(1).all(|l| l.starts_with("hint: ")),
        "{err}"
    );
    assert!(
        !err.contains("Backtrace") && !err.contains("Caused by"),
        "{err}"
    );
    assert!(!err.contains("\x1b["), "{err:?}");
}

/// Parses stdout as exactly one JSON document.
fn json(out: &Output) -> Value {
    let text = succeeded(out);
    assert_eq!(text.lines().count(), 1, "one document on one line: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A loopback address where nothing listens (a port just released).
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A server that accepts connections, reads, and never answers; its address.
async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// A server that answers every connection with `answer` (another protocol's bytes).
async fn foreign_server(answer: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer).await;
                let _ = socket.flush().await;
                // Held open: the client decides when the answer is wrong.
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    (addr, task)
}

/// An arkeo-sim whose measurement runs for a second: long enough for every poll to see it.
async fn arkeo_with_a_long_run() -> arkeo_sim::ArkeoSim {
    arkeo_sim::ArkeoSim::builder()
        .durations(arkeo_sim::Durations {
            initializing: Duration::ZERO,
            start_lag: Duration::ZERO,
            starting: Duration::from_millis(50),
            running: Duration::from_secs(1),
            ..arkeo_sim::Durations::default()
        })
        .start()
        .await
        .unwrap()
}

fn start_routine(sim: &arkeo_sim::ArkeoSim, routine: &str) {
    let start = arkeo_proto::Request::new(arkeo_proto::Target::Main, "StartRoutine")
        .param("routine", routine);
    assert!(!sim.state().handle(&start).is_error());
}

#[tokio::test]
async fn demo_rejects_an_unknown_protocol_name_and_lists_the_known_ones() {
    let out = labwire(&["demo", "modbus"]).await;
    let err = exited(&out, 2);
    one_plain_error(&err);
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
    start_routine(&sim, "TPR");
    for run in 1..=2 {
        let out = labwire(&[
            "--json", "arkeo", "--addr", &addr, "measure", "--wait", "20",
        ])
        .await;
        let data = json(&out);
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
        "--json",
    ])
    .await;
    let err = exited(&out, 4);
    one_plain_error(&err);
    assert!(err.contains("did not leave Ready"), "{err}");
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

// ---- Exit statuses: the same for every subcommand ----

#[tokio::test]
async fn a_device_refusal_exits_1() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&["arkeo", "send", "ROUTINE", "GetTestStatus", "--addr", &addr]).await;
    let err = exited(&out, 1);
    one_plain_error(&err);
    assert!(err.contains("4006"), "{err}");
    sim.shutdown().await;

    let sim = pekat_sim::PekatSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&["pekat", "start", r"C:\nowhere", "--addr", &addr]).await;
    one_plain_error(&exited(&out, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_command_line_exits_2_before_anything_is_sent() {
    let sim = comet_sim::CometSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    for args in [
        &["arkeo", "--bogus", "status"][..],
        &["comet", "send", "ECHO", "{", "--addr", &addr],
        &["comet", "send", "ECHO", "{}", "--addr", &addr],
        &["arkeo", "measure", "--settings", "[1]", "--addr", &addr],
        &["pycom", "sequence", "MODEL_LIGHT,150", "--addr", &addr],
        &["pekat", "status", "P", "--timeout", "NaN", "--addr", &addr],
        &["comet", "send", "ECHO", "1"],
        // An address that cannot be used as written (no device is ever asked).
        &["arkeo", "status", "--addr", "127.0.0.1:notaport"],
        &["pekat", "status", "P", "--addr", "127.0.0.1:notaport"],
        &["comet", "send", "ECHO", "1", "--addr", "127.0.0.1:notaport"],
        &["la4", "info", "--addr", "127.0.0.1:notaport"],
    ] {
        let out = labwire(args).await;
        let err = exited(&out, 2);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("\x1b["), "{args:?}: {err:?}");
    }
    assert_eq!(sim.state().counters().connections, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_device_that_cannot_be_reached_exits_3_with_the_connection_error_once() {
    let dead = closed_port().await;
    for args in [
        &["arkeo", "routines", "--addr", &dead][..],
        &["pekat", "status", "P", "--addr", &dead],
        &["comet", "send", "ECHO", "1", "--addr", &dead],
        &[
            "la4",
            "cmd",
            "ls",
            "--addr",
            &dead,
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let out = labwire_with_env(args, &[("RUST_BACKTRACE", "1")]).await;
        let err = exited(&out, 3);
        one_plain_error(&err);
        assert_eq!(err.matches("refused").count(), 1, "{args:?}: {err}");
        assert!(err.contains(&format!("cannot connect to {dead}")), "{err}");
    }
}

#[tokio::test]
async fn pycom_info_against_a_dead_port_reports_the_connection_error_at_once() {
    let dead = closed_port().await;
    let started = Instant::now();
    let out = labwire(&[
        "pycom",
        "info",
        "--addr",
        &dead,
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "20",
    ])
    .await;
    let err = exited(&out, 3);
    one_plain_error(&err);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("unit_info"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn no_answer_in_time_exits_4() {
    let (addr, server) = silent_server().await;
    let addr = addr.to_string();
    for args in [
        &["arkeo", "status", "--addr", &addr, "--timeout", "0.3"][..],
        &["pekat", "status", "P", "--addr", &addr, "--timeout", "0.3"],
        &[
            "comet",
            "send",
            "ECHO",
            "1",
            "--addr",
            &addr,
            "--timeout",
            "0.3",
        ],
    ] {
        let err = exited(&labwire(args).await, 4);
        one_plain_error(&err);
    }
    // LABWIRE_TIMEOUT stands for --timeout.
    let out = labwire_with_env(
        &["arkeo", "status", "--addr", &addr],
        &[("LABWIRE_TIMEOUT", "0.3")],
    )
    .await;
    one_plain_error(&exited(&out, 4));
    server.abort();
}

#[tokio::test]
async fn another_protocol_on_the_port_exits_5_with_a_hint() {
    let (addr, server) = foreign_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let out = labwire(&["arkeo", "status", "--addr", &addr.to_string()]).await;
    let err = exited(&out, 5);
    one_plain_error(&err);
    assert!(err.contains("exceeds"), "{err}");
    assert!(
        err.contains("hint: is this really an ARKEO server?"),
        "{err}"
    );
    server.abort();
}

// ---- --json: every subcommand prints one document ----

#[tokio::test]
async fn arkeo_json_output_parses_for_every_subcommand() {
    let sim = arkeo_with_a_long_run().await;
    let addr = sim.local_addr().to_string();
    let arkeo = |args: &[&str]| {
        let mut all = vec!["arkeo", "--json"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--addr", &addr]);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            labwire(&all).await
        }
    };
    let started = json(&arkeo(&["start", "TPR"]).await);
    assert_eq!(started["status"], "Ready");
    assert_eq!(started["routine"], "TPR");
    let routines = json(&arkeo(&["routines"]).await);
    assert_eq!(routines["active"], "TPR");
    assert!(
        routines["routines"]
            .as_array()
            .unwrap()
            .contains(&"TPR".into())
    );
    let status = json(&arkeo(&["status"]).await);
    assert_eq!(status["status"], "Ready");
    assert!(status["progress_pct"].is_null());
    let out = arkeo(&["measure"]).await;
    assert_eq!(json(&out)["measurement"], 1);
    assert!(
        stderr(&out).is_empty(),
        "no progress with --json: {}",
        stderr(&out)
    );
    let sent = json(&arkeo(&["send", "ROUTINE", "GetTestStatus"]).await);
    assert_eq!(sent["routine_status"], "Ready");
    assert_eq!(
        json(&arkeo(&["close"]).await),
        serde_json::json!({"closed": true})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_json_output_parses_for_every_subcommand() {
    let sim = pekat_sim::PekatSim::builder()
        .delays(Duration::from_millis(50), Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let projects = pekat_sim::demo_projects();
    let (one, two) = (projects[0].path.as_str(), projects[1].path.as_str());
    let run = |args: Vec<&str>| {
        let mut all = vec!["--json", "pekat", "--addr", &addr];
        all.extend(args);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            json(&labwire(&all).await)
        }
    };
    let status = run(vec!["status", one]).await;
    assert_eq!(status, serde_json::json!({"path": one, "state": "stopped"}));
    let started = run(vec!["start", one, "--wait", "10"]).await;
    assert_eq!(
        started,
        serde_json::json!({"path": one, "state": "running"})
    );
    let switched = run(vec!["switch", two]).await;
    assert_eq!(
        switched,
        serde_json::json!({"path": two, "answer": "success"})
    );
    let stopped = run(vec!["stop", two]).await;
    assert_eq!(stopped, serde_json::json!({"path": two, "answer": "done"}));
    let raw = run(vec!["raw", "launch|x"]).await;
    assert_eq!(raw["request"], "launch|x");
    assert!(raw["answer"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn pycom_and_la4_json_output_parses_for_every_subcommand() {
    let sim = la4_sim::La4Sim::builder()
        .boot_time(Duration::ZERO)
        .speed(25.0)
        .discovery_targets([])
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let common = [
        "--addr",
        &addr,
        "--listen",
        "127.0.0.1:0",
        "--ip",
        "127.0.0.1",
        "--timeout",
        "10",
    ];
    let run = |name: &'static str, args: Vec<&str>| {
        let mut all = vec!["--json", name];
        all.extend(args);
        all.extend(common);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            labwire(&all).await
        }
    };
    let info = json(&run("la4", vec!["info"]).await);
    assert_eq!(info["node"], addr.as_str());
    assert!(info["firmware_version"].is_string(), "{info}");
    let cmd = json(&run("pycom", vec!["cmd", "reboot"]).await);
    assert_eq!(cmd["output"], "sh: 1: reboot: not found\n");
    let sequence = json(&run("pycom", vec!["sequence", "MODEL_LIGHT,100", "LED_FAN,1"]).await);
    assert_eq!(sequence["verdict"], "BOARDIO_READY");
    assert_eq!(sequence["rows"].as_array().map(Vec::len), Some(2));
    // A stream: JSON Lines, each a JSON object with its event's name.
    let out = run("pycom", vec!["watch", "--seconds", "1"]).await;
    let text = succeeded(&out);
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["event"].is_string() && e["t"].is_number()),
        "{text}"
    );
    assert!(events.iter().any(|e| e["event"] == "online"), "{text}");
    sim.shutdown().await;
}

#[tokio::test]
async fn comet_json_output_parses_for_every_subcommand() {
    let sim = comet_sim::CometSim::builder()
        .status("idle")
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire(&[
        "comet",
        "send",
        "ECHO",
        r#"{"a": [1, null]}"#,
        "--json",
        "--addr",
        &addr,
    ])
    .await;
    assert_eq!(json(&out), serde_json::json!({"a": [1, null]}));
    let out = labwire(&[
        "comet", "telegram", "42", "status", "--json", "--addr", &addr,
    ])
    .await;
    assert!(json(&out).is_object());
    sim.shutdown().await;
}

#[tokio::test]
async fn demo_json_is_one_document_with_the_commentary_on_stderr() {
    let out = labwire(&["demo", "la4", "comet", "--json"]).await;
    let summary = json(&out);
    let names: Vec<&str> = summary["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["pycom", "comet"]);
    assert!(stderr(&out).contains("== comet =="), "{}", stderr(&out));
}

// ---- Progress, colour, options anywhere, environment ----

#[tokio::test]
async fn arkeo_measure_shows_the_devices_progress_on_stderr() {
    let sim = arkeo_with_a_long_run().await;
    start_routine(&sim, "TPR");
    let addr = sim.local_addr().to_string();
    let out = labwire(&["arkeo", "measure", "--addr", &addr]).await;
    let text = succeeded(&out);
    assert!(text.contains("measurement: 1"), "{text}");
    let err = stderr(&out);
    let running = err
        .lines()
        .find(|l| l.starts_with("measuring: Running ") && l.contains('%'));
    assert!(running.is_some(), "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("measuring: done after")),
        "{err}"
    );
    assert!(!err.contains("\x1b["), "{err:?}");
    // With --json only when asked.
    let out = labwire(&["arkeo", "measure", "--json", "--progress", "--addr", &addr]).await;
    assert_eq!(json(&out)["measurement"], 2);
    assert!(
        stderr(&out).contains("measuring: Running "),
        "{}",
        stderr(&out)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_start_wait_shows_the_wait_on_stderr() {
    let sim = pekat_sim::PekatSim::builder()
        .delays(Duration::from_millis(300), Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let project = &pekat_sim::demo_projects()[0].path;
    let out = labwire(&["pekat", "start", project, "--wait", "10", "--addr", &addr]).await;
    assert_eq!(succeeded(&out), "running\n");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("starting {project}: started")),
        "{err}"
    );
    assert!(
        err.contains(&format!("starting {project}: running after")),
        "{err}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn nothing_printed_off_a_terminal_has_colour_codes() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    // -vvv: every frame logged, through the same subscriber that colours a terminal.
    for args in [
        &["-vvv", "arkeo", "routines", "--addr", &addr][..],
        &["arkeo", "--help"],
        &["arkeo", "--bogus"],
        &["arkeo", "send", "ROUTINE", "GetTestStatus", "--addr", &addr],
    ] {
        let out = labwire(args).await;
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.is_empty(), "{args:?}");
        assert!(!all.contains("\x1b["), "{args:?}: {all:?}");
    }
    let out = labwire(&["-vvv", "arkeo", "routines", "--addr", &addr]).await;
    assert!(
        stderr(&out).contains("DEBUG"),
        "the logs are there: {}",
        stderr(&out)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn options_go_anywhere_and_addresses_come_from_the_environment() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    for args in [
        &["--json", "arkeo", "--addr", &addr, "routines"][..],
        &[
            "arkeo",
            "routines",
            "--addr",
            &addr,
            "--json",
            "--timeout",
            "5",
        ],
        &[
            "arkeo",
            "--timeout",
            "5",
            "routines",
            "--json",
            "--addr",
            &addr,
            "-v",
        ],
    ] {
        assert!(
            json(&labwire(args).await)["routines"].is_array(),
            "{args:?}"
        );
    }
    let out = labwire_with_env(
        &["arkeo", "routines", "--json"],
        &[("LABWIRE_ARKEO_ADDR", &addr)],
    )
    .await;
    assert!(json(&out)["routines"].is_array());
    // A flag given wins over the environment.
    let dead = closed_port().await;
    let out = labwire_with_env(
        &["arkeo", "routines", "--addr", &addr],
        &[("LABWIRE_ARKEO_ADDR", &dead)],
    )
    .await;
    succeeded(&out);
    sim.shutdown().await;

    let sim = comet_sim::CometSim::builder().start().await.unwrap();
    let addr = sim.local_addr().to_string();
    let out = labwire_with_env(
        &["comet", "send", "ECHO", "7"],
        &[("LABWIRE_COMET_ADDR", &addr)],
    )
    .await;
    assert_eq!(succeeded(&out), "7\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn la4_is_pycom_everywhere_and_its_help_says_la4() {
    let out = labwire(&["la4", "--help"]).await;
    let help = succeeded(&out);
    assert!(help.contains("Usage: labwire la4"), "{help}");
    let out = labwire(&["la4", "watch", "--help"]).await;
    assert!(succeeded(&out).contains("Usage: labwire la4 watch"));
    let out = labwire(&["demo", "la4", "--json"]).await;
    assert_eq!(json(&out)["protocols"][0]["name"], "pycom");
}

#[tokio::test]
async fn the_help_documents_the_exit_statuses_and_the_environment() {
    let help = succeeded(&labwire(&["--help"]).await);
    for needle in [
        "LABWIRE_ARKEO_ADDR",
        "LABWIRE_PEKAT_ADDR",
        "LABWIRE_PYCOM_ADDR",
        "LABWIRE_COMET_ADDR",
        "LABWIRE_TIMEOUT",
        "NO_COLOR",
        "3  could not connect",
        "-vv debug",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

/// Every subcommand, as completions and the man page must list them.
const SUBCOMMANDS: &[&str] = &[
    "demo",
    "arkeo",
    "pekat",
    "pycom",
    "la4",
    "comet",
    "tap",
    "replay",
    "completions",
    "man",
];

#[tokio::test]
async fn completions_for_every_shell_and_the_man_page_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = succeeded(&labwire(&["completions", shell]).await);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    let page = succeeded(&labwire(&["man"]).await);
    assert!(page.contains(".TH labwire 1"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("labwire\\-{sub}(1)")),
            "{sub}: {page}"
        );
    }
    assert!(page.contains("Exit status"), "{page}");
    // Each subcommand's own page, with its options and where they come from.
    let arkeo = succeeded(&labwire(&["man", "arkeo"]).await);
    assert!(arkeo.contains(".TH labwire-arkeo 1"), "{arkeo}");
    assert!(arkeo.contains("LABWIRE_ARKEO_ADDR"), "{arkeo}");
    for sub in SUBCOMMANDS {
        assert!(
            !succeeded(&labwire(&["man", sub]).await).is_empty(),
            "{sub}"
        );
    }
    exited(&labwire(&["man", "modbus"]).await, 2);
    let out = labwire(&["completions", "tcsh"]).await;
    exited(&out, 2);
}

#[tokio::test]
async fn the_la4_node_address_comes_from_either_variable() {
    let sim = la4_sim::La4Sim::builder()
        .boot_time(Duration::ZERO)
        .discovery_targets([])
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let args = [
        "la4",
        "cmd",
        "reboot",
        "--listen",
        "127.0.0.1:0",
        "--ip",
        "127.0.0.1",
    ];
    for variable in ["LABWIRE_PYCOM_ADDR", "LABWIRE_LA4_ADDR"] {
        let out = labwire_with_env(&args, &[(variable, &addr)]).await;
        assert!(succeeded(&out).contains("reboot: not found"), "{variable}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn replay_of_a_recording_that_cannot_be_read_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("labwire-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.jsonl");
    let garbage = dir.join("garbage.jsonl");
    std::fs::write(&garbage, "not a recording\n").unwrap();
    for file in [&missing, &garbage] {
        let file = file.to_str().unwrap();
        let out = labwire(&["replay", file]).await;
        let err = exited(&out, 2);
        one_plain_error(&err);
        assert!(err.contains(file), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn tap_follows_the_exit_statuses_too() {
    let out = labwire(&[
        "tap",
        "arkeo",
        "--upstream",
        "127.0.0.1:1",
        "--connect-timeout",
        "0",
    ])
    .await;
    one_plain_error(&exited(&out, 2));
    // A listen address that is taken: could not listen where asked.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let out = labwire(&[
        "tap",
        "arkeo",
        "--upstream",
        "127.0.0.1:1",
        "--listen",
        &listen,
    ])
    .await;
    one_plain_error(&exited(&out, 3));
}
