//! `arkeo-sim`: the ARKEO All-in-One API simulator as a program.

use arkeo_sim::{ArkeoScenario, ArkeoSim, DEFAULT_LISTEN};
use clap::Parser;
use labwire_simkit::HostConfig;
use labwire_simkit::cli::{
    HostArgs, exit_cannot_listen, exit_usage, run_until_signal_with_control,
};

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
    /// simulated time (`250ms`, `1.5s`, or seconds); 0 switches to Starting at once
    /// [default: 250ms, or the scenario's `timings.start_lag`].
    #[arg(long, value_name = "DURATION", value_parser = labwire_simkit::cli::duration)]
    start_lag: Option<std::time::Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let control = args.host.control_config().unwrap_or_else(|e| exit_usage(e));
    let mut scenario = match &args.host.scenario {
        Some(path) => ArkeoScenario::load(path).unwrap_or_else(|e| exit_usage(e)),
        None => ArkeoScenario::default(),
    };
    args.host.init_logging();
    let mut host = HostConfig::new(DEFAULT_LISTEN.parse()?);
    args.host.apply(&mut host);
    if let Some(lag) = args.start_lag {
        // The flag wins over the file.
        scenario.timings.start_lag = Some(lag.into());
    }
    let sim = ArkeoSim::builder()
        .host(host.clone())
        .scenario(scenario)
        .start()
        .await
        .unwrap_or_else(|e| exit_cannot_listen(host.listen, &e));
    let control = match control {
        Some(config) => Some(
            sim.serve_control(&config)
                .await
                .unwrap_or_else(|e| exit_cannot_listen(config.listen, &e)),
        ),
        None => None,
    };
    run_until_signal_with_control(&[sim.local_addr()], control, sim.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}
