//! `labwire tap`: a transparent, protocol-aware TCP proxy between a client and a device.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use labwire_tap::proxy::{DEFAULT_MAX_CONNECTIONS, Print, TapConfig};
use labwire_tap::{Arkeo, Comet, Pekat, Protocol, Pycom};
use pekat_proto::Dialect;

/// The protocols `labwire tap` decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TapProtocol {
    /// ARKEO: u32 length-prefixed JSON on a persistent connection.
    Arkeo,
    /// PEKAT Projects Manager: unframed text (see --dialect).
    Pekat,
    /// pycom (LA4): one JSON object per connection; events come back on new connections to
    /// the tap's own event listener, whose port replaces the advertised `port` in the forwarded
    /// request, and each event goes on to the coordinator with its `port` replaced by the
    /// tap's (the coordinator knows the node by the address it sent to). The recording keeps
    /// the original bytes and notes both rewrites.
    Pycom,
    /// COMET socket: one exchange per connection.
    Comet,
}

/// `labwire tap`: forward every byte between clients and a device unchanged, print one line
/// per decoded message, and optionally record the traffic (JSON Lines).
///
/// A message over the protocol's limits is forwarded unchanged and decoding of that direction
/// stops (the rest is recorded as undecoded bytes); with --cut-oversize the connection is cut
/// instead. `labwire replay` serves a recording as the device.
#[derive(Debug, Args)]
pub(crate) struct TapArgs {
    /// The protocol to decode.
    protocol: TapProtocol,
    /// Where clients connect (loopback, a free port, by default; the first stdout line says
    /// which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The device (or simulator), `HOST:PORT`.
    #[arg(long)]
    upstream: String,
    /// Write the recording (JSON Lines: t, conn, dir, bytes, decoded) to this file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Print each message's recording line instead of a summary.
    #[arg(long)]
    json: bool,
    /// PEKAT dialect of the requests: 3.18 (`start:PATH`) or 3.19 (`id.start|PATH`).
    #[arg(long, default_value = "3.18")]
    dialect: Dialect,
    /// Seconds to wait for the upstream connection.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// Client connections served at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Cut a connection whose peer sends a message over the protocol's limits (a length
    /// prefix or header claiming more, text longer than a request may be): that message is
    /// not forwarded, both sides are closed, the cut is reported on stderr and noted in the
    /// recording. By default such a message is forwarded unchanged.
    #[arg(long)]
    cut_oversize: bool,
}

pub(crate) async fn run(args: TapArgs) -> anyhow::Result<()> {
    if !(args.connect_timeout.is_finite() && args.connect_timeout > 0.0) {
        return Err(crate::failure::usage(
            "--connect-timeout must be a positive number of seconds",
        ));
    }
    let protocol: Arc<dyn Protocol> = match args.protocol {
        TapProtocol::Arkeo => Arc::new(Arkeo::default()),
        TapProtocol::Pekat => Arc::new(Pekat {
            dialect: args.dialect,
            ..Pekat::default()
        }),
        TapProtocol::Pycom => Arc::new(Pycom::default()),
        TapProtocol::Comet => Arc::new(Comet::default()),
    };
    let mut config = TapConfig::new(args.upstream);
    config.listen = args.listen;
    config.connect_timeout = Duration::from_secs_f64(args.connect_timeout);
    config.max_connections = args.max_connections;
    config.print = if args.json {
        Print::Json
    } else {
        Print::Summary
    };
    config.notices = true;
    config.record = args.record.clone();
    config.cut_oversize = args.cut_oversize;
    // Signal handlers first: a parent that reads `listening on` and signals at once must get a
    // clean shutdown (the recording flushed).
    let shutdown = labwire_net::cli::shutdown_signal();
    let tap = labwire_tap::start(protocol, config)
        .await
        .with_context(|| match &args.record {
            Some(path) => format!(
                "cannot listen on {} or record to {}",
                args.listen,
                path.display()
            ),
            None => format!("cannot listen on {}", args.listen),
        })?;
    labwire_net::cli::announce_listening(tap.local_addr())?;
    shutdown.await;
    tap.shutdown().await.context("writing the recording")?;
    Ok(())
}
