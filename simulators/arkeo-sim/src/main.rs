//! `arkeo-sim`: the ARKEO All-in-One API simulator as a program.

use std::net::SocketAddr;

use anyhow::Context as _;
use arkeo_sim::{ArkeoSim, DEFAULT_LISTEN};
use clap::Parser;

/// Simulates the Cicci Research ARKEO application's TCP API.
#[derive(Debug, Parser)]
#[command(name = "arkeo-sim", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on the first stdout line).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Simulated time runs this many times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Listen backlog.
    #[arg(long, default_value_t = labwire_net::DEFAULT_BACKLOG)]
    backlog: u32,
    /// More logging on stderr (-v debug: every frame decoded, -vv trace: frames in hex);
    /// `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    labwire_net::cli::init_tracing(args.verbose);
    anyhow::ensure!(
        args.speed.is_finite() && args.speed > 0.0,
        "--speed must be a positive number"
    );
    let sim = ArkeoSim::builder()
        .listen(args.listen)
        .backlog(args.backlog)
        .speed(args.speed)
        .start()
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Handlers first: a parent may signal as soon as it has read the `listening on` line.
    let signal = labwire_net::cli::shutdown_signal();
    labwire_net::cli::announce_listening(sim.local_addr())?;
    signal.await;
    sim.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
