//! A photoluminescence measurement with `arkeo-proto`'s client, the way the vendor documents
//! it.
//!
//! ```sh
//! cargo run -p arkeo-sim --example luminescence   # against an in-process arkeo-sim
//! cargo run -p arkeo-sim --example luminescence -- 192.168.1.20:6360 # a device
//! ```

use std::time::Duration;

use arkeo_proto::{Client, RoutineState};

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
    let arkeo = Client::builder(addr.as_str())
        .call_timeout(Duration::from_secs(5))
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

    arkeo.set_laser(0, 10_000.0, 100.0).await?;
    // AutoExposure and AcquireSingle block while the spectrometer works: the client gives them
    // its blocking timeout, not the 5 s call timeout.
    let exposure = arkeo.auto_exposure().await?;
    println!(
        "auto exposure: {} ms x {:?}",
        exposure.integration_time, exposure.averages
    );
    let single = arkeo.acquire_single().await?;
    arkeo.set_laser(0, 10_000.0, 0.0).await?;

    // The peak of the raw spectrum.
    let (Some(wavelengths), Some(counts)) = (single.wavelengths(), single.raw()) else {
        anyhow::bail!("unexpected spectrum shape: {single:?}");
    };
    let peak = wavelengths
        .iter()
        .zip(counts)
        .filter(|(_, c)| c.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1));
    if let Some((nm, counts)) = peak {
        println!("PL peak at {nm:.1} nm ({counts:.0} counts)");
    }

    // One measurement, waited for correctly (see `Client::measure`).
    let data = arkeo.measure(Duration::from_secs(600)).await?;
    println!(
        "measurement: {} spectrum rows",
        data["spectrum"].as_array().map_or(0, Vec::len)
    );

    arkeo.close_routine().await?;
    println!("routine closed");
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(())
}
