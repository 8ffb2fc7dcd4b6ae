//! Every protocol over loopback, side by side with a bare tokio client/server doing the same
//! exchange (the same bytes each way, the same connection pattern) in the same run. The bare
//! pair is the floor: what TCP on this machine costs. `cargo xtask bench` prints each as a ratio
//! to its group's `baseline`.
//!
//! Per protocol, where it applies: the labwire client against the simulator, the labwire client
//! against a bare server, and a bare client against the simulator, so that a slow side shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

const IO: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn runtime(multi_thread: bool) -> Runtime {
    let mut builder = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("runtime")
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group
}

/// CPU time used so far by every thread of this process (client, server and runtime alike,
/// kernel time included), from Linux's per-thread scheduler statistics; `None` where there are
/// none.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        // A thread that ended meanwhile has nothing left to count.
        let Ok(stat) = std::fs::read_to_string(task.ok()?.path().join("schedstat")) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Benchmarks `run` by the CPU time it costs the whole process, not by wall time: on two shared
/// cores, a client and a server running side by side (and the neighbours) hide each other's
/// work in wall time.
fn cpu_bench(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, mut run: impl FnMut()) {
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let wall = std::time::Instant::now();
            let before = process_cpu();
            for _ in 0..iters {
                run();
            }
            match (before, process_cpu()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => wall.elapsed(),
            }
        });
    });
}

/// The floor's accept loop: tokio's listener (with the same backlog labwire's listeners get)
/// and a task per connection, `TCP_NODELAY` on, nothing else — no connection cap, no shutdown
/// wait, no deadlines.
fn bare_serve<F, Fut>(handler: F) -> BareServer
where
    F: Fn(TcpStream, SocketAddr, ()) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = labwire_net::bind(loopback(), labwire_net::DEFAULT_BACKLOG).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(handler(stream, peer, ()));
        }
    });
    BareServer { addr, accept }
}

/// A server of [`bare_serve`]: its connections end when their clients leave.
struct BareServer {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl BareServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn shutdown(&self) {
        self.accept.abort();
    }
}

/// A bare server: per connection, reads `request_len` bytes and writes `reply`, again and again
/// (`once`: one exchange, then close).
async fn bare_server(request_len: usize, reply: Vec<u8>, once: bool) -> BareServer {
    let reply = Arc::new(reply);
    bare_serve(move |mut stream, _, _| {
        let reply = Arc::clone(&reply);
        async move {
            let mut request = vec![0u8; request_len];
            while stream.read_exact(&mut request).await.is_ok() {
                if stream.write_all(&reply).await.is_err() || once {
                    break;
                }
            }
        }
    })
}

/// A bare client's exchange on a kept connection: write `request`, read `reply_len` bytes.
async fn bare_exchange(stream: &mut TcpStream, request: &[u8], reply: &mut [u8]) {
    stream.write_all(request).await.expect("write");
    stream.read_exact(reply).await.expect("read");
}

/// A bare client's exchange on a connection of its own: connect, write, read to the close.
async fn bare_once(addr: SocketAddr, request: &[u8]) -> usize {
    let mut stream = labwire_net::connect(addr, IO).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("read");
    reply.len()
}

/// Reads whatever arrives until the peer is quiet for a moment (setup only: learning what a
/// simulator answers, for the bare server to answer the same bytes).
async fn read_until_quiet<R: AsyncRead + Unpin>(reader: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), reader.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out
}

