//! The client over streams other than TCP: in-memory duplex pairs whose far end a COMET server
//! serves, opened per call by a function or handed over once; what `connect()` opens; and the
//! `comet.call` span.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comet_socket::client::Error;
use comet_socket::server::{Handlers, handler_fn, serve_stream};
use comet_socket::{Client, Connector, Request};
use serde_json::{Value, json};
use tokio::io::DuplexStream;

const DEADLINE: Duration = Duration::from_secs(10);

fn echo() -> Handlers {
    Handlers::new().handler(handler_fn(|action, value| {
        Ok(if action == "ECHO" {
            value.clone()
        } else {
            Value::Null
        })
    }))
}

/// A duplex pair whose far end is served by [`echo`] in a task.
fn served_pair() -> DuplexStream {
    let (near, mut far) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        serve_stream(&mut far, SocketAddr::from(([127, 0, 0, 1], 0)), echo()).await;
    });
    near
}

/// A connector making served duplex pairs, counting them; the first one's far end is dropped
/// at once when `first_closed`.
fn counting(first_closed: bool) -> (Connector, Arc<AtomicUsize>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&opened);
    let connector = Connector::from_fn("duplex", move || {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 && first_closed {
                let (near, _far) = tokio::io::duplex(64);
                return Ok::<_, io::Error>(near);
            }
            Ok(served_pair())
        }
    });
    (connector, opened)
}

async fn echo_call(client: &Client, value: Value) -> Result<Value, Error> {
    let call = client.call(Request::new("ECHO", value));
    let answer = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("bounded")?;
    Ok(answer.result)
}

#[tokio::test]
async fn a_function_opens_a_duplex_stream_per_call() {
    let (connector, opened) = counting(false);
    let client = Client::builder(connector).build();
    assert_eq!(client.peer(), "duplex");
    for i in 1..=3 {
        assert_eq!(echo_call(&client, json!(i)).await.unwrap(), json!(i));
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        3,
        "one connection per message"
    );
}

#[tokio::test]
async fn a_stream_handed_over_once_carries_one_call() {
    let client = Client::builder(Connector::once(served_pair())).build();
    assert_eq!(echo_call(&client, json!("x")).await.unwrap(), json!("x"));
    let err = echo_call(&client, json!("y")).await.unwrap_err();
    let Error::Connect { source, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(source.kind(), io::ErrorKind::NotConnected);
}

#[tokio::test]
async fn connect_opens_the_connection_the_first_call_uses() {
    let (connector, opened) = counting(false);
    let client = Client::builder(connector).connect().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert_eq!(echo_call(&client, json!(1)).await.unwrap(), json!(1));
    assert_eq!(opened.load(Ordering::SeqCst), 1, "the first call took it");
    assert_eq!(echo_call(&client, json!(2)).await.unwrap(), json!(2));
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connect_takes_a_stream_handed_over_once_for_the_first_call() {
    let client = Client::connect(Connector::once(served_pair()))
        .await
        .unwrap();
    assert_eq!(echo_call(&client, json!("x")).await.unwrap(), json!("x"));
}

#[tokio::test]
async fn a_connection_opened_in_advance_and_closed_by_the_device_is_replaced() {
    let (connector, opened) = counting(true);
    let client = Client::builder(connector).connect().await.unwrap();
    assert_eq!(echo_call(&client, json!(1)).await.unwrap(), json!(1));
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connect_reports_a_connector_that_fails() {
    let connector = Connector::from_fn("nowhere", || async {
        Err::<DuplexStream, _>(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
    });
    let err = Client::connect(connector).await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { ref peer, .. } if peer == "nowhere"),
        "{err}"
    );
    assert_eq!(
        labwire_net::error_chain(&err),
        "cannot connect to nowhere: refused"
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
async fn every_call_runs_in_a_comet_call_span_with_peer_and_action() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _default = tracing::subscriber::set_default(subscriber);

    let (connector, _) = counting(false);
    let client = Client::builder(connector).build();
    assert_eq!(echo_call(&client, json!(1)).await.unwrap(), json!(1));
    assert_eq!(
        client.send("STATUS", &json!(true)).await.unwrap(),
        json!(null)
    );
    // Refused before sending: no call, no span.
    assert!(client.send("", &json!(1)).await.is_err());

    let spans = spans.0.lock().unwrap().clone();
    let calls: Vec<_> = spans
        .iter()
        .filter(|s| s.starts_with("comet.call"))
        .collect();
    assert_eq!(
        calls,
        [
            r#"comet.call peer="duplex" action="ECHO""#,
            r#"comet.call peer="duplex" action="STATUS""#
        ],
        "{spans:?}"
    );
}

#[tokio::test]
async fn send_as_reads_the_result_as_the_type_asked_for() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Reading {
        sample: String,
        bias_v: f64,
    }
    let (connector, _) = counting(false);
    let client = Client::builder(connector).build();
    let value = json!({"sample": "W42-3", "bias_v": -150.0});
    let reading: Reading = client.send_as("ECHO", &value).await.unwrap();
    assert_eq!(reading.sample, "W42-3");
    let nobody: Option<Reading> = client.send_as("OTHER", &value).await.unwrap();
    assert_eq!(nobody, None);
    let err = client.send_as::<Vec<u8>>("ECHO", &value).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode(comet_socket::DecodeError::UnexpectedResult { .. })
        ),
        "{err}"
    );
}
