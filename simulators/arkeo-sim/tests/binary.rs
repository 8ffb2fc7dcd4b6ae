//! The `arkeo-sim` program: first stdout line, a real exchange, clean exit on SIGTERM.

use std::io::BufReader;
use std::process::{Command, Stdio};

use arkeo_proto::Client;
use labwire_simkit::bin_test::SimProcess;

fn spawn() -> SimProcess {
    spawn_with(&[], Stdio::null())
}

fn spawn_with(extra: &[&str], stderr: Stdio) -> SimProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arkeo-sim"));
    command
        .args(["--listen", "127.0.0.1:0", "--speed", "20"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stderr(stderr);
    SimProcess::spawn_command(command).unwrap()
}

#[tokio::test]
async fn binary_announces_its_port_serves_requests_and_exits_cleanly_on_sigterm() {
    let sim = spawn();
    let addr = sim.addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);

    let arkeo = Client::connect(addr).await.unwrap();
    arkeo.start_routine("Luminescence").await.unwrap();
    assert_eq!(
        arkeo.active_routine().await.unwrap().as_deref(),
        Some("Luminescence")
    );

    // A connected client must not keep the process alive.
    let exit = tokio::task::spawn_blocking(move || sim.terminate())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(arkeo.available_routines().await.is_err());
}

#[test]
fn binary_exits_cleanly_on_sigint_too() {
    let mut sim = spawn();
    // Ctrl-C in a terminal; the process must still be serving until then.
    let probe = std::net::TcpStream::connect(sim.addr()).unwrap();
    sim.signal("INT").unwrap();
    let exit = sim.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    drop(probe);
}

#[test]
fn binary_refuses_an_address_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_arkeo-sim"))
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
}

#[test]
fn binary_refuses_a_negative_time_scale_with_status_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_arkeo-sim"))
        .args(["--listen", "127.0.0.1:0", "--speed=-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--time-scale"));
    assert!(output.stdout.is_empty());
}

#[test]
fn binary_refuses_a_bad_start_lag_with_status_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_arkeo-sim"))
        .args(["--listen", "127.0.0.1:0", "--start-lag", "soon"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--start-lag"));
}

#[test]
fn binary_help_lists_its_flags_and_the_default_address() {
    let output = Command::new(env!("CARGO_BIN_EXE_arkeo-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--speed",
        "--time-scale",
        "--backlog",
        "--max-connections",
        "--verbose",
        "--log-format",
        "--start-lag",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        help.contains(&format!("[default: {}]", arkeo_sim::DEFAULT_LISTEN)),
        "{help}"
    );
    assert_eq!(arkeo_sim::DEFAULT_LISTEN, "127.0.0.1:6360");
}

#[tokio::test]
async fn binary_logs_every_frame_decoded_with_v_and_in_hex_with_vv() {
    let mut sim = spawn_with(&["-vv"], Stdio::piped());
    let addr = sim.addr();
    let stderr = sim.child_mut().stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let arkeo = Client::connect(addr).await.unwrap();
    arkeo.available_routines().await.unwrap();
    drop(arkeo);
    let exit = tokio::task::spawn_blocking(move || sim.terminate())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // The pipe closes when the process exits, so the reader ends.
    let log = log.join().unwrap();
    // Debug: the decoded request; trace: its bytes in hex (`{"target"` starts the payload).
    assert!(log.contains("GetAvailableRoutines"), "{log}");
    assert!(log.contains("7b22746172676574"), "{log}");
}