fn arkeo(c: &mut Criterion) {
    use arkeo_proto::{Client, ParamKey, Request, Response, Target, wire};
    use bytes::Buf;

    /// The codec floor of an ARKEO device: over bare tokio IO, each request frame decoded
    /// (`wire::decode_request`, as fast as a typed `serde_json` decode of the same bytes) and a
    /// prepared reply encoded with the request's id. What the JSON alone costs a device.
    async fn codec_server(reply: Response) -> BareServer {
        let reply = Arc::new(reply);
        bare_serve(move |mut stream, _, _| {
            let mut reply = (*reply).clone();
            async move {
                let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
                loop {
                    if let Some((payload, used)) =
                        wire::split_frame(&buf, usize::MAX).expect("frame")
                    {
                        reply.request_id =
                            wire::decode_request(payload).expect("request").request_id;
                        buf.advance(used);
                        out.clear();
                        wire::encode_response(&reply, usize::MAX, &mut out).expect("encode");
                        if stream.write_all(&out).await.is_err() {
                            break;
                        }
                    } else if !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
                        break;
                    }
                }
            }
        })
    }

    /// The codec floor of an ARKEO client: the request encoded into a kept buffer, the reply
    /// decoded (`wire::decode_response`) over bare tokio IO, nothing else.
    async fn codec_exchange(
        stream: &mut TcpStream,
        request: &Request,
        out: &mut BytesMut,
        buf: &mut BytesMut,
    ) -> Response {
        out.clear();
        wire::encode_request(request, ParamKey::Parameter, usize::MAX, out).expect("encode");
        stream.write_all(out).await.expect("write");
        loop {
            if let Some((payload, used)) = wire::split_frame(buf, usize::MAX).expect("frame") {
                let response = wire::decode_response(payload).expect("response");
                buf.advance(used);
                return response;
            }
            assert_ne!(stream.read_buf(buf).await.expect("read"), 0, "closed");
        }
    }

    /// CPU time this thread has run so far (user and kernel: loopback delivery runs in the
    /// sender's system call), from Linux's scheduler statistics (updated at least every tick);
    /// `None` elsewhere.
    fn thread_cpu() -> Option<Duration> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        Some(Duration::from_nanos(
            stat.split_whitespace().next()?.parse().ok()?,
        ))
    }

    /// Benchmarks one exchange by wall time, or with `cpu` by the CPU time of this thread,
    /// which on a one-thread runtime runs both sides: what an exchange costs the CPU, however
    /// busy the machine's other core is (wall time where there are no scheduler statistics).
    fn measure(
        g: &mut BenchmarkGroup<'_, WallTime>,
        id: &str,
        cpu: bool,
        mut exchange: impl FnMut(),
    ) {
        g.bench_function(id, |b| {
            if !cpu {
                return b.iter(&mut exchange);
            }
            b.iter_custom(|iters| {
                let (wall, before) = (std::time::Instant::now(), thread_cpu());
                for _ in 0..iters {
                    exchange();
                }
                match (before, thread_cpu()) {
                    (Some(before), Some(after)) => after.saturating_sub(before),
                    _ => wall.elapsed(),
                }
            });
        });
    }

    // `arkeo_cpu_same_cpu`: the same-CPU exchanges measured by CPU time, not wall time. Both
    // sides run on the benchmark's thread, so wall time there mostly measures how long the
    // other engineers' work keeps that thread off the CPU.
    for (name, multi_thread, cpu) in [
        ("arkeo_sequential", true, false),
        ("arkeo_sequential_same_cpu", false, false),
        ("arkeo_cpu_same_cpu", false, true),
    ] {
        let rt = runtime(multi_thread);
        // The request carries its own `request_id`, which the client sends as it is (it assigns
        // one only to a request without): the client puts the same bytes on the wire as the
        // bare client, and the bare server's canned answer echoes the right id. Without it the
        // client's frames were longer than the bare server's fixed read, the bare server fell
        // out of frame and answered twice, and the client, rightly refusing bytes after its
        // reply, reconnected every few calls (`client_bare_server` at 0.43).
        let request = Request::new(Target::Main, "GetActiveRoutine").with_request_id(1001);
        let mut frame = BytesMut::new();
        wire::encode_request(&request, ParamKey::Parameter, usize::MAX, &mut frame)
            .expect("encode");
        let frame = frame.to_vec();
        let (sim, bare, codec, reply) = rt.block_on(async {
            let sim = arkeo_sim::ArkeoSim::builder().start().await.expect("sim");
            let mut stream = labwire_net::connect(sim.local_addr(), IO)
                .await
                .expect("connect");
            stream.write_all(&frame).await.expect("write");
            let reply = read_until_quiet(&mut stream).await;
            let bare = bare_server(frame.len(), reply.clone(), false).await;
            let (payload, _) = wire::split_frame(&reply, usize::MAX)
                .expect("frame")
                .expect("a whole reply");
            let decoded = wire::decode_response(payload).expect("reply");
            // The codec floor's device answers the very bytes the simulator does.
            let mut again = BytesMut::new();
            wire::encode_response(&decoded, usize::MAX, &mut again).expect("encode");
            assert_eq!(&again[..], &reply[..]);
            let codec = codec_server(decoded).await;
            (sim, bare, codec, reply)
        });
        let mut g = group(c, name);
        if cpu {
            // The scheduler statistics advance at least every tick (4 ms here): samples of one
            // length, each long, so that the tick's error at both ends averages out.
            g.sampling_mode(criterion::SamplingMode::Flat);
        }
        let mut answer = vec![0u8; reply.len()];
        for (id, addr) in [
            ("baseline_bare_client_bare_server", bare.local_addr()),
            ("bare_client_arkeo_sim", sim.local_addr()),
            ("bare_client_codec_floor_server", codec.local_addr()),
        ] {
            let mut stream = rt
                .block_on(labwire_net::connect(addr, IO))
                .expect("connect");
            measure(&mut g, id, cpu, || {
                rt.block_on(bare_exchange(&mut stream, &frame, &mut answer));
            });
        }
        for (id, addr) in [
            ("client_bare_server", bare.local_addr()),
            ("client_arkeo_sim", sim.local_addr()),
        ] {
            let client = Client::builder(addr).build();
            measure(&mut g, id, cpu, || {
                rt.block_on(client.call(request.clone())).expect("call");
            });
        }
        // What any ARKEO client and device pay for the JSON alone: the reachable ceiling of
        // `client_bare_server` and `client_arkeo_sim`.
        for (id, addr) in [
            ("codec_floor_client_bare_server", bare.local_addr()),
            ("codec_floor_client_codec_floor_server", codec.local_addr()),
        ] {
            let mut stream = rt
                .block_on(labwire_net::connect(addr, IO))
                .expect("connect");
            let (mut out, mut buf) = (BytesMut::new(), BytesMut::new());
            measure(&mut g, id, cpu, || {
                rt.block_on(codec_exchange(&mut stream, &request, &mut out, &mut buf));
            });
        }
        g.finish();
        rt.block_on(async {
            sim.shutdown().await;
            bare.shutdown().await;
            codec.shutdown().await;
        });
    }
}

