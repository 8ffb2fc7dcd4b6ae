//! Interop: a plain Python 3 client, written like the vendor's example, against arkeo-sim. The
//! script first does exactly what the vendor's example does (`StartRoutine` with `params`,
//! request_id 1001, one `recv` for the header and one for the payload) and checks the answer
//! the vendor's page shows; then a longer session with the vendor's command and parameter
//! names, and a measurement waited for as the project's protocol reference says.

use std::path::Path;
use std::process::Stdio;

use arkeo_sim::ArkeoSim;
use labwire_tests::TEST_DEADLINE;
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
        eprintln!("python3 not found: skipping the ARKEO Python interop check");
        return;
    }
    // Ten times faster than real time: the whole measurement takes a fraction of a second.
    let sim = ArkeoSim::builder().speed(10.0).start().await.unwrap();
    let addr = sim.local_addr();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/arkeo_client.py");
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
            // The vendor's example, and the answer its page shows.
            r#"vendor example {"data": {"status": "OK"}, "request_id": 1001, "status": "OK"}"#,
            format!("connected {}:{}", addr.ip(), addr.port()).as_str(),
            "active Luminescence",
            "ready",
            "SetLaser error 101",
            "SetValues error 1001",
            "LED coerced 1.0 0.25",
            "CloseRoutine OK",
            "rates input_rate ratio sync_rate True",
            "shutter Open True",
            "controllers 2 object True",
            "mux Multiplexer_v1.1 4",
            "relays [True, False, False, True]",
            "StartMeasurement OK",
            "voc is nan True",
            "r_shunt is inf True",
            "points 71",
        ]
    );
    assert_eq!(sim.state().active_routine(), None);
    sim.shutdown().await;
}
