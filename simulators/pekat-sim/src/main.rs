//! `pekat-sim`: a simulated PEKAT VISION Projects Manager TCP server.
//!
//! Prints `listening on <addr>` as its first stdout line (then `control on <addr>` with
//! `--control`), logs to stderr, and exits 0 on SIGINT/SIGTERM after closing every connection.
//! `--scenario FILE` describes the device (`pekat_sim::scenario`); the device flags are laid
//! over it, a flag given winning over the file's field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use labwire_simkit::HostConfig;
use labwire_simkit::cli::{
    HostArgs, duration, exit_cannot_listen, exit_usage, run_until_signal_with_control,
};
use pekat_proto::Dialect;
use pekat_sim::scenario::ProjectEntry;
use pekat_sim::{DEFAULT_PORT, PekatScenario, PekatSim, ProjectSpec, parse_projects_file};

#[derive(Debug, Parser)]
#[command(
    name = "pekat-sim",
    version,
    about = "Simulated PEKAT VISION Projects Manager TCP server"
)]
struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// Protocol dialect: 3.18 (`start:PATH`) or 3.19 (`[id.]start|PATH`) [default: 3.18].
    #[arg(long)]
    dialect: Option<Dialect>,
    /// A project, `PATH=PORT` (repeatable); replaces the scenario's projects. Without
    /// --project, --projects-file or a scenario's `projects`, three demo projects are served.
    #[arg(long = "project", value_name = "PATH=PORT")]
    projects: Vec<ProjectSpec>,
    /// A file of `PATH=PORT` lines (`#` comments, blank lines ignored); adds to --project.
    #[arg(long, value_name = "FILE")]
    projects_file: Option<PathBuf>,
    /// Simulated milliseconds from `start` to `running` [default: 1000].
    #[arg(long)]
    start_delay_ms: Option<u64>,
    /// The same with a unit (`1.5s`, `250ms`; seconds without one).
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "start_delay_ms")]
    start_delay: Option<Duration>,
    /// Simulated milliseconds from `stop` to `stopped` [default: 500].
    #[arg(long)]
    stop_delay_ms: Option<u64>,
    /// The same with a unit.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "stop_delay_ms")]
    stop_delay: Option<Duration>,
    /// Simulated time the target of a `switch` takes to start once the others have stopped
    /// [default: the start delay].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    switch_delay: Option<Duration>,
    /// Send no answer to start/stop (as reported for some 3.19 servers).
    #[arg(long)]
    silent_start_stop: bool,
    /// Close each connection after its first answer.
    #[arg(long)]
    one_request_per_connection: bool,
    /// Close connections idle (or not taking their answer) for this many milliseconds; the
    /// same as the shared --idle-timeout, in milliseconds [default: 60000].
    #[arg(long, conflicts_with = "idle_timeout")]
    idle_timeout_ms: Option<u64>,
    /// Milliseconds to wait for more bytes of a request that looks complete (0: what one read
    /// delivers is the request, as on the real server) [default: 0].
    #[arg(long)]
    quiet_ms: Option<u64>,
    /// The same with a unit.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "quiet_ms")]
    quiet_period: Option<Duration>,
}

