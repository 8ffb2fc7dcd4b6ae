//! Stalled large frames (issue 16, failure 1): clients announce large frames, send all but the
//! last byte and wait. The simulator's memory must stay within its frame budget, a
//! well-behaved probe must be answered within 1 s meanwhile, and the memory must come back
//! once the attackers leave.
//!
//! One test in this file: it measures the process's resident memory, which other tests running
//! in the same process would disturb.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arkeo_proto::Client;
use arkeo_sim::ArkeoSim;
use labwire_tests::{TEST_DEADLINE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const MIB: usize = 1024 * 1024;
/// The budget of the test: small, so that the suite is light.
const BUDGET: usize = 4 * MIB;
/// The attackers' frames.
const FRAME: usize = MIB;
/// Attackers: without a budget they would make the simulator hold `ATTACKERS * FRAME`.
const ATTACKERS: usize = 24;
/// What the process may grow by beyond the budget: allocator slack, the probe, the attackers'
/// own socket buffers are not in the process (the kernel holds them).
const MARGIN: usize = 8 * MIB;

/// The process's resident memory, from `/proc/self/statm` (Linux).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// All of an attacker's frame but its last byte: one allocation for every attacker, made
/// before the baseline is measured, so that the measurement sees the simulator's memory and
/// not the attackers' own.
fn body() -> &'static [u8] {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    BODY.get_or_init(|| vec![b' '; FRAME - 1])
}

/// Connects, announces a `FRAME`-byte frame, sends all of it but the last byte, and holds.
async fn stall(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = labwire_net::connect(addr, TEST_DEADLINE).await.ok()?;
    let len = u32::try_from(FRAME).ok()?;
    s.write_all(&len.to_be_bytes()).await.ok()?;
    // The simulator may stop reading (its budget is spent): the rest stays in our buffers, or
    // the write waits; either way the attacker holds on.
    let _ = timeout(Duration::from_millis(500), s.write_all(body())).await;
    Some(s)
}

/// Connects to a COMET server, sends a frame header announcing `FRAME` bytes of content and
/// all of the content but the last byte, and holds.
async fn stall_comet(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = labwire_net::connect(addr, TEST_DEADLINE).await.ok()?;
    let header = format!(
        r#"{{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": {FRAME}}}"#
    );
    let mut head = u16::try_from(header.len()).ok()?.to_be_bytes().to_vec();
    head.extend_from_slice(header.as_bytes());
    s.write_all(&head).await.ok()?;
    let _ = timeout(Duration::from_millis(500), s.write_all(body())).await;
    Some(s)
}

/// A well-behaved client: every call must be answered within 1 s.
async fn probe(client: &Client) {
    let started = Instant::now();
    let answer = timeout(Duration::from_secs(1), client.available_routines()).await;
    assert!(
        matches!(answer, Ok(Ok(_))),
        "the probe was not answered within 1 s: {answer:?} after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_frames_stay_within_the_budget_and_their_memory_comes_back() {
    assert_eq!(labwire_net::DEFAULT_FRAME_BUDGET, 64 * MIB);
    assert_eq!(
        labwire_net::ServerConfig::new("127.0.0.1:0".parse().unwrap()).frame_budget,
        64 * MIB
    );
    let sim = ArkeoSim::builder()
        .frame_budget(BUDGET)
        .max_frame_length(2 * FRAME)
        .frame_timeout(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let client = Client::builder(addr)
        .call_timeout(Duration::from_secs(1))
        .build();
    probe(&client).await;
    body();
    let Some(before) = rss() else {
        eprintln!("no /proc/self/statm: memory not measured");
        return;
    };

    for round in 0..2 {
        let mut attackers = Vec::new();
        for _ in 0..ATTACKERS {
            attackers.extend(stall(addr).await);
            probe(&client).await;
        }
        assert_eq!(attackers.len(), ATTACKERS);
        let during = rss().unwrap_or(0);
        assert!(
            during < before + BUDGET + MARGIN,
            "round {round}: {ATTACKERS} stalled {FRAME}-byte frames grew the process by {} \
             bytes (budget {BUDGET}, margin {MARGIN})",
            during.saturating_sub(before)
        );
        probe(&client).await;
        drop(attackers);
        assert!(eventually(TEST_DEADLINE, || sim.connection_count() <= 1).await);
        probe(&client).await;
    }
    // The memory comes back: after two rounds, no more than the margin is kept (once the
    // closed connections' tasks have dropped their buffers).
    let came_back = eventually(TEST_DEADLINE, || rss().unwrap_or(0) < before + MARGIN).await;
    assert!(
        came_back,
        "after the attackers left the process kept {} bytes",
        rss().unwrap_or(0).saturating_sub(before)
    );

    // A frame within the budget is still served whole, and one larger than it is refused.
    let mut s = labwire_net::connect(addr, TEST_DEADLINE).await.unwrap();
    let payload = format!(
        r#"{{"target":"MAIN","command":"GetActiveRoutine","request_id":7,"pad":"{}"}}"#,
        "x".repeat(FRAME)
    );
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload.as_bytes());
    s.write_all(&frame).await.unwrap();
    let mut header = [0u8; 4];
    timeout(TEST_DEADLINE, s.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    let mut answer = vec![0u8; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut answer).await.unwrap();
    let answer = arkeo_proto::wire::decode_response(&answer).unwrap();
    assert_eq!(answer.request_id, Some(7));
    sim.shutdown().await;

    // The same attack on comet-sim (COMET: a u16 header length, a JSON header, the content).
    let sim = comet_sim::CometSim::builder()
        .frame_budget(BUDGET)
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let comet = comet_socket::Client::builder(addr.to_string())
        .call_timeout(Duration::from_secs(1))
        .build();
    let comet_probe = || async {
        let answer = timeout(
            Duration::from_secs(1),
            comet.send("ECHO", &serde_json::json!(1)),
        )
        .await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "the COMET probe was not answered within 1 s: {answer:?}"
        );
    };
    comet_probe().await;
    body();
    let before = rss().unwrap_or(0);
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        attackers.extend(stall_comet(addr).await);
        comet_probe().await;
    }
    assert_eq!(attackers.len(), ATTACKERS);
    let during = rss().unwrap_or(0);
    assert!(
        during < before + BUDGET + MARGIN,
        "comet-sim: {ATTACKERS} stalled {FRAME}-byte frames grew the process by {} bytes",
        during.saturating_sub(before)
    );
    drop(attackers);
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 0).await);
    comet_probe().await;
    sim.shutdown().await;
}
