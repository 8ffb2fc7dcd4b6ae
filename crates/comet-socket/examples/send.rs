//! Sends one message to a COMET server and prints the answer's `result` as JSON.
//!
//! ```text
//! cargo run -p comet-socket --example send -- [--timeout SECONDS] HOST:PORT ACTION VALUE_JSON
//! ```
//!
//! Exit codes: 0 answered; 2 bad usage or VALUE_JSON is not JSON; 3 the client refuses the
//! value (it would hang or be ignored by COMET); 4 cannot connect; 5 no answer in time;
//! 1 any other failure (closed without answering, invalid answer).

use std::process::ExitCode;
use std::time::Duration;

use comet_socket::Client;
use comet_socket::client::Error;

const USAGE: &str = "usage: send [--timeout SECONDS] HOST:PORT ACTION VALUE_JSON";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut timeout = comet_socket::client::DEFAULT_ANSWER_TIMEOUT;
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
        .answer_timeout(timeout)
        .build();
    match client.send(action, &value).await {
        Ok(result) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", comet_socket::error::report(&e));
            let code = match &e {
                Error::Refused(_) => 3,
                Error::Connect { .. } if e.is_timeout() => 5,
                Error::Connect { .. } => 4,
                Error::Timeout { .. } => 5,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}