/// The host settings, and the scenario (`--scenario`'s, or the defaults) with the device
/// flags given laid over it.
fn settings(
    args: &Args,
    mut scenario: PekatScenario,
) -> Result<(HostConfig, PekatScenario), String> {
    let mut host = HostConfig::new(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
    args.host.apply(&mut host);
    let mut projects = args.projects.clone();
    if let Some(file) = &args.projects_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        projects
            .extend(parse_projects_file(&text).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    if !projects.is_empty() {
        scenario.projects = Some(
            projects
                .into_iter()
                .map(|p| ProjectEntry {
                    path: p.path,
                    port: p.port,
                    state: None,
                })
                .collect(),
        );
    }
    if args.dialect.is_some() {
        scenario.dialect = args.dialect;
    }
    let ms = |n: Option<u64>| n.map(Duration::from_millis);
    let delays = &mut scenario.delays;
    for (slot, flag) in [
        (
            &mut delays.start,
            args.start_delay.or(ms(args.start_delay_ms)),
        ),
        (&mut delays.stop, args.stop_delay.or(ms(args.stop_delay_ms))),
        (&mut delays.switch, args.switch_delay),
        (
            &mut scenario.idle_timeout,
            args.host.idle_timeout.or(ms(args.idle_timeout_ms)),
        ),
        (
            &mut scenario.quiet_period,
            args.quiet_period.or(ms(args.quiet_ms)),
        ),
    ] {
        if let Some(flag) = flag {
            *slot = Some(flag.into());
        }
    }
    if args.silent_start_stop {
        scenario.silent_start_stop = Some(true);
    }
    if args.one_request_per_connection {
        scenario.one_request_per_connection = Some(true);
    }
    Ok((host, scenario))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let control = args.host.control_config().unwrap_or_else(|e| exit_usage(e));
    let scenario = match &args.host.scenario {
        Some(path) => PekatScenario::load(path).unwrap_or_else(|e| exit_usage(e)),
        None => PekatScenario::default(),
    };
    args.host.init_logging();
    let (host, scenario) = match settings(&args, scenario) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("pekat-sim: {message}");
            return ExitCode::from(2);
        }
    };
    let listen = host.listen;
    let sim = PekatSim::builder()
        .host(host)
        .scenario(scenario)
        .start()
        .await
        .unwrap_or_else(|e| exit_cannot_listen(listen, &e));
    for project in sim.state().projects() {
        tracing::info!(path = %project.path, port = project.port, state = %project.state, "project");
    }
    let control = match control {
        Some(config) => Some(
            sim.serve_control(&config)
                .await
                .unwrap_or_else(|e| exit_cannot_listen(config.listen, &e)),
        ),
        None => None,
    };
    if let Err(error) =
        run_until_signal_with_control(&[sim.local_addr()], control, sim.shutdown()).await
    {
        eprintln!("pekat-sim: cannot write to stdout: {error}");
        return ExitCode::FAILURE;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use pekat_sim::SimConfig;

    fn parse(args: &[&str]) -> (HostConfig, SimConfig) {
        parse_over(args, PekatScenario::default())
    }

    fn parse_over(args: &[&str], scenario: PekatScenario) -> (HostConfig, SimConfig) {
        let args = Args::try_parse_from([&["pekat-sim"], args].concat()).unwrap();
        let (host, scenario) = settings(&args, scenario).unwrap();
        let builder = PekatSim::builder().scenario(scenario);
        (host, builder.current_config().clone())
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
        assert_eq!(host.idle_timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.quiet_period, Duration::ZERO);
        assert_eq!(host.time_scale, 0.0);
        assert_eq!(host.max_connections, 8);
        let both = ["pekat-sim", "--quiet-ms", "1", "--quiet-period", "1ms"];
        assert!(Args::try_parse_from(both).is_err());
        let both = [
            "pekat-sim",
            "--idle-timeout-ms",
            "1",
            "--idle-timeout",
            "1s",
        ];
        assert!(Args::try_parse_from(both).is_err());
    }
}

#[cfg(test)]
mod over_a_scenario {
    use super::*;
    use pekat_sim::SimConfig;

    fn parse_over(args: &[&str], yaml: &str) -> SimConfig {
        let scenario = PekatScenario::from_yaml(yaml, "s.yaml").unwrap();
        let args = Args::try_parse_from([&["pekat-sim"], args].concat()).unwrap();
        let (_, scenario) = settings(&args, scenario).unwrap();
        PekatSim::builder()
            .scenario(scenario)
            .current_config()
            .clone()
    }

    #[test]
    fn flags_given_win_over_the_file_and_the_rest_of_the_file_stays() {
        let yaml = "dialect: 3.19\ndelays: { start: 3s, stop: 2s, switch: 4s }\n\
                    projects: [{ path: 'C:\\A', port: 9000 }]\nsilent_start_stop: true\n";
        let config = parse_over(&[], yaml);
        assert_eq!(config.dialect, Dialect::V3_19);
        assert_eq!(config.start_delay, Duration::from_secs(3));
        assert_eq!(config.switch_delay, Some(Duration::from_secs(4)));
        assert_eq!(config.projects, vec![ProjectSpec::new(r"C:\A", 9000)]);
        assert!(config.silent_start_stop);
        let config = parse_over(
            &[
                "--dialect",
                "3.18",
                "--start-delay-ms",
                "5",
                "--project",
                r"D:\B=9100",
            ],
            yaml,
        );
        assert_eq!(config.dialect, Dialect::V3_18);
        assert_eq!(config.start_delay, Duration::from_millis(5));
        assert_eq!(config.stop_delay, Duration::from_secs(2));
        assert_eq!(config.projects, vec![ProjectSpec::new(r"D:\B", 9100)]);
    }
}
