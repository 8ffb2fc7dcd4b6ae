//! `la4-sim`: a simulated Rigsters LA4 node (or a fleet of them) on the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use la4_sim::{Fleet, La4Scenario, La4Sim, La4SimBuilder, SimConfig};
use labwire_simkit::cli::{self, HostArgs, exit_usage};

/// Where the binary probes for a coordinator unless told otherwise.
const DEFAULT_DISCOVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5001);

/// Simulated Rigsters LightArray4 (LA4) pycom node. Never executes commands: it interprets the
/// documented shell idioms against a simulated device.
#[derive(Debug, Parser)]
#[command(name = "la4-sim", version, about)]
struct Args {
    /// --listen (default 127.0.0.1:5000), --backlog, --max-connections, --frame-budget,
    /// --idle-timeout (5s: the node's one deadline for a connection's request), --time-scale /
    /// --speed (the boot, offline and discovery delays), --scenario, --control, -v,
    /// --log-format.
    #[command(flatten)]
    host: HostArgs,
    /// Time until boardio has booted and hardware info is available, in milliseconds
    /// [default: 3000, or the scenario's `timings.boot`].
    #[arg(long, value_name = "MS")]
    boot_ms: Option<u64>,
    /// The node's id (8 hex digits; fleet nodes count up from it) [default: 81639cd4, or the
    /// scenario's `id`].
    #[arg(long)]
    id: Option<String>,
    /// The node's name (fleet nodes get `-N` appended) [default: rigsters-controller, or the
    /// scenario's `name`].
    #[arg(long)]
    name: Option<String>,
    /// Run this many nodes, on consecutive ports from the listen port (or each on a free port
    /// when it is 0). One `listening on` line per node, in order [default: 1, or the
    /// scenario's `nodes`].
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
    /// Where to probe for a coordinator when none is online (repeatable) [default:
    /// 127.0.0.1:5001, or the scenario's `discovery`].
    #[arg(long = "discover", value_name = "ADDR")]
    discover: Vec<SocketAddr>,
    /// Do not probe for coordinators at all.
    #[arg(long, conflicts_with = "discover")]
    no_discovery: bool,
    /// Silence after which a coordinator counts as offline, in milliseconds [default: 15000,
    /// or the scenario's `timings.offline_after`].
    #[arg(long, value_name = "MS")]
    offline_ms: Option<u64>,
    /// Time between discovery probes, in milliseconds [default: 5000, or the scenario's
    /// `timings.discovery_interval`].
    #[arg(long, value_name = "MS")]
    discovery_ms: Option<u64>,
    /// Deadline for connecting to a coordinator to deliver an event (`1s`, `250ms`, or
    /// seconds); a destination that times out loses its queued events [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    connect_timeout: Option<Duration>,
    /// Most destinations with events on their way at once; past it a new one evicts an idle
    /// or stuck one [default: 1024].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_event_destinations: Option<usize>,
}

/// A count of one or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a number of 1 or more")),
    }
}

/// A duration flag of more than zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match cli::duration(text)? {
        zero if zero.is_zero() => Err(format!("{text:?}: must be more than zero")),
        duration => Ok(duration),
    }
}

