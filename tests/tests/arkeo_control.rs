//! Interop: a standard-library Python test that starts the `arkeo-sim` program with a control
//! channel, talks ARKEO to it, and injects and clears faults over HTTP/JSON
//! (`tests/python/control_arkeo.py`, the guide `docs/simulators-in-ci.md` in a test).

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

/// The `arkeo-sim` program, built by Cargo now (a no-op when it is up to date): a test of
/// another package gets no `CARGO_BIN_EXE_` for it.
fn arkeo_sim_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "arkeo-sim", "--bin", "arkeo-sim"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build arkeo-sim");
    // target/debug/deps/arkeo_control-<hash> → target/debug/arkeo-sim
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join(format!("arkeo-sim{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    if !python3_available() {
        eprintln!("python3 not found: skipping the ARKEO control-channel check");
        return;
    }
    let binary = arkeo_sim_binary();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/control_arkeo.py");
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
            "routines 11",
            "pushed 200 1",
            "fault reached the client True",
            "no reply",
            "cleared 200 [] []",
            "normal again OK 4",
            "connections 200 True True",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving OK",
            "state 200 None",
            "advanced 200 2000ms",
            "exit 0",
        ]
    );
}
