//! What every simulator binary shares (feature `cli`): the host flags, logging, and the
//! announce-then-wait-for-a-signal life cycle.
//!
//! ```
//! use clap::Parser;
//! use labwire_simkit::cli::HostArgs;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     host: HostArgs,
//!     /// The device's own flags follow.
//!     #[arg(long)]
//!     fidelity: bool,
//! }
//!
//! let args = Args::parse_from(["sim", "--listen", "127.0.0.1:0", "--speed", "10", "-v"]);
//! let mut host = labwire_simkit::HostConfig::new("127.0.0.1:5000".parse().unwrap());
//! args.host.apply(&mut host);
//! assert_eq!(host.listen.port(), 0);
//! assert_eq!(host.time_scale, 10.0);
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::HostConfig;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags every simulator binary takes, the same everywhere. Flatten it into the binary's
/// own `clap` arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HostArgs {
    /// Address to listen on [default: the simulator's device address].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Listen backlog [default: 1024].
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,
    /// Connections served at once; a client connecting while that many are live is refused
    /// at once (accepted and closed) [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Bytes of partial frames all connections may hold together (e.g. `65536`, `512K`,
    /// `64M`); a frame larger than this ends its connection [default: 64M].
    #[arg(long, value_name = "BYTES", value_parser = byte_size)]
    pub frame_budget: Option<usize>,
    /// Close a connection with no request begun for this long (`1.5s`, `250ms`, `2min`, or
    /// seconds) [default: the simulator's own: arkeo-sim 5min, pekat-sim 60s, comet-sim 30s,
    /// la4-sim 5s].
    #[arg(long, value_name = "DURATION", value_parser = idle_timeout)]
    pub idle_timeout: Option<Duration>,
    /// Simulated time runs this many times faster than real time; 0 stops it.
    #[arg(
        long,
        visible_alias = "speed",
        value_name = "SCALE",
        default_value_t = 1.0,
        value_parser = time_scale
    )]
    pub time_scale: f64,
    /// More logging on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log lines are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A scenario file (YAML): the device's initial state, timings, data and fault schedule.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Serve the HTTP/JSON control channel on ADDR (loopback only, unless
    /// --control-allow-remote); prints `control on <addr>` after `listening on <addr>`.
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// Allow --control on an address other than loopback (the channel has no authentication).
    #[arg(long, requires = "control")]
    pub control_allow_remote: bool,
}

impl HostArgs {
    /// Writes the flags given into `host` (a flag not given keeps the simulator's default).
    /// `--control` also turns on [`HostConfig::track_connections`], so that the control
    /// channel's `GET /connections` lists the connections.
    pub fn apply(&self, host: &mut HostConfig) {
        if let Some(listen) = self.listen {
            host.listen = listen;
        }
        if let Some(backlog) = self.backlog {
            host.backlog = backlog;
        }
        if let Some(max) = self.max_connections {
            host.max_connections = max;
        }
        if let Some(bytes) = self.frame_budget {
            host.frame_budget = bytes;
        }
        if let Some(idle) = self.idle_timeout {
            host.idle_timeout = Some(idle);
        }
        host.time_scale = self.time_scale;
        host.clock = None;
        if self.control.is_some() {
            host.track_connections = true;
        }
    }

    /// Starts logging as the flags say.
    pub fn init_logging(&self) {
        init_logging(self.verbose, self.log_format);
    }

    /// The scenario given with `--scenario`, read as the simulator's schema `T` (feature
    /// `scenario`). A binary exits with [`exit_usage`] on the error, as for a bad flag.
    ///
    /// # Errors
    /// When the file cannot be read or is not a `T` (file, line, column and field named).
    #[cfg(feature = "scenario")]
    pub fn load_scenario<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<Option<T>, crate::scenario::ScenarioError> {
        self.scenario
            .as_deref()
            .map(crate::scenario::load)
            .transpose()
    }

    /// The control channel asked for with `--control` (feature `control`).
    ///
    /// # Errors
    /// When the address is not loopback and `--control-allow-remote` is not given.
    #[cfg(feature = "control")]
    pub fn control_config(&self) -> Result<Option<crate::control::ControlConfig>, String> {
        let Some(listen) = self.control else {
            return Ok(None);
        };
        let config = crate::control::ControlConfig {
            listen,
            allow_remote: self.control_allow_remote,
        };
        config.check()?;
        Ok(Some(config))
    }
}

