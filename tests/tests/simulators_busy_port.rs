//! The four simulator programs report a port that is taken in one shape (issue 15): one
//! `error: cannot listen on ADDR: CAUSE` line and a hint on stderr, exit status 1, and no
//! backtrace even with `RUST_BACKTRACE=1`.

use std::net::TcpListener;
use std::time::Duration;

use labwire_tests::python::simulator_binary;

/// Bound for one run; a simulator that cannot bind ends at once.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_simulator_reports_a_busy_port_in_the_same_shape() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for package in ["arkeo-sim", "pekat-sim", "comet-sim", "la4-sim"] {
        let binary = simulator_binary(package);
        let output = tokio::time::timeout(
            RUN_DEADLINE,
            tokio::process::Command::new(&binary)
                .args(["--listen", &addr.to_string()])
                .env("RUST_BACKTRACE", "1")
                .env_remove("RUST_LOG")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{package} did not end in time"))
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{package}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        let expected = format!("error: cannot listen on {addr}: ");
        assert!(
            lines.len() == 2 && lines[0].starts_with(&expected) && lines[1].starts_with("hint: "),
            "{package}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{package}");
    }
}
