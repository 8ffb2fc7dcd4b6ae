//! `comet-sim`: a simulated COMET socket endpoint.

use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use comet_sim::{CometScenario, CometSim, HostConfig, SimConfig};
use comet_socket::config::SocketConnection;
use labwire_simkit::cli::{
    HostArgs, exit_cannot_listen, exit_usage, run_until_signal_with_control,
};
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
    /// Reproduce COMET's quirks where safe: hold falsy requests unanswered, one request at a
    /// time [default: off, or the scenario's `fidelity`].
    #[arg(long)]
    fidelity: bool,
    /// A fixed answer, as ACTION=JSON (repeatable; added to the scenario's `answers`, and wins
    /// for the same action).
    #[arg(long = "answer", value_name = "ACTION=JSON", value_parser = fixed_answer)]
    answers: Vec<(String, Value)>,
    /// What the Telegram bot answers to `status` [default: idle, or the scenario's
    /// `telegram.status`].
    #[arg(long)]
    status: Option<String>,
    /// The Telegram bot's action name [default: Telegram, or the scenario's
    /// `telegram.action`].
    #[arg(long)]
    telegram_action: Option<String>,
    /// Seconds each step of a connection may take (waiting for the request, receiving it,
    /// answering, sending the answer); also `250ms` or `2.5s` [default: 30, or the scenario's
    /// `connection_deadline`].
    #[arg(long, value_parser = positive_duration)]
    deadline: Option<Duration>,
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

/// The settings from the flags over `scenario` (the flags win).
fn config(args: Args, scenario: &CometScenario) -> anyhow::Result<(HostConfig, SimConfig)> {
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
    let mut config = SimConfig::default();
    scenario.apply(&mut config);
    config.fidelity |= args.fidelity;
    config.answers.extend(args.answers);
    if let Some(status) = args.status {
        config.status = status;
    }
    if let Some(action) = args.telegram_action {
        config.telegram_action = action;
    }
    if let Some(deadline) = args.deadline {
        config.connection_deadline = deadline;
    }
    Ok((host, config))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let control = args.host.control_config().unwrap_or_else(|e| exit_usage(e));
    let scenario = match &args.host.scenario {
        Some(path) => CometScenario::load(path).unwrap_or_else(|e| exit_usage(e)),
        None => CometScenario::default(),
    };
    args.host.init_logging();
    let (host, config) = config(args, &scenario)?;
    let listen = host.listen;
    let sim = CometSim::builder()
        .host(host)
        .config(config)
        .start()
        .await
        .unwrap_or_else(|e| exit_cannot_listen(listen, &e));
    let control = match control {
        Some(config) => Some(
            sim.serve_control(&config)
                .await
                .unwrap_or_else(|e| exit_cannot_listen(config.listen, &e)),
        ),
        None => None,
    };
    run_until_signal_with_control(&[sim.local_addr()], control, sim.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<(HostConfig, SimConfig)> {
        parse_over(args, &CometScenario::default())
    }

    fn parse_over(
        args: &[&str],
        scenario: &CometScenario,
    ) -> anyhow::Result<(HostConfig, SimConfig)> {
        config(
            Args::try_parse_from(std::iter::once("comet-sim").chain(args.iter().copied()))?,
            scenario,
        )
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
    fn flags_win_over_the_scenario_and_add_to_its_answers() {
        let scenario = CometScenario::from_yaml(
            "fidelity: true\nconnection_deadline: 2s\nanswers: { A: 1, B: 2 }\n\
             telegram: { action: Bot, status: busy }\nfaults: [{ fault: close }]\n",
            "s.yaml",
        )
        .unwrap();
        let (_, config) = parse_over(&[], &scenario).unwrap();
        assert!(config.fidelity);
        assert_eq!(config.connection_deadline, Duration::from_secs(2));
        assert_eq!(config.status, "busy");
        assert_eq!(config.telegram_action, "Bot");
        assert_eq!(config.schedule.len(), 1);
        let (_, config) = parse_over(
            &["--answer", "B=3", "--status", "idle", "--deadline", "5"],
            &scenario,
        )
        .unwrap();
        assert_eq!(config.answers["A"], serde_json::json!(1));
        assert_eq!(config.answers["B"], serde_json::json!(3));
        assert_eq!(config.status, "idle");
        assert_eq!(config.connection_deadline, Duration::from_secs(5));
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
