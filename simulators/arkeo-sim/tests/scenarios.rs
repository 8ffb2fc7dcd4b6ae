//! Every scenario in `scenarios/` loads, and changes what a client sees; the fault schedule
//! and the initial state act as documented; bad files name the line and field.

use std::path::Path;
use std::time::Duration;

use arkeo_proto::{Client, Request, Target};
use arkeo_sim::{ArkeoScenario, ArkeoSim};
use serde_json::{Value, json};

/// What a vendor-style client sees of a simulator: a fixed list of requests, each answer (or
/// failure) as text. On a stopped clock, advanced by hand so that a measurement completes.
async fn transcript(scenario: ArkeoScenario) -> Vec<String> {
    let sim = ArkeoSim::builder()
        .time_scale(0.0)
        .scenario(scenario)
        .start()
        .await
        .unwrap();
    // Long enough for an answer on a loaded CI machine (a scheduled 200 ms delay included);
    // a request a scenario leaves unanswered costs this much once.
    let client = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_secs(2))
        .build();
    let mut seen = Vec::new();
    let mut ask = async |target: Target, command: &str, parameter: Value| {
        let request = Request::new(target, command).with_parameter(parameter);
        let answer = match client.call(request).await {
            Ok(response) => response.data.unwrap_or(Value::Null).to_string(),
            Err(e) => format!("error: {e}"),
        };
        seen.push(format!("{command}: {answer}"));
    };
    ask(Target::Main, "GetAvailableRoutines", json!({})).await;
    ask(Target::Main, "GetActiveRoutine", json!({})).await;
    ask(Target::Routine, "GetTestStatus", json!({})).await;
    ask(Target::Mux, "GetStatus", json!({})).await;
    ask(Target::Led, "GetStatus", json!({})).await;
    ask(Target::Tmpctl, "GetStatus", json!({})).await;
    ask(Target::Routine, "CloseRoutine", json!({})).await;
    ask(Target::Main, "StartRoutine", json!({"routine": "JV"})).await;
    sim.clock().advance(Duration::from_secs(1));
    ask(Target::Routine, "StartMeasurement", json!({})).await;
    sim.clock().advance(Duration::from_secs(60));
    ask(Target::Routine, "GetTestData", json!({})).await;
    sim.shutdown().await;
    seen
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    labwire_simkit::scenario::files_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_scenario_loads_and_changes_what_a_client_sees() {
    let files = scenario_files();
    assert!(files.len() >= 3, "{files:?}");
    let default = transcript(ArkeoScenario::default()).await;
    for file in files {
        let scenario = ArkeoScenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let seen = transcript(scenario).await;
        assert_ne!(
            seen,
            default,
            "{} changes nothing a client sees",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flaky_schedule_hits_the_third_request_the_first_data_and_every_mux_answer() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/flaky.yaml");
    let seen = transcript(ArkeoScenario::load(path).unwrap()).await;
    assert!(seen[0].starts_with("GetAvailableRoutines: {"), "{seen:?}");
    assert!(
        seen[2].contains("error: ") && seen[2].contains("no reply within"),
        "{seen:?}"
    );
    assert!(seen[3].contains("request_id"), "MUX: {seen:?}");
    assert!(
        seen[4].starts_with("GetStatus: {"),
        "LED unaffected: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_degraded_station_has_its_routines_error_and_state() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/degraded.yaml");
    let scenario = ArkeoScenario::load(path).unwrap();
    let seen = transcript(scenario.clone()).await;
    assert!(
        !seen[0].contains("IPCE") && seen[0].contains("Connection Test"),
        "{seen:?}"
    );
    assert!(seen[1].contains("Luminescence"), "{seen:?}");
    assert!(seen[2].contains("Spectrometer not found"), "{seen:?}");
    assert!(seen[3].contains("\"connected\":true"), "{seen:?}");
    assert!(seen[9].contains("canned"), "{seen:?}");

    // A reset puts the error back after ClearErrors.
    let sim = ArkeoSim::builder()
        .time_scale(0.0)
        .scenario(scenario)
        .start()
        .await
        .unwrap();
    let client = Client::connect(sim.local_addr()).await.unwrap();
    client
        .call(Request::new(Target::Routine, "ClearErrors"))
        .await
        .unwrap();
    assert_eq!(sim.state().routine_state().unwrap().as_str(), "Ready");
    sim.reset();
    assert_eq!(sim.state().routine_state().unwrap().as_str(), "Error");
    sim.shutdown().await;
}

#[test]
fn bad_scenarios_name_the_line_and_the_field() {
    for (text, expected) in [
        (
            "routines: [JV, Lumi]\n",
            "s.yaml:1:11: routines: unknown routine `Lumi`, expected one of: JV,",
        ),
        (
            "faults:\n  - { fault: no_replyy }\n",
            "s.yaml:2:14: faults[0].fault: unknown variant `no_replyy`",
        ),
        (
            "faults:\n  - { matching: { comand: X }, fault: close }\n",
            "faults[0].matching: unknown field `comand`",
        ),
        (
            "faults:\n  - { fault: { device: wrong_id } }\n",
            "unknown variant `wrong_id`",
        ),
        ("mux: { relays: [true] }\n", "mux.relays: invalid length 1"),
        ("timings: { running: 2 }\n", "timings.running: "),
        (
            "led:\n  - { address: 1, values: [1, 2] }\n",
            "led[0].values: invalid length 2",
        ),
        (
            "routines: [JV]\nactive_routine: { name: TPR }\n",
            "active_routine.name: TPR is not among",
        ),
        ("tmpctrl: []\n", "s.yaml:1:1: unknown field `tmpctrl`"),
    ] {
        let error = ArkeoScenario::from_yaml(text, "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