fn arkeo_concurrent(c: &mut Criterion) {
    use arkeo_proto::{Client, ParamKey, Request, Target, wire};
    const CONNECTIONS: usize = 64;
    const CALLS: usize = 10;

    let rt = runtime(true);
    // With its own `request_id`, as in `arkeo`: the same bytes as the bare client's.
    let request = Request::new(Target::Main, "GetActiveRoutine").with_request_id(1001);
    let mut frame = BytesMut::new();
    wire::encode_request(&request, ParamKey::Parameter, usize::MAX, &mut frame).expect("encode");
    let frame = Arc::new(frame.to_vec());
    let (sim, bare, reply_len) = rt.block_on(async {
        let sim = arkeo_sim::ArkeoSim::builder().start().await.expect("sim");
        let mut stream = labwire_net::connect(sim.local_addr(), IO)
            .await
            .expect("connect");
        stream.write_all(&frame).await.expect("write");
        let reply = read_until_quiet(&mut stream).await;
        let bare = bare_server(frame.len(), reply.clone(), false).await;
        (sim, bare, reply.len())
    });
    // 64 tasks at once, each with a connection of its own and `CALLS` exchanges in sequence
    // on it, by the labwire client or a bare one.
    let run = |addr: SocketAddr, labwire: bool| {
        let (frame, request) = (Arc::clone(&frame), request.clone());
        rt.block_on(async move {
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let (frame, request) = (Arc::clone(&frame), request.clone());
                    tokio::spawn(async move {
                        if labwire {
                            let client = Client::builder(addr).build();
                            for _ in 0..CALLS {
                                client.call(request.clone()).await.expect("call");
                            }
                        } else {
                            let mut stream = labwire_net::connect(addr, IO).await.expect("connect");
                            let mut answer = vec![0u8; reply_len];
                            for _ in 0..CALLS {
                                bare_exchange(&mut stream, &frame, &mut answer).await;
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        });
    };
    // `arkeo_cpu_64_connections`: the same runs by the CPU time of the whole process rather
    // than wall time, which on this shared machine also measures the neighbours.
    for (name, cpu) in [
        ("arkeo_64_connections", false),
        ("arkeo_cpu_64_connections", true),
    ] {
        let mut g = group(c, name);
        if cpu {
            // As in `arkeo`: samples of one length, the scheduler statistics' tick averaged out.
            g.sampling_mode(criterion::SamplingMode::Flat);
        }
        for (id, addr, labwire) in [
            ("baseline_bare_client_bare_server", bare.local_addr(), false),
            ("bare_client_arkeo_sim", sim.local_addr(), false),
            ("client_bare_server", bare.local_addr(), true),
            ("client_arkeo_sim", sim.local_addr(), true),
        ] {
            if cpu {
                cpu_bench(&mut g, id, || run(addr, labwire));
            } else {
                g.bench_function(id, |b| b.iter(|| run(addr, labwire)));
            }
        }
        g.finish();
    }
    rt.block_on(async {
        sim.shutdown().await;
        bare.shutdown().await;
    });
}

fn pekat(c: &mut Criterion) {
    use pekat_proto::Client;
    const PROJECT: &str = r"C:\projects\bench";

    /// A bare client's exchange on a connection of its own, as integrators of the real server
    /// do: connect, write the request, read the answer, close.
    async fn fresh_exchange(addr: SocketAddr, request: &[u8], answer: &mut [u8]) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        bare_exchange(&mut stream, request, answer).await;
    }

    let rt = runtime(true);
    let request = format!("status:{PROJECT}").into_bytes();
    let sim_with = |quiet: Option<Duration>| async move {
        let builder = pekat_sim::PekatSim::builder().project(PROJECT, 8100);
        match quiet {
            Some(quiet) => builder.quiet_period(quiet),
            None => builder,
        }
        .start()
        .await
        .expect("sim")
    };
    let (sim, quiet_sim, bare, reply) = rt.block_on(async {
        let sim = sim_with(None).await;
        let quiet_sim = sim_with(Some(Duration::from_millis(3))).await;
        let mut stream = labwire_net::connect(sim.local_addr(), IO)
            .await
            .expect("connect");
        stream.write_all(&request).await.expect("write");
        let reply = read_until_quiet(&mut stream).await;
        let bare = bare_server(request.len(), reply.clone(), false).await;
        (sim, quiet_sim, bare, reply)
    });
    let mut answer = vec![0u8; reply.len()];

    // One connection, requests in sequence: the simulator with its defaults must be as fast as
    // the bare server, whoever the client is.
    let mut g = group(c, "pekat_sequential");
    for (id, addr) in [
        ("baseline_bare_client_bare_server", bare.local_addr()),
        ("bare_client_pekat_sim_defaults", sim.local_addr()),
        // The quiet period is an option with a price: a timer on every answer.
        ("bare_client_pekat_sim_quiet_3ms", quiet_sim.local_addr()),
    ] {
        let mut stream = rt
            .block_on(labwire_net::connect(addr, IO))
            .expect("connect");
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(bare_exchange(&mut stream, &request, &mut answer)));
        });
    }
    for (id, addr) in [
        ("client_kept_bare_server", bare.local_addr()),
        ("client_kept_pekat_sim", sim.local_addr()),
    ] {
        let client = Client::builder(addr.to_string())
            .keep_connection(true)
            .build();
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(client.status(PROJECT)).expect("status"));
        });
    }
    g.finish();

    // A fresh connection per request (the client's default, as integrators do): the floor is a
    // bare client doing the same against the bare server.
    let mut g = group(c, "pekat_connection_per_request");
    for (id, addr) in [
        ("baseline_bare_client_bare_server", bare.local_addr()),
        ("bare_client_pekat_sim_defaults", sim.local_addr()),
    ] {
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(fresh_exchange(addr, &request, &mut answer)));
        });
    }
    for (id, addr) in [
        ("client_default_bare_server", bare.local_addr()),
        ("client_default_pekat_sim", sim.local_addr()),
    ] {
        let client = Client::builder(addr.to_string()).build();
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(client.status(PROJECT)).expect("status"));
        });
    }
    g.finish();

    // The same, by the CPU time each request costs the process (client and server together):
    // what a machine running many polling integrations pays.
    let mut g = group(c, "pekat_cpu_per_request");
    // As in `arkeo`: samples of one length, the scheduler statistics' tick averaged out.
    g.sampling_mode(criterion::SamplingMode::Flat);
    for (id, addr) in [
        ("baseline_bare_client_bare_server", bare.local_addr()),
        ("bare_client_pekat_sim_defaults", sim.local_addr()),
    ] {
        cpu_bench(&mut g, id, || {
            rt.block_on(fresh_exchange(addr, &request, &mut answer));
        });
    }
    for (id, addr) in [
        ("client_default_bare_server", bare.local_addr()),
        ("client_default_pekat_sim", sim.local_addr()),
    ] {
        let client = Client::builder(addr.to_string()).build();
        cpu_bench(&mut g, id, || {
            rt.block_on(client.status(PROJECT)).expect("status");
        });
    }
    // For scale: what a kept connection costs (not the floor of a connection per request).
    let mut stream = rt
        .block_on(labwire_net::connect(bare.local_addr(), IO))
        .expect("connect");
    cpu_bench(&mut g, "kept_bare_client_bare_server", || {
        rt.block_on(bare_exchange(&mut stream, &request, &mut answer));
    });
    g.finish();
    rt.block_on(async {
        sim.shutdown().await;
        quiet_sim.shutdown().await;
        bare.shutdown().await;
    });
}

