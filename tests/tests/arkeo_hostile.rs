//! Hostile and broken frames sent to arkeo-sim over raw sockets, while a well-behaved client
//! keeps working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arkeo_proto::{Client, Response, codes, wire};
use arkeo_sim::ArkeoSim;
use labwire_tests::{TEST_DEADLINE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

async fn raw(addr: SocketAddr) -> TcpStream {
    labwire_net::connect(addr, TEST_DEADLINE).await.unwrap()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

async fn read_response(stream: &mut TcpStream) -> Response {
    timeout(TEST_DEADLINE, async {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await.unwrap();
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut payload).await.unwrap();
        wire::decode_response(&payload).unwrap()
    })
    .await
    .unwrap()
}

/// Waits until the peer closes the connection (EOF or reset), within the test deadline.
async fn assert_closed(stream: &mut TcpStream) {
    let mut sink = [0u8; 64];
    let closed = timeout(TEST_DEADLINE, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the simulator should have closed the connection"
    );
}

/// A client polling in the background; counts its successful calls and flags any failure.
struct Bystander {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    fn start(addr: SocketAddr) -> Self {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let client = Client::builder(addr).build();
        let task = tokio::spawn({
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.available_routines().await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            failed.store(true, Ordering::Relaxed);
                            return;
                        }
                    };
                    tokio::task::yield_now().await;
                }
            }
        });
        Self {
            ok,
            failed,
            stop,
            task,
        }
    }

    async fn finish(self) {
        let before = self.ok.load(Ordering::Relaxed);
        // It must still make progress after the attacks.
        assert!(
            eventually(TEST_DEADLINE, || self.ok.load(Ordering::Relaxed)
                > before + 5)
            .await
        );
        self.stop.store(true, Ordering::Relaxed);
        timeout(TEST_DEADLINE, self.task).await.unwrap().unwrap();
        assert!(
            !self.failed.load(Ordering::Relaxed),
            "the well-behaved client saw an error"
        );
    }
}

#[tokio::test]
async fn hostile_frames_are_handled_without_disturbing_other_clients() {
    let sim = ArkeoSim::builder()
        .frame_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let addr = sim.local_addr();
    let bystander = Bystander::start(addr);
    assert!(eventually(TEST_DEADLINE, || bystander.ok.load(Ordering::Relaxed) > 0).await);

    // A header claiming 4 GiB: unreadable, so the connection is closed at once.
    let mut s = raw(addr).await;
    s.write_all(&[0xFF, 0xFF, 0xFF, 0xFF]).await.unwrap();
    assert_closed(&mut s).await;

    // Readable frames with bad payloads get a protocol error reply, and the connection goes on.
    let mut s = raw(addr).await;
    s.write_all(&frame(b"hello, garbage")).await.unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(
        r.error.as_ref().and_then(|e| e.code),
        Some(codes::INVALID_JSON)
    );
    s.write_all(&frame(&[0xC3, 0x28, 0xFF])).await.unwrap();
    assert_eq!(
        read_response(&mut s).await.error.and_then(|e| e.code),
        Some(codes::INVALID_JSON)
    );
    s.write_all(&frame(b"")).await.unwrap();
    assert_eq!(
        read_response(&mut s).await.error.and_then(|e| e.code),
        Some(codes::INVALID_JSON)
    );
    s.write_all(&frame(br#"{"target":"MAIN","request_id":5}"#))
        .await
        .unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(r.error.and_then(|e| e.code), Some(codes::INVALID_REQUEST));
    assert_eq!(r.request_id, Some(5));
    s.write_all(&frame(b"[1,2,3]")).await.unwrap();
    assert_eq!(
        read_response(&mut s).await.error.and_then(|e| e.code),
        Some(codes::INVALID_REQUEST)
    );
    // ... and still serves a valid request, written in tiny pieces.
    for byte in frame(br#"{"target":"MAIN","command":"GetActiveRoutine","request_id":6}"#) {
        s.write_all(&[byte]).await.unwrap();
    }
    let r = read_response(&mut s).await;
    assert!(!r.is_error(), "{r:?}");
    assert_eq!(r.request_id, Some(6));

    // A truncated frame, then the sender vanishes.
    let mut s = raw(addr).await;
    s.write_all(&frame(&[b'x'; 100])[..20]).await.unwrap();
    s.shutdown().await.unwrap();
    assert_closed(&mut s).await;

    // A truncated frame from a sender that stays connected: closed at the frame deadline.
    let mut s = raw(addr).await;
    s.write_all(&frame(&[b'x'; 100])[..10]).await.unwrap();
    assert_closed(&mut s).await;

    // Random bytes.
    let mut s = raw(addr).await;
    s.write_all(&[
        0x00, 0x00, 0x00, 0x03, b'{', 0xFE, 0x01, 0x7F, 0x80, 0x90, 0x00,
    ])
    .await
    .unwrap();
    assert_eq!(
        read_response(&mut s).await.error.and_then(|e| e.code),
        Some(codes::INVALID_JSON)
    );
    drop(s);

    bystander.finish().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_with_bare_nan_is_accepted() {
    let sim = ArkeoSim::builder().start().await.unwrap();
    let mut s = raw(sim.local_addr()).await;
    s.write_all(&frame(
        br#"{"target":"TMPCTL","command":"SetController","parameter":{"address":1,"channel":2,"offset":NaN},"request_id":1}"#,
    ))
    .await
    .unwrap();
    let r = read_response(&mut s).await;
    assert!(!r.is_error(), "{r:?}");
}

#[tokio::test]
async fn idle_connections_are_not_timed_out_between_requests() {
    let sim = ArkeoSim::builder()
        .frame_timeout(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr()).connect().await.unwrap();
    // Idle time is the behaviour under test here, not a stand-in for a condition: stay quiet
    // for five frame timeouts.
    tokio::time::sleep(Duration::from_millis(250)).await;
    client.available_routines().await.unwrap();
    assert_eq!(sim.connection_count(), 1, "the first connection was kept");
}
