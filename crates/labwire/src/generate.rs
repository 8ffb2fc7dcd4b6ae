//! `labwire completions SHELL` and `labwire man`: generated from the one `clap` definition, so
//! they always list the flags and subcommands the binary has.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::Cli;

/// Writes the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "labwire", &mut stdout);
    stdout.flush()?;
    Ok(())
}

/// Writes the man page (roff) on stdout: synopsis, global options, every subcommand, the
/// environment and the exit statuses (`labwire SUBCOMMAND --help` has each one's options).
pub(crate) fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&page)?;
    stdout.flush()?;
    Ok(())
}
