//! `labwire`: one command-line tool for the four labwire protocols.
//!
//! `labwire demo` starts every simulator on loopback (port 0) and drives it with the matching
//! client, so a fresh checkout can see every protocol work end to end. The per-protocol
//! subcommands talk to a real device or a simulator at a given address.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

// One module per protocol; each has `demo()` and its own subcommand.
mod arkeo;
mod comet;
mod pekat;
mod pycom;
mod replay;
mod tap;

#[derive(Debug, Parser)]
#[command(name = "labwire", version, about)]
struct Cli {
    /// More logging on stderr (warnings by default; -v info, -vv debug, -vvv trace);
    /// `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the simulators on loopback and drive every protocol with its client.
    Demo {
        /// Run only these protocols (default: all of them, in the listed order).
        only: Vec<String>,
    },
    /// Talk to a Cicci Research ARKEO application (or arkeo-sim): routines, status, measure, send.
    Arkeo(arkeo::ArkeoArgs),
    /// Talk to a PEKAT VISION Projects Manager (or pekat-sim): start, stop, status, switch.
    Pekat(pekat::PekatArgs),
    /// Act as a coordinator towards a Rigsters LA4 node (or la4-sim): info, cmd, sequence, watch.
    #[command(visible_alias = "la4")]
    Pycom(pycom::PycomArgs),
    /// Talk to a COMET socket server (or comet-sim): send an action and a JSON value.
    Comet(comet::CometArgs),
    /// Sit between a client and a device: forward every byte, print each decoded message,
    /// record the traffic (JSON Lines).
    Tap(tap::TapArgs),
    /// Serve a recording (from `tap --record`) as the device: recorded answers to the same
    /// requests.
    Replay(replay::ReplayArgs),
}

type DemoFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;
/// A protocol's name on the command line and the function that runs its demo.
type Demo = (&'static str, fn() -> DemoFuture);

/// Every protocol demo, in the order `labwire demo` runs them. Each starts its own simulator on
/// a loopback port 0, drives it with the client, checks what came back, and shuts it down.
const DEMOS: &[Demo] = &[
    ("arkeo", || Box::pin(arkeo::demo())),
    ("pekat", || Box::pin(pekat::demo())),
    ("pycom", || Box::pin(pycom::demo())),
    ("comet", || Box::pin(comet::demo())),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    labwire_net::cli::init_tracing_from(tracing::Level::WARN, cli.verbose);
    match cli.command {
        Command::Demo { only } => demo(&only).await,
        Command::Arkeo(args) => arkeo::run(args).await,
        Command::Pekat(args) => pekat::run(args).await,
        Command::Pycom(args) => pycom::run(args).await,
        Command::Comet(args) => comet::run(args).await,
        Command::Tap(args) => tap::run(args).await,
        Command::Replay(args) => replay::run(args).await,
    }
}

async fn demo(only: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = only
        .iter()
        .find(|n| !DEMOS.iter().any(|(name, _)| name == n))
    {
        let known: Vec<_> = DEMOS.iter().map(|(name, _)| *name).collect();
        bail!("no demo named {unknown:?}; known: {}", known.join(", "));
    }
    let started = Instant::now();
    let mut ran = 0;
    for (name, run) in DEMOS {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        println!("== {name} ==");
        let step = Instant::now();
        run().await.with_context(|| format!("{name} demo failed"))?;
        println!("== {name}: ok in {:.2?} ==\n", step.elapsed());
        ran += 1;
    }
    println!(
        "demo finished: {ran} protocol(s) in {:.2?}",
        started.elapsed()
    );
    Ok(())
}
