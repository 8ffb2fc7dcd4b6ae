//! Deadlines bytes cannot reset (issue 16): a client trickling bytes, or sending only what the
//! server cannot understand, loses its connection within the documented limits, and an idle
//! connection is closed after its idle limit, while a well-behaved probe is answered within 1 s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arkeo_sim::ArkeoSim;
use labwire_tests::TEST_DEADLINE;
use pekat_sim::PekatSim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

async fn connect(addr: SocketAddr) -> TcpStream {
    labwire_net::connect(addr, TEST_DEADLINE).await.unwrap()
}

/// Sends `byte` every `every` until the server closes the connection; how long that took
/// (`None`: still open after `limit`). What the server answers meanwhile is read and dropped.
async fn trickle(
    s: &mut TcpStream,
    byte: u8,
    every: Duration,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 256];
    while started.elapsed() < limit {
        if s.write_all(&[byte]).await.is_err() {
            return Some(started.elapsed());
        }
        // An answer is read and dropped; no answer within `every` is fine too.
        if let Ok(Ok(0) | Err(_)) = timeout(every, s.read(&mut sink)).await {
            return Some(started.elapsed());
        }
    }
    None
}

/// Waits for the server to close `s`; how long that took (`None`: not within `limit`).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 256];
    timeout(limit, async {
        loop {
            if let Ok(0) | Err(_) = s.read(&mut sink).await {
                return started.elapsed();
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn arkeo_sim_closes_a_trickled_frame_at_its_deadline_and_an_idle_connection() {
    let sim = ArkeoSim::builder()
        .frame_timeout(Duration::from_millis(800))
        .idle_timeout(Some(Duration::from_secs(1)))
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let probe = arkeo_proto::Client::builder(addr)
        .call_timeout(Duration::from_secs(1))
        .build();
    let mut idle = connect(addr).await;
    // A frame header, then one byte every 200 ms: each byte must not extend the deadline.
    let mut loris = connect(addr).await;
    loris.write_all(&100u32.to_be_bytes()).await.unwrap();
    let cut = trickle(
        &mut loris,
        b' ',
        Duration::from_millis(200),
        Duration::from_secs(8),
    )
    .await;
    assert!(
        cut.is_some_and(|t| t < Duration::from_secs(3)),
        "a trickled frame lived {cut:?}"
    );
    probe.available_routines().await.unwrap();
    // The idle connection was opened before: it is gone after its 1 s.
    let gone = closed_within(&mut idle, TEST_DEADLINE).await;
    assert!(gone.is_some(), "an idle connection stayed open");
    probe.available_routines().await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn pekat_sim_closes_a_connection_that_sends_only_what_it_cannot_understand() {
    let sim = PekatSim::builder()
        .idle_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    // One byte at a time: each is answered (the dialect's error, once overdue), but none is a
    // request; before, every answer restarted the idle limit and the connection lived forever.
    let mut loris = connect(addr).await;
    let cut = trickle(
        &mut loris,
        b'x',
        Duration::from_millis(400),
        Duration::from_secs(8),
    )
    .await;
    assert!(
        cut.is_some_and(|t| t < Duration::from_secs(4)),
        "a connection sending garbage lived {cut:?}"
    );
    // A well-behaved client is answered within 1 s meanwhile, and keeps its connection.
    let mut probe = connect(addr).await;
    for _ in 0..3 {
        probe.write_all(b"status:C:\\nothing").await.unwrap();
        let mut answer = [0u8; 128];
        let n = timeout(Duration::from_secs(1), probe.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
    }
    sim.shutdown().await;
}