/// Ends a binary that cannot start as asked (a bad scenario file, a refused control address):
/// `error: <message>` on stderr and exit status 2, as `clap` does for a bad flag.
pub fn exit_usage(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

/// Ends a binary that cannot listen where asked (the device port, or the control channel's):
/// the one shape every simulator reports it in — `error: cannot listen on ADDR: CAUSE` on
/// stderr (each cause once, no backtrace), a hint when the port is taken — and exit status 1.
pub fn exit_cannot_listen(addr: impl std::fmt::Display, error: &std::io::Error) -> ! {
    eprintln!("{}", cannot_listen(addr, error));
    std::process::exit(1)
}

/// What [`exit_cannot_listen`] prints.
fn cannot_listen(addr: impl std::fmt::Display, error: &std::io::Error) -> String {
    let mut report = format!(
        "error: cannot listen on {addr}: {}",
        labwire_net::error_chain(error)
    );
    if error.kind() == std::io::ErrorKind::AddrInUse {
        report.push_str(
            "\nhint: another program (or simulator) already listens there: stop it, or pick \
             another --listen (port 0 takes a free one, printed on the first stdout line)",
        );
    }
    report
}

/// Sends `tracing` output to stderr (stdout carries the `listening on` line): `RUST_LOG` wins
/// when set, else `verbose` picks the level (0 info, 1 debug, 2+ trace). No colour codes unless
/// stderr is a terminal and `NO_COLOR` is not set.
pub fn init_logging(verbose: u8, format: LogFormat) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(labwire_net::cli::stderr_wants_colour());
    // A second initialisation (tests embedding a binary's main) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The life cycle of a simulator binary once its simulator runs: installs the SIGINT/SIGTERM
/// handlers, prints `listening on <addr>` for each address (first lines on stdout), waits for a
/// signal, then runs `shutdown`.
///
/// # Errors
/// When stdout is closed.
pub async fn run_until_signal<F>(addrs: &[SocketAddr], shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    run_until_signal_with_control(addrs, None, shutdown).await
}

/// [`run_until_signal`], also printing `control on <addr>` (flushed) after the `listening on`
/// lines when the simulator serves a control channel.
///
/// # Errors
/// When stdout is closed.
pub async fn run_until_signal_with_control<F>(
    addrs: &[SocketAddr],
    control: Option<SocketAddr>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    // Handlers first: a parent may signal as soon as it has read the `listening on` line.
    let signal = labwire_net::cli::shutdown_signal();
    for addr in addrs {
        labwire_net::cli::announce_listening(*addr)?;
    }
    if let Some(control) = control {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "control on {control}")?;
        stdout.flush()?;
    }
    signal.await;
    shutdown.await;
    Ok(())
}

/// Parses a time scale: a finite number, zero or more (refused otherwise, so the binary exits 2
/// with the reason).
///
/// # Errors
/// A message for `clap` naming what is wrong.
pub fn time_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale >= 0.0 => Ok(scale),
        _ => Err(format!(
            "{text:?} is not a time scale (a number, 0 or more)"
        )),
    }
}

/// Parses a duration flag: seconds as a decimal number (`1.5`), or with a unit (`250ms`,
/// `1.5s`, `2min`). Negative, non-finite and absurdly large values are refused.
///
/// # Errors
/// A message for `clap` naming what is wrong.
pub fn duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text, true)
}

/// Parses an idle timeout: a [`duration`] of more than zero.
///
/// # Errors
/// A message for `clap` naming what is wrong.
pub fn idle_timeout(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        zero if zero.is_zero() => Err(format!("{text:?}: an idle timeout must be more than zero")),
        idle => Ok(idle),
    }
}

