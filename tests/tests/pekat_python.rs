//! Interop: a plain Python 3 client, written like the vendor's example, against pekat-sim.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use labwire_tests::TEST_DEADLINE;
use pekat_proto::ProjectState;
use pekat_sim::{PekatSim, demo_projects};
use tokio::process::Command;
use tokio::time::timeout;

#[tokio::test]
async fn vendor_style_python_client_talks_to_the_simulator() {
    if std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("python3 not found: skipping the PEKAT Python interop check");
        return;
    }
    // The demo projects are the vendor's example layout; start and stop take a moment, as on a
    // real Projects Manager, and are answered once done.
    let delay = Duration::from_millis(100);
    let sim = PekatSim::builder()
        .delays(delay, delay)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/pekat_client.py");
    let output = timeout(
        TEST_DEADLINE,
        Command::new("python3")
            .arg(&script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python client did not finish in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("connected {}:{}", addr.ip(), addr.port()).as_str(),
            "status Test Project 1 -> stopped",
            "start Test Project 1 -> done",
            "status Test Project 1 -> running",
            "start Test Project 3 -> error:port",
            "switch Test Project 2 -> success",
            "status Test Project 1 -> stopped",
            "status Test Project 2 -> running",
            "stop Test Project 2 -> done",
            "restart Test Project 2 -> Unknown command",
            "start No Such Project -> not-found",
            "status (CRLF) Test Project 2 -> stopped",
            "status (CR, then LF late) Test Project 1 -> stopped",
            "status Test Project 3 -> stopped",
        ]
    );
    let state = sim.state();
    for project in demo_projects() {
        assert_eq!(
            state.project_state(&project.path),
            Some(ProjectState::Stopped),
            "{}",
            project.path
        );
    }
    // One connection, and one request per line: the late line ending was not one.
    assert_eq!(state.connections_accepted(), 1);
    assert_eq!(sim.requests(), 13);
    sim.shutdown().await;
}