fn comet(c: &mut Criterion) {
    use comet_socket::{Client, Limits, Request, wire};

    let rt = runtime(true);
    let value = serde_json::json!({"sample": "W42-3", "bias_V": -150.0});
    let request = wire::encode_to_bytes(
        &Request::new("ECHO", value.clone())
            .to_frame()
            .expect("frame"),
        &Limits::default(),
    )
    .expect("encode")
    .to_vec();
    let (sim, bare) = rt.block_on(async {
        let sim = comet_sim::CometSim::builder().start().await.expect("sim");
        let reply = {
            let mut stream = labwire_net::connect(sim.local_addr(), IO)
                .await
                .expect("connect");
            stream.write_all(&request).await.expect("write");
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.expect("read");
            reply
        };
        // The bare server does what a one-exchange server must (and labwire-net's serve loop
        // does): read the request, write the answer, shut its side down, and wait for the
        // client's close before closing, so that a byte the client may still send cannot
        // reset the connection and destroy the answer.
        let reply = Arc::new(reply);
        let request_len = request.len();
        let bare = bare_serve(move |mut stream, _, _| {
            let reply = Arc::clone(&reply);
            async move {
                let mut request = vec![0u8; request_len];
                if stream.read_exact(&mut request).await.is_ok()
                    && stream.write_all(&reply).await.is_ok()
                    && stream.shutdown().await.is_ok()
                {
                    let mut rest = [0u8; 64];
                    while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                }
            }
        });
        (sim, bare)
    });
    let mut g = group(c, "comet_one_exchange_per_connection");
    // Both clients close their side once they have the answer (the bare one at the server's
    // close, the labwire one as soon as the frame is complete), so neither server lingers.
    for (id, addr) in [
        ("baseline_bare_client_bare_server", bare.local_addr()),
        ("bare_client_comet_sim", sim.local_addr()),
    ] {
        g.bench_function(id, |b| b.iter(|| rt.block_on(bare_once(addr, &request))));
    }
    for (id, addr) in [
        ("client_bare_server", bare.local_addr()),
        ("client_comet_sim", sim.local_addr()),
    ] {
        let client = Client::builder(addr.to_string()).build();
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(client.send("ECHO", &value)).expect("send"));
        });
    }
    g.finish();
    // The same exchanges by the CPU time of the whole process.
    let mut g = group(c, "comet_cpu_one_exchange_per_connection");
    // Long samples of one length: the scheduler statistics advance by whole ticks.
    g.sampling_mode(criterion::SamplingMode::Flat);
    for (id, addr) in [
        ("baseline_bare_client_bare_server", bare.local_addr()),
        ("bare_client_comet_sim", sim.local_addr()),
    ] {
        cpu_bench(&mut g, id, || {
            rt.block_on(bare_once(addr, &request));
        });
    }
    for (id, addr) in [
        ("client_bare_server", bare.local_addr()),
        ("client_comet_sim", sim.local_addr()),
    ] {
        let client = Client::builder(addr.to_string()).build();
        cpu_bench(&mut g, id, || {
            rt.block_on(client.send("ECHO", &value)).expect("send");
        });
    }
    g.finish();
    rt.block_on(async {
        sim.shutdown().await;
        bare.shutdown().await;
    });
}

