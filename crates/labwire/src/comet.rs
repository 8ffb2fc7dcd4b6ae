//! COMET: the demo against `comet-sim`, and `labwire comet` for a real COMET endpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure};
use comet_sim::{CometSim, Fault};
use comet_socket::Client;
use comet_socket::config::{Endpoint, SocketConnection};
use serde_json::{Value, json};

use crate::failure::usage;
use crate::output::{self, say};

/// Talk to a COMET socket server.
#[derive(Debug, clap::Args)]
pub(crate) struct CometArgs {
    /// The COMET server, as HOST:PORT (COMET's default is 127.0.0.1:65432); without --addr
    /// and --config, the LABWIRE_COMET_ADDR environment variable.
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Take the address from a COMET configuration file: its Socket_connection.Host, or the
    /// client named by --client.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// With --config: the named client (e.g. Telegram) to send to instead of the Host.
    #[arg(long, global = true)]
    client: Option<String>,
    /// Seconds to wait for the connection and for the answer.
    #[arg(long, global = true, env = "LABWIRE_TIMEOUT", default_value_t = 10.0)]
    timeout: f64,
    #[command(subcommand)]
    action: CometAction,
}

/// Where `--addr` comes from when neither it nor `--config` is given.
const ADDR_VARIABLE: &str = "LABWIRE_COMET_ADDR";

#[derive(Debug, clap::Subcommand)]
enum CometAction {
    /// Send VALUE_JSON for ACTION and print the answer's result as JSON.
    ///
    /// --json: the answer's `result`, as the server sent it.
    Send {
        /// The action name (e.g. ECHO).
        action: String,
        /// The value, as JSON (quote strings: '"text"').
        value: String,
    },
    /// Send a Telegram-bot message {"CHAT_ID": "TEXT"} and print the answer.
    ///
    /// --json: the answer's `result`, as the server sent it.
    Telegram {
        /// The chat id.
        chat_id: String,
        /// The message text.
        text: String,
        /// The Telegram action name.
        #[arg(long, default_value = comet_sim::DEFAULT_TELEGRAM_ACTION)]
        telegram_action: String,
    },
}

pub(crate) async fn run(args: CometArgs) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .map_err(|_| usage("--timeout must be a number of seconds, 0 or more"))?;
    let addr = match (args.addr, &args.config) {
        (Some(_), Some(_)) => return Err(usage("give --addr or --config, not both")),
        (Some(addr), None) => addr,
        (None, Some(path)) => address_from_config(path, args.client.as_deref())?,
        (None, None) => match std::env::var(ADDR_VARIABLE) {
            Ok(addr) if !addr.is_empty() => addr,
            _ => {
                return Err(usage(format!(
                    "give --addr HOST:PORT or --config FILE (or set {ADDR_VARIABLE})"
                )));
            }
        },
    };
    if args.client.is_some() && args.config.is_none() {
        return Err(usage(
            "--client names a client of --config: give --config too",
        ));
    }
    let (action, value) = match args.action {
        CometAction::Send { action, value } => {
            let value: Value = serde_json::from_str(&value)
                .map_err(|e| usage(format!("VALUE is not valid JSON: {e}")))?;
            (action, value)
        }
        CometAction::Telegram {
            chat_id,
            text,
            telegram_action,
        } => (telegram_action, json!({ chat_id: text })),
    };
    let client = Client::builder(addr)
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .build();
    let result = client.send(&action, &value).await?;
    output::result(&result, &result.to_string());
    Ok(())
}

/// The Host of COMET's `Socket_connection` settings, or the named client's address.
fn address_from_config(path: &Path, client: Option<&str>) -> anyhow::Result<String> {
    // A configuration that cannot give an address is a wrong command line, as a bad --addr.
    let settings =
        SocketConnection::from_path(path).map_err(|e| usage(labwire_net::error_chain(&e)))?;
    match client {
        Some(name) => settings.client(name).map(Endpoint::addr).ok_or_else(|| {
            let known: Vec<_> = settings.clients.keys().map(String::as_str).collect();
            usage(format!(
                "{} has no client {name:?} (clients: {})",
                path.display(),
                known.join(", ")
            ))
        }),
        None => settings
            .host
            .map(|host| host.addr())
            .ok_or_else(|| usage(format!("{} has no Socket_connection.Host", path.display()))),
    }
}

pub(crate) async fn demo() -> anyhow::Result<()> {
    let sim = CometSim::builder()
        .status("measuring an IV curve")
        .start()
        .await?;
    let result = drive(&sim).await;
    sim.shutdown().await;
    say!("comet-sim stopped");
    result
}

async fn drive(sim: &CometSim) -> anyhow::Result<()> {
    let addr = sim.local_addr().to_string();
    say!("comet-sim listening on {addr}");
    let client = Client::builder(addr.clone())
        .call_timeout(Duration::from_secs(5))
        .build();

    let measurement =
        json!({"sample": "W42-3", "bias_V": -150.0, "I_A": [1.5e-9, 2.25e-9], "ok": true});
    let echoed = client.send("ECHO", &measurement).await?;
    ensure!(echoed == measurement, "ECHO answered {echoed}");
    say!("ECHO {} -> {}", wire(&measurement), wire(&echoed));

    let message = json!({"123456": "Status?"});
    let reply = client.send("Telegram", &message).await?;
    ensure!(
        reply == json!({"123456": "Status: measuring an IV curve"}),
        "Telegram answered {reply}"
    );
    say!("Telegram {} -> {}", wire(&message), wire(&reply));

    sim.state().set_answer("Temperature", json!(21.5));
    let temperature = client.send("Temperature", &json!(true)).await?;
    ensure!(
        temperature == json!(21.5),
        "Temperature answered {temperature}"
    );
    say!("Temperature (fixed answer) -> {temperature}");

    let nobody = client.send("Unknown", &json!("x")).await?;
    ensure!(nobody.is_null(), "an unhandled action answered {nobody}");
    say!("Unknown (no handler) -> {nobody}");

    match client.send("ECHO", &json!({})).await {
        Err(e @ comet_socket::client::Error::Invalid(_)) => {
            say!(
                "ECHO {{}} refused by the client: {}",
                comet_socket::error::report(&e)
            );
        }
        other => bail!("a falsy value was not refused: {other:?}"),
    }

    sim.faults().push(Fault::NoReply);
    let impatient = Client::builder(addr)
        .call_timeout(Duration::from_millis(300))
        .build();
    match impatient.send("ECHO", &json!("anyone?")).await {
        Err(e) if e.is_timeout() => say!("injected no-reply fault: {e}"),
        other => bail!("the no-reply fault did not time out: {other:?}"),
    }

    let counters = sim.state().counters();
    // The unanswered request was still handled: five reached the handlers, one was faulted.
    ensure!(
        counters.requests == 5 && sim.requests() == 5 && sim.faults().applied() == 1,
        "the simulator counted {counters:?}, {} requests, {} faults",
        sim.requests(),
        sim.faults().applied()
    );
    say!(
        "comet-sim saw {} requests over {} connections",
        counters.requests,
        counters.connections
    );
    Ok(())
}

/// `value` as COMET writes it on the wire (Python's `json.dumps` layout).
fn wire(value: &Value) -> String {
    comet_socket::json::to_vec(value)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|_| value.to_string())
}
