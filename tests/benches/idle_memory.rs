//! Memory an idle connection costs each simulator (and the pycom coordinator's event listener),
//! against a bare tokio server holding the same number of idle connections, measured in the same
//! run with a counting allocator. The clients are plain blocking `std` sockets, which allocate
//! nothing, so what is counted is the server side.
//!
//! Printed as bytes per connection and as the ratio labwire / bare (1.00 = no more than the
//! floor; the target is 1.5 at most).

use std::alloc::System;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CONNECTIONS: usize = 256;

/// Bytes still allocated per connection once `CONNECTIONS` idle clients are connected to `addr`
/// and `served` reports them all; the least of three rounds (the runtime's own tables grow in
/// steps as sockets come and go, which the first rounds may pay for).
fn per_connection(addr: SocketAddr, served: impl Fn() -> usize) -> f64 {
    (0..3)
        .map(|_| one_round(addr, &served))
        .fold(f64::INFINITY, f64::min)
}

fn one_round(addr: SocketAddr, served: &impl Fn() -> usize) -> f64 {
    let before = served();
    let region = Region::new(GLOBAL);
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served() < before + CONNECTIONS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        served() >= before + CONNECTIONS,
        "only {} of {CONNECTIONS} served",
        served() - before
    );
    // Let every connection task reach its first await (where it idles).
    std::thread::sleep(Duration::from_millis(200));
    let change = region.change();
    drop(clients);
    // Wait for the server to see them go before the next round.
    let deadline = Instant::now() + Duration::from_secs(10);
    while served() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let live = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    if std::env::var_os("IDLE_MEMORY_DEBUG").is_some() {
        eprintln!(
            "  allocations {} deallocations {} reallocations {} ({} B)",
            change.allocations,
            change.deallocations,
            change.reallocations,
            change.bytes_reallocated
        );
    }
    live / CONNECTIONS as f64
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The floor: accept, and wait for the first byte with a small buffer in the task itself.
fn bare(rt: &Runtime) -> f64 {
    let (addr, counter) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Live connections, like the servers' `connection_count()`.
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let live = std::sync::Arc::clone(&counter);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let live = std::sync::Arc::clone(&live);
                live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut first = [0u8; 64];
                    let _ = stream.read(&mut first).await;
                    live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                });
            }
        });
        (addr, counter)
    });
    per_connection(addr, || counter.load(std::sync::atomic::Ordering::Relaxed))
}

fn main() {
    let rt = runtime();
    let floor = bare(&rt);
    let mut rows = vec![("baseline_bare_tokio_server", floor)];

    let plain = rt.block_on(async {
        labwire_net::Server::bind(labwire_net::ServerConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
        ))
        .await
        .expect("bind")
        .serve(|mut stream, _, _| async move {
            let mut first = [0u8; 64];
            let _ = stream.read(&mut first).await;
        })
    });
    rows.push((
        "labwire_net_server_plain",
        per_connection(plain.local_addr(), || plain.connection_count()),
    ));
    let lines = rt.block_on(async {
        struct Echo;
        impl labwire_net::Service for Echo {
            type Request = String;
            type Response = String;
            async fn call(&self, _: SocketAddr, r: String) -> String {
                r
            }
        }
        let server = labwire_net::Server::bind(labwire_net::ServerConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
        ))
        .await
        .expect("bind");
        labwire_net::service::serve(
            server,
            Default::default(),
            Echo,
            tokio_util::codec::LinesCodec::new,
            labwire_net::Exchange::new(),
        )
    });
    rows.push((
        "labwire_net_serve_lines",
        per_connection(lines.local_addr(), || lines.connection_count()),
    ));
    let arkeo = rt
        .block_on(arkeo_sim::ArkeoSim::builder().start())
        .expect("arkeo-sim");
    rows.push((
        "arkeo_sim",
        per_connection(arkeo.local_addr(), || arkeo.connection_count()),
    ));
    rt.block_on(arkeo.shutdown());

    let pekat = rt
        .block_on(pekat_sim::PekatSim::builder().start())
        .expect("pekat-sim");
    rows.push((
        "pekat_sim",
        per_connection(pekat.local_addr(), || pekat.connection_count()),
    ));
    rt.block_on(pekat.shutdown());

    let comet = rt
        .block_on(comet_sim::CometSim::builder().start())
        .expect("comet-sim");
    rows.push((
        "comet_sim",
        per_connection(comet.local_addr(), || comet.connection_count()),
    ));
    rt.block_on(comet.shutdown());

    let la4 = rt
        .block_on(la4_sim::La4Sim::builder().start())
        .expect("la4-sim");
    rows.push((
        "la4_sim",
        per_connection(la4.local_addr(), || la4.connection_count()),
    ));
    rt.block_on(la4.shutdown());

    let coordinator = rt
        .block_on(
            pycom_proto::Coordinator::builder(
                "127.0.0.1:0".parse().expect("addr"),
                pycom_proto::Identity::new("c0ffee00", "bench", "127.0.0.1", 0, "0.1.0", true),
            )
            .start(),
        )
        .expect("coordinator");
    rows.push((
        "pycom_coordinator_listener",
        per_connection(coordinator.local_addr(), || coordinator.connection_count()),
    ));
    rt.block_on(coordinator.shutdown());

    println!(
        "\nidle memory per connection ({CONNECTIONS} idle clients; ratio = this / bare, lower is better):"
    );
    for (name, bytes) in rows {
        println!("  {name:<32} {bytes:>9.0} B   {:>6.2}", bytes / floor);
    }
}
