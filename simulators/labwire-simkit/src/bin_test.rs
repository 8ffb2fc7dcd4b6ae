//! Running a simulator binary in its own tests (feature `bin-test`).
//!
//! [`SimProcess`] spawns the binary, reads the `listening on <addr>` line it prints first, and
//! stops it with SIGTERM (through the `kill` program, so no `libc`), each step under a
//! deadline, so that a broken binary fails the test instead of hanging it. A process still
//! running when its `SimProcess` is dropped (a failed assertion) is killed.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long each step may take by default: the first line, the exit after a signal.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running simulator binary; killed when dropped.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    addr: SocketAddr,
    lines: Receiver<String>,
    deadline: Duration,
}

impl SimProcess {
    /// Spawns `program` with `args` (stdin and stderr closed, `RUST_LOG` unset) and waits up
    /// to [`DEADLINE`] for its first stdout line, `listening on <addr>`.
    ///
    /// # Errors
    /// When the program cannot be started, or its first line is missing, late or not an
    /// announcement (the process is killed then).
    pub fn spawn<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> io::Result<Self> {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        Self::spawn_command(command)
    }

    /// Spawns a prepared `command` (e.g. with stderr piped, to read the logs through
    /// [`SimProcess::child_mut`]); its stdout is taken over to read the announcement. Waits up
    /// to [`DEADLINE`] for the first stdout line, `listening on <addr>`.
    ///
    /// # Errors
    /// As [`SimProcess::spawn`].
    pub fn spawn_command(mut command: Command) -> io::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the child's stdout is not piped"));
        };
        let (tx, lines) = mpsc::channel();
        // Reads every line until the process closes its stdout, so that the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            deadline: DEADLINE,
        };
        // On an error the process is dropped, which kills the child.
        process.addr = process.next_addr()?;
        Ok(process)
    }

    /// Uses `deadline` instead of [`DEADLINE`] for the steps from now on.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The address announced on the first line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child process, e.g. to take a piped stderr.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The next stdout line, waiting up to the deadline.
    ///
    /// # Errors
    /// `TimedOut` when no line comes in time; `UnexpectedEof` when stdout was closed.
    pub fn next_line(&mut self) -> io::Result<String> {
        match self.lines.recv_timeout(self.deadline) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no stdout line within {:?}", self.deadline),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stdout closed",
            )),
        }
    }

    /// Reads the next stdout line, which must be `listening on <addr>`, and returns the
    /// address (a fleet of simulators in one process announces each).
    ///
    /// # Errors
    /// As [`SimProcess::next_line`]; `InvalidData` when the line is something else.
    pub fn next_addr(&mut self) -> io::Result<SocketAddr> {
        let line = self.next_line()?;
        line.trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected `listening on <addr>`, got {line:?}"),
                )
            })
    }

    /// Sends `signal` (a name such as `TERM` or `INT`) with `kill -<signal> <pid>`.
    ///
    /// # Errors
    /// When `kill` cannot be run or fails.
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{signal} {} failed: {status}",
                self.id()
            )))
        }
    }

    /// Waits up to the deadline for the process to exit.
    ///
    /// # Errors
    /// `TimedOut` when it is still running after the deadline (it is killed when dropped).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() >= self.deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("still running {:?} after the signal", self.deadline),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and waits up to the deadline for the exit.
    ///
    /// # Errors
    /// As [`SimProcess::signal`] and [`SimProcess::wait`].
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        self.signal("TERM")?;
        self.wait()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        // Already exited (and reaped) after `wait`: then this does nothing.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `program` with `args` (stdin closed) as a command line it must refuse: within
/// [`DEADLINE`] it exits with status 2 (usage, as FAMILY.md says for bad flags and files) and
/// prints nothing on stdout. Returns its stderr, for the test to check the reason.
///
/// # Errors
/// When the program cannot be started, is still running after the deadline (`TimedOut`; it is
/// killed), exits with another status, or prints on stdout — each naming the arguments and
/// what the program said.
pub fn usage_error<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> io::Result<String> {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read both pipes as they fill, so that a long message cannot block the exit.
    let read = |pipe: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{args:?}: still running after {DEADLINE:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let joined = |reader: std::thread::JoinHandle<String>| {
        reader
            .join()
            .map_err(|_| io::Error::other("a pipe reader panicked"))
    };
    let (stdout, stderr) = (joined(stdout)?, joined(stderr)?);
    if status.code() != Some(2) || !stdout.is_empty() {
        return Err(io::Error::other(format!(
            "{args:?}: expected status 2 and nothing on stdout, got {status}; \
             stdout: {stdout:?}; stderr: {stderr}"
        )));
    }
    Ok(stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> io::Result<SimProcess> {
        SimProcess::spawn("sh", &["-c", script])
    }

    #[test]
    fn reads_the_announced_address_and_stops_the_process_with_sigterm() {
        // The trap is set before the announcement, so SIGTERM cannot come too early.
        let mut sim = sh("trap 'exit 0' TERM; echo 'listening on 127.0.0.1:4321'; \
             echo 'listening on 127.0.0.1:4322'; while :; do sleep 0.05; done")
        .unwrap();
        assert_eq!(sim.addr(), "127.0.0.1:4321".parse().unwrap());
        assert_eq!(sim.next_addr().unwrap(), "127.0.0.1:4322".parse().unwrap());
        assert!(sim.terminate().unwrap().success());
    }

    #[test]
    fn another_first_line_is_an_error() {
        let error = sh("echo hello; sleep 5").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("hello"), "{error}");
    }

    #[test]
    fn a_silent_process_times_out_and_a_closed_stdout_is_eof() {
        let mut sim = sh("echo 'listening on [::1]:80'; sleep 5")
            .unwrap()
            .with_deadline(Duration::from_millis(100));
        assert_eq!(sim.next_line().unwrap_err().kind(), io::ErrorKind::TimedOut);
        let error = sh("exec >&-; sleep 5").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_process_that_ignores_sigterm_times_out_and_is_killed_on_drop() {
        let sim = sh("trap '' TERM; echo 'listening on 127.0.0.1:1'; \
             while :; do sleep 0.05; done")
        .unwrap()
        .with_deadline(Duration::from_millis(300));
        let pid = sim.id();
        let error = sim.terminate().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        // Dropped by `terminate`: killed and reaped, so the pid is gone.
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success());
    }

    #[test]
    fn a_usage_error_is_status_2_with_nothing_on_stdout() {
        let refused = usage_error("sh", &["-c", "echo 'error: bad flag' >&2; exit 2"]).unwrap();
        assert_eq!(refused, "error: bad flag\n");
        for script in ["exit 1", "echo listening; exit 2", "exit 0"] {
            assert!(usage_error("sh", &["-c", script]).is_err(), "{script}");
        }
    }
}
