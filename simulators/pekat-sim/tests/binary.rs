//! The `pekat-sim` binary: first line, a real exchange, clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use labwire_simkit::bin_test::{SimProcess, usage_error};

fn spawn(args: &[&str]) -> (SimProcess, SocketAddr) {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let sim = SimProcess::spawn(env!("CARGO_BIN_EXE_pekat-sim"), &all).unwrap();
    let addr = sim.addr();
    (sim, addr)
}

fn ask(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

fn terminate_and_wait(sim: SimProcess) -> ExitStatus {
    sim.terminate().unwrap()
}

#[test]
fn binary_serves_demo_projects_and_exits_cleanly_on_sigterm() {
    let (guard, addr) = spawn(&["--start-delay-ms", "0"]);
    let project = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";
    assert_eq!(ask(addr, format!("status:{project}").as_bytes()), "stopped");
    assert_eq!(ask(addr, format!("start:{project}").as_bytes()), "done");
    assert_eq!(
        ask(addr, format!("status:{project}\r\n").as_bytes()),
        "running"
    );
    assert_eq!(ask(addr, b"launch:x"), "Unknown command");
    // An idle client does not keep the process from exiting.
    let idle = TcpStream::connect(addr).unwrap();
    let status = terminate_and_wait(guard);
    assert!(status.success(), "exit status {status}");
    drop(idle);
}

#[test]
fn binary_takes_projects_and_dialect_from_flags_and_a_file() {
    let dir = std::env::temp_dir().join(format!("pekat-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("projects.txt");
    std::fs::write(&file, "# test\nD:\\Lines\\B=9001\n").unwrap();
    let (guard, addr) = spawn(&[
        "--speed",
        "10",
        "--dialect",
        "3.19",
        "--project",
        r"C:\Lines\A=9000",
        "--projects-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(ask(addr, br"1.status|C:\Lines\A"), "1.suc:stopped");
    assert_eq!(ask(addr, br"status|D:\Lines\B"), "suc:stopped");
    assert_eq!(
        ask(
            addr,
            br"status|C:\Users\pekat\PekatVisionProjects\Test Project 1"
        ),
        "err:not-found"
    );
    assert_eq!(ask(addr, br"2.launch|x"), "2.err:invalid-command");
    assert!(terminate_and_wait(guard).success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_rejects_a_malformed_project_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_pekat-sim"))
        .args(["--listen", "127.0.0.1:0", "--project", "no-port-here"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}

#[test]
fn binary_flags_for_delays_faults_and_connections_take_effect_with_a_custom_backlog() {
    let (guard, addr) = spawn(&[
        "--backlog",
        "4096",
        "--start-delay-ms",
        "0",
        "--stop-delay-ms",
        "0",
        "--silent-start-stop",
        "--one-request-per-connection",
        "--idle-timeout-ms",
        "5000",
        "--quiet-ms",
        "0",
    ]);
    let project = r"C:\Users\pekat\PekatVisionProjects\Test Project 2";
    // Silent start: no answer, and the connection is closed after the one request.
    assert_eq!(ask(addr, format!("start:{project}").as_bytes()), "");
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(addr, format!("status:{project}").as_bytes()) != "running" {
        assert!(
            Instant::now() < deadline,
            "the silent start never completed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(ask(addr, format!("stop:{project}").as_bytes()), "");
    assert_eq!(ask(addr, format!("switch:{project}").as_bytes()), "success");
    assert!(terminate_and_wait(guard).success());
}

#[test]
fn binary_refuses_a_bad_scenario_or_a_remote_control_address_with_status_2() {
    let dir = std::env::temp_dir().join(format!("pekat-sim-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "faults:\n  - { matching: { command: restart }, fault: close }\n",
    )
    .unwrap();
    let cases: [(Vec<&str>, &str); 2] = [
        (
            vec!["--scenario", bad.to_str().unwrap()],
            "bad.yaml:2:28: faults[0].matching.command: unknown variant `restart`",
        ),
        (vec!["--control", "0.0.0.0:0"], "--control-allow-remote"),
    ];
    for (args, expected) in cases {
        let args = [&["--listen", "127.0.0.1:0"][..], &args].concat();
        let stderr = usage_error(env!("CARGO_BIN_EXE_pekat-sim"), &args).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_serves_a_scenario_and_prints_the_control_address_after_the_listening_line() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/typical.yaml");
    let (mut sim, addr) = spawn(&["--scenario", scenario, "--control", "127.0.0.1:0"]);
    let line = sim.next_line().unwrap();
    let control: SocketAddr = line
        .strip_prefix("control on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(control.ip().is_loopback());
    let line_a = r"C:\Users\pekat\PekatVisionProjects\Line A";
    assert_eq!(ask(addr, format!("status:{line_a}").as_bytes()), "running");
    let mut stream = TcpStream::connect(control).unwrap();
    stream
        .write_all(b"GET /state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""ports_in_use":[8002]"#), "{response}");
    assert!(terminate_and_wait(sim).success());
}