fn pycom(c: &mut Criterion) {
    use pycom_proto::{Coordinator, Identity, Limits, Message, wire};

    let rt = runtime(true);
    let me = Identity::new("c0ffee00", "bench", "127.0.0.1", 0, "0.1.0", true);
    let node_identity = Identity::new(
        "81639cd4",
        "rigsters-controller",
        "127.0.0.1",
        0,
        "0.14.0",
        false,
    );
    let (sim, coordinator, bare_listener, events) = rt.block_on(async {
        let sim = la4_sim::La4Sim::builder()
            .boot_time(Duration::ZERO)
            .start()
            .await
            .expect("sim");
        let coordinator = Coordinator::builder(loopback(), me.clone())
            .heartbeat_interval(Duration::from_secs(3600))
            .start()
            .await
            .expect("coordinator");
        // A bare event listener: reads each connection to its end and counts it.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let bare_listener = bare_serve(move |mut stream, _, _| {
            let tx = tx.clone();
            async move {
                let mut event = Vec::new();
                if stream.read_to_end(&mut event).await.is_ok() {
                    let _ = tx.send(event.len());
                }
            }
        });
        (sim, coordinator, bare_listener, tokio::sync::Mutex::new(rx))
    });
    let node = sim.local_addr();
    let mut g = group(c, "pycom_command_round_trip");
    // The bare pair: connect to the node, write, close; the node connects back with the output.
    let request =
        wire::encode(&Message::cmd(me.clone(), "echo bench"), &Limits::default()).expect("encode");
    let output = wire::encode(
        &Message::output(node_identity.clone(), "bench\n"),
        &Limits::default(),
    )
    .expect("encode");
    let bare_node = rt.block_on(async {
        let output = Arc::new(output);
        let back = bare_listener.local_addr();
        bare_serve(move |mut stream, _, _| {
            let output = Arc::clone(&output);
            async move {
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).await.is_ok() {
                    drop(stream);
                    if let Ok(mut event) = labwire_net::connect(back, IO).await {
                        let _ = event.write_all(&output).await;
                    }
                }
            }
        })
    });
    let bare_node_addr = bare_node.local_addr();
    g.bench_function("baseline_bare_coordinator_bare_node", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut stream = labwire_net::connect(bare_node_addr, IO)
                    .await
                    .expect("connect");
                stream.write_all(&request).await.expect("write");
                stream.shutdown().await.expect("shutdown");
                events.lock().await.recv().await.expect("event")
            })
        });
    });
    g.bench_function("coordinator_la4_sim", |b| {
        b.iter(|| {
            rt.block_on(coordinator.send_command(node, "echo bench"))
                .expect("command")
        });
    });
    g.finish();
    // The same round trips by the CPU time of the whole process.
    let mut g = group(c, "pycom_cpu_command_round_trip");
    // Long samples of one length: the scheduler statistics advance by whole ticks.
    g.sampling_mode(criterion::SamplingMode::Flat);
    cpu_bench(&mut g, "baseline_bare_coordinator_bare_node", || {
        rt.block_on(async {
            let mut stream = labwire_net::connect(bare_node_addr, IO)
                .await
                .expect("connect");
            stream.write_all(&request).await.expect("write");
            stream.shutdown().await.expect("shutdown");
            events.lock().await.recv().await.expect("event");
        });
    });
    cpu_bench(&mut g, "coordinator_la4_sim", || {
        rt.block_on(coordinator.send_command(node, "echo bench"))
            .expect("command");
    });
    g.finish();
    rt.block_on(async {
        coordinator.shutdown().await;
        sim.shutdown().await;
        bare_node.shutdown().await;
        bare_listener.shutdown().await;
    });
}