impl Args {
    /// The node the scenario and the flags describe (each node of a fleet is made from it);
    /// a flag given wins over the file.
    fn node(self, scenario: &La4Scenario) -> La4SimBuilder {
        let mut host = SimConfig::default().host;
        self.host.apply(&mut host);
        let mut node = La4Sim::builder()
            .host(host)
            .discovery_targets([DEFAULT_DISCOVER])
            .scenario(scenario);
        if let Some(id) = self.id {
            node = node.id(id);
        }
        if let Some(name) = self.name {
            node = node.name(name);
        }
        if let Some(ms) = self.boot_ms {
            node = node.boot_time(Duration::from_millis(ms));
        }
        if let Some(ms) = self.offline_ms {
            node = node.offline_after(Duration::from_millis(ms));
        }
        if let Some(ms) = self.discovery_ms {
            node = node.discovery_interval(Duration::from_millis(ms));
        }
        if let Some(timeout) = self.connect_timeout {
            node = node.connect_timeout(timeout);
        }
        if let Some(max) = self.max_event_destinations {
            node = node.max_event_destinations(max);
        }
        if self.no_discovery {
            node = node.discovery_targets([]);
        } else if !self.discover.is_empty() {
            node = node.discovery_targets(self.discover);
        }
        node
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let control = args.host.control_config().unwrap_or_else(|e| exit_usage(e));
    let scenario = match &args.host.scenario {
        Some(path) => La4Scenario::load(path).unwrap_or_else(|e| exit_usage(e)),
        None => La4Scenario::default(),
    };
    let nodes = args.nodes.unwrap_or_else(|| scenario.nodes());
    if nodes == 0 {
        exit_usage("--nodes must be at least 1");
    }
    if control.is_some() && nodes > 1 {
        exit_usage("--control serves one node: use it without --nodes (or with --nodes 1)");
    }
    args.host.init_logging();
    let listen = args
        .host
        .listen
        .unwrap_or_else(|| SimConfig::default().host.listen);
    let fleet = Fleet::start(args.node(&scenario), nodes)
        .await
        .unwrap_or_else(|e| cli::exit_cannot_listen(listen, &e));
    let control = match (&control, fleet.nodes().first()) {
        (Some(config), Some(node)) => Some(
            node.serve_control(config)
                .await
                .unwrap_or_else(|e| cli::exit_cannot_listen(config.listen, &e)),
        ),
        _ => None,
    };
    cli::run_until_signal_with_control(&fleet.addrs(), control, fleet.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn by_default_it_listens_and_probes_on_loopback_only() {
        let args = Args::try_parse_from(["la4-sim"]).unwrap();
        let config = args.node(&La4Scenario::default()).config();
        assert!(!config.discovery_targets.is_empty());
        assert!(
            config
                .discovery_targets
                .iter()
                .all(|a| a.ip().is_loopback())
        );
        assert_eq!(config.host.listen, SocketAddr::from(([127, 0, 0, 1], 5000)));
        assert_eq!(config.host.time_scale, 1.0);
        assert_eq!(config.offline_after, Duration::from_secs(15));
        assert!(
            Args::try_parse_from(["la4-sim", "--discover", "127.0.0.1:1", "--no-discovery"])
                .is_err()
        );
        // The shared host flags reach the node.
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "20",
            "--max-connections",
            "5",
        ];
        let config = Args::try_parse_from(["la4-sim"].into_iter().chain(args))
            .unwrap()
            .node(&La4Scenario::default())
            .config();
        assert_eq!(config.host.listen.port(), 0);
        assert_eq!(
            (config.host.time_scale, config.host.max_connections),
            (20.0, 5)
        );
    }

    #[test]
    fn the_limit_flags_reach_the_node() {
        let args = [
            "--frame-budget",
            "2M",
            "--idle-timeout",
            "2s",
            "--connect-timeout",
            "250ms",
            "--max-event-destinations",
            "8",
        ];
        let config = Args::try_parse_from(["la4-sim"].into_iter().chain(args))
            .unwrap()
            .node(&La4Scenario::default())
            .config();
        assert_eq!(config.host.frame_budget, 2 << 20);
        assert_eq!(config.host.idle_timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.max_event_destinations, 8);
        // Not given: the node's defaults.
        let config = Args::try_parse_from(["la4-sim"])
            .unwrap()
            .node(&La4Scenario::default())
            .config();
        assert_eq!(config.connect_timeout, la4_sim::DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(
            config.max_event_destinations,
            la4_sim::MAX_EVENT_DESTINATIONS
        );
        assert_eq!(config.host.idle_timeout, None);
        for bad in [
            ["--connect-timeout", "0"],
            ["--max-event-destinations", "0"],
            ["--max-event-destinations", "many"],
        ] {
            let parsed = Args::try_parse_from(["la4-sim", bad[0], bad[1]]);
            assert!(parsed.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flags_given_win_over_the_scenario_and_the_scenario_over_the_defaults() {
        let scenario = La4Scenario::from_yaml(
            "name: from-file\nid: \"0000aaaa\"\ndiscovery: []\ntimings: { boot: 1s }\n",
            "s.yaml",
        )
        .unwrap();
        let args = Args::try_parse_from(["la4-sim", "--name", "from-flag"]).unwrap();
        let config = args.node(&scenario).config();
        assert_eq!(config.name, "from-flag");
        assert_eq!(config.id, "0000aaaa");
        assert!(config.discovery_targets.is_empty());
        assert_eq!(config.boot_time, Duration::from_secs(1));
        let args = Args::try_parse_from(["la4-sim", "--discover", "127.0.0.1:7"]).unwrap();
        let config = args.node(&scenario).config();
        assert_eq!(
            config.discovery_targets,
            [SocketAddr::from(([127, 0, 0, 1], 7))]
        );
    }
}
