//! How a failed run ends: one plain line on stderr (each cause once, never a backtrace), a
//! hint where the symptom is typical, and an exit status that says what kind of failure it
//! was, the same for every subcommand.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// The exit statuses of `labwire`, documented in the README and in `labwire --help`
/// (`AFTER_HELP` in main.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// 1: the device answered, and refused (an error code, `not-found`, `BOARDIO_ERROR`, …).
    Refused = 1,
    /// 2: the command line is wrong (a bad flag, a value that is not JSON, a request the
    /// client will not send, a file it names that cannot be read).
    Usage = 2,
    /// 3: the device could not be reached (refused, unreachable, no such host, or the
    /// connect timeout passed), or a listener could not be opened where asked.
    Connect = 3,
    /// 4: no answer in time, or the device did not reach the state waited for in time.
    Timeout = 4,
    /// 5: the exchange failed on the way: the answer is not a valid message, the connection
    /// was cut, the device answered something that does not answer the request.
    Protocol = 5,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// A wrong command line found after parsing (a value that is not JSON, a negative duration):
/// exit status 2, as for a flag `clap` refuses.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error with `message`.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// The exit status for `error`: from the typed client error it carries (as `docs/clients.md`
/// lists the variants), else from an I/O error in its chain.
pub(crate) fn status(error: &anyhow::Error) -> Status {
    if error.downcast_ref::<Usage>().is_some() {
        return Status::Usage;
    }
    if let Some(e) = error.downcast_ref::<arkeo_proto::Error>() {
        return arkeo(e);
    }
    if let Some(e) = error.downcast_ref::<pekat_proto::Error>() {
        return pekat(e);
    }
    if let Some(e) = error.downcast_ref::<comet_socket::client::Error>() {
        return comet(e);
    }
    if let Some(e) = error.downcast_ref::<pycom_proto::coordinator::Error>() {
        return pycom(e);
    }
    if error
        .downcast_ref::<labwire_tap::recording::LoadError>()
        .is_some()
    {
        // The recording named on the command line cannot be read or is not one.
        return Status::Usage;
    }
    if let Some(e) = error.downcast_ref::<labwire_tap::replay::ReplayError>() {
        return match e {
            labwire_tap::replay::ReplayError::Bind(e) => io_status(e.kind()),
            _ => Status::Usage,
        };
    }
    let io = error.chain().find_map(|e| e.downcast_ref::<io::Error>());
    io.map_or(Status::Protocol, |e| io_status(e.kind()))
}

/// The status of an I/O error outside the clients: resolving an address, listening (tap,
/// replay, the pycom coordinator's event listener), reading or writing a file named on the
/// command line.
fn io_status(kind: io::ErrorKind) -> Status {
    use io::ErrorKind as K;
    match kind {
        K::TimedOut => Status::Timeout,
        // A file or an address the command line names that cannot be used as asked.
        K::NotFound
        | K::PermissionDenied
        | K::AlreadyExists
        | K::InvalidInput
        | K::InvalidData
        | K::IsADirectory
        | K::NotADirectory => Status::Usage,
        // Refused, unreachable, an address that does not resolve or is taken.
        _ => Status::Connect,
    }
}

/// A connection that could not be made: an address that cannot be used as written (a bad port,
/// a malformed host) is a usage error; refused, unreachable or unresolvable, could not connect.
fn connect_status(source: &io::Error) -> Status {
    if source.kind() == io::ErrorKind::InvalidInput {
        Status::Usage
    } else {
        Status::Connect
    }
}

fn arkeo(error: &arkeo_proto::Error) -> Status {
    use arkeo_proto::Error as E;
    match error {
        E::Device(_) | E::RoutineFailed(_) => Status::Refused,
        E::Encode(_) => Status::Usage,
        E::Connect { source, .. } => connect_status(source),
        E::MeasurementNotStarted { .. } => Status::Timeout,
        e if e.is_timeout() => Status::Timeout,
        _ => Status::Protocol,
    }
}

fn pekat(error: &pekat_proto::Error) -> Status {
    use pekat_proto::{DeviceError, Error as E};
    match error {
        E::Device(DeviceError::Unexpected(_)) => Status::Protocol,
        E::Device(_) => Status::Refused,
        E::Encode(_) => Status::Usage,
        E::Connect { source, .. } => connect_status(source),
        e if e.is_timeout() => Status::Timeout,
        _ => Status::Protocol,
    }
}

fn comet(error: &comet_socket::client::Error) -> Status {
    use comet_socket::client::Error as E;
    match error {
        E::Device(_) => Status::Refused,
        E::Invalid(_) | E::Encode(_) => Status::Usage,
        E::Connect { source, .. } => connect_status(source),
        e if e.is_timeout() => Status::Timeout,
        _ => Status::Protocol,
    }
}

