//! `labwire replay`: serve a recording (from `labwire tap --record`) as the device.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use labwire_tap::Recording;
use labwire_tap::replay::ReplayConfig;

/// `labwire replay`: answer each request with the recorded answer to the same (decoded)
/// request; a request the recording lacks gets the protocol's refusal (or a close with
/// `--strict`) and a line on stderr.
///
/// ARKEO, PEKAT and COMET answers get the client's own correlation id. A pycom recording is
/// served as the LA4 node: the recorded events of the matching request go back on new
/// connections to the requester's IP and advertised port, each naming the replay's port
/// (matching ignores the coordinator's id, name, ip, port and version); an unknown command
/// gets an `output` event saying so.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The recording (JSON Lines, with the header line `labwire tap` writes).
    file: PathBuf,
    /// Where clients connect (loopback, a free port, by default; the first stdout line says
    /// which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Close the connection on a request the recording does not have (pycom: and send no
    /// event).
    #[arg(long)]
    strict: bool,
    /// Keep the recorded delay between each request and its answer (pycom: each event).
    #[arg(long)]
    pace: bool,
    /// Client connections served at once.
    #[arg(long, default_value_t = labwire_net::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let recording = Recording::load(&args.file)?;
    let config = ReplayConfig {
        listen: args.listen,
        strict: args.strict,
        pace: args.pace,
        max_connections: args.max_connections,
        ..ReplayConfig::new()
    };
    let shutdown = labwire_net::cli::shutdown_signal();
    let device = labwire_tap::replay::start(&recording, config)
        .await
        .with_context(|| format!("cannot replay {}", args.file.display()))?;
    labwire_net::cli::announce_listening(device.local_addr())?;
    shutdown.await;
    device.shutdown().await;
    Ok(())
}
