//! The `pycom.call` span, alone in its test binary: tracing caches a callsite's interest for
//! the whole process, so another test thread hitting the callsite without this test's scoped
//! subscriber could hide the span from it.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::sync::{Arc, Mutex};

use common::{NODE, TEST_DEADLINE, duplex_node, me};
use pycom_proto::Coordinator;

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
