//! Interop: a standard-library Python test that starts the `pekat-sim` program with a control
//! channel, talks PEKAT to it as the vendor's example does, injects and clears faults over
//! HTTP/JSON and resets the device (`tests/python/control_pekat.py`, the guide
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

/// The `pekat-sim` program, built by Cargo now (a no-op when it is up to date): a test of
/// another package gets no `CARGO_BIN_EXE_` for it.
fn pekat_sim_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "pekat-sim", "--bin", "pekat-sim"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build pekat-sim");
    // target/debug/deps/pekat_control-<hash> → target/debug/pekat-sim
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join(format!("pekat-sim{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    if !python3_available() {
        eprintln!("python3 not found: skipping the PEKAT control-channel check");
        return;
    }
    let binary = pekat_sim_binary();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/control_pekat.py");
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
            "status stopped",
            "pushed 200 1",
            "fault reached the client license expired",
            "no reply",
            "cleared 200 [] []",
            "normal again stopped",
            "start done",
            "state 200 running",
            "reset 200 stopped",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving stopped",
            "exit 0",
        ]
    );
}
