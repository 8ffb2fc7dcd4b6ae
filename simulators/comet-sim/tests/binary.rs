//! The `comet-sim` binary: start, announce the port, answer, stop cleanly on SIGTERM.

use std::io::Write as _;
use std::process::{Command, ExitStatus};

use comet_socket::Client;
use labwire_simkit::bin_test::{SimProcess, usage_error};
use serde_json::json;

fn spawn(args: &[&str]) -> (SimProcess, String) {
    let sim = SimProcess::spawn(env!("CARGO_BIN_EXE_comet-sim"), args).unwrap();
    let addr = sim.addr().to_string();
    (sim, addr)
}

/// SIGTERM, then the exit status (off the runtime's threads: it blocks until the exit).
async fn terminate(sim: SimProcess) -> ExitStatus {
    tokio::task::spawn_blocking(move || sim.terminate())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn binary_announces_its_port_answers_and_exits_cleanly_on_sigterm() {
    let (child, addr) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--speed",
        "10",
        "--max-connections",
        "8",
        "--log-format",
        "json",
        "--deadline",
        "250ms",
        "--answer",
        "Status={\"ok\": true}",
    ]);
    let client = Client::builder(addr).build();
    assert_eq!(
        client.send("ECHO", &json!("hi")).await.unwrap(),
        json!("hi")
    );
    assert_eq!(
        client.send("Status", &json!(1)).await.unwrap(),
        json!({"ok": true})
    );
    assert_eq!(
        client
            .send("Telegram", &json!({"7": "ping"}))
            .await
            .unwrap(),
        json!({"7": "pong"})
    );
    let status = terminate(child).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn binary_listens_on_the_host_of_a_comet_config_file() {
    // Port 0 in COMET's YAML still means "any free port" for the simulator.
    let mut file = tempfile();
    writeln!(
        file.1,
        "Socket_connection:\n  Host:\n    IP: 127.0.0.1\n    Port: 0\n  Client:\n    Telegram:\n      IP: 127.0.0.1\n      Port: 1\n"
    )
    .unwrap();
    let (child, addr) = spawn(&["--config", file.0.to_str().unwrap()]);
    assert!(addr.starts_with("127.0.0.1:"));
    let client = Client::builder(addr).build();
    assert_eq!(client.send("ECHO", &json!(3)).await.unwrap(), json!(3));
    let status = terminate(child).await;
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_file(&file.0);
}

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("comet-sim-test-{}.yml", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

#[test]
fn binary_rejects_a_bad_answer_option() {
    let output = Command::new(env!("CARGO_BIN_EXE_comet-sim"))
        .args(["--listen", "127.0.0.1:0", "--answer", "NOEQUALS"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ACTION=JSON"));
}

#[test]
fn binary_refuses_a_bad_scenario_or_a_remote_control_address_with_status_2() {
    let dir = std::env::temp_dir().join(format!("comet-sim-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "answers: { Status: idle }\nfaults:\n  - { matching: { acton: Status }, fault: close }\n",
    )
    .unwrap();
    let cases: [(Vec<&str>, &str); 2] = [
        (
            vec!["--scenario", bad.to_str().unwrap()],
            "bad.yaml:3:19: faults[0].matching: unknown field `acton`",
        ),
        (vec!["--control", "0.0.0.0:0"], "--control-allow-remote"),
    ];
    for (args, expected) in cases {
        let args = [&["--listen", "127.0.0.1:0"][..], &args].concat();
        let stderr = usage_error(env!("CARGO_BIN_EXE_comet-sim"), &args).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn binary_serves_its_scenario_and_prints_the_control_address_after_the_listening_line() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/typical.yaml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_comet-sim"));
    command
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(["--scenario", scenario, "--answer", "GetIV=[1, 2]"])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::null());
    let mut sim = SimProcess::spawn_command(command).unwrap();
    let line = sim.next_line().unwrap();
    let control: std::net::SocketAddr = line
        .strip_prefix("control on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(control.ip().is_loopback());
    let client = Client::builder(sim.addr()).build();
    // The scenario's answers, and a flag's on top of them.
    assert_eq!(
        client.send("Status", &json!(1)).await.unwrap()["state"],
        json!("measuring")
    );
    assert_eq!(
        client.send("GetIV", &json!(1)).await.unwrap(),
        json!([1, 2])
    );
    let response = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut stream = std::net::TcpStream::connect(control).unwrap();
        stream
            .write_all(b"GET /state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("measuring IV on W42-07"), "{response}");
    let status = terminate(sim).await;
    assert!(status.success(), "{status:?}");
}
