//! Interop: a standard-library Python test that starts the `comet-sim` program with a scenario
//! and a control channel, talks COMET's socket protocol to it as COMET's own client does, and
//! injects and clears faults over HTTP/JSON (`tests/python/control_comet.py`, the guide
//! `docs/simulators-in-ci.md` in a test).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use labwire_tests::TEST_DEADLINE;
use tokio::process::Command;
use tokio::time::timeout;

fn python3_available() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `comet-sim` program, built by Cargo now (a no-op when it is up to date): a test of
/// another package gets no `CARGO_BIN_EXE_` for it.
fn comet_sim_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "comet-sim", "--bin", "comet-sim"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build comet-sim");
    // target/debug/deps/comet_control-<hash> → target/debug/comet-sim
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join(format!("comet-sim{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    if !python3_available() {
        eprintln!("python3 not found: skipping the COMET control-channel check");
        return;
    }
    let binary = comet_sim_binary();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/control_comet.py");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../simulators/comet-sim/scenarios/typical.yaml");
    let output = timeout(
        TEST_DEADLINE * 3,
        Command::new("python3")
            .arg(&script)
            .arg(&binary)
            .arg(&scenario)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python did not finish in time")
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
            "started",
            "echo True",
            "status measuring",
            "telegram Status: measuring IV on W42-07",
            "pushed 200 1",
            "echo unaffected 1",
            "fault reached the client Error: SMU not connected",
            "no reply",
            "cleared 200 [] []",
            "normal again measuring",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving ok",
            "state 200 measuring IV on W42-07 ECHO",
            "advanced 200 2000ms",
            "reset 200 0",
            "exit 0",
        ]
    );
}
