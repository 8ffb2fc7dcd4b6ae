//! COMET: the demo against `comet-sim`, and `labwire comet` for a real COMET endpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use comet_sim::{CometSim, Fault};
use comet_socket::Client;
use comet_socket::config::{Endpoint, SocketConnection};
use serde_json::{Value, json};

/// Talk to a COMET socket server.
#[derive(Debug, clap::Args)]
pub(crate) struct CometArgs {
    /// The COMET server, as HOST:PORT (COMET's default is 127.0.0.1:65432).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    addr: Option<String>,
    /// Take the address from a COMET configuration file: its Socket_connection.Host, or the
    /// client named by --client.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: the named client (e.g. Telegram) to send to instead of the Host.
    #[arg(long, requires = "config")]
    client: Option<String>,
    /// Seconds to wait for the connection and for the answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    #[command(subcommand)]
    action: CometAction,
}

#[derive(Debug, clap::Subcommand)]
enum CometAction {
    /// Send VALUE_JSON for ACTION and print the answer's result as JSON.
    Send {
        /// The action name (e.g. ECHO).
        action: String,
        /// The value, as JSON (quote strings: '"text"').
        value: String,
    },
    /// Send a Telegram-bot message {"CHAT_ID": "TEXT"} and print the answer.
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
        .context("--timeout must be a non-negative number of seconds")?;
    let addr = match (args.addr, &args.config) {
        (Some(addr), _) => addr,
        (None, Some(path)) => address_from_config(path, args.client.as_deref())?,
        (None, None) => bail!("give --addr or --config"),
    };
    let client = Client::builder(addr)
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .build();
    let (action, value) = match args.action {
        CometAction::Send { action, value } => {
            let value: Value = serde_json::from_str(&value).context("VALUE is not valid JSON")?;
            (action, value)
        }
        CometAction::Telegram {
            chat_id,
            text,
            telegram_action,
        } => (telegram_action, json!({ chat_id: text })),
    };
    let result = client.send(&action, &value).await?;
    println!("{result}");
    Ok(())
}

/// The Host of COMET's `Socket_connection` settings, or the named client's address.
fn address_from_config(path: &Path, client: Option<&str>) -> anyhow::Result<String> {
    let settings = SocketConnection::from_path(path)?;
    match client {
        Some(name) => settings.client(name).map(Endpoint::addr).with_context(|| {
            let known: Vec<_> = settings.clients.keys().map(String::as_str).collect();
            format!(
                "{} has no client {name:?} (clients: {})",
                path.display(),
                known.join(", ")
            )
        }),
        None => settings
            .host
            .map(|host| host.addr())
            .with_context(|| format!("{} has no Socket_connection.Host", path.display())),
    }
}

pub(crate) async fn demo() -> anyhow::Result<()> {
    let sim = CometSim::builder()
        .status("measuring an IV curve")
        .start()
        .await?;
    let result = drive(&sim).await;
    sim.shutdown().await;
    println!("comet-sim stopped");
    result
}

async fn drive(sim: &CometSim) -> anyhow::Result<()> {
    let addr = sim.local_addr().to_string();
    println!("comet-sim listening on {addr}");
    let client = Client::builder(addr.clone())
        .call_timeout(Duration::from_secs(5))
        .build();

    let measurement =
        json!({"sample": "W42-3", "bias_V": -150.0, "I_A": [1.5e-9, 2.25e-9], "ok": true});
    let echoed = client.send("ECHO", &measurement).await?;
    ensure!(echoed == measurement, "ECHO answered {echoed}");
    println!("ECHO {} -> {}", wire(&measurement), wire(&echoed));

    let message = json!({"123456": "Status?"});
    let reply = client.send("Telegram", &message).await?;
    ensure!(
        reply == json!({"123456": "Status: measuring an IV curve"}),
        "Telegram answered {reply}"
    );
    println!("Telegram {} -> {}", wire(&message), wire(&reply));

    sim.state().set_answer("Temperature", json!(21.5));
    let temperature = client.send("Temperature", &json!(true)).await?;
    ensure!(
        temperature == json!(21.5),
        "Temperature answered {temperature}"
    );
    println!("Temperature (fixed answer) -> {temperature}");

    let nobody = client.send("Unknown", &json!("x")).await?;
    ensure!(nobody.is_null(), "an unhandled action answered {nobody}");
    println!("Unknown (no handler) -> {nobody}");

    match client.send("ECHO", &json!({})).await {
        Err(e @ comet_socket::client::Error::Invalid(_)) => {
            println!(
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
        Err(e) if e.is_timeout() => println!("injected no-reply fault: {e}"),
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
    println!(
        "comet-sim saw {} requests over {} connections",
        counters.requests, counters.connections
    );
    Ok(())
}

/// `value` as COMET writes it on the wire (Python's `json.dumps` layout).
fn wire(value: &Value) -> String {
    comet_socket::json::to_vec(value)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|_| value.to_string())
}
