//! Rigsters LA4 node (pycom): the demo and `labwire pycom`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Subcommand};
use la4_sim::La4Sim;
use pycom_proto::coordinator::DEFAULT_HEARTBEAT_INTERVAL;
use pycom_proto::coordinator::Error as CoordinatorError;
use pycom_proto::sequence::{BOARDIO_ERROR, BOARDIO_READY, SEQUENCE_FILE};
use pycom_proto::{Coordinator, Event, Identity, Row, Sequence, Slot, Verdict};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::failure::usage;
use crate::output::{self, say};

/// `labwire pycom` (or `labwire la4`): act as a coordinator towards one LA4 node (or
/// `la4-sim`).
#[derive(Debug, Args)]
pub(crate) struct PycomArgs {
    /// The node, `HOST:PORT` (pycom listens on 5000); without it, LABWIRE_LA4_ADDR is read
    /// too [default: 127.0.0.1:5000].
    #[arg(long, global = true, env = "LABWIRE_PYCOM_ADDR")]
    addr: Option<String>,
    /// Where to listen for the node's events; the node must be able to connect to it.
    #[arg(long, global = true, default_value = "0.0.0.0:5001")]
    listen: SocketAddr,
    /// The `ip` to put in requests (informational; the node replies to the address it sees).
    #[arg(long, global = true, default_value = "0.0.0.0")]
    ip: String,
    /// Seconds to wait for the node's answer.
    #[arg(long, global = true, env = "LABWIRE_TIMEOUT", default_value_t = 30.0)]
    timeout: f64,
    #[command(subcommand)]
    action: Action,
}

/// Where pycom listens, on this machine.
const DEFAULT_ADDR: &str = "127.0.0.1:5000";

#[derive(Debug, Subcommand)]
enum Action {
    /// Heartbeat the node until its `unit_info` arrives, and print it.
    ///
    /// --json: `{"node": ADDR, "unit_type": ..., "mcu_type": ..., "firmware_version": ...,
    /// "boardio_version": ..., "wiringpi_version": ..., "mac_address": ...}`.
    Info,
    /// Run a shell command on the node and print its output.
    ///
    /// --json: `{"node": ADDR, "command": COMMAND, "output": TEXT}`.
    Cmd {
        /// The command line, e.g. 'cat /home/rigsters/la4_sequence.csv'.
        command: String,
    },
    /// Write, load and run a sequence; print the output and boardio's verdict.
    ///
    /// --json: `{"node": ADDR, "rows": [ROW, ...], "standalone": BOOL, "output": TEXT,
    /// "verdict": "BOARDIO_READY"}`; a refused sequence fails (exit status 1).
    Sequence {
        /// Rows such as MODEL_LIGHT,100 LED_FAN,1 (validated before anything is sent).
        #[arg(required = true)]
        rows: Vec<String>,
        /// Store it as the boot-time (standalone) sequence (run now and at every boot, as the
        /// vendor's idiom does).
        #[arg(long)]
        standalone: bool,
    },
    /// Heartbeat the node and print every event, for a while or until Ctrl-C.
    ///
    /// --json: JSON Lines, one event a line: `{"t": SECONDS, "event": "online" | "offline" |
    /// "discovered" | "unit_info" | "message" | "output" | "resync" | "other" | "rejected" |
    /// "missed", "node": ADDR, ...}` with the event's own members (`text`, `output`, `info`,
    /// `identity`, `error`, `count`).
    Watch {
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
    },
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        usage(format!(
            "{what} must be a number of seconds, 0 or more (not {value})"
        ))
    })
}

