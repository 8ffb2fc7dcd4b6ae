//! `comet-sim`: a simulated COMET socket endpoint.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use comet_sim::{CometSim, SimConfig};
use comet_socket::config::SocketConnection;
use serde_json::Value;

/// A simulated COMET socket endpoint: ECHO, a Telegram-bot-shaped handler and fixed answers.
#[derive(Debug, Parser)]
#[command(name = "comet-sim", version, about)]
struct Args {
    /// Address to listen on [default: 127.0.0.1:65432, or the Host of --config].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A COMET configuration file; its Socket_connection.Host is the default listen address.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Reproduce COMET's quirks where safe: hold falsy requests unanswered, one request at a time.
    #[arg(long)]
    fidelity: bool,
    /// A fixed answer, as ACTION=JSON (repeatable).
    #[arg(long = "answer", value_name = "ACTION=JSON")]
    answers: Vec<String>,
    /// What the Telegram bot answers to `status`.
    #[arg(long, default_value = "idle")]
    status: String,
    /// The Telegram bot's action name.
    #[arg(long, default_value = comet_sim::DEFAULT_TELEGRAM_ACTION)]
    telegram_action: String,
    /// Simulated seconds per real second for injected delays. (`--speed`, as arkeo-sim, is the same).
    #[arg(long, visible_alias = "speed", default_value_t = 1.0)]
    time_scale: f64,
    /// Seconds one connection may take from accept to close.
    #[arg(long, default_value_t = 30.0)]
    deadline: f64,
    /// Listen backlog.
    #[arg(long, default_value_t = labwire_net::DEFAULT_BACKLOG)]
    backlog: u32,
    /// More logging on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn config(args: Args) -> anyhow::Result<SimConfig> {
    let mut config = SimConfig::default();
    if let Some(path) = &args.config {
        let settings = SocketConnection::from_path(path)?;
        if let Some(host) = settings.host {
            config.listen = host
                .addr()
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve Host {}", host.addr()))?
                .next()
                .with_context(|| format!("Host {} resolves to nothing", host.addr()))?;
        }
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    for answer in &args.answers {
        let Some((action, json)) = answer.split_once('=') else {
            bail!("--answer {answer:?}: expected ACTION=JSON");
        };
        let value: Value = serde_json::from_str(json)
            .with_context(|| format!("--answer {answer:?}: the answer is not JSON"))?;
        config.answers.insert(action.to_owned(), value);
    }
    config.fidelity = args.fidelity;
    config.status = args.status;
    config.telegram_action = args.telegram_action;
    config.time_scale = args.time_scale;
    config.connection_deadline = Duration::try_from_secs_f64(args.deadline)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--deadline must be a positive number of seconds")?;
    config.backlog = args.backlog;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    labwire_net::cli::init_tracing(args.verbose);
    let config = config(args)?;
    let sim = CometSim::start(config).await.context("cannot start")?;
    // Handlers first: a parent may signal as soon as it has read the `listening on` line.
    let signal = labwire_net::cli::shutdown_signal();
    labwire_net::cli::announce_listening(sim.local_addr())?;
    signal.await;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<SimConfig> {
        config(Args::try_parse_from(
            std::iter::once("comet-sim").chain(args.iter().copied()),
        )?)
    }

    #[test]
    fn without_flags_it_listens_on_comets_default_address() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, comet_sim::DEFAULT_LISTEN);
        assert_eq!(config.listen.to_string(), "127.0.0.1:65432");
        assert_eq!(config.backlog, labwire_net::DEFAULT_BACKLOG);
        assert!(!config.fidelity);
    }

    #[test]
    fn flags_set_every_field_they_name() {
        let config = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--fidelity",
            "--answer",
            "Status={\"state\": \"idle\"}",
            "--answer",
            "Count=3",
            "--status",
            "measuring",
            "--telegram-action",
            "Bot",
            "--speed",
            "10",
            "--deadline",
            "2.5",
            "--backlog",
            "64",
        ])
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert!(config.fidelity);
        assert_eq!(
            config.answers["Status"],
            serde_json::json!({"state": "idle"})
        );
        assert_eq!(config.answers["Count"], serde_json::json!(3));
        assert_eq!(config.status, "measuring");
        assert_eq!(config.telegram_action, "Bot");
        assert!((config.time_scale - 10.0).abs() < f64::EPSILON);
        assert_eq!(config.connection_deadline, Duration::from_millis(2500));
        assert_eq!(config.backlog, 64);
    }

    #[test]
    fn bad_values_are_refused_with_a_clear_message() {
        for (args, needle) in [
            (&["--answer", "Status={"][..], "not JSON"),
            (&["--deadline", "0"][..], "--deadline"),
            (&["--deadline=-1"][..], "--deadline"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(format!("{error:#}").contains(needle), "{args:?}: {error:#}");
        }
    }
}
