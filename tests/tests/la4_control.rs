//! Interop: a standard-library Python test that starts the `la4-sim` program with a control
//! channel, talks pycom to it like the vendor's coordinator, and injects and clears faults over
//! HTTP/JSON (`tests/python/control_la4.py`, the guide `docs/simulators-in-ci.md` in a test).

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

/// The `la4-sim` program, built by Cargo now (a no-op when it is up to date): a test of
/// another package gets no `CARGO_BIN_EXE_` for it.
fn la4_sim_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "la4-sim", "--bin", "la4-sim"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build la4-sim");
    // target/debug/deps/la4_control-<hash> → target/debug/la4-sim
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join(format!("la4-sim{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    if !python3_available() {
        eprintln!("python3 not found: skipping the LA4 control-channel check");
        return;
    }
    let binary = la4_sim_binary();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/control_la4.py");
    let output = timeout(
        TEST_DEADLINE * 3,
        Command::new("python3")
            .arg(&script)
            .arg(&binary)
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
            "unit_info unit_info light_array",
            "normal 'hello\\n'",
            "pushed 200 1",
            "fault reached the client output BOARDIO_ERROR: LED driver overheated",
            "pushed 200 1",
            "output dropped message BOARDIO_READY",
            "cleared 200 [] []",
            "normal again output BOARDIO_READY",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving 'still\\n'",
            "state 200 py-node True 1",
            "reset 200 False 0",
            "exit 0",
        ]
    );
}
