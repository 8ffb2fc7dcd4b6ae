//! A burst of 8 concurrent one-message connections, COMET's usage pattern, against a bare TCP
//! exchange of the same byte counts (connect, write, read to the close) as the baseline: the
//! ratio is what framing, JSON and dispatch add to the connection cost.

use std::time::Duration;

use comet_socket::server::{Handlers, ServerConfig, handler_fn, serve};
use comet_socket::{Client, Limits, Request, Response, wire};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BURST: usize = 8;

fn burst(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let value = json!({"sample": "W42", "bias": -150.0});
    let request_len = wire::encode_to_bytes(
        &Request::new("ECHO", value.clone()).to_frame().unwrap(),
        &Limits::default(),
    )
    .unwrap()
    .len();
    let reply = wire::encode_to_bytes(
        &Response::new(value.clone()).to_frame().unwrap(),
        &Limits::default(),
    )
    .unwrap();

    let (comet, bare) = runtime.block_on(async {
        let echo = Handlers::new().handler(handler_fn(|action, value| {
            Ok(if action == "ECHO" {
                value.clone()
            } else {
                Value::Null
            })
        }));
        let comet = serve("127.0.0.1:0".parse().unwrap(), echo).await.unwrap();
        let bare = labwire_net::Server::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap()
            .serve(move |mut stream, _, _| {
                let reply = reply.clone();
                async move {
                    let mut request = vec![0u8; request_len];
                    if stream.read_exact(&mut request).await.is_ok() {
                        let _ = stream.write_all(&reply).await;
                    }
                }
            });
        (comet, bare)
    });

    let mut group = c.benchmark_group("comet_burst_of_8");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    let bare_addr = bare.local_addr();
    let request = vec![b'x'; request_len];
    group.bench_function("baseline_bare_tcp_exchange", |b| {
        b.to_async(&runtime).iter(|| {
            let request = request.clone();
            async move {
                let calls: Vec<_> = (0..BURST)
                    .map(|_| {
                        let request = request.clone();
                        tokio::spawn(async move {
                            let mut stream =
                                labwire_net::connect(bare_addr, Duration::from_secs(5)).await?;
                            stream.write_all(&request).await?;
                            let mut reply = Vec::new();
                            stream.read_to_end(&mut reply).await?;
                            std::io::Result::Ok(reply.len())
                        })
                    })
                    .collect();
                for call in calls {
                    call.await.unwrap().unwrap();
                }
            }
        })
    });
    let client = Client::builder(comet.local_addr().to_string()).build();
    group.bench_function("comet_client_and_server", |b| {
        b.to_async(&runtime).iter(|| {
            let client = client.clone();
            let value = value.clone();
            async move {
                let calls: Vec<_> = (0..BURST)
                    .map(|_| {
                        let client = client.clone();
                        let value = value.clone();
                        tokio::spawn(async move { client.send("ECHO", &value).await })
                    })
                    .collect();
                for call in calls {
                    call.await.unwrap().unwrap();
                }
            }
        })
    });
    group.finish();
    runtime.block_on(async {
        comet.shutdown().await;
        bare.shutdown().await;
    });
}

criterion_group!(benches, burst);
criterion_main!(benches);
