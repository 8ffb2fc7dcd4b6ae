//! `pekat-sim`: a simulated PEKAT VISION Projects Manager TCP server.
//!
//! Prints `listening on <addr>` as its first stdout line, logs to stderr, and exits 0 on
//! SIGINT/SIGTERM after closing every connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pekat_proto::Dialect;
use pekat_sim::{DEFAULT_PORT, PekatSim, ProjectSpec, SimConfig, parse_projects_file};

#[derive(Debug, Parser)]
#[command(
    name = "pekat-sim",
    version,
    about = "Simulated PEKAT VISION Projects Manager TCP server"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Protocol dialect: 3.18 (`start:PATH`) or 3.19 (`[id.]start|PATH`).
    #[arg(long, default_value = "3.18")]
    dialect: Dialect,
    /// A project, `PATH=PORT` (repeatable). Without --project or --projects-file, three demo
    /// projects are served.
    #[arg(long = "project", value_name = "PATH=PORT")]
    projects: Vec<ProjectSpec>,
    /// A file of `PATH=PORT` lines (`#` comments, blank lines ignored); adds to --project.
    #[arg(long, value_name = "FILE")]
    projects_file: Option<PathBuf>,
    /// Simulated milliseconds from `start` to `running`.
    #[arg(long, default_value_t = 1000)]
    start_delay_ms: u64,
    /// Simulated milliseconds from `stop` to `stopped`.
    #[arg(long, default_value_t = 500)]
    stop_delay_ms: u64,
    /// Simulated time runs this many times faster than real time. (`--speed`, as arkeo-sim, is the same).
    #[arg(long, visible_alias = "speed", default_value_t = 1.0)]
    time_scale: f64,
    /// Send no answer to start/stop (as reported for some 3.19 servers).
    #[arg(long)]
    silent_start_stop: bool,
    /// Close each connection after its first answer.
    #[arg(long)]
    one_request_per_connection: bool,
    /// Close connections idle (or not taking their answer) for this many milliseconds.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// Milliseconds to wait for more bytes of a request that looks complete.
    #[arg(long, default_value_t = 3)]
    quiet_ms: u64,
    /// Listen backlog (clients connect once per request, in bursts).
    #[arg(long, default_value_t = labwire_net::DEFAULT_BACKLOG)]
    backlog: u32,
    /// More logging on stderr (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn config(args: Args) -> Result<SimConfig, String> {
    let mut projects = args.projects;
    if let Some(file) = &args.projects_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        projects
            .extend(parse_projects_file(&text).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    let defaults = SimConfig::default();
    let mut config = SimConfig {
        listen: args.listen,
        dialect: args.dialect,
        projects: if projects.is_empty() {
            defaults.projects
        } else {
            projects
        },
        start_delay: Duration::from_millis(args.start_delay_ms),
        stop_delay: Duration::from_millis(args.stop_delay_ms),
        time_scale: args.time_scale,
        one_request_per_connection: args.one_request_per_connection,
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        quiet_period: Duration::from_millis(args.quiet_ms),
        backlog: args.backlog,
        ..defaults
    };
    config.faults.silent_start_stop = args.silent_start_stop;
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    labwire_net::cli::init_tracing(args.verbose);
    let config = match config(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("pekat-sim: {message}");
            return ExitCode::from(2);
        }
    };
    let sim = match PekatSim::start(config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("pekat-sim: cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Handlers first: a parent may signal as soon as it has read the `listening on` line.
    let signal = labwire_net::cli::shutdown_signal();
    if let Err(error) = labwire_net::cli::announce_listening(sim.local_addr()) {
        eprintln!("pekat-sim: cannot write to stdout: {error}");
        return ExitCode::FAILURE;
    }
    for project in sim.state().projects() {
        tracing::info!(path = %project.path, port = project.port, "project");
    }
    signal.await;
    sim.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = config(Args::parse_from(["pekat-sim"])).unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 7002)));
        assert_eq!(config.dialect, Dialect::V3_18);
        assert_eq!(config.projects, pekat_sim::demo_projects());
        assert_eq!(config.start_delay, Duration::from_secs(1));
        assert_eq!(config.stop_delay, Duration::from_millis(500));
        assert_eq!(config.backlog, labwire_net::DEFAULT_BACKLOG);
        assert!(!config.faults.silent_start_stop);
        assert!(!config.one_request_per_connection);
    }

    #[test]
    fn project_flags_repeat_and_replace_the_demo_projects() {
        let args = Args::parse_from([
            "pekat-sim",
            "--project",
            r"C:\Lines\A B=9000",
            "--project",
            r"D:\x=y=9001",
            "--dialect",
            "3.19",
            "--start-delay-ms",
            "250",
        ]);
        let config = config(args).unwrap();
        assert_eq!(
            config.projects,
            vec![
                ProjectSpec::new(r"C:\Lines\A B", 9000),
                ProjectSpec::new(r"D:\x=y", 9001)
            ]
        );
        assert_eq!(config.dialect, Dialect::V3_19);
        assert_eq!(config.start_delay, Duration::from_millis(250));
    }
}
