//! Manage one LA4 node: wait for its `unit_info`, run a sequence, print what comes back.
//!
//! ```sh
//! # against a simulator (in another terminal: cargo run -p la4-sim -- --listen 127.0.0.1:5000)
//! cargo run -p pycom-proto --example coordinator -- 127.0.0.1:5000 127.0.0.1:5001
//! ```
//! Arguments: the node's address (default `127.0.0.1:5000`) and the address to listen on for
//! events (default `127.0.0.1:5001`; on a real network, an address the node can reach).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use pycom_proto::coordinator::Error;
use pycom_proto::{Coordinator, Event, Identity, Row, Sequence, Slot};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let node: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5000").parse()?;
    let listen: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5001").parse()?;

    let identity = Identity::new(
        "7756f193",
        "pycom example",
        listen.ip().to_string(),
        0,
        "0.1.0",
        true,
    );
    let coordinator = Coordinator::builder(listen, identity).start().await?;
    let mut events = coordinator.events();
    println!("listening for events on {}", coordinator.local_addr());

    coordinator.add_node(node);
    // unit_info comes once, on the first heartbeat after the node has booted.
    let info = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::UnitInfo {
                node: from, info, ..
            }) = events.recv().await
                && from == node
            {
                return info;
            }
        }
    })
    .await
    .context("no unit_info from the node within 20 s")?;
    println!(
        "{node}: {} with {} (firmware {})",
        info.unit_type, info.mcu_type, info.firmware_version
    );

    let sequence = Sequence::new([Row::ModelLight { power: 100 }, Row::LedFan { on: true }])?;
    // Waits for the output and boardio's verdict, in whatever order the node sends them; a
    // BOARDIO_ERROR is the node's refusal, Error::Device.
    match coordinator
        .run_sequence_confirmed(node, &sequence, Slot::Normal)
        .await
    {
        Ok(report) => {
            print!("output:\n{}", report.output);
            println!("boardio: {:?}", report.verdict);
        }
        Err(Error::Device(refused)) => println!("refused: {}", refused.message),
        Err(e) => return Err(e.into()),
    }

    coordinator.shutdown().await;
    Ok(())
}
