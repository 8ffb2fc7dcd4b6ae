//! A photoluminescence measurement with `arkeo-proto`'s client, the way the vendor documents
//! it.
//!
//! ```sh
//! cargo run -p arkeo-sim --example luminescence   # against an in-process arkeo-sim
//! cargo run -p arkeo-sim --example luminescence -- 192.168.1.20:6360 # a device
//! ```

use std::time::Duration;

use arkeo_proto::json::lenient_f64;
use arkeo_proto::{Client, RoutineState};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // With no address, start a simulator on loopback (ten times faster than real time).
    let (addr, sim) = match std::env::args().nth(1) {
        Some(addr) => (addr, None),
        None => {
            let sim = arkeo_sim::ArkeoSim::builder().speed(10.0).start().await?;
            (sim.local_addr().to_string(), Some(sim))
        }
    };
    let arkeo = Client::builder(&addr)
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    println!("connected to {addr}");

    arkeo.start_routine("Luminescence").await?;
    arkeo
        .wait_until(RoutineState::Ready, Duration::from_secs(60))
        .await?;
    println!(
        "routine ready; custom commands: {:?}",
        arkeo.custom_commands().await?
    );

    arkeo
        .routine_command("SetLaser", json!({"channel": 0, "duty_cycle": 100}))
        .await?;
    let exposure = arkeo.routine_command("AutoExposure", json!({})).await?;
    println!("auto exposure: {exposure}");
    let single = arkeo.routine_command("AcquireSingle", json!({})).await?;
    arkeo
        .routine_command("SetLaser", json!({"channel": 0, "duty_cycle": 0}))
        .await?;

    // The peak of the raw spectrum (row 1), with wavelengths in row 0.
    let rows = single["spectrum"].as_array().cloned().unwrap_or_default();
    let (wavelengths, counts) = match rows.as_slice() {
        [w, c, ..] => (
            w.as_array().cloned().unwrap_or_default(),
            c.as_array().cloned().unwrap_or_default(),
        ),
        _ => anyhow::bail!("unexpected spectrum shape: {single}"),
    };
    let peak = wavelengths
        .iter()
        .zip(&counts)
        .filter_map(|(w, c)| Some((lenient_f64(w)?, lenient_f64(c)?)))
        .filter(|(_, c)| c.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((nm, counts)) = peak {
        println!("PL peak at {nm:.1} nm ({counts:.0} counts)");
    }

    arkeo.close_routine().await?;
    println!("routine closed");
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(())
}
