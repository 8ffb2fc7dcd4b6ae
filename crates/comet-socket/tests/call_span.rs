//! The `comet.call` span, alone in its test binary: tracing caches a callsite's interest for
//! the whole process, so another test thread hitting the callsite without this test's scoped
//! subscriber could hide the span from it.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::sync::{Arc, Mutex};

use comet_socket::Client;
use common::{counting, echo_call};
use serde_json::json;

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
