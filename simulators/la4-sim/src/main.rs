//! `la4-sim`: a simulated Rigsters LA4 node (or a fleet of them) on the network.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use la4_sim::{Fleet, La4Sim, La4SimBuilder, SimConfig};
use labwire_simkit::cli::{self, HostArgs};

/// Simulated Rigsters LightArray4 (LA4) pycom node. Never executes commands: it interprets the
/// documented shell idioms against a simulated device.
#[derive(Debug, Parser)]
#[command(name = "la4-sim", version, about)]
struct Args {
    /// --listen (default 127.0.0.1:5000), --backlog, --max-connections, --time-scale / --speed
    /// (the boot, offline and discovery delays), -v, --log-format.
    #[command(flatten)]
    host: HostArgs,
    /// Time until boardio has booted and hardware info is available, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    boot_ms: u64,
    /// The node's id (8 hex digits; fleet nodes count up from it).
    #[arg(long, default_value = "81639cd4")]
    id: String,
    /// The node's name (fleet nodes get `-N` appended).
    #[arg(long, default_value = "rigsters-controller")]
    name: String,
    /// Run this many nodes, on consecutive ports from the listen port (or each on a free port
    /// when it is 0). One `listening on` line per node, in order.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where to probe for a coordinator when none is online (repeatable).
    #[arg(long = "discover", default_value = "127.0.0.1:5001")]
    discover: Vec<SocketAddr>,
    /// Do not probe for coordinators at all.
    #[arg(long, conflicts_with = "discover")]
    no_discovery: bool,
    /// Silence after which a coordinator counts as offline, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    offline_ms: u64,
    /// Time between discovery probes, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    discovery_ms: u64,
}

impl Args {
    /// The node the flags describe (each node of a fleet is made from it).
    fn node(self) -> La4SimBuilder {
        let mut host = SimConfig::default().host;
        self.host.apply(&mut host);
        let discovery_targets = if self.no_discovery {
            Vec::new()
        } else {
            self.discover
        };
        La4Sim::builder()
            .host(host)
            .id(self.id)
            .name(self.name)
            .boot_time(Duration::from_millis(self.boot_ms))
            .offline_after(Duration::from_millis(self.offline_ms))
            .discovery_interval(Duration::from_millis(self.discovery_ms))
            .discovery_targets(discovery_targets)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.host.init_logging();
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let nodes = args.nodes;
    let fleet = Fleet::start(args.node(), nodes).await?;
    cli::run_until_signal(&fleet.addrs(), fleet.shutdown()).await?;
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
        assert!(!args.discover.is_empty());
        assert!(args.discover.iter().all(|a| a.ip().is_loopback()));
        let config = args.node().config();
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
            .node()
            .config();
        assert_eq!(config.host.listen.port(), 0);
        assert_eq!(
            (config.host.time_scale, config.host.max_connections),
            (20.0, 5)
        );
    }
}