/// Runs `labwire pycom ...`.
pub(crate) async fn run(args: PycomArgs) -> anyhow::Result<()> {
    let timeout = seconds(args.timeout, "--timeout")?;
    // Parse the rows first: nothing is sent for an invalid sequence.
    let sequence = match &args.action {
        Action::Sequence { rows, .. } => Some(parse_rows(rows)?),
        _ => None,
    };
    let limit = match &args.action {
        Action::Watch { seconds: Some(s) } => Some(seconds(*s, "--seconds")?),
        _ => None,
    };
    let addr = args
        .addr
        .or_else(|| {
            std::env::var("LABWIRE_LA4_ADDR")
                .ok()
                .filter(|a| !a.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let node = tokio::net::lookup_host(&addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))?;
    let identity = Identity::new(
        "1abe1f1e",
        "labwire",
        args.ip,
        0,
        env!("CARGO_PKG_VERSION"),
        true,
    );
    let coordinator = Coordinator::builder(args.listen, identity)
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .start()
        .await
        .with_context(|| format!("cannot listen for events on {}", args.listen))?;
    let mut events = coordinator.events();
    let result = async {
        match args.action {
            Action::Info => {
                // One heartbeat first: a node that cannot be reached is reported now, with
                // the connection's own error, not after the whole wait for unit_info.
                coordinator.heartbeat(node).await?;
                coordinator.add_node(node);
                let info = wait_for(&mut events, timeout, |e| match e {
                    Event::UnitInfo { node: from, info, .. } if from == node => Some(info),
                    _ => None,
                })
                .await
                .context("no unit_info (it is sent once per coordinator; a node that already knows this address and port will not send it again)")?;
                let mut json = serde_json::to_value(&info)?;
                if let Some(members) = json.as_object_mut() {
                    members.insert("node".to_owned(), json!(node));
                }
                let text = [
                    format!("unit_type:        {}", info.unit_type),
                    format!("mcu_type:         {}", info.mcu_type),
                    format!("firmware_version: {}", info.firmware_version),
                    format!("boardio_version:  {}", info.boardio_version),
                    format!("wiringpi_version: {}", info.wiringpi_version),
                    format!("mac_address:      {}", info.mac_address),
                ];
                output::result(&json, &text.join("\n"));
            }
            Action::Cmd { command } => {
                let output = coordinator.send_command(node, command.as_str()).await?;
                output::result(
                    &json!({"node": node, "command": command, "output": output}),
                    &output,
                );
            }
            Action::Sequence { standalone, .. } => {
                let Some(sequence) = sequence else {
                    bail!("no sequence");
                };
                let slot = if standalone {
                    Slot::Standalone
                } else {
                    Slot::Normal
                };
                let report = match coordinator
                    .run_sequence_confirmed(node, &sequence, slot)
                    .await
                {
                    Err(CoordinatorError::Device(refused)) => {
                        if !output::json() {
                            print!("{}", refused.output);
                        }
                        return Err(CoordinatorError::Device(refused))
                            .context("the node refused the sequence");
                    }
                    answered => answered?,
                };
                match report.verdict {
                    Some(Verdict::Ready) => {
                        let rows: Vec<String> =
                            sequence.rows().iter().map(ToString::to_string).collect();
                        let json = json!({
                            "node": node,
                            "rows": rows,
                            "standalone": standalone,
                            "output": report.output,
                            "verdict": BOARDIO_READY,
                        });
                        output::result(&json, &format!("{}{BOARDIO_READY}", report.output));
                    }
                    Some(Verdict::Error(message)) => {
                        bail!("the node refused the sequence: {message}")
                    }
                    None => bail!("boardio was not reached"),
                }
            }
            Action::Watch { .. } => {
                coordinator.heartbeat(node).await?;
                coordinator.add_node(node);
                let started = Instant::now();
                let watch = async {
                    loop {
                        let t = started.elapsed().as_secs_f64();
                        match events.recv().await {
                            Ok(event) => {
                                let mut json = event_json(&event);
                                if let Some(members) = json.as_object_mut() {
                                    members.insert("t".to_owned(), json!(t));
                                }
                                output::stream_line(&json, &describe(&event));
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => output::stream_line(
                                &json!({"t": t, "event": "missed", "count": n}),
                                &format!("({n} events missed)"),
                            ),
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                };
                tokio::select! {
                    () = watch => {}
                    () = labwire_net::cli::shutdown_signal() => {}
                    () = async {
                        match limit {
                            Some(limit) => tokio::time::sleep(limit).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    coordinator.shutdown().await;
    result
}

fn parse_rows(rows: &[String]) -> anyhow::Result<Sequence> {
    let rows = rows
        .iter()
        .map(|text| {
            text.parse::<Row>()
                .map_err(|e| usage(format!("bad row {text:?}: {e}")))
        })
        .collect::<anyhow::Result<Vec<Row>>>()?;
    Sequence::new(rows).map_err(|e| usage(format!("bad sequence: {e}")))
}

/// The next event `pick` accepts, within `timeout` (else [`CoordinatorError::Timeout`]).
async fn wait_for<T>(
    events: &mut broadcast::Receiver<Event>,
    timeout: Duration,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return Ok(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(CoordinatorError::Shutdown.into());
                }
            }
        }
    })
    .await
    .map_err(|_| anyhow::Error::from(CoordinatorError::Timeout(timeout)))?
}

/// The next `BOARDIO_READY` / `BOARDIO_ERROR…` message from `node` (for hand-written commands;
/// sequences get theirs from `run_sequence_confirmed`).
async fn boardio_verdict(
    events: &mut broadcast::Receiver<Event>,
    node: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<String> {
    wait_for(events, timeout, |e| match e {
        Event::Message {
            node: from,
            message,
            ..
        } if from == node
            && (message.starts_with(BOARDIO_READY) || message.starts_with(BOARDIO_ERROR)) =>
        {
            Some(message)
        }
        _ => None,
    })
    .await
    .context("no BOARDIO_READY / BOARDIO_ERROR message")
}

fn describe(event: &Event) -> String {
    match event {
        Event::NodeDiscovered { node, identity } => {
            format!("{node}: discovered ({} {:?})", identity.id, identity.name)
        }
        Event::NodeOnline { node } => format!("{node}: online"),
        Event::NodeOffline { node } => format!("{node}: offline"),
        Event::UnitInfo { node, info, .. } => format!(
            "{node}: unit_info {} {} firmware {} mac {}",
            info.unit_type, info.mcu_type, info.firmware_version, info.mac_address
        ),
        Event::Message { node, message, .. } => format!("{node}: message {message:?}"),
        Event::Output { node, output, .. } => format!("{node}: output {output:?}"),
        Event::Other { node, message } => {
            format!("{node}: {:?} {:?}", message.body.type_name(), message.body)
        }
        Event::Rejected { peer, error } => format!("{peer}: rejected ({error})"),
        other => format!("{other:?}"),
    }
}

/// One event as a JSON object (`pycom watch --json`): `event` names it, `node` is the node.
fn event_json(event: &Event) -> Value {
    match event {
        Event::NodeDiscovered { node, identity } => {
            json!({"event": "discovered", "node": node, "identity": identity})
        }
        Event::NodeOnline { node } => json!({"event": "online", "node": node}),
        Event::NodeOffline { node } => json!({"event": "offline", "node": node}),
        Event::UnitInfo { node, info, .. } => {
            json!({"event": "unit_info", "node": node, "info": info})
        }
        Event::Message { node, message, .. } => {
            json!({"event": "message", "node": node, "text": message})
        }
        Event::Output { node, output, .. } => {
            json!({"event": "output", "node": node, "output": output})
        }
        Event::Resync { node } => json!({"event": "resync", "node": node}),
        Event::Other { node, message } => json!({
            "event": "other",
            "node": node,
            "type": message.body.type_name(),
            "text": format!("{:?}", message.body),
        }),
        Event::Rejected { peer, error } => json!({
            "event": "rejected",
            "node": peer,
            "error": labwire_net::error_chain(error.as_ref()),
        }),
        other => json!({"event": "other", "text": format!("{other:?}")}),
    }
}

/// Starts an LA4 simulator and a coordinator on loopback, and walks through discovery,
/// `unit_info`, a sequence, a refused row, a command the node does not have, and going offline.
pub(crate) async fn demo() -> anyhow::Result<()> {
    let identity = Identity::new(
        "7756f193",
        "labwire demo",
        "127.0.0.1",
        0,
        env!("CARGO_PKG_VERSION"),
        true,
    );
    // Scaled down from 5 s / 15 s so the demo takes a moment, not a minute.
    let heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL / 25;
    let coordinator = Coordinator::builder("127.0.0.1:0".parse()?, identity)
        .heartbeat_interval(heartbeat_interval)
        .offline_after(heartbeat_interval * 3)
        .start()
        .await?;
    let mut events = coordinator.events();
    say!(
        "coordinator listening for events on {}",
        coordinator.local_addr()
    );

    let sim = La4Sim::builder()
        .discover(coordinator.local_addr())
        .speed(25.0)
        .start()
        .await?;
    let node = sim.local_addr();
    say!("LA4 simulator listening on {node}, booting, probing for a coordinator");
    let result = walk_through(&coordinator, &mut events, &sim, node).await;
    coordinator.shutdown().await;
    sim.shutdown().await;
    result
}

async fn walk_through(
    coordinator: &Coordinator,
    events: &mut broadcast::Receiver<Event>,
    sim: &La4Sim,
    node: SocketAddr,
) -> anyhow::Result<()> {
    let step = Duration::from_secs(5);
    let found = wait_for(events, step, |e| match e {
        Event::NodeDiscovered { node, identity } => Some((node, identity)),
        _ => None,
    })
    .await
    .context("the node never probed the coordinator")?;
    ensure!(found.0 == node, "discovered {} instead of {node}", found.0);
    say!(
        "discovered node {} ({:?}) at {node}; heartbeating it",
        found.1.id,
        found.1.name
    );

    let info = wait_for(events, step, |e| match e {
        Event::UnitInfo {
            node: from, info, ..
        } if from == node => Some(info),
        _ => None,
    })
    .await
    .context("no unit_info after boot")?;
    say!(
        "unit_info once boardio booted: {} / {} / firmware {}",
        info.unit_type,
        info.mcu_type,
        info.firmware_version
    );

    let sequence = Sequence::new([
        Row::ModelLight { power: 100 },
        Row::LedFan { on: true },
        Row::DigitalPolarizer { on: true },
    ])?;
    say!("running: {}", sequence.command(Slot::Normal));
    let report = coordinator
        .run_sequence_confirmed(node, &sequence, Slot::Normal)
        .await?;
    say!(
        "output:  {}",
        report.output.replace('\n', "\n         ").trim_end()
    );
    ensure!(
        report.is_ready(),
        "expected {BOARDIO_READY}, got {:?}",
        report.verdict
    );
    say!("boardio: {BOARDIO_READY}");
    let lights = sim.state().lights();
    ensure!(
        lights.model_light == 100 && lights.fans && lights.polarizer,
        "lights not as the sequence says: {lights:?}"
    );
    say!("simulated lights: model light 100 %, fans on, polariser on");

    let cat = coordinator
        .send_command(node, format!("cat {SEQUENCE_FILE}"))
        .await?;
    ensure!(cat == sequence.to_csv(), "sequence file reads {cat:?}");
    say!(
        "cat of the sequence file gives back the {} rows",
        sequence.rows().len()
    );

    let bad = format!(
        "echo \"MODEL_LIGHT,150\" > {SEQUENCE_FILE} && boardiocli uSeq && boardiocli runSeq"
    );
    // Subscribed now, so that only messages after this command count.
    let mut after_bad = coordinator.events();
    coordinator.send_command(node, bad).await?;
    let verdict = boardio_verdict(&mut after_bad, node, step).await?;
    ensure!(
        verdict.starts_with(BOARDIO_ERROR),
        "a bad row was accepted: {verdict}"
    );
    say!("a hand-written bad row: {verdict}");

    let output = coordinator.send_command(node, "reboot").await?;
    ensure!(
        output == "sh: 1: reboot: not found\n",
        "unexpected {output:?}"
    );
    say!("anything else is not run: {}", output.trim_end());

    sim.shutdown().await;
    wait_for(events, step, |e| {
        matches!(e, Event::NodeOffline { node: n } if n == node).then_some(())
    })
    .await
    .context("the stopped node was never reported offline")?;
    say!(
        "simulator stopped: node reported offline after {:?} of silence",
        DEFAULT_HEARTBEAT_INTERVAL / 25 * 3
    );
    Ok(())
}
