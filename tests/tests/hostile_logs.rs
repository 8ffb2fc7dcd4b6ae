//! Warnings about misbehaving peers (issue 16, failure 6): a flood of bad connections is
//! logged as a few rate-limited warnings, not one line each. The policy is the same in every
//! server on labwire-net: a peer's misbehaviour is a `WARN`, rate-limited (before, arkeo-sim
//! logged one line per bad connection, the other simulators none at the default level).

use std::process::Stdio;

use labwire_tests::TEST_DEADLINE;
use labwire_tests::python::simulator_binary;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

/// Bad connections sent (each ends as a misbehaving peer's: a frame over the limit).
const BAD: usize = 300;

#[tokio::test]
async fn a_flood_of_bad_connections_logs_one_burst_of_warnings() {
    let mut child = Command::new(simulator_binary("arkeo-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = timeout(TEST_DEADLINE, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..BAD {
        let mut s = labwire_net::connect(addr, TEST_DEADLINE).await.unwrap();
        // A header claiming 4 GiB: over the frame limit, the connection is closed.
        s.write_all(&[0xFF; 4]).await.unwrap();
        let mut rest = Vec::new();
        let _ = timeout(TEST_DEADLINE, s.read_to_end(&mut rest)).await;
    }
    child.start_kill().unwrap();
    let mut stderr = String::new();
    timeout(
        TEST_DEADLINE,
        child.stderr.take().unwrap().read_to_string(&mut stderr),
    )
    .await
    .unwrap()
    .unwrap();
    let _ = child.wait().await;
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    let burst = labwire_net::warn_limit::DEFAULT_BURST as usize;
    // The first burst of the window, and no more (the summary of the rest comes with the first
    // warning of a later window: `warn_limit`'s unit tests).
    assert!(
        warnings.len() == burst,
        "{} warnings for {BAD} bad connections:\n{stderr}",
        warnings.len()
    );
    assert!(stderr.len() < 8 * 1024, "{} bytes of stderr", stderr.len());
}
