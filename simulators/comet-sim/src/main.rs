//! `comet-sim`: a simulated COMET socket endpoint.

use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use comet_sim::{CometSim, HostConfig, SimConfig};
use comet_socket::config::SocketConnection;
use labwire_simkit::cli::HostArgs;
use serde_json::Value;

/// A simulated COMET socket endpoint: ECHO, a Telegram-bot-shaped handler and fixed answers.
#[derive(Debug, Parser)]
#[command(name = "comet-sim", version, about)]
struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// A COMET configuration file; its Socket_connection.Host is the default listen address
    /// [default listen address without it: 127.0.0.1:65432].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Reproduce COMET's quirks where safe: hold falsy requests unanswered, one request at a time.
    #[arg(long)]
    fidelity: bool,
    /// A fixed answer, as ACTION=JSON (repeatable).
    #[arg(long = "answer", value_name = "ACTION=JSON", value_parser = fixed_answer)]
    answers: Vec<(String, Value)>,
    /// What the Telegram bot answers to `status`.
    #[arg(long, default_value = "idle")]
    status: String,
    /// The Telegram bot's action name.
    #[arg(long, default_value = comet_sim::DEFAULT_TELEGRAM_ACTION)]
    telegram_action: String,
    /// Seconds each step of a connection may take (waiting for the request, receiving it,
    /// answering, sending the answer); also `250ms` or `2.5s`.
    #[arg(long, default_value = "30", value_parser = positive_duration)]
    deadline: Duration,
}

fn fixed_answer(text: &str) -> Result<(String, Value), String> {
    let (action, json) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected ACTION=JSON"))?;
    let value = serde_json::from_str(json)
        .map_err(|e| format!("{text:?}: the answer is not JSON ({e})"))?;
    Ok((action.to_owned(), value))
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match labwire_simkit::cli::duration(text)? {
        zero if zero.is_zero() => Err("must be more than zero seconds".to_owned()),
        duration => Ok(duration),
    }
}

fn config(args: Args) -> anyhow::Result<(HostConfig, SimConfig)> {
    let mut host = HostConfig::new(comet_sim::DEFAULT_LISTEN);
    if let Some(path) = &args.config {
        let settings = SocketConnection::from_path(path)?;
        if let Some(endpoint) = settings.host {
            host.listen = endpoint
                .addr()
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve Host {}", endpoint.addr()))?
                .next()
                .with_context(|| format!("Host {} resolves to nothing", endpoint.addr()))?;
        }
    }
    args.host.apply(&mut host);
    let config = SimConfig {
        fidelity: args.fidelity,
        connection_deadline: args.deadline,
        telegram_action: args.telegram_action,
        answers: args.answers.into_iter().collect(),
        status: args.status,
        ..SimConfig::default()
    };
    Ok((host, config))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.host.init_logging();
    let (host, config) = config(args)?;
    let sim = CometSim::builder()
        .host(host)
        .config(config)
        .start()
        .await
        .context("cannot start")?;
    labwire_simkit::cli::run_until_signal(&[sim.local_addr()], sim.shutdown()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<(HostConfig, SimConfig)> {
        config(Args::try_parse_from(
            std::iter::once("comet-sim").chain(args.iter().copied()),
        )?)
    }

    #[test]
    fn without_flags_it_listens_on_comets_default_address() {
        let (host, config) = parse(&[]).unwrap();
        assert_eq!(host.listen, comet_sim::DEFAULT_LISTEN);
        assert_eq!(host.listen.to_string(), "127.0.0.1:65432");
        assert_eq!(host.backlog, labwire_net::DEFAULT_BACKLOG);
        assert_eq!(host.time_scale, 1.0);
        assert!(!config.fidelity);
        assert_eq!(config.connection_deadline, Duration::from_secs(30));
    }

    #[test]
    fn flags_set_every_field_they_name() {
        let (host, config) = parse(&[
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
            "--max-connections",
            "8",
        ])
        .unwrap();
        assert_eq!(host.listen.to_string(), "127.0.0.1:0");
        assert!(config.fidelity);
        assert_eq!(
            config.answers["Status"],
            serde_json::json!({"state": "idle"})
        );
        assert_eq!(config.answers["Count"], serde_json::json!(3));
        assert_eq!(config.status, "measuring");
        assert_eq!(config.telegram_action, "Bot");
        assert!((host.time_scale - 10.0).abs() < f64::EPSILON);
        assert_eq!(config.connection_deadline, Duration::from_millis(2500));
        assert_eq!((host.backlog, host.max_connections), (64, 8));
        let (host, _) = parse(&["--time-scale", "0"]).unwrap();
        assert!(host.clock().is_manual());
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
