//! `pekat_proto::server` over loopback: typed services in both dialects, requests the server
//! answers itself, slow answers and clients that leave, the lower-level connection services.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pekat_proto::server::{CancellationToken, ServerBuilder, ServerHandle, Service};
use pekat_proto::{
    Client, Command, Dialect, Incoming, ProjectState, Reply, Request, Response, server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

/// Every project is running; `start` takes `start_takes` (forever when `None`).
struct Device {
    start_takes: Option<Duration>,
    calls: AtomicU64,
}

impl Device {
    fn new(start_takes: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            start_takes,
            calls: AtomicU64::new(0),
        })
    }
}

impl Service for Device {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match request.command {
            Command::Start => {
                match self.start_takes {
                    Some(takes) => tokio::time::sleep(takes).await,
                    None => std::future::pending().await,
                }
                Response::Done
            }
            Command::Status => Response::Status(ProjectState::Running),
            Command::Stop => Response::Done,
            Command::Switch => Response::Success,
        }
    }
}

fn loopback() -> ServerBuilder {
    ServerBuilder::new().listen(SocketAddr::from(([127, 0, 0, 1], 0)))
}

async fn connect(server: &ServerHandle) -> TcpStream {
    timeout(LIMIT, TcpStream::connect(server.local_addr()))
        .await
        .unwrap()
        .unwrap()
}

/// Reads one answer (each is written in one write; loopback delivers it whole).
async fn answer(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 128];
    let n = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn ask(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    answer(stream).await
}

/// Polls `condition` until it holds or the limit passes.
async fn until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// `Arc<Device>` as the service, so the test keeps a handle on it.
struct Shared(Arc<Device>);

impl Service for Shared {
    type Request = Request;
    type Response = Response;

    async fn call(&self, peer: SocketAddr, request: Request) -> Response {
        self.0.call(peer, request).await
    }
}

#[tokio::test]
async fn a_typed_service_answers_in_either_dialect_and_never_sees_bad_requests() {
    for (dialect, ok, echoed, bad) in [
        (Dialect::V3_18, "running", "", "Unknown command"),
        (
            Dialect::V3_19,
            "suc:running",
            "7.suc:success",
            "5.err:invalid-command",
        ),
    ] {
        let device = Device::new(Some(Duration::ZERO));
        let server = loopback()
            .dialect(dialect)
            .serve(Shared(Arc::clone(&device)))
            .await
            .unwrap();
        let mut s = connect(&server).await;
        let sep = char::from(dialect.separator());
        assert_eq!(
            ask(&mut s, format!("status{sep}C:\\p").as_bytes()).await,
            ok
        );
        if dialect.supports_ids() {
            assert_eq!(ask(&mut s, b"7.switch|C:\\p").await, echoed);
        }
        assert_eq!(ask(&mut s, b"5.launch|x").await, bad);
        assert_eq!(ask(&mut s, b"\xff\xfe").await, bad.trim_start_matches("5."));
        let served = if dialect.supports_ids() { 2 } else { 1 };
        assert_eq!(device.calls.load(Ordering::Relaxed), served);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn the_crates_client_talks_to_a_served_device() {
    let server = loopback()
        .dialect(Dialect::V3_19)
        .one_request_per_connection(true)
        .serve(Shared(Device::new(Some(Duration::from_millis(20)))))
        .await
        .unwrap();
    let client = Client::builder(server.local_addr().to_string())
        .dialect(Dialect::V3_19)
        .request_ids(true)
        .keep_connection(true)
        .call_timeout(LIMIT)
        .blocking_timeout(LIMIT)
        .build();
    client.start(r"C:\p").await.unwrap();
    assert_eq!(client.status(r"C:\p").await.unwrap(), ProjectState::Running);
    client.switch(r"C:\p").await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_during_a_slow_answer_frees_its_connection() {
    let device = Device::new(None);
    let server = loopback().serve(Shared(Arc::clone(&device))).await.unwrap();
    let mut s = connect(&server).await;
    s.write_all(b"start:C:\\p").await.unwrap();
    assert!(until(|| device.calls.load(Ordering::Relaxed) == 1).await);
    assert_eq!(server.connection_count(), 1);
    drop(s);
    assert!(until(|| server.connection_count() == 0).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_half_closes_after_asking_still_gets_a_slow_answer() {
    let server = loopback()
        .serve(Shared(Device::new(Some(Duration::from_millis(100)))))
        .await
        .unwrap();
    for request in [&b"start:C:\\p"[..], b"sta"] {
        let mut s = connect(&server).await;
        s.write_all(request).await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = String::new();
        timeout(LIMIT, s.read_to_string(&mut got))
            .await
            .unwrap()
            .unwrap();
        // A request cut short by the half-close is answered as it is.
        let expected = if request == b"sta" {
            "Unknown command"
        } else {
            "done"
        };
        assert_eq!(got, expected);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn serve_until_stops_with_its_token() {
    let token = CancellationToken::new();
    let config = server::ServerConfig {
        listener: labwire_net::ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..server::ServerConfig::default()
    };
    let handle = server::serve_until(config, Shared(Device::new(None)), token.clone())
        .await
        .unwrap();
    let mut s = connect(&handle).await;
    assert_eq!(ask(&mut s, b"status:x").await, "running");
    token.cancel();
    let mut rest = Vec::new();
    let read = timeout(LIMIT, s.read_to_end(&mut rest)).await.unwrap();
    assert!(read.is_err() || rest.is_empty());
    timeout(LIMIT, handle.shutdown()).await.unwrap();
}

/// Answers nothing to `stop`, the rest as a 3.18 device would; counts its connections.
struct Quiet;

impl Service for Quiet {
    type Request = Incoming;
    type Response = Option<Reply>;

    async fn call(&self, _peer: SocketAddr, incoming: Incoming) -> Option<Reply> {
        match incoming {
            Ok(request) if request.command == Command::Stop => None,
            Ok(request) => Some(Reply::to(&request, Response::Done)),
            Err(bad) => Some(bad.reply()),
        }
    }
}

#[tokio::test]
async fn a_connection_service_may_answer_nothing_and_is_made_per_connection() {
    let connections = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&connections);
    let quiet = Arc::new(Quiet);
    let server = loopback()
        .serve_connections(
            move |_peer| {
                counted.fetch_add(1, Ordering::Relaxed);
                Arc::clone(&quiet)
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let mut s = connect(&server).await;
    s.write_all(b"stop:x").await.unwrap();
    // Nothing comes for `stop`; the next request's answer is the next thing read.
    let mut buf = [0u8; 16];
    assert!(
        timeout(Duration::from_millis(100), s.read(&mut buf))
            .await
            .is_err()
    );
    assert_eq!(ask(&mut s, b"start:x").await, "done");
    let _second = connect(&server).await;
    assert!(until(|| connections.load(Ordering::Relaxed) == 2).await);
    server.shutdown().await;
}