/// The coordinator's event listener: a burst of short connections, each carrying one `output`
/// event the way a node sends it (connect, write, shut down), until every event is received —
/// by the coordinator (counted on its event stream) and by a bare listener that reads each
/// connection to its end (counted on a channel).
fn pycom_listener(c: &mut Criterion) {
    use pycom_proto::{Coordinator, Event, Identity, Limits, Message, wire};
    const EVENTS: usize = 32;

    let rt = runtime(true);
    let me = Identity::new("c0ffee00", "bench", "127.0.0.1", 0, "0.1.0", true);
    let node = Identity::new(
        "81639cd4",
        "rigsters-controller",
        "127.0.0.1",
        5000,
        "0.14.0",
        false,
    );
    let output = Arc::new(
        wire::encode(&Message::output(node, "bench\n"), &Limits::default()).expect("encode"),
    );
    let (coordinator, bare, mut received) = rt.block_on(async {
        let coordinator = Coordinator::builder(loopback(), me)
            .heartbeat_interval(Duration::from_secs(3600))
            .start()
            .await
            .expect("coordinator");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let bare = bare_serve(move |mut stream, _, _| {
            let tx = tx.clone();
            async move {
                let mut event = Vec::new();
                if stream.read_to_end(&mut event).await.is_ok() {
                    let _ = tx.send(event.len());
                }
            }
        });
        (coordinator, bare, rx)
    });
    // What a node does for each event: a connection of its own, one write, its side shut.
    let burst = |addr: SocketAddr| {
        let output = Arc::clone(&output);
        async move {
            let senders: Vec<_> = (0..EVENTS)
                .map(|_| {
                    let output = Arc::clone(&output);
                    tokio::spawn(async move {
                        let mut stream = labwire_net::connect(addr, IO).await.expect("connect");
                        stream.write_all(&output).await.expect("write");
                        stream.shutdown().await.expect("shutdown");
                    })
                })
                .collect();
            senders
        }
    };
    let bare_addr = bare.local_addr();
    let listener = coordinator.local_addr();
    let mut events = coordinator.events();
    let mut bare_burst = || {
        rt.block_on(async {
            let senders = burst(bare_addr).await;
            for _ in 0..EVENTS {
                received.recv().await.expect("event");
            }
            for sender in senders {
                sender.await.expect("sender");
            }
        });
    };
    let mut coordinator_burst = || {
        rt.block_on(async {
            let senders = burst(listener).await;
            let mut outputs = 0;
            while outputs < EVENTS {
                if let Event::Output { .. } = events.recv().await.expect("event") {
                    outputs += 1;
                }
            }
            for sender in senders {
                sender.await.expect("sender");
            }
        });
    };
    let mut g = group(c, "pycom_listener");
    g.bench_function("baseline_bare_listener", |b| b.iter(&mut bare_burst));
    g.bench_function("coordinator_listener", |b| b.iter(&mut coordinator_burst));
    g.finish();
    // The same bursts by the CPU time of the whole process.
    let mut g = group(c, "pycom_cpu_listener");
    // Long samples of one length: the scheduler statistics advance by whole ticks.
    g.sampling_mode(criterion::SamplingMode::Flat);
    cpu_bench(&mut g, "baseline_bare_listener", &mut bare_burst);
    cpu_bench(&mut g, "coordinator_listener", &mut coordinator_burst);
    g.finish();
    rt.block_on(async {
        coordinator.shutdown().await;
        bare.shutdown().await;
    });
}

