//! The `pekat.call` span, alone in its test binary: tracing caches a callsite's interest for
//! the whole process, so another test thread hitting the callsite without this test's scoped
//! subscriber could hide the span from it.

mod common;

use std::sync::{Arc, Mutex};

use common::{PROJECT, serve};
use labwire_net::Connector;
use pekat_proto::{Client, Dialect, Request};

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
