//! What the simulator binaries share: logging, signals, and the `listening on` line.

use std::io::Write;
use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

/// Sends `tracing` output to stderr (stdout carries the `listening on` line).
///
/// `RUST_LOG` wins when set; otherwise `verbose` picks the level: 0 = info, 1 = debug
/// (every decoded frame), 2 or more = trace (frames in hex).
pub fn init_tracing(verbose: u8) {
    init_tracing_from(tracing::Level::INFO, verbose);
}

/// Like [`init_tracing`], starting from `quiet` when `verbose` is 0 (a command-line tool that
/// prints its own results wants `WARN`); each `-v` is one level more.
pub fn init_tracing_from(quiet: tracing::Level, verbose: u8) {
    use tracing::Level;
    let levels = [
        Level::ERROR,
        Level::WARN,
        Level::INFO,
        Level::DEBUG,
        Level::TRACE,
    ];
    let start = levels.iter().position(|l| *l == quiet).unwrap_or(2);
    let level = levels
        .get(start + usize::from(verbose))
        .copied()
        .unwrap_or(Level::TRACE);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.as_str().to_ascii_lowercase()));
    // A second initialisation (tests embedding a binary's main) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_wants_colour())
        .try_init();
}

/// Whether stderr may carry colour codes: it is a terminal, and `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints `listening on <addr>` as a line on stdout and flushes it, so that a parent process
/// reading the first line learns the bound port even when stdout is a pipe.
///
/// # Errors
/// When stdout is closed.
pub fn announce_listening(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()
}

/// Installs SIGINT (Ctrl-C) and, on Unix, SIGTERM handlers **now**, and returns a future that
/// resolves when either arrives.
///
/// Call it before [`announce_listening`]: a parent that reads the `listening on` line and
/// signals at once must find the handlers in place, or the default action kills the process
/// instead of a clean shutdown. Must be called from within a tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "cannot install signal handlers");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            tracing::info!("Ctrl-C received, shutting down");
        }
    }
}
