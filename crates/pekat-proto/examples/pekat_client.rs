//! Talk to a PEKAT Projects Manager (or `pekat-sim`): status, start and wait, stop and wait.
//!
//! ```text
//! cargo run -p pekat-sim &            # listening on 127.0.0.1:7002
//! cargo run -p pekat-proto --example pekat_client -- 127.0.0.1:7002 'C:\Users\pekat\PekatVisionProjects\Test Project 1'
//! ```
//! A third argument `3.19` selects the newer dialect.

use std::time::Duration;

use pekat_proto::{Client, Dialect};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7002".into());
    let path = args
        .next()
        .unwrap_or_else(|| r"C:\Users\pekat\PekatVisionProjects\Test Project 1".into());
    let dialect: Dialect = args.next().as_deref().unwrap_or("3.18").parse()?;

    let client = Client::builder(addr)
        .dialect(dialect)
        .call_timeout(Duration::from_secs(10))
        .build();
    println!("status: {}", client.status(path.as_str()).await?);
    client
        .start_and_wait(path.as_str(), Duration::from_secs(60))
        .await?;
    println!("started; status: {}", client.status(path.as_str()).await?);
    client
        .stop_and_wait(path.as_str(), Duration::from_secs(60))
        .await?;
    println!("stopped; status: {}", client.status(path.as_str()).await?);
    Ok(())
}