/// Parses a size in bytes: a whole number, optionally followed by `K`, `M` or `G` (binary:
/// `64M` is 64 × 1024 × 1024), also written `KiB`, `MiB`, `GiB`. Zero and sizes that do not
/// fit in `usize` are refused.
///
/// # Errors
/// A message for `clap` naming what is wrong.
pub fn byte_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let (number, shift) = [("K", 10), ("M", 20), ("G", 30)]
        .into_iter()
        .find_map(|(unit, shift)| {
            let rest = upper
                .strip_suffix(&format!("{unit}IB"))
                .or_else(|| upper.strip_suffix(unit))?;
            Some((rest, shift))
        })
        .unwrap_or((upper.as_str(), 0));
    let number: usize = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size in bytes (e.g. 65536, 512K, 64M or 1G)"))?;
    match number.checked_mul(1 << shift) {
        Some(0) => Err(format!("{text:?}: a size must be more than zero bytes")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{text:?} is too large a size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        host: HostArgs,
    }

    #[test]
    fn flags_not_given_keep_the_simulators_defaults() {
        let args = Args::parse_from(["sim"]);
        let mut host = HostConfig::new("127.0.0.1:5000".parse().unwrap());
        host.backlog = 7;
        args.host.apply(&mut host);
        assert_eq!(host.listen.port(), 5000);
        assert_eq!(host.backlog, 7);
        assert_eq!(host.time_scale, 1.0);
        assert_eq!(args.host.log_format, LogFormat::Text);
    }

    #[test]
    fn every_host_flag_is_accepted() {
        let args = Args::parse_from([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--backlog",
            "64",
            "--max-connections",
            "3",
            "--time-scale",
            "0",
            "-vv",
            "--log-format",
            "json",
        ]);
        let mut host = HostConfig::loopback();
        args.host.apply(&mut host);
        assert_eq!((host.backlog, host.max_connections), (64, 3));
        assert_eq!(host.frame_budget, labwire_net::DEFAULT_FRAME_BUDGET);
        assert_eq!(host.idle_timeout, None);
        assert!(host.clock().now().is_zero());
        assert_eq!(args.host.verbose, 2);
        assert_eq!(args.host.log_format, LogFormat::Json);
    }

    #[test]
    fn scenario_and_control_flags() {
        let args = Args::parse_from(["sim", "--scenario", "s.yaml", "--control", "127.0.0.1:0"]);
        assert_eq!(args.host.scenario, Some(PathBuf::from("s.yaml")));
        assert_eq!(args.host.control, Some("127.0.0.1:0".parse().unwrap()));
        assert!(!args.host.control_allow_remote);
        // The control channel lists connections; without it nobody pays for the list.
        let mut host = HostConfig::loopback();
        args.host.apply(&mut host);
        assert!(host.track_connections);
        let mut host = HostConfig::loopback();
        Args::parse_from(["sim"]).host.apply(&mut host);
        assert!(!host.track_connections);
        // Allowing remote control needs a control address.
        let error = Args::try_parse_from(["sim", "--control-allow-remote"]).err();
        assert_eq!(error.map(|e| e.exit_code()), Some(2));
    }

    #[cfg(feature = "control")]
    #[test]
    fn a_remote_control_address_needs_the_explicit_flag() {
        let local = Args::parse_from(["sim", "--control", "[::1]:0"]);
        assert!(local.host.control_config().unwrap().is_some());
        let remote = Args::parse_from(["sim", "--control", "0.0.0.0:7000"]);
        let error = remote.host.control_config().unwrap_err();
        assert!(error.contains("--control-allow-remote"), "{error}");
        let allowed =
            Args::parse_from(["sim", "--control", "0.0.0.0:7000", "--control-allow-remote"]);
        assert!(allowed.host.control_config().unwrap().unwrap().allow_remote);
        assert_eq!(Args::parse_from(["sim"]).host.control_config(), Ok(None));
    }

    #[test]
    fn a_time_scale_is_a_finite_number_of_zero_or_more() {
        assert!(Args::try_parse_from(["sim", "--speed", "2.5"]).is_ok());
        for bad in ["-1", "NaN", "inf", "fast"] {
            let flag = format!("--time-scale={bad}");
            let parsed = Args::try_parse_from(["sim", flag.as_str()]);
            let error = parsed.err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn a_busy_port_is_reported_in_one_shape_with_a_hint() {
        let busy = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let report = cannot_listen("127.0.0.1:6360", &busy);
        let mut lines = report.lines();
        assert_eq!(
            lines.next(),
            Some(format!("error: cannot listen on 127.0.0.1:6360: {busy}").as_str())
        );
        assert!(lines.next().is_some_and(|l| l.starts_with("hint: ")));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(cannot_listen("0.0.0.0:80", &denied).lines().count(), 1);
    }

    #[test]
    fn the_frame_budget_and_idle_timeout_flags_override_the_simulators_defaults() {
        let args = Args::parse_from(["sim", "--frame-budget", "1K", "--idle-timeout", "1s"]);
        let mut host = HostConfig::loopback();
        args.host.apply(&mut host);
        assert_eq!(host.frame_budget, 1024);
        assert_eq!(host.server_config().frame_budget, 1024);
        assert_eq!(host.idle_timeout, Some(Duration::from_secs(1)));
        let own = labwire_net::Exchange {
            idle_timeout: Some(Duration::from_secs(30)),
            ..labwire_net::Exchange::new()
        };
        assert_eq!(
            host.exchange(own).idle_timeout,
            Some(Duration::from_secs(1))
        );
        // Bare seconds, as every duration flag.
        let args = Args::parse_from(["sim", "--idle-timeout", "2.5"]);
        assert_eq!(args.host.idle_timeout, Some(Duration::from_millis(2500)));
        for bad in [
            ["--idle-timeout", "0"],
            ["--idle-timeout", "soon"],
            ["--frame-budget", "0"],
            ["--frame-budget", "-1"],
            ["--frame-budget", "64X"],
        ] {
            let parsed = Args::try_parse_from(["sim", bad[0], bad[1]]);
            let error = parsed.err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn sizes_read_bytes_or_binary_suffixes() {
        assert_eq!(byte_size("65536"), Ok(65536));
        assert_eq!(byte_size("1K"), Ok(1024));
        assert_eq!(byte_size("512k"), Ok(512 * 1024));
        assert_eq!(byte_size("64M"), Ok(64 << 20));
        assert_eq!(byte_size("64MiB"), Ok(64 << 20));
        assert_eq!(byte_size(" 1G "), Ok(1 << 30));
        assert_eq!(byte_size("1 G"), Ok(1 << 30));
        let too_large = format!("{}G", usize::MAX);
        for bad in [
            "",
            "0",
            "0K",
            "K",
            "1.5M",
            "-1",
            "1T",
            "1KB",
            too_large.as_str(),
        ] {
            assert!(byte_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_seconds_or_milliseconds() {
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["-1", "soon", "NaN", "1e300"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
