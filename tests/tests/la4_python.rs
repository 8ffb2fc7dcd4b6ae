//! Interop: a plain Python 3 coordinator, written like the vendor's pycom pages, against la4-sim.

use std::path::Path;
use std::process::Stdio;

use la4_sim::La4Sim;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_style_python_coordinator_drives_the_simulator() {
    if !python3_available() {
        eprintln!("python3 not found: skipping the pycom Python interop check");
        return;
    }
    let sim = La4Sim::builder()
        .boot_time(std::time::Duration::ZERO)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/pycom_coordinator.py");
    let output = timeout(
        TEST_DEADLINE * 3,
        Command::new("python3")
            .arg(&script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python coordinator did not finish in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python coordinator failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "unit_info light_array RP2040",
        "output ok",
        "message BOARDIO_READY",
        "not found ok",
        "done",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    // The simulator saw both commands, and never ran anything on the host.
    let commands = sim.state().stats().commands;
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(sim.state().lights().fans);
    sim.shutdown().await;
}
