//! Scale: one coordinator (this process) manages a fleet of simulated LA4 nodes (the `la4-sim`
//! binary, another process) with the vendor's 5 s heartbeats, and sends a command to every node
//! each second. Checks that no node is ever seen offline and that every command gets its own
//! output (nothing lost, nothing mis-attributed), then reports this process's CPU time and
//! memory per node.
//!
//! ```sh
//! cargo build --release -p la4-sim
//! cargo run --release -p labwire-tests --example pycom_scale -- target/release/la4-sim 1000 60
//! ```
//! (`cargo xtask scale [NODES] [SECONDS]` does both.) Loopback only.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pycom_proto::{Coordinator, Event, Identity};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `utime + stime` of this process, in seconds (from `/proc/self/stat`; clock ticks at 100 Hz,
/// Linux's `USER_HZ`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident and peak memory of this process, in KiB (from `/proc/self/status`).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sim_binary = args
        .next()
        .ok_or("usage: pycom_scale LA4_SIM_BINARY [NODES] [SECONDS]")?;
    let nodes: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    let seconds: u64 = args.next().map_or(Ok(60), |s| s.parse())?;

    let mut sim = Command::new(&sim_binary)
        .args(["--listen", "127.0.0.1:0", "--nodes", &nodes.to_string()])
        .args(["--boot-ms", "0", "--no-discovery"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = sim.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(nodes);
    let started = Instant::now();
    while addrs.len() < nodes {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await?
            .map_err(|e| format!("reading la4-sim's stdout: {e}"))?
            .ok_or("la4-sim exited before announcing every node")?;
        if let Some(addr) = line.strip_prefix("listening on ") {
            addrs.push(addr.parse()?);
        }
    }
    eprintln!("{nodes} nodes up in {:.1?}", started.elapsed());

    let me = Identity::new("5ca1e000", "pycom scale", "127.0.0.1", 0, "0.1.0", true);
    let coordinator = Coordinator::builder("127.0.0.1:0".parse()?, me)
        .call_timeout(Duration::from_secs(10))
        // Room for every event of a few seconds, so that the watcher sees every NodeOffline.
        .event_capacity(64 * 1024)
        .start()
        .await?;
    let mut events = coordinator.events();
    let (cpu0, _) = (cpu_seconds(), memory_kib());
    for addr in &addrs {
        coordinator.add_node(*addr);
    }

    // Watch for any node seen offline, and count lag (the stream is bounded), until told to stop.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut offline = HashSet::new();
        let mut lagged = 0u64;
        loop {
            let event = tokio::select! {
                _ = &mut stopped => break,
                event = events.recv() => event,
            };
            match event {
                Ok(Event::NodeOffline { node }) => {
                    offline.insert(node);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => lagged += n,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        (offline, lagged)
    });

    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let (mut sent, mut ok, mut failed, mut wrong) = (0u64, 0u64, 0u64, 0u64);
    for tick in 0..seconds {
        ticks.tick().await;
        let calls: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let coordinator = coordinator.clone();
                let (addr, token) = (*addr, format!("n{i}t{tick}"));
                tokio::spawn(async move {
                    let answer = coordinator
                        .send_command(addr, format!("echo {token}"))
                        .await;
                    (token, answer)
                })
            })
            .collect();
        sent += calls.len() as u64;
        for call in calls {
            match call.await? {
                (token, Ok(output)) if output == format!("{token}\n") => ok += 1,
                (token, Ok(output)) => {
                    wrong += 1;
                    eprintln!("{token}: got another command's output {output:?}");
                }
                (token, Err(error)) => {
                    failed += 1;
                    eprintln!("{token}: {error}");
                }
            }
        }
    }
    let cpu = cpu_seconds() - cpu0;
    let (rss, peak) = memory_kib();
    let online = coordinator.nodes().iter().filter(|n| n.online).count();
    let _ = stop.send(());
    let (offline, lagged) = watcher.await?;
    coordinator.shutdown().await;
    let _ = sim.kill().await;

    println!(
        "pycom scale: {nodes} nodes, {seconds} s, heartbeats every 5 s, a command per node per second"
    );
    println!(
        "  commands: {sent} sent, {ok} answered with their own output, {failed} failed, {wrong} with another's output"
    );
    println!(
        "  nodes ever seen offline: {}; online at the end: {online}; events missed by the watcher: {lagged}",
        offline.len()
    );
    println!(
        "  coordinator CPU: {cpu:.1} s over {seconds} s ({:.1} % of one core, {:.1} µs per command)",
        100.0 * cpu / seconds as f64,
        1e6 * cpu / sent.max(1) as f64
    );
    println!(
        "  coordinator memory: RSS {:.1} MiB, peak {:.1} MiB ({:.1} KiB per node)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss as f64 / nodes as f64
    );
    if failed > 0 || wrong > 0 || !offline.is_empty() || online != nodes {
        return Err("the coordinator lost, mis-attributed or went offline on something".into());
    }
    Ok(())
}
