//! Sends one message to a COMET server and prints the answer's `result` as JSON.
//!
//! ```text
//! cargo run -p comet-socket --example send -- [--timeout SECONDS] HOST:PORT ACTION VALUE_JSON
//! ```
//!
//! Exit codes, the same as the `labwire` command-line tool's: 0 answered; 1 the device refused
//! (it answered `Error: ...`); 2 bad usage: VALUE_JSON is not JSON, or the client will not send
//! it (an empty action or a falsy value, which COMET would hand to no handler, or a request too
//! large); 3 cannot connect (refused, unreachable, or the connect timeout passed); 4 no answer
//! in time; 5 the exchange failed on the way (closed without answering, cut off, invalid frame,
//! binary content).

use std::process::ExitCode;
use std::time::Duration;

use comet_socket::client::{DEFAULT_CALL_TIMEOUT, Error};
use comet_socket::{Client, Request};

const USAGE: &str = "usage: send [--timeout SECONDS] HOST:PORT ACTION VALUE_JSON";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut timeout = DEFAULT_CALL_TIMEOUT;
    if args.first().is_some_and(|a| a == "--timeout") {
        let seconds = args.get(1).and_then(|s| s.parse::<f64>().ok());
        match seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
            Some(t) => timeout = t,
            None => {
                eprintln!("error: --timeout needs a number of seconds\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        args.drain(..2);
    }
    let [addr, action, value] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let value: serde_json::Value = match serde_json::from_str(value) {
        Ok(value) => value,
        Err(e) => {
            eprintln!("error: VALUE_JSON is not valid JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let client = Client::builder(addr.as_str())
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .build();
    match client.call(Request::new(action.as_str(), value)).await {
        Ok(answer) => {
            println!("{}", answer.result);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", labwire_net::error_chain(&e));
            let code = match &e {
                Error::Device(_) => 1,
                Error::Invalid(_) | Error::Encode(_) => 2,
                Error::Connect { .. } => 3,
                e if e.is_timeout() => 4,
                _ => 5,
            };
            ExitCode::from(code)
        }
    }
}
