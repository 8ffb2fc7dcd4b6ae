//! Your own ARKEO device: a temperature controller as a `Service`, served on loopback and
//! called with the crate's `Client`. `cargo run -p arkeo-proto --example own_device`
use std::{net::SocketAddr, sync::Mutex};

use arkeo_proto::server::{self, Service};
use arkeo_proto::{Client, Request, Response, Target, codes};
use serde_json::{Value, json};

struct Tmpctl(Mutex<f64>);

impl Service for Tmpctl {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, r: Request) -> Response {
        let mut setpoint = self.0.lock().unwrap();
        let temperature = r.parameter.get("temperature").and_then(Value::as_f64);
        match (&r.target, r.command.as_str(), temperature) {
            (Target::Tmpctl, "SetTemperature", Some(t)) => *setpoint = t,
            (Target::Tmpctl, "GetStatus", _) => {}
            _ => return Response::error(codes::UNKNOWN_COMMAND, "Unknown command", r.request_id),
        }
        Response::ok(json!({ "setpoint": *setpoint }), r.request_id)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let device = server::serve(addr, Tmpctl(Mutex::new(20.0))).await?;
    let arkeo = Client::connect(device.local_addr()).await?;
    arkeo.set_temperature(25.0).await?;
    let status = arkeo
        .command(Target::Tmpctl, "GetStatus", json!({}))
        .await?;
    anyhow::ensure!(status["setpoint"] == 25.0);
    let refused = arkeo.start_routine("JV").await.unwrap_err();
    println!("setpoint 25 °C; StartRoutine refused: {refused}");
    device.shutdown().await;
    Ok(())
}
