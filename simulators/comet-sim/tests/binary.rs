//! The `comet-sim` binary: start, announce the port, answer, stop cleanly on SIGTERM.

use std::io::Write as _;
use std::process::{Command, ExitStatus};

use comet_socket::Client;
use labwire_simkit::bin_test::SimProcess;
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
