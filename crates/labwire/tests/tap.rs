//! `labwire tap` against arkeo-sim: the first stdout line names the address, a client through
//! it gets the simulator's answers, and every message is printed and recorded; with
//! `--cut-oversize` a frame over the limit is cut and reported on stderr.

use std::process::Stdio;
use std::time::Duration;

use labwire_tap::{Direction, Event, Recording};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(30);

struct Tap {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    addr: String,
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line in time")
        .expect("stdout readable")
        .expect("labwire tap still running")
}

async fn tap(args: &[&str]) -> Tap {
    let mut child = Command::new(env!("CARGO_BIN_EXE_labwire"))
        .arg("tap")
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("labwire started");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = next_line(&mut lines).await;
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_owned();
    Tap { child, lines, addr }
}

/// Reads stdout lines until `done` has seen what it wants.
async fn read_until(tap: &mut Tap, mut done: impl FnMut(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = next_line(&mut tap.lines).await;
        let finished = done(&line);
        seen.push(line);
        if finished {
            return seen;
        }
    }
}

#[tokio::test]
async fn tap_prints_each_message_and_records_the_exchange() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let record = std::env::temp_dir().join(format!("labwire-cli-tap-{}.jsonl", std::process::id()));
    let upstream = sim.local_addr().to_string();
    let mut tap = tap(&[
        "arkeo",
        "--upstream",
        &upstream,
        "--record",
        record.to_str().unwrap(),
    ])
    .await;

    let client = arkeo_proto::Client::connect(tap.addr.as_str())
        .await
        .unwrap();
    let routines = client.available_routines().await.unwrap();
    assert!(routines.iter().any(|r| r == "Luminescence"), "{routines:?}");

    let lines = read_until(&mut tap, |line| line.contains("to_client")).await;
    let text = lines.join("\n");
    assert!(
        text.contains("conn 1 to_device MAIN GetAvailableRoutines"),
        "{text}"
    );
    assert!(text.contains("conn 1 to_client OK"), "{text}");

    // Lines are written to the recording (and flushed) before they are printed.
    let recording = Recording::load(&record).unwrap();
    let _ = std::fs::remove_file(&record);
    assert_eq!(recording.header.as_ref().unwrap().protocol, "arkeo");
    let answer = recording.stream(1, Direction::ToClient).next().unwrap();
    assert!(answer.decoded.message().unwrap()["data"]["routines"].is_array());
    tap.child.kill().await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn tap_json_prints_recording_lines_and_survives_a_refusing_upstream() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = free.local_addr().unwrap().to_string();
    drop(free);
    let mut tap = tap(&["comet", "--upstream", &upstream, "--json"]).await;

    // Nothing upstream: the client's connection is closed, the tap keeps listening.
    let err = comet_socket::Client::builder(tap.addr.as_str())
        .build()
        .send("ECHO", &serde_json::json!(1))
        .await;
    assert!(err.is_err(), "{err:?}");

    let sim = comet_sim::CometSim::builder()
        .listen(upstream.parse().unwrap())
        .start()
        .await
        .unwrap();
    let client = comet_socket::Client::builder(tap.addr.as_str()).build();
    let result = client
        .send("ECHO", &serde_json::json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(result, serde_json::json!({"x": 1}));

    let lines = read_until(&mut tap, |line| line.contains("to_client")).await;
    let events: Vec<Event> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(events[0].conn, 2);
    assert_eq!(events[0].decoded.message().unwrap()["action"], "ECHO");
    tap.child.kill().await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn tap_cut_oversize_closes_the_connection_and_says_so_on_stderr() {
    let sim = arkeo_sim::ArkeoSim::builder().start().await.unwrap();
    let upstream = sim.local_addr().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labwire"))
        .args(["tap", "arkeo", "--upstream", &upstream, "--cut-oversize"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("labwire started");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = next_line(&mut lines).await;
    let addr = first.strip_prefix("listening on ").unwrap().to_owned();

    // A length prefix claiming 3 GiB: cut, nothing comes back.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(&[0xC0, 0, 0, 0, b'{', b'"'])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(rest.is_empty(), "{read:?}");

    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let report = tokio::time::timeout(DEADLINE, stderr.next_line())
        .await
        .expect("a report in time")
        .unwrap()
        .expect("a stderr line");
    assert!(report.contains("cut"), "{report}");
    child.kill().await.unwrap();
    sim.shutdown().await;
}
