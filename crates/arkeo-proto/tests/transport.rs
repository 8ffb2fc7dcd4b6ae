//! The client over streams other than TCP (`tokio::io::duplex`), served by the crate's own
//! `server::serve_connection`; and the `arkeo.call` span.
#![cfg(all(feature = "client", feature = "server"))]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arkeo_proto::server::{self, ServerBuilder, Service};
use arkeo_proto::{Client, Connector, Request, Response, Target, codes};
use serde_json::json;
use tokio::io::DuplexStream;
use tokio::time::timeout;

const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// Knows `MAIN GetActiveRoutine` (and counts the requests it answers); refuses the rest.
#[derive(Default)]
struct Device {
    answered: AtomicUsize,
}

impl Service for Device {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
        match (&request.target, request.command.as_str()) {
            (Target::Main, "GetActiveRoutine") => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                Response::ok(json!({ "routine": "JV" }), request.request_id)
            }
            _ => Response::error(
                codes::UNKNOWN_COMMAND,
                "Unknown command",
                request.request_id,
            ),
        }
    }
}

/// `device` serving the other end of a duplex pair, in a task of its own.
fn serve(device: &Arc<Device>) -> DuplexStream {
    let (client, mut server) = tokio::io::duplex(1024);
    let device = Arc::clone(device);
    tokio::spawn(async move {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = ServerBuilder::new(peer);
        server::serve_connection(&mut server, peer, device, &config).await;
    });
    client
}

#[tokio::test]
async fn a_kept_connection_over_one_stream_handed_over() {
    let device = Arc::new(Device::default());
    let client = Client::builder(Connector::once(serve(&device))).build();
    for _ in 0..3 {
        let routine = timeout(TEST_DEADLINE, client.active_routine())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(routine.as_deref(), Some("JV"));
    }
    // A refusal leaves the connection as it was: the one stream serves on.
    let err = client
        .call(Request::new(Target::Main, "Reboot"))
        .await
        .unwrap_err();
    assert_eq!(
        err.device_error().and_then(|e| e.code()),
        Some(codes::UNKNOWN_COMMAND)
    );
    assert_eq!(
        client.active_routine().await.unwrap().as_deref(),
        Some("JV")
    );
    assert_eq!(device.answered.load(Ordering::Relaxed), 4);
    assert_eq!(client.peer(), "attached stream");
}

#[tokio::test]
async fn an_eager_client_over_one_stream_uses_it_for_its_calls() {
    let device = Arc::new(Device::default());
    let client = timeout(
        TEST_DEADLINE,
        Client::connect(Connector::once(serve(&device))),
    )
    .await
    .unwrap()
    .unwrap();
    for _ in 0..2 {
        client.active_routine().await.unwrap();
    }
    assert_eq!(device.answered.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn the_users_function_opens_a_connection_per_reconnect() {
    let device = Arc::new(Device::default());
    let opened = Arc::new(AtomicUsize::new(0));
    let connector = {
        let (device, opened) = (Arc::clone(&device), Arc::clone(&opened));
        Connector::from_fn("duplex device", move || {
            opened.fetch_add(1, Ordering::Relaxed);
            let stream = serve(&device);
            async move { Ok(stream) }
        })
    };
    let client = Client::builder(connector).build();
    for _ in 0..3 {
        timeout(TEST_DEADLINE, client.active_routine())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(opened.load(Ordering::Relaxed), 1);
    // Dropped, the connection is opened again by the same function.
    client.disconnect().await;
    client.active_routine().await.unwrap();
    assert_eq!(opened.load(Ordering::Relaxed), 2);
    assert_eq!(client.peer(), "duplex device");
}

#[tokio::test]
async fn a_stream_handed_over_once_is_not_opened_again() {
    let device = Arc::new(Device::default());
    let client = Client::builder(Connector::once(serve(&device))).build();
    client.active_routine().await.unwrap();
    client.disconnect().await;
    let err = timeout(TEST_DEADLINE, client.active_routine())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, arkeo_proto::Error::Connect { .. }), "{err:?}");
    assert!(err.is_connection_fatal() && !err.is_timeout());
}

#[tokio::test]
async fn a_stream_that_never_opens_is_a_connect_timeout() {
    let connector = Connector::from_fn("never", || {
        std::future::pending::<std::io::Result<DuplexStream>>()
    });
    let client = Client::builder(connector)
        .connect_timeout(Duration::from_millis(50))
        .build();
    let err = timeout(TEST_DEADLINE, client.active_routine())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connection_fatal(), "{err:?}");
    assert!(
        labwire_net::error_chain(&err).starts_with("cannot connect to never: "),
        "{err}"
    );
}

/// A device that never answers: the call ends at its timeout, whatever the stream.
#[tokio::test(start_paused = true)]
async fn a_silent_stream_is_a_call_timeout() {
    let (client_end, _silent) = tokio::io::duplex(1024);
    let client = Client::builder(Connector::once(client_end))
        .call_timeout(Duration::from_secs(2))
        .build();
    let err = client.active_routine().await.unwrap_err();
    assert!(
        matches!(err, arkeo_proto::Error::Timeout(t) if t == Duration::from_secs(2)),
        "{err:?}"
    );
}

/// Records the spans opened, with their fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let mut fields = Fields(attrs.metadata().name().to_owned());
        attrs.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test]
async fn every_call_runs_in_an_arkeo_call_span_with_peer_and_request_id() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _default = tracing::subscriber::set_default(subscriber);

    let device = Arc::new(Device::default());
    let client = Client::builder(Connector::once(serve(&device))).build();
    let request = Request::new(Target::Main, "GetActiveRoutine").with_request_id(4242);
    client.call(request).await.unwrap();
    client.active_routine().await.unwrap();
    let spans = spans.0.lock().unwrap().clone();
    let calls: Vec<_> = spans
        .iter()
        .filter(|s| s.starts_with("arkeo.call"))
        .collect();
    assert_eq!(calls.len(), 2, "{spans:?}");
    assert!(calls[0].contains(r#"peer="attached stream""#), "{calls:?}");
    assert!(calls[0].contains("request_id=4242"), "{calls:?}");
    assert!(
        calls[0].contains(r#"command="GetActiveRoutine""#),
        "{calls:?}"
    );
    assert!(calls[1].contains("request_id=1"), "{calls:?}");
    let connections = spans
        .iter()
        .filter(|s| s.starts_with("arkeo.connection"))
        .count();
    assert_eq!(connections, 1, "{spans:?}");
}
