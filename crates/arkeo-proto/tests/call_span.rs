//! The `arkeo.call` span, alone in its test binary: tracing caches a callsite's interest for
//! the whole process, so another test thread hitting the callsite without this test's scoped
//! subscriber could hide the span from it.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::sync::{Arc, Mutex};

use arkeo_proto::{Client, Connector, Request, Target};
use common::{Device, serve};

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
