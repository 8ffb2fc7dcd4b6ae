//! arkeo-sim embedded in a program (or a test): a manual clock stepped by hand, direct state
//! access and one injected fault, driven by `arkeo-proto`'s client over loopback.
//!
//! ```sh
//! cargo run -p arkeo-sim --example embedded
//! ```

use std::time::Duration;

use arkeo_proto::{Client, RoutineState};
use arkeo_sim::{ArkeoSim, Durations, Fault, SimClock};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 127.0.0.1, a free port; simulated time moves only when advanced.
    let sim = ArkeoSim::builder()
        .clock(SimClock::manual())
        .start()
        .await?;
    println!("arkeo-sim listening on {}", sim.local_addr());
    let arkeo = Client::builder(sim.local_addr())
        .call_timeout(Duration::from_millis(500))
        .build();

    arkeo.start_routine("JV").await?;
    println!(
        "state after StartRoutine: {:?}",
        sim.state().routine_state()
    );
    sim.clock().advance(Durations::default().initializing);
    anyhow::ensure!(arkeo.test_status().await?.routine_status == RoutineState::Ready);

    arkeo.start_measurement().await?;
    let phases = Durations::default();
    // The start lag first: the real application may still say Ready for a moment.
    println!(
        "just after StartMeasurement: {}",
        arkeo.test_status().await?.routine_status
    );
    sim.clock()
        .advance(phases.start_lag + phases.starting + phases.running / 2);
    let halfway = arkeo.test_status().await?;
    println!(
        "{} at {:?} %",
        halfway.routine_status,
        halfway.progress_pct()
    );
    sim.clock().advance(phases.running);
    let data = arkeo.test_data().await?;
    println!(
        "measurement {} done: {} points forward",
        data["measurement"],
        data["scans"][0]["data"].as_array().map_or(0, Vec::len)
    );

    // Fault injection: the next request is never answered, so the call times out and the
    // client reconnects for the one after.
    sim.faults().push(Fault::NoReply);
    match arkeo.active_routine().await {
        Err(err) if err.is_timeout() => println!("silenced request: {err}"),
        other => anyhow::bail!("expected a timeout, got {other:?}"),
    }
    println!("active routine: {:?}", arkeo.active_routine().await?);
    println!(
        "requests handled: {}, measurements: {}",
        sim.state().requests_handled(),
        sim.state().with(|device| device.measurements_completed())
    );

    sim.shutdown().await;
    Ok(())
}
