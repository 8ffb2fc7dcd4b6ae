//! Every scenario in `scenarios/` loads, and changes what a client sees; the fault schedule,
//! the per-action delays and fidelity mode act as documented; a reset goes back to the
//! scenario; bad files name the line and field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use comet_sim::{CometFault, CometMatcher, CometScenario, CometSim, Fault, ScheduledFault};
use comet_socket::{Client, Frame};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What a vendor-style client sees of a simulator: a fixed list of requests, each answer (or
/// failure) as text. On a stopped clock, so that a delayed handler never finishes.
async fn transcript(scenario: CometScenario) -> Vec<String> {
    let sim = CometSim::builder()
        .time_scale(0.0)
        .scenario(scenario)
        .start()
        .await
        .unwrap();
    // Answers that come get a generous deadline (a loaded CI machine is slow); the one request
    // a scenario may hold (GetIV, delayed on the stopped clock) gets a short one, and in
    // fidelity mode the next request waits until the simulator has seen that client leave.
    let client = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_secs(10))
        .build();
    let mut seen = Vec::new();
    for (action, value) in [
        ("ECHO", json!({"sample": 7})),
        ("Status", json!(1)),
        ("GetEnvironment", json!(1)),
        ("GetIV", json!({"v": -20})),
        ("Telegram", json!({"42": "status"})),
        ("Telegram", json!({"42": "calibrate"})),
        ("Status", json!(2)),
    ] {
        let deadline = if action == "GetIV" {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        let request = comet_socket::Request::new(action, value);
        let answer = match client
            .call_with_timeout(request, deadline)
            .await
            .map(|r| r.result)
        {
            Ok(answer) => answer.to_string(),
            Err(e) => format!("error: {e}"),
        };
        seen.push(format!("{action}: {answer}"));
    }
    // Falsy content: COMET's invalid-request answer, or (fidelity mode) no answer at all.
    // (The client refuses to send it, as COMET's own client would hang on it.)
    seen.push(format!("{{}}: {}", raw_exchange(&sim, b"{}").await));
    sim.shutdown().await;
    seen
}

/// `content` as a JSON frame on a raw connection: the answer's content, or how it ended.
async fn raw_exchange(sim: &CometSim, content: &'static [u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(sim.local_addr())
        .await
        .unwrap();
    let frame = Frame::json(content);
    let bytes = comet_socket::wire::encode_to_bytes(&frame, &Default::default()).unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await {
        Err(_) => "no answer".to_owned(),
        Ok(read) => {
            read.unwrap();
            match comet_socket::wire::decode(&answer, &Default::default()) {
                Ok(Some((frame, _))) => String::from_utf8_lossy(&frame.content).into_owned(),
                _ => format!("closed after {} bytes", answer.len()),
            }
        }
    }
}

fn scenario_files() -> Vec<PathBuf> {
    labwire_simkit::scenario::files_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
}

fn example(name: &str) -> CometScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    CometScenario::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_scenario_loads_and_changes_what_a_client_sees() {
    let files = scenario_files();
    assert!(files.len() >= 3, "{files:?}");
    let default = transcript(CometScenario::default()).await;
    for file in files {
        let scenario = CometScenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
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
async fn the_typical_station_answers_its_actions_and_its_telegram_commands() {
    let seen = transcript(example("typical.yaml")).await;
    assert!(seen[1].contains("\"state\":\"measuring\""), "{seen:?}");
    assert!(seen[2].contains("humidity"), "{seen:?}");
    assert_eq!(seen[3], "GetIV: null", "{seen:?}");
    assert!(
        seen[4].contains("Status: measuring IV on W42-07"),
        "{seen:?}"
    );
    assert!(seen[5].contains("Calibration queued"), "{seen:?}");
    assert!(seen[7].contains("invalid action"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flaky_schedule_hits_the_third_request_and_every_environment_answer() {
    let seen = transcript(example("flaky.yaml")).await;
    assert_eq!(seen[1], "Status: {\"state\":\"idle\"}", "{seen:?}");
    assert!(seen[2].starts_with("GetEnvironment: error: "), "{seen:?}");
    assert!(
        !seen[2].contains("humidity sensor"),
        "no reply, not the error: {seen:?}"
    );
    assert_eq!(seen[3], "GetIV: null", "{seen:?}");
    assert_eq!(seen[6], "Status: {\"state\":\"idle\"}", "{seen:?}");

    // After the no-reply, GetEnvironment gets the device error until the faults are cleared.
    let sim = CometSim::builder()
        .scenario(example("flaky.yaml"))
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_secs(5))
        .build();
    let ask = async || match client.send("GetEnvironment", &json!(1)).await {
        Ok(answer) => answer.to_string(),
        Err(e) => e.to_string(),
    };
    for _ in 0..2 {
        assert!(ask().await.contains("humidity sensor not connected"));
    }
    sim.faults().clear();
    assert!(ask().await.contains("31.5"));
    // A reset schedules the scenario's faults again.
    sim.reset();
    assert_eq!(sim.faults().snapshot().standing.len(), 1);
    assert_eq!(sim.faults().snapshot().queued.len(), 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fidelity_mode_holds_falsy_content_and_delays_hold_their_action() {
    let seen = transcript(example("fidelity.yaml")).await;
    assert!(
        seen[3].starts_with("GetIV: error: "),
        "held on the stopped clock: {seen:?}"
    );
    assert!(seen[4].contains("interlock open"), "{seen:?}");
    assert_eq!(seen[7], "{}: no answer", "held: {seen:?}");

    // On a running clock the delayed answer comes.
    let sim = CometSim::builder()
        .time_scale(100.0)
        .scenario(example("fidelity.yaml"))
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_secs(5))
        .build();
    let answer = client.send("GetIV", &json!(1)).await.unwrap();
    assert_eq!(answer["voltage"], json!([0, -10, -20]));
    assert_eq!(sim.state().delay("GetIV"), Some(Duration::from_millis(500)));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_reset_goes_back_to_the_scenario() {
    let sim = CometSim::builder()
        .scenario(example("typical.yaml"))
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr()).build();
    sim.state().set_answer("Status", json!("changed"));
    sim.state().set_status("changed");
    sim.faults().push(Fault::Close);
    let closed = client.send("ECHO", &json!(1)).await.unwrap_err();
    assert!(closed.is_connection_fatal(), "{closed}");
    sim.reset();
    assert_eq!(
        client.send("Status", &json!(1)).await.unwrap()["state"],
        json!("measuring")
    );
    assert_eq!(sim.state().status(), "measuring IV on W42-07");
    assert_eq!(sim.state().counters().requests, 1, "counters start again");
    assert_eq!(sim.faults().snapshot().queued, Vec::new());
    sim.shutdown().await;
}

#[test]
fn a_scenario_round_trips_through_yaml_and_json() {
    let scenario = example("flaky.yaml");
    let json = serde_json::to_value(&scenario).unwrap();
    assert_eq!(
        json["faults"][2]["fault"],
        json!({"device": {"error": "Error: humidity sensor not connected"}})
    );
    let back: CometScenario = serde_json::from_value(json).unwrap();
    assert_eq!(back, scenario);
    assert_eq!(
        scenario.faults[1],
        ScheduledFault::next(Fault::Delay(Duration::from_millis(100)))
            .matching(CometMatcher::action("Status"))
    );
    let slow: CometScenario =
        CometScenario::from_yaml("faults: [{ fault: { device: { slow: 2s } } }]\n", "s.yaml")
            .unwrap();
    assert_eq!(
        slow.faults[0].fault,
        Fault::Device(CometFault::Slow(Duration::from_secs(2)))
    );
}

#[test]
fn bad_scenarios_name_the_line_and_the_field() {
    for (text, expected) in [
        (
            "faults:\n  - { fault: no_replyy }\n",
            "s.yaml:2:14: faults[0].fault: unknown variant `no_replyy`",
        ),
        (
            "faults:\n  - { matching: { acton: X }, fault: close }\n",
            "faults[0].matching: unknown field `acton`",
        ),
        (
            "faults:\n  - { fault: { device: { eror: x } } }\n",
            "unknown variant `eror`",
        ),
        (
            "faults:\n  - { fault: { device: { slow: 2 } } }\n",
            "faults[0].fault",
        ),
        ("delays: { GetIV: 200 }\n", "delays.GetIV: "),
        ("fidelity: sometimes\n", "s.yaml:1:11: fidelity: "),
        (
            "connection_deadline: 0s\n",
            "connection_deadline: must be more than zero",
        ),
        (
            "telegram: { action: \"\" }\n",
            "telegram.action: must not be empty",
        ),
        (
            "telegram: { stauts: x }\n",
            "telegram: unknown field `stauts`",
        ),
        ("answer: { A: 1 }\n", "s.yaml:1:1: unknown field `answer`"),
    ] {
        let error = CometScenario::from_yaml(text, "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
