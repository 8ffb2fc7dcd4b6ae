//! `pekat-sim`: a simulated PEKAT VISION Projects Manager TCP server.
//!
//! Prints `listening on <addr>` as its first stdout line, logs to stderr, and exits 0 on
//! SIGINT/SIGTERM after closing every connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use labwire_simkit::HostConfig;
use labwire_simkit::cli::{HostArgs, duration, run_until_signal};
use pekat_proto::Dialect;
use pekat_sim::{DEFAULT_PORT, PekatSim, ProjectSpec, SimConfig, parse_projects_file};

#[derive(Debug, Parser)]
#[command(
    name = "pekat-sim",
    version,
    about = "Simulated PEKAT VISION Projects Manager TCP server"
)]
struct Args {
    #[command(flatten)]
    host: HostArgs,
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
    /// The same with a unit (`1.5s`, `250ms`; seconds without one).
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "start_delay_ms")]
    start_delay: Option<Duration>,
    /// Simulated milliseconds from `stop` to `stopped`.
    #[arg(long, default_value_t = 500)]
    stop_delay_ms: u64,
    /// The same with a unit.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "stop_delay_ms")]
    stop_delay: Option<Duration>,
    /// Send no answer to start/stop (as reported for some 3.19 servers).
    #[arg(long)]
    silent_start_stop: bool,
    /// Close each connection after its first answer.
    #[arg(long)]
    one_request_per_connection: bool,
    /// Close connections idle (or not taking their answer) for this many milliseconds.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// The same with a unit.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "idle_timeout_ms")]
    idle_timeout: Option<Duration>,
    /// Milliseconds to wait for more bytes of a request that looks complete (0: what one read
    /// delivers is the request, as on the real server).
    #[arg(long, default_value_t = 0)]
    quiet_ms: u64,
    /// The same with a unit.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "quiet_ms")]
    quiet_period: Option<Duration>,
}

/// The host and device settings the flags ask for.
fn settings(args: &Args) -> Result<(HostConfig, SimConfig), String> {
    let mut host = HostConfig::new(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
    args.host.apply(&mut host);
    let mut projects = args.projects.clone();
    if let Some(file) = &args.projects_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        projects
            .extend(parse_projects_file(&text).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    let ms = Duration::from_millis;
    let defaults = SimConfig::default();
    let config = SimConfig {
        dialect: args.dialect,
        projects: if projects.is_empty() {
            defaults.projects.clone()
        } else {
            projects
        },
        start_delay: args.start_delay.unwrap_or(ms(args.start_delay_ms)),
        stop_delay: args.stop_delay.unwrap_or(ms(args.stop_delay_ms)),
        silent_start_stop: args.silent_start_stop,
        one_request_per_connection: args.one_request_per_connection,
        idle_timeout: args.idle_timeout.unwrap_or(ms(args.idle_timeout_ms)),
        quiet_period: args.quiet_period.unwrap_or(ms(args.quiet_ms)),
        ..defaults
    };
    Ok((host, config))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.host.init_logging();
    let (host, config) = match settings(&args) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("pekat-sim: {message}");
            return ExitCode::from(2);
        }
    };
    let sim = match PekatSim::builder().host(host).config(config).start().await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("pekat-sim: cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    for project in sim.state().projects() {
        tracing::info!(path = %project.path, port = project.port, "project");
    }
    if let Err(error) = run_until_signal(&[sim.local_addr()], sim.shutdown()).await {
        eprintln!("pekat-sim: cannot write to stdout: {error}");
        return ExitCode::FAILURE;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (HostConfig, SimConfig) {
        let args = Args::try_parse_from([&["pekat-sim"], args].concat()).unwrap();
        settings(&args).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (host, config) = parse(&[]);
        assert_eq!(host.listen, SocketAddr::from(([127, 0, 0, 1], 7002)));
        assert_eq!(host.backlog, HostConfig::loopback().backlog);
        assert_eq!(host.time_scale, 1.0);
        assert_eq!(config.dialect, Dialect::V3_18);
        assert_eq!(config.projects, pekat_sim::demo_projects());
        assert_eq!(config.start_delay, Duration::from_secs(1));
        assert_eq!(config.stop_delay, Duration::from_millis(500));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.quiet_period, Duration::ZERO);
        assert!(!config.silent_start_stop);
        assert!(!config.one_request_per_connection);
    }

    #[test]
    fn project_flags_repeat_and_replace_the_demo_projects() {
        let (_, config) = parse(&[
            "--project",
            r"C:\Lines\A B=9000",
            "--project",
            r"D:\x=y=9001",
            "--dialect",
            "3.19",
            "--start-delay-ms",
            "250",
        ]);
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

    #[test]
    fn durations_take_a_unit_and_host_flags_are_the_shared_ones() {
        let (host, config) = parse(&[
            "--start-delay",
            "1.5s",
            "--stop-delay",
            "20ms",
            "--idle-timeout",
            "2",
            "--quiet-period",
            "0",
            "--speed",
            "0",
            "--max-connections",
            "8",
        ]);
        assert_eq!(config.start_delay, Duration::from_millis(1500));
        assert_eq!(config.stop_delay, Duration::from_millis(20));
        assert_eq!(config.idle_timeout, Duration::from_secs(2));
        assert_eq!(config.quiet_period, Duration::ZERO);
        assert_eq!(host.time_scale, 0.0);
        assert_eq!(host.max_connections, 8);
        let both = ["pekat-sim", "--quiet-ms", "1", "--quiet-period", "1ms"];
        assert!(Args::try_parse_from(both).is_err());
    }
}
