//! PEKAT VISION Projects Manager: the demo and `labwire pekat`.

use std::time::Duration;

use anyhow::{bail, ensure};
use clap::{Args, Subcommand};
use pekat_proto::{Client, DeviceError, Dialect, Error, ProjectState, Terminator};
use pekat_sim::{PekatSim, demo_projects};
use serde_json::json;

use crate::failure::usage;
use crate::output::{self, say};
use crate::progress::Progress;

/// `labwire pekat`: talk to a Projects Manager's TCP server (or `pekat-sim`).
#[derive(Debug, Args)]
pub(crate) struct PekatArgs {
    /// The server, `HOST:PORT` (the Projects Manager's settings show it; 7002 is usual).
    #[arg(
        long,
        global = true,
        env = "LABWIRE_PEKAT_ADDR",
        default_value = "127.0.0.1:7002"
    )]
    addr: String,
    /// Protocol dialect: 3.18 (`start:PATH`) or 3.19 (`start|PATH`).
    #[arg(long, global = true, default_value = "3.18")]
    dialect: Dialect,
    /// Seconds to wait for each answer (a real server answers `start` once the project runs).
    #[arg(long, global = true, env = "LABWIRE_TIMEOUT", default_value_t = 30.0)]
    timeout: f64,
    /// Number requests with `<id>.` and check the echo (3.19).
    #[arg(long, global = true)]
    request_ids: bool,
    /// What to send after each request: none (as the vendor's example does), lf or crlf.
    #[arg(
        long,
        global = true,
        default_value = "none",
        value_name = "none|lf|crlf"
    )]
    terminator: Terminator,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print the project's state.
    ///
    /// --json: `{"path": PATH, "state": "running" | "stopped" | ...}`.
    Status {
        /// The project folder, e.g. 'C:\Users\pekat\PekatVisionProjects\Test Project 1'.
        path: String,
    },
    /// Start a project.
    ///
    /// --json: `{"path": PATH, "answer": "done"}`, or with --wait `{"path": PATH, "state":
    /// "running"}`.
    Start {
        /// The project folder.
        path: String,
        /// Then poll `status` until it runs, at most this many seconds (no answer to start is
        /// tolerated); the wait is shown on stderr.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
    },
    /// Stop a project.
    ///
    /// --json: `{"path": PATH, "answer": "done"}`, or with --wait `{"path": PATH, "state":
    /// "stopped"}`.
    Stop {
        /// The project folder.
        path: String,
        /// Then poll `status` until it is stopped, at most this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
    },
    /// Stop every project and start this one.
    ///
    /// --json: `{"path": PATH, "answer": "success"}`.
    Switch {
        /// The project folder.
        path: String,
    },
    /// Send TEXT as it is (e.g. 'start:C:\Projects\Line 1', or a command labwire does not
    /// know) and print the answer as it came, whatever it says.
    ///
    /// --json: `{"request": TEXT, "answer": ANSWER}`.
    Raw {
        /// The request text; --dialect does not apply, --terminator does.
        text: String,
    },
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        usage(format!(
            "{what} must be a number of seconds, 0 or more (not {value})"
        ))
    })
}

/// Runs `labwire pekat ...`.
pub(crate) async fn run(args: PekatArgs) -> anyhow::Result<()> {
    let timeout = seconds(args.timeout, "--timeout")?;
    let wait = match &args.action {
        Action::Start { wait: Some(s), .. } | Action::Stop { wait: Some(s), .. } => {
            Some(seconds(*s, "--wait")?)
        }
        _ => None,
    };
    let client = Client::builder(args.addr.as_str())
        .dialect(args.dialect)
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .blocking_timeout(timeout)
        .request_ids(args.request_ids)
        .terminator(args.terminator)
        .build();
    let answered = |path: &str, answer: &str| {
        output::result(&json!({"path": path, "answer": answer}), answer);
    };
    let reached = |path: &str, state: ProjectState| {
        output::result(&json!({"path": path, "state": state}), &state.to_string());
    };
    match (args.action, wait) {
        (Action::Status { path }, _) => {
            let state = client.status(path.as_str()).await?;
            reached(&path, state);
        }
        (Action::Start { path, .. }, None) => {
            client.start(path.as_str()).await?;
            answered(&path, "done");
        }
        (Action::Start { path, .. }, Some(within)) => {
            let progress = Progress::start(&format!("starting {path}"));
            let done = progress
                .during(client.start_and_wait(path.as_str(), within))
                .await;
            progress.finish(if done.is_ok() { "running" } else { "failed" });
            done?;
            reached(&path, ProjectState::Running);
        }
        (Action::Stop { path, .. }, None) => {
            client.stop(path.as_str()).await?;
            answered(&path, "done");
        }
        (Action::Stop { path, .. }, Some(within)) => {
            let progress = Progress::start(&format!("stopping {path}"));
            let done = progress
                .during(client.stop_and_wait(path.as_str(), within))
                .await;
            progress.finish(if done.is_ok() { "stopped" } else { "failed" });
            done?;
            reached(&path, ProjectState::Stopped);
        }
        (Action::Switch { path }, _) => {
            client.switch(path.as_str()).await?;
            answered(&path, "success");
        }
        (Action::Raw { text }, _) => {
            let answer = client.call_raw(&text).await?;
            output::result(&json!({"request": text, "answer": answer}), &answer);
        }
    }
    Ok(())
}

