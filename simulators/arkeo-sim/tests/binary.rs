//! The `arkeo-sim` program: first stdout line, a real exchange, clean exit on SIGTERM.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arkeo_proto::Client;
use labwire_simkit::bin_test::{SimProcess, usage_error};

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

/// Waits (at most `within`) for the simulator to close `stream`: the end of the stream, or a
/// reset when it closed with bytes of ours unread. How long it took, or `None` when the
/// connection was still open at the deadline.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) if start.elapsed() < within => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed());
            }
            Ok(_) | Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn binary_closes_a_connection_idle_for_its_idle_timeout() {
    let sim = spawn_with(&["--idle-timeout", "1s"], Stdio::null());
    let mut idle = TcpStream::connect(sim.addr()).unwrap();
    // The default (5 minutes) would outlast the deadline.
    let took = closed_within(&mut idle, Duration::from_secs(10)).expect("idle connection kept");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // The simulator still serves.
    let arkeo = Client::connect(sim.addr()).await.unwrap();
    assert!(!arkeo.available_routines().await.unwrap().is_empty());
}

#[tokio::test]
async fn binary_refuses_a_frame_larger_than_its_frame_budget() {
    let sim = spawn_with(&["--frame-budget", "1K"], Stdio::null());
    // A frame past the free 64 KiB a connection holds and the whole 1 KiB budget: refused as
    // soon as its header is in. Under the default budget it would wait for the rest (10 s).
    let mut stalled = TcpStream::connect(sim.addr()).unwrap();
    let claimed: u32 = 128 * 1024;
    stalled.write_all(&claimed.to_be_bytes()).unwrap();
    stalled.write_all(&[b' '; 1000]).unwrap();
    let took = closed_within(&mut stalled, Duration::from_secs(5));
    assert!(
        took.is_some(),
        "the over-budget frame's connection stayed open"
    );
    // A frame within the free allowance is still served.
    let arkeo = Client::connect(sim.addr()).await.unwrap();
    assert!(!arkeo.available_routines().await.unwrap().is_empty());
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
    let stderr = usage_error(
        env!("CARGO_BIN_EXE_arkeo-sim"),
        &["--listen", "127.0.0.1:0", "--speed=-1"],
    )
    .unwrap();
    assert!(stderr.contains("--time-scale"), "{stderr}");
}

#[test]
fn binary_refuses_a_bad_start_lag_with_status_2() {
    let stderr = usage_error(
        env!("CARGO_BIN_EXE_arkeo-sim"),
        &["--listen", "127.0.0.1:0", "--start-lag", "soon"],
    )
    .unwrap();
    assert!(stderr.contains("--start-lag"), "{stderr}");
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
        "--frame-budget",
        "--idle-timeout",
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

#[test]
fn binary_refuses_a_bad_scenario_or_a_remote_control_address_with_status_2() {
    let dir = std::env::temp_dir().join(format!("arkeo-sim-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "faults:\n  - { fault: no_replyy }\n").unwrap();
    let cases: [(Vec<&str>, &str); 2] = [
        (
            vec!["--scenario", bad.to_str().unwrap()],
            "bad.yaml:2:14: faults[0].fault: unknown variant `no_replyy`",
        ),
        (vec!["--control", "0.0.0.0:0"], "--control-allow-remote"),
    ];
    for (args, expected) in cases {
        let args = [&["--listen", "127.0.0.1:0"][..], &args].concat();
        let stderr = usage_error(env!("CARGO_BIN_EXE_arkeo-sim"), &args).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_prints_the_control_address_after_the_listening_line() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/degraded.yaml");
    let mut sim = spawn_with(
        &["--scenario", scenario, "--control", "127.0.0.1:0"],
        Stdio::null(),
    );
    let line = sim.next_line().unwrap();
    let control: std::net::SocketAddr = line
        .strip_prefix("control on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(control.ip().is_loopback());
    let mut stream = std::net::TcpStream::connect(control).unwrap();
    use std::io::{Read as _, Write as _};
    stream
        .write_all(b"GET /state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Spectrometer not found"), "{response}");
    assert!(sim.terminate().unwrap().success());
}
