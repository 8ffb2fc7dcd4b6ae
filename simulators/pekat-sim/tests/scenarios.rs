//! Every scenario in `scenarios/` loads, and changes what a client sees; the fault schedule
//! and the initial state act as documented; a reset goes back to them; bad files name the
//! line and field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pekat_proto::{Command, Dialect, ProjectState};
use pekat_sim::{PekatScenario, PekatSim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a vendor-style client waits for an answer before it gives up: long enough for an
/// answer on a loaded CI machine (a scheduled 200 ms delay included); a request a scenario
/// leaves unanswered costs this much once.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// A client as the vendor's example talks: one socket, a bare `command:path` (3.18) or
/// `command|path` (3.19), one read for the answer; after no answer or a close it connects
/// again.
struct VendorClient {
    addr: SocketAddr,
    dialect: Dialect,
    stream: Option<TcpStream>,
}

impl VendorClient {
    async fn ask(&mut self, command: Command, path: &str) -> String {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self
                .stream
                .insert(TcpStream::connect(self.addr).await.unwrap()),
        };
        let separator = char::from(self.dialect.separator());
        let request = format!("{command}{separator}{path}");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = [0u8; 64];
        let seen = match tokio::time::timeout(ANSWER_WAIT, stream.read(&mut answer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => "closed".to_owned(),
            Ok(Ok(n)) => String::from_utf8_lossy(&answer[..n]).into_owned(),
            Err(_) => "no answer".to_owned(),
        };
        if seen == "closed" || seen == "no answer" {
            // Out of step: a late answer must not be read as the next one.
            self.stream = None;
        }
        format!("{command} -> {seen}")
    }
}

/// What a vendor-style client sees of a simulator running `scenario`: status, start, switch
/// and stop on its first two projects. Simulated time runs 1000 times faster, so the
/// transitions complete within the client's wait.
async fn transcript(scenario: PekatScenario) -> Vec<String> {
    let sim = PekatSim::builder()
        .time_scale(1000.0)
        .scenario(scenario)
        .start()
        .await
        .unwrap();
    let paths: Vec<String> = sim
        .config()
        .projects
        .iter()
        .map(|p| p.path.clone())
        .collect();
    let first = paths[0].clone();
    let second = paths.get(1).unwrap_or(&first).clone();
    let mut client = VendorClient {
        addr: sim.local_addr(),
        dialect: sim.config().dialect,
        stream: None,
    };
    let mut seen = Vec::new();
    for (command, path) in [
        (Command::Status, &first),
        (Command::Start, &first),
        (Command::Status, &first),
        (Command::Start, &second),
        (Command::Switch, &second),
        (Command::Status, &first),
        (Command::Stop, &second),
        (Command::Status, &second),
    ] {
        seen.push(client.ask(command, path).await);
    }
    sim.shutdown().await;
    seen
}

fn scenario_files() -> Vec<PathBuf> {
    labwire_simkit::scenario::files_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
}

fn example(name: &str) -> PekatScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    PekatScenario::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_scenario_loads_and_changes_what_a_client_sees() {
    let files = scenario_files();
    assert!(files.len() >= 3, "{files:?}");
    let default = transcript(PekatScenario::default()).await;
    assert_eq!(
        default,
        [
            "status -> stopped",
            "start -> done",
            "status -> running",
            "start -> done",
            "switch -> success",
            "status -> stopped",
            "stop -> done",
            "status -> stopped",
        ]
    );
    for file in files {
        let scenario = PekatScenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
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
async fn the_typical_station_starts_with_line_a_running() {
    let seen = transcript(example("typical.yaml")).await;
    assert_eq!(seen[0], "status -> running");
    assert_eq!(seen[3], "start -> done", "{seen:?}");
    assert_eq!(seen[4], "switch -> success", "{seen:?}");
    assert_eq!(seen[5], "status -> stopped", "{seen:?}");

    let sim = PekatSim::builder()
        .time_scale(0.0)
        .scenario(example("typical.yaml"))
        .start()
        .await
        .unwrap();
    let state = sim.state();
    assert_eq!(state.ports_in_use(), [8002]);
    let line_c = r"C:\Users\pekat\PekatVisionProjects\Line C";
    assert_eq!(
        state.handle(Command::Start, line_c).response(),
        &pekat_proto::Response::PortInUse
    );
    // A reset brings Line A back to running after it was stopped.
    let line_a = r"C:\Users\pekat\PekatVisionProjects\Line A";
    state.set_project_state(line_a, ProjectState::Stopped);
    sim.reset();
    assert_eq!(state.project_state(line_a), Some(ProjectState::Running));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flaky_schedule_loses_the_second_answer_and_refuses_project_2() {
    let seen = transcript(example("flaky.yaml")).await;
    assert_eq!(seen[0], "status -> stopped", "{seen:?}");
    assert_eq!(seen[1], "start -> no answer", "{seen:?}");
    assert_eq!(seen[3], "start -> error:port", "{seen:?}");
    // Only `start` is matched: switching to the same project works.
    assert_eq!(seen[4], "switch -> success", "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_silent_3_19_server_answers_status_only() {
    // On a stopped clock, advanced by hand: the project is seen starting however slowly the
    // client gets its first answer (at a running time scale that is a race).
    let sim = PekatSim::builder()
        .time_scale(0.0)
        .scenario(example("silent-3.19.yaml"))
        .start()
        .await
        .unwrap();
    let path = sim.config().projects[0].path.clone();
    let mut client = VendorClient {
        addr: sim.local_addr(),
        dialect: sim.config().dialect,
        stream: None,
    };
    assert_eq!(
        client.ask(Command::Status, &path).await,
        "status -> suc:starting"
    );
    assert_eq!(
        client.ask(Command::Start, &path).await,
        "start -> no answer"
    );
    sim.clock().advance(Duration::from_secs(2));
    assert_eq!(
        client.ask(Command::Status, &path).await,
        "status -> suc:running"
    );
    sim.shutdown().await;
}

#[test]
fn bad_scenarios_name_the_line_and_the_field() {
    for (text, expected) in [
        (
            "dialect: 3.20\n",
            "s.yaml:1:10: dialect: unknown PEKAT dialect",
        ),
        (
            "faults:\n  - { fault: no_replyy }\n",
            "s.yaml:2:14: faults[0].fault: unknown variant `no_replyy`",
        ),
        (
            "faults:\n  - { matching: { comand: start }, fault: close }\n",
            "faults[0].matching: unknown field `comand`",
        ),
        (
            "faults:\n  - { matching: { command: restart }, fault: close }\n",
            "faults[0].matching.command: unknown variant `restart`",
        ),
        (
            "faults:\n  - { fault: { device: { wrong_idd: 1 } } }\n",
            "unknown variant `wrong_idd`",
        ),
        (
            "faults:\n  - { fault: { device: { answer: '' } } }\n",
            "an answer is one line of text",
        ),
        (
            "projects:\n  - { path: 'C:\\A', port: 70000 }\n",
            "s.yaml:2:27: projects[0].port: invalid value",
        ),
        (
            "projects:\n  - { path: 'C:\\A', port: 1, state: runing }\n",
            "projects[0].state: unknown variant `runing`",
        ),
        ("delays: { start: 2 }\n", "delays.start: "),
        (
            "projects:\n  - { path: 'C:\\A', port: 1 }\n  - { path: 'c:/a/', port: 2 }\n",
            "projects[1].path: \"c:/a/\" is listed twice",
        ),
        (
            "projects:\n  - { path: A, port: 1, state: running }\n  - { path: B, port: 1, state: starting }\n",
            "projects[1].state: another project already holds port 1",
        ),
        ("ports: [1]\n", "s.yaml:1:1: unknown field `ports`"),
    ] {
        let error = PekatScenario::from_yaml(text, "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
