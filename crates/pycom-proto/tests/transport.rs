//! Any transport: the coordinator's requests over `tokio::io::duplex` streams from a
//! `Connector` of the user's, each served by the crate's own node side
//! (`node::serve_stream`); the connector's name in errors; and the `pycom.call` span.
#![cfg(all(feature = "client", feature = "server"))]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labwire_net::Connector;
use pycom_proto::coordinator::Error;
use pycom_proto::node::{self, EventSender, NodeConfig, Request, Service};
use pycom_proto::{Body, Coordinator, Identity};

const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// The node's address as the coordinator knows it: events come from 127.0.0.1 with this port
/// in them. Nothing listens there: requests go over duplex streams.
const NODE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5999);

/// A node that answers every command with `you said: <command>`, as an `output` event sent to
/// the coordinator's listener.
#[derive(Clone)]
struct Echo(EventSender);

impl Service for Echo {
    type Request = Request;
    type Response = ();

    async fn call(&self, _peer: SocketAddr, request: Request) {
        if let Body::Cmd { command } = &request.message.body {
            let sender = self.0.clone();
            let to = request.reply_addr();
            let output = Body::Output {
                output: format!("you said: {command}\n"),
            };
            tokio::spawn(async move { sender.send(to, output).await });
        }
    }
}

/// A connector making, for every request, a duplex pair whose far end the node serves.
fn duplex_node(connections: Arc<AtomicUsize>) -> impl Fn(SocketAddr) -> Connector {
    let identity = Identity::new(
        "81639cd4",
        "duplex node",
        "127.0.0.1",
        NODE.port(),
        "0",
        false,
    );
    let echo = Echo(EventSender::new(identity));
    move |node: SocketAddr| {
        assert_eq!(node, NODE);
        let echo = echo.clone();
        let connections = Arc::clone(&connections);
        Connector::from_fn("duplex node", move || {
            let echo = echo.clone();
            connections.fetch_add(1, Ordering::Relaxed);
            async move {
                let (near, mut far) = tokio::io::duplex(64 * 1024);
                tokio::spawn(async move {
                    let config = NodeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
                    // The coordinator on the other end is on loopback.
                    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
                    node::serve_stream(&mut far, peer, echo, &config).await;
                    // Dropped: the coordinator sees the close, the request was read.
                });
                Ok::<_, io::Error>(near)
            }
        })
    }
}

fn me() -> Identity {
    Identity::new("7756f193", "transport", "127.0.0.1", 0, "0.1.0", true)
}

#[tokio::test]
async fn requests_go_over_the_users_streams_and_answers_come_back_as_events() {
    let connections = Arc::new(AtomicUsize::new(0));
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connector(duplex_node(Arc::clone(&connections)))
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        let answer =
            tokio::time::timeout(TEST_DEADLINE, coordinator.call(NODE, format!("echo {i}")))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(answer.output, format!("you said: echo {i}\n"));
    }
    // One connection per message, as pycom has it.
    assert_eq!(connections.load(Ordering::Relaxed), 3);
    tokio::time::timeout(TEST_DEADLINE, coordinator.heartbeat(NODE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connections.load(Ordering::Relaxed), 4);
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_connector_that_fails_is_a_connect_error_named_after_it() {
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connector(|_| {
            Connector::from_fn("nowhere", || async {
                Err::<tokio::io::DuplexStream, _>(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "refused",
                ))
            })
        })
        .start()
        .await
        .unwrap();
    let err = coordinator.call(NODE, "echo x").await.unwrap_err();
    assert!(
        matches!(&err, Error::Connect { peer, .. } if peer == "nowhere"),
        "{err:?}"
    );
    assert_eq!(
        labwire_net::error_chain(&err),
        "cannot connect to nowhere: refused"
    );
    coordinator.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_connector_that_never_connects_times_out_at_the_connect_timeout() {
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connect_timeout(Duration::from_secs(2))
        .call_timeout(Duration::from_secs(60))
        .connector(|_| {
            Connector::from_fn("never", || {
                std::future::pending::<io::Result<tokio::io::DuplexStream>>()
            })
        })
        .start()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = coordinator.call(NODE, "echo x").await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_timeout() && err.is_connection_fatal());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    coordinator.shutdown().await;
}

/// Records the spans opened, with their fields (and those recorded later).
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(format!("{:?}:{}", id.into_u64(), attrs.metadata().name()));
        attrs.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let prefix = format!("{:?}:", id.into_u64());
        let mut spans = self.0.lock().unwrap();
        if let Some(span) = spans.iter_mut().rev().find(|s| s.starts_with(&prefix)) {
            let mut fields = Fields(std::mem::take(span));
            values.record(&mut fields);
            *span = fields.0;
        }
    }
}

#[tokio::test]
async fn every_call_runs_in_a_pycom_call_span_with_node_and_command_number() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _default = tracing::subscriber::set_default(subscriber);

    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me())
        .connector(duplex_node(Arc::default()))
        .start()
        .await
        .unwrap();
    for _ in 0..2 {
        tokio::time::timeout(TEST_DEADLINE, coordinator.call(NODE, "echo x"))
            .await
            .unwrap()
            .unwrap();
    }
    coordinator.shutdown().await;
    let spans = spans.0.lock().unwrap().clone();
    let calls: Vec<_> = spans.iter().filter(|s| s.contains(":pycom.call")).collect();
    assert_eq!(calls.len(), 2, "{spans:?}");
    for call in &calls {
        assert!(call.contains(" node=127.0.0.1:5999"), "{calls:?}");
    }
    assert!(calls[0].contains(" command=0"), "{calls:?}");
    assert!(calls[1].contains(" command=1"), "{calls:?}");
}
