//! `la4-sim`: a simulated Rigsters LA4 node (or a fleet of them) on the network.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use la4_sim::{Fleet, La4Sim};

/// Simulated Rigsters LightArray4 (LA4) pycom node. Never executes commands: it interprets the
/// documented shell idioms against a simulated device.
#[derive(Debug, Parser)]
#[command(name = "la4-sim", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
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
    /// Run simulated time this many times faster (boot, offline and discovery delays).
    #[arg(long, visible_alias = "speed", default_value_t = 1.0)]
    time_scale: f64,
    /// Listen backlog of each node (large: coordinators open one connection per request).
    #[arg(long, default_value_t = labwire_net::DEFAULT_BACKLOG)]
    backlog: u32,
    /// More logging on stderr (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    labwire_net::cli::init_tracing(args.verbose);
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        args.time_scale.is_finite() && args.time_scale > 0.0,
        "--time-scale must be a positive number"
    );
    let discovery_targets = if args.no_discovery {
        Vec::new()
    } else {
        args.discover
    };
    let node = La4Sim::builder()
        .listen(args.listen)
        .backlog(args.backlog)
        .id(args.id)
        .name(args.name)
        .boot_time(Duration::from_millis(args.boot_ms))
        .offline_after(Duration::from_millis(args.offline_ms))
        .discovery_interval(Duration::from_millis(args.discovery_ms))
        .discovery_targets(discovery_targets)
        .speed(args.time_scale);
    let fleet = Fleet::start(node, args.nodes).await?;
    // The handlers are installed by this call, before anyone learns the address: a SIGTERM
    // sent right after the `listening on` line shuts down cleanly.
    let signal = labwire_net::cli::shutdown_signal();
    for addr in fleet.addrs() {
        labwire_net::cli::announce_listening(addr)?;
    }
    signal.await;
    fleet.shutdown().await;
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
        assert_eq!(args.listen, SocketAddr::from(([127, 0, 0, 1], 5000)));
        assert!(!args.discover.is_empty());
        assert!(args.discover.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(args.offline_ms, 15_000);
        assert!(
            Args::try_parse_from(["la4-sim", "--discover", "127.0.0.1:1", "--no-discovery"])
                .is_err()
        );
    }
}
