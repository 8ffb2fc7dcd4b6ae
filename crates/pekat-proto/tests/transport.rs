//! The client over streams other than TCP (`tokio::io::duplex`), served by labwire-net's
//! `serve_connection` with the crate's `ServerCodec`; and the `pekat.call` span.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labwire_net::service::serve_connection;
use labwire_net::{Connector, Exchange, Service};
use pekat_proto::{
    Client, DeviceError, Dialect, Incoming, ProjectState, Reply, Request, Response, ServerCodec,
};
use tokio::io::DuplexStream;
use tokio::time::timeout;

const TEST_DEADLINE: Duration = Duration::from_secs(10);
const PROJECT: &str = r"C:\Projects\Line 1";

/// One project, running; every other path is not found.
struct Device;

impl Service for Device {
    type Request = Incoming;
    type Response = Reply;

    async fn call(&self, _peer: SocketAddr, incoming: Incoming) -> Reply {
        match incoming {
            Ok(request) if request.path == PROJECT => {
                Reply::to(&request, Response::Status(ProjectState::Running))
            }
            Ok(request) => Reply::to(&request, Response::NotFound),
            Err(bad) => bad.reply(),
        }
    }
}

/// The device serving the other end of a duplex pair, in a task of its own.
fn serve(dialect: Dialect) -> DuplexStream {
    let (client, mut server) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let codec = ServerCodec::new(dialect);
        serve_connection(&mut server, peer, &Device, codec, &Exchange::new()).await;
    });
    client
}

#[tokio::test]
async fn a_connection_per_call_from_the_users_function() {
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let connector = Connector::from_fn("duplex device", move || {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(serve(Dialect::V3_18)) }
    });
    let client = Client::builder(connector).build();
    for _ in 0..3 {
        let state = timeout(TEST_DEADLINE, client.status(PROJECT))
            .await
            .unwrap();
        assert_eq!(state.unwrap(), ProjectState::Running);
    }
    assert_eq!(opened.load(Ordering::Relaxed), 3);
    let err = client.call(Request::status("elsewhere")).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::NotFound));
    assert_eq!(client.peer(), "duplex device");
}

#[tokio::test]
async fn a_kept_client_over_one_stream_handed_over() {
    let connector = Connector::once(serve(Dialect::V3_19));
    let client = Client::builder(connector)
        .dialect(Dialect::V3_19)
        .request_ids(true)
        .keep_connection(true)
        .build();
    for _ in 0..3 {
        let answer = timeout(TEST_DEADLINE, client.call(Request::status(PROJECT)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, Response::Status(ProjectState::Running));
    }
    let reply = client
        .call_reply(Request::status("elsewhere"))
        .await
        .unwrap();
    assert_eq!(reply.response, Response::NotFound);
    assert!(reply.id.is_some());
}

#[tokio::test]
async fn a_stream_that_never_opens_is_a_connect_timeout() {
    let connector = Connector::from_fn("never", || {
        std::future::pending::<std::io::Result<DuplexStream>>()
    });
    let client = Client::builder(connector)
        .connect_timeout(Duration::from_millis(50))
        .build();
    let err = timeout(TEST_DEADLINE, client.status(PROJECT))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connection_fatal(), "{err:?}");
    assert!(
        labwire_net::error_chain(&err).starts_with("cannot connect to never: "),
        "{err}"
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
async fn every_call_runs_in_a_pekat_call_span_with_peer_and_id() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _default = tracing::subscriber::set_default(subscriber);

    let client = Client::builder(Connector::once(serve(Dialect::V3_19)))
        .dialect(Dialect::V3_19)
        .keep_connection(true)
        .build();
    let request = Request::status(PROJECT).with_id("job-7".parse().unwrap());
    client.call(request).await.unwrap();
    client
        .call_raw(&format!("8.status|{PROJECT}"))
        .await
        .unwrap();
    let spans = spans.0.lock().unwrap().clone();
    let calls: Vec<_> = spans
        .iter()
        .filter(|s| s.starts_with("pekat.call"))
        .collect();
    assert_eq!(calls.len(), 2, "{spans:?}");
    assert!(calls[0].contains(r#"peer="attached stream""#), "{calls:?}");
    assert!(calls[0].contains(r#"id="job-7""#), "{calls:?}");
    assert!(calls[1].contains(r#"id="8""#), "{calls:?}");
}