fn pycom(error: &pycom_proto::coordinator::Error) -> Status {
    use pycom_proto::coordinator::Error as E;
    match error {
        E::Device(_) => Status::Refused,
        E::Encode(_) => Status::Usage,
        E::Connect { source, .. } => connect_status(source),
        e if e.is_timeout() => Status::Timeout,
        _ => Status::Protocol,
    }
}

/// `error` as one line: its message and each cause once, joined by `": "` (a cause whose text
/// the line already ends with is not repeated).
pub(crate) fn chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// What to check, where the symptom is typical of a common mistake.
pub(crate) fn hint(error: &anyhow::Error) -> Option<String> {
    use arkeo_proto::DecodeError as ArkeoDecode;
    if let Some(arkeo_proto::Error::Decode(decode)) = error.downcast_ref::<arkeo_proto::Error>() {
        return match decode {
            ArkeoDecode::FrameTooLarge { .. } => Some(
                "is this really an ARKEO server? An ARKEO answer starts with its length in 4 \
                 bytes; these 4 bytes claim an absurd length (another protocol's port, or a \
                 text server?)"
                    .to_owned(),
            ),
            ArkeoDecode::InvalidUtf8(_) | ArkeoDecode::InvalidJson(_) => {
                Some("is this really an ARKEO server? The answer is not ARKEO's JSON".to_owned())
            }
            _ => None,
        };
    }
    if let Some(comet_socket::client::Error::Decode(_)) =
        error.downcast_ref::<comet_socket::client::Error>()
    {
        return Some(
            "is this really a COMET socket server? The answer is not COMET's header and JSON"
                .to_owned(),
        );
    }
    let refused = error
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::ConnectionRefused);
    refused.then(|| {
        "nothing listens at that address: is the device (or its simulator) running, and is \
         --addr (or its LABWIRE_*_ADDR variable) right?"
            .to_owned()
    })
}

/// Prints `error` on stderr as `error: <chain>` (and `hint: ...`), and returns its status.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", chain(error));
    if let Some(hint) = hint(error) {
        eprintln!("hint: {hint}");
    }
    status(error).into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::Context as _;

    use super::*;

    fn refused() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused")
    }

    #[test]
    fn each_client_error_kind_has_its_status() {
        let connect = arkeo_proto::Error::Connect {
            peer: "127.0.0.1:9".into(),
            source: refused(),
        };
        let cases: Vec<(anyhow::Error, Status)> = vec![
            (connect.into(), Status::Connect),
            (
                arkeo_proto::Error::Timeout(Duration::from_secs(1)).into(),
                Status::Timeout,
            ),
            (arkeo_proto::Error::Closed.into(), Status::Protocol),
            (
                pekat_proto::Error::Device(pekat_proto::DeviceError::NotFound).into(),
                Status::Refused,
            ),
            (pekat_proto::Error::Closed.into(), Status::Protocol),
            (
                pycom_proto::coordinator::Error::Timeout(Duration::from_secs(1)).into(),
                Status::Timeout,
            ),
            (
                comet_socket::client::Error::Timeout(Duration::from_secs(1)).into(),
                Status::Timeout,
            ),
            (usage("--settings is not JSON"), Status::Usage),
            (
                anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound))
                    .context("cannot read recording.jsonl"),
                Status::Usage,
            ),
            (
                anyhow::Error::new(io::Error::from(io::ErrorKind::AddrInUse))
                    .context("cannot listen on 127.0.0.1:5001"),
                Status::Connect,
            ),
            (
                anyhow::anyhow!("the demo saw something else"),
                Status::Protocol,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(status(&error), expected, "{error:#}");
        }
    }

    #[test]
    fn context_keeps_the_status_of_the_error_it_wraps() {
        let error = Err::<(), _>(pekat_proto::Error::Connect {
            peer: "x:1".into(),
            source: refused(),
        })
        .context("talking to x:1")
        .unwrap_err();
        assert_eq!(status(&error), Status::Connect);
        let usage = Err::<(), _>(usage("bad"))
            .context("reading flags")
            .unwrap_err();
        assert_eq!(status(&usage), Status::Usage);
    }

    #[test]
    fn the_chain_names_each_cause_once() {
        let error = anyhow::Error::new(refused())
            .context("Connection refused")
            .context("cannot connect to 127.0.0.1:9");
        assert_eq!(
            chain(&error),
            "cannot connect to 127.0.0.1:9: Connection refused"
        );
    }

    #[test]
    fn a_huge_arkeo_length_suggests_another_protocol() {
        let error: anyhow::Error =
            arkeo_proto::Error::Decode(arkeo_proto::DecodeError::FrameTooLarge {
                len: 1_433_299_822,
                max: 1 << 26,
            })
            .into();
        assert!(hint(&error).unwrap().contains("really an ARKEO server"));
        assert_eq!(status(&error), Status::Protocol);
    }
}
