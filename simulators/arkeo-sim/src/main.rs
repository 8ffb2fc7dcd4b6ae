//! `arkeo-sim`: the ARKEO All-in-One API simulator as a program.

use anyhow::Context as _;
use arkeo_sim::{ArkeoSim, DEFAULT_LISTEN};
use clap::Parser;
use labwire_simkit::HostConfig;
use labwire_simkit::cli::{HostArgs, run_until_signal};

/// Simulates the Cicci Research ARKEO application's TCP API.
#[derive(Debug, Parser)]
#[command(name = "arkeo-sim", version, about)]
// The shared `--listen` flag, with this simulator's default shown in `--help`.
#[command(mut_arg("listen", |arg| arg
    .help("Address to listen on; port 0 picks a free port (printed on the first stdout line)")
    .default_value(DEFAULT_LISTEN)))]
struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// How long the routine still reports Ready after an accepted StartMeasurement, in
    /// simulated time (`250ms`, `1.5s`, or seconds); 0 switches to Starting at once.
    #[arg(long, value_name = "DURATION", value_parser = labwire_simkit::cli::duration, default_value = "250ms")]
    start_lag: std::time::Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.host.init_logging();
    let mut host = HostConfig::new(DEFAULT_LISTEN.parse()?);
    args.host.apply(&mut host);
    let sim = ArkeoSim::builder()
        .host(host.clone())
        .start_lag(args.start_lag)
        .start()
        .await
        .with_context(|| format!("cannot listen on {}", host.listen))?;
    run_until_signal(&[sim.local_addr()], sim.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}