/// ARKEO sequential round trips straight to arkeo-sim (`baseline`), through a bare tokio proxy
/// (accept, connect upstream, `copy_bidirectional`: the floor of any proxy on this path), and
/// through `labwire tap` (decoding both directions; printing nothing, then also recording every
/// message to a file) — same client, same run. The tap's ratio is its added latency (target
/// ≤ 1.2×); the bare proxy's shows what two more hops cost on loopback before any tap work.
fn tap_arkeo_sequential(c: &mut Criterion) {
    use arkeo_proto::{Client, Request, Target};

    let rt = runtime(true);
    let request = Request::new(Target::Main, "GetActiveRoutine");
    let recording =
        std::env::temp_dir().join(format!("labwire-bench-tap-{}.jsonl", std::process::id()));
    let (sim, proxy, tap, recording_tap) = rt.block_on(async {
        let sim = arkeo_sim::ArkeoSim::builder().start().await.expect("sim");
        let upstream = sim.local_addr();
        let proxy = bare_serve(move |mut client, _, _| async move {
            if let Ok(mut device) = labwire_net::connect(upstream, IO).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut device).await;
            }
        });
        let config = labwire_tap::TapConfig::new(upstream.to_string());
        let tap = labwire_tap::start(Arc::new(labwire_tap::Arkeo::default()), config.clone())
            .await
            .expect("tap");
        let recording_config = labwire_tap::TapConfig {
            record: Some(recording.clone()),
            ..config
        };
        let recording_tap =
            labwire_tap::start(Arc::new(labwire_tap::Arkeo::default()), recording_config)
                .await
                .expect("recording tap");
        (sim, proxy, tap, recording_tap)
    });
    let mut g = group(c, "tap_arkeo_sequential");
    for (id, addr) in [
        ("baseline_client_arkeo_sim", sim.local_addr()),
        ("client_bare_proxy_arkeo_sim", proxy.local_addr()),
        ("client_tap_arkeo_sim", tap.local_addr()),
        ("client_tap_recording_arkeo_sim", recording_tap.local_addr()),
    ] {
        let client = Client::builder(addr).build();
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(client.call(request.clone())).expect("call"));
        });
    }
    g.finish();
    rt.block_on(async {
        tap.shutdown().await.expect("tap shutdown");
        recording_tap
            .shutdown()
            .await
            .expect("recording tap shutdown");
        proxy.shutdown().await;
        sim.shutdown().await;
    });
    let _ = std::fs::remove_file(&recording);
}

criterion_group!(
    loopback_benches,
    arkeo,
    arkeo_concurrent,
    pekat,
    comet,
    pycom,
    pycom_listener,
    tap_arkeo_sequential
);
criterion_main!(loopback_benches);
