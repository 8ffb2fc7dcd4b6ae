//! `labwire completions SHELL` and `labwire man`: generated from the one `clap` definition, so
//! they always list the flags and subcommands the binary has.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::Cli;
use crate::failure::usage;

/// Writes the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "labwire", &mut stdout);
    stdout.flush()?;
    Ok(())
}

/// Writes a man page (roff) on stdout: `labwire`'s own (synopsis, global options, the
/// subcommands, the environment and the exit statuses), or with `subcommand` that
/// subcommand's page (`labwire-arkeo(1)`, with its options and actions).
pub(crate) fn man(subcommand: Option<&str>) -> anyhow::Result<()> {
    let mut command = Cli::command();
    // Built, each subcommand knows its page name (`labwire-arkeo`) and usage (`labwire arkeo`).
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => command.find_subcommand(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
            usage(format!(
                "no subcommand {name:?}; known: {}",
                known.join(", ")
            ))
        })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&roff)?;
    stdout.flush()?;
    Ok(())
}
