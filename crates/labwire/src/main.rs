//! `labwire`: one command-line tool for the four labwire protocols.
//!
//! `labwire demo` starts every simulator on loopback (port 0) and drives it with the matching
//! client, so a fresh checkout can see every protocol work end to end. The per-protocol
//! subcommands talk to a real device or a simulator at a given address.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;

// One module per protocol; each has `demo()` and its own subcommand.
mod arkeo;
mod comet;
mod pekat;
mod pycom;
mod replay;
mod tap;

// What every subcommand shares.
mod failure;
mod generate;
mod output;
mod progress;

use failure::usage;
use output::say;

#[derive(Debug, Parser)]
#[command(
    name = "labwire",
    version,
    about,
    after_help = AFTER_HELP
)]
struct Cli {
    /// More logging on stderr: warnings by default, -v info, -vv debug (every decoded frame),
    /// -vvv trace (frames in hex); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print the result as JSON on stdout: one document per command, or one per line for a
    /// stream (`pycom watch`, `tap`); no progress on stderr unless --progress.
    #[arg(long, global = true)]
    json: bool,
    /// Report progress on stderr even with --json (a bar on a terminal, lines otherwise).
    #[arg(long, global = true)]
    progress: bool,
    #[command(subcommand)]
    command: Command,
}

/// The end of `labwire --help`: the environment and the exit statuses.
const AFTER_HELP: &str = "\
Environment (a flag given wins):
  LABWIRE_ARKEO_ADDR, LABWIRE_PEKAT_ADDR, LABWIRE_PYCOM_ADDR or LABWIRE_LA4_ADDR,
  LABWIRE_COMET_ADDR  the device's address (--addr)
  LABWIRE_TIMEOUT     seconds to wait for each answer (--timeout)
  RUST_LOG            the log filter (over -v)
  NO_COLOR            no colour in help and logs (none when stderr is not a terminal)

Exit status:
  0  success
  1  the device refused (it answered with an error)
  2  usage: a bad flag or value
  3  could not connect (or could not listen where asked)
  4  timed out
  5  protocol error: an invalid answer, or the connection was cut";

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the simulators on loopback and drive every protocol with its client.
    ///
    /// --json: `{"protocols": [{"name": NAME, "seconds": S}, ...], "seconds": S}` on stdout,
    /// the running commentary on stderr.
    Demo {
        /// Run only these protocols (default: all of them, in the listed order; `la4` is
        /// `pycom`).
        only: Vec<String>,
    },
    /// Talk to a Cicci Research ARKEO application (or arkeo-sim): routines, status, measure, send.
    Arkeo(arkeo::ArkeoArgs),
    /// Talk to a PEKAT VISION Projects Manager (or pekat-sim): start, stop, status, switch.
    Pekat(pekat::PekatArgs),
    /// Act as a coordinator towards a Rigsters LA4 node (or la4-sim): info, cmd, sequence, watch.
    Pycom(pycom::PycomArgs),
    /// The same as `pycom`, by the device's name.
    La4(pycom::PycomArgs),
    /// Talk to a COMET socket server (or comet-sim): send an action and a JSON value.
    Comet(comet::CometArgs),
    /// Sit between a client and a device: forward every byte, print each decoded message,
    /// record the traffic (JSON Lines).
    Tap(tap::TapArgs),
    /// Serve a recording (from `tap --record`) as the device: recorded answers to the same
    /// requests.
    Replay(replay::ReplayArgs),
    /// Print the shell completion script for SHELL on stdout.
    ///
    /// E.g. `labwire completions bash > ~/.local/share/bash-completion/completions/labwire`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: `labwire man > labwire.1`, or a subcommand's:
    /// `labwire man arkeo > labwire-arkeo.1`.
    Man {
        /// The subcommand whose page to print.
        subcommand: Option<String>,
    },
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

/// Other names `labwire demo` takes for a protocol: the subcommands' aliases.
const DEMO_ALIASES: &[(&str, &str)] = &[("la4", "pycom")];

fn main() -> ExitCode {
    // Parse errors exit 2 (and --help, --version 0) with clap's own message.
    let cli = Cli::parse();
    output::set_mode(output::Mode {
        json: cli.json,
        progress: cli.progress,
    });
    labwire_net::cli::init_tracing_from(tracing::Level::WARN, cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            return failure::report(
                &anyhow::Error::from(error).context("cannot start the runtime"),
            );
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failure::report(&error),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo { only } => demo(&only).await,
        Command::Arkeo(args) => arkeo::run(args).await,
        Command::Pekat(args) => pekat::run(args).await,
        Command::Pycom(args) | Command::La4(args) => pycom::run(args).await,
        Command::Comet(args) => comet::run(args).await,
        Command::Tap(args) => tap::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { subcommand } => generate::man(subcommand.as_deref()),
    }
}

async fn demo(only: &[String]) -> anyhow::Result<()> {
    let canonical = |name: &str| -> Option<&'static str> {
        DEMOS
            .iter()
            .map(|(known, _)| *known)
            .find(|known| *known == name)
            .or_else(|| {
                DEMO_ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == name)
                    .map(|(_, known)| *known)
            })
    };
    let mut wanted = Vec::new();
    for name in only {
        match canonical(name) {
            Some(known) => wanted.push(known),
            None => {
                let known: Vec<_> = DEMOS.iter().map(|(name, _)| *name).collect();
                return Err(usage(format!(
                    "no demo named {name:?}; known: {} (la4 is pycom)",
                    known.join(", ")
                )));
            }
        }
    }
    let started = Instant::now();
    let mut ran = Vec::new();
    for (name, run) in DEMOS {
        if !wanted.is_empty() && !wanted.contains(name) {
            continue;
        }
        say!("== {name} ==");
        let step = Instant::now();
        run().await.with_context(|| format!("{name} demo failed"))?;
        say!("== {name}: ok in {:.2?} ==\n", step.elapsed());
        ran.push(json!({"name": name, "seconds": step.elapsed().as_secs_f64()}));
    }
    let text = format!(
        "demo finished: {} protocol(s) in {:.2?}",
        ran.len(),
        started.elapsed()
    );
    output::result(
        &json!({"protocols": ran, "seconds": started.elapsed().as_secs_f64()}),
        &text,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tap_takes_the_global_json_as_its_own() {
        for args in [
            &["labwire", "--json", "tap", "arkeo", "--upstream", "x:1"][..],
            &["labwire", "tap", "arkeo", "--upstream", "x:1", "--json"],
        ] {
            let matches = Cli::command().try_get_matches_from(args).unwrap();
            let tap = matches.subcommand_matches("tap").unwrap();
            assert!(tap.get_flag("json"), "{args:?}");
        }
    }
}