fn expect_refusal(result: Result<(), Error>, expected: &DeviceError) -> anyhow::Result<()> {
    match result {
        Err(error) if error.device_error() == Some(expected) => Ok(()),
        other => bail!("expected {expected}, got {other:?}"),
    }
}

async fn expect_state(client: &Client, path: &str, expected: ProjectState) -> anyhow::Result<()> {
    let state = client.status(path).await?;
    ensure!(
        state == expected,
        "{path}: expected {expected}, got {state}"
    );
    say!("  status '{path}' -> {state}");
    Ok(())
}

/// Starts `pekat-sim` on loopback in each dialect and drives every command with the client.
pub(crate) async fn demo() -> anyhow::Result<()> {
    let projects = demo_projects();
    let [one, two, three] = [0, 1, 2].map(|i| projects.get(i).map(|p| p.path.clone()));
    let (Some(one), Some(two), Some(three)) = (one, two, three) else {
        bail!("the simulator has fewer than three demo projects");
    };
    let delay = Duration::from_millis(150);

    // 3.18: plain answers, one connection per request.
    let sim = PekatSim::builder()
        .dialect(Dialect::V3_18)
        .delays(delay, delay)
        .start()
        .await?;
    say!("pekat-sim (dialect 3.18) listening on {}", sim.local_addr());
    let client = Client::builder(sim.local_addr().to_string())
        .dialect(Dialect::V3_18)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(20))
        .build();
    expect_state(&client, &one, ProjectState::Stopped).await?;
    client.start(one.as_str()).await?;
    say!("  start '{one}' -> done");
    expect_state(&client, &one, ProjectState::Running).await?;
    expect_refusal(client.start(three.as_str()).await, &DeviceError::PortInUse)?;
    say!("  start '{three}' -> error:port (shares the port of the running project)");
    client.switch(two.as_str()).await?;
    say!("  switch '{two}' -> success");
    expect_state(&client, &one, ProjectState::Stopped).await?;
    expect_state(&client, &two, ProjectState::Running).await?;
    client.stop(two.as_str()).await?;
    say!("  stop '{two}' -> done");
    let missing = r"C:\Users\pekat\PekatVisionProjects\No Such Project";
    expect_refusal(client.start(missing).await, &DeviceError::NotFound)?;
    say!("  start '{missing}' -> not-found");
    sim.shutdown().await;

    // 3.19: ids echoed, and a server that does not answer start/stop at all.
    let sim = PekatSim::builder()
        .dialect(Dialect::V3_19)
        .delays(delay, delay)
        .silent_start_stop(true)
        .start()
        .await?;
    say!(
        "pekat-sim (dialect 3.19, silent start/stop) listening on {}",
        sim.local_addr()
    );
    let client = Client::builder(sim.local_addr().to_string())
        .dialect(Dialect::V3_19)
        .request_ids(true)
        .keep_connection(true)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .no_answer_grace(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(20))
        .build();
    client
        .start_and_wait(one.as_str(), Duration::from_secs(5))
        .await?;
    say!("  start '{one}' (no answer) then polled status -> running");
    expect_state(&client, &one, ProjectState::Running).await?;
    client
        .stop_and_wait(one.as_str(), Duration::from_secs(5))
        .await?;
    say!("  stop '{one}' (no answer) then polled status -> stopped");
    sim.shutdown().await;
    Ok(())
}
