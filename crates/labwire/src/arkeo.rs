//! Cicci Research ARKEO All-in-One API: the demo and `labwire arkeo`.

use std::time::Duration;

use anyhow::{bail, ensure};
use arkeo_proto::json::lenient_f64;
use arkeo_proto::{Client, ParamKey, Request, RoutineState, Target, codes};
use arkeo_sim::ArkeoSim;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::failure::usage;
use crate::output::{self, say};
use crate::progress::Progress;

/// `labwire arkeo`: talk to an ARKEO application (or `arkeo-sim`).
#[derive(Debug, Args)]
pub(crate) struct ArkeoArgs {
    /// The ARKEO application, `HOST:PORT`.
    #[arg(
        long,
        global = true,
        env = "LABWIRE_ARKEO_ADDR",
        default_value = "127.0.0.1:6360"
    )]
    addr: String,
    /// Seconds to wait for each answer.
    #[arg(long, global = true, env = "LABWIRE_TIMEOUT", default_value_t = 5.0)]
    timeout: f64,
    /// Seconds to wait for the answer of a command that blocks while the hardware works
    /// (AcquireSingle, AcquireDark, AcquireReference, AutoExposure, StartCalibration).
    #[arg(long, global = true, default_value_t = 600.0)]
    blocking_timeout: f64,
    /// Send parameters under `params` (as the vendor's Python example) instead of `parameter`.
    #[arg(long, global = true)]
    params: bool,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the available routines and the active one.
    ///
    /// --json: `{"routines": [NAME, ...], "active": NAME or null}`.
    Routines,
    /// Print the active routine's status (GetTestStatus).
    ///
    /// --json: `{"routine": NAME or null, "status": STATE, "progress_pct": NUMBER or null,
    /// "progress": the device's progress value or null, "error": the device's error or null}`.
    Status,
    /// Start a routine and wait until it is Ready.
    ///
    /// --json: the routine's status once Ready, as for `status`.
    Start {
        /// Routine name, e.g. `Luminescence`, `JV`.
        routine: String,
        /// Seconds to wait for Ready.
        #[arg(long, default_value_t = 60.0)]
        wait: f64,
    },
    /// Apply settings (optional), run one measurement and wait for it, with its progress on
    /// stderr; print a summary of its data (--json: the data itself).
    ///
    /// The wait first sees the routine leave Ready (the application may still say Ready for a
    /// moment after StartMeasurement), then waits for Ready: never the previous run's data.
    ///
    /// --json: the routine's GetTestData `data`, as the device sent it.
    Measure {
        /// Settings object for ApplySettings, as JSON.
        #[arg(long)]
        settings: Option<String>,
        /// Seconds to wait for the measurement.
        #[arg(long, default_value_t = 600.0)]
        wait: f64,
        /// Seconds the measurement has to leave Ready after StartMeasurement.
        #[arg(long, default_value_t = 10.0)]
        start_grace: f64,
    },
    /// Close the active routine.
    ///
    /// --json: `{"closed": true}`.
    Close,
    /// Send any command and print the response's data (or fail with the device's error).
    ///
    /// --json: the response's `data` (null when it has none).
    Send {
        /// Target: MAIN, ROUTINE, TMPCTL, MUX, LED (or any other name).
        target: String,
        /// Command, e.g. GetStatus.
        command: String,
        /// Parameters as a JSON object.
        parameter: Option<String>,
    },
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        usage(format!(
            "{what} must be a number of seconds, 0 or more (not {value})"
        ))
    })
}

fn json_object(text: &str, what: &str) -> anyhow::Result<Value> {
    let value = arkeo_proto::json::parse(text.as_bytes())
        .map_err(|e| usage(format!("{what} is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(usage(format!("{what} must be a JSON object")));
    }
    Ok(value)
}

pub(crate) async fn run(args: ArkeoArgs) -> anyhow::Result<()> {
    let key = if args.params {
        ParamKey::Params
    } else {
        ParamKey::Parameter
    };
    let start_grace = match &args.action {
        Action::Measure { start_grace, .. } => seconds(*start_grace, "--start-grace")?,
        _ => arkeo_proto::client::DEFAULT_START_GRACE,
    };
    // Checked before connecting: a wrong command line is a usage error whatever the device.
    let wait = match &args.action {
        Action::Start { wait, .. } | Action::Measure { wait, .. } => seconds(*wait, "--wait")?,
        _ => Duration::ZERO,
    };
    let settings = match &args.action {
        Action::Measure {
            settings: Some(text),
            ..
        } => Some(json_object(text, "--settings")?),
        _ => None,
    };
    let parameter = match &args.action {
        Action::Send {
            parameter: Some(text),
            ..
        } => json_object(text, "the parameter")?,
        _ => Value::Null,
    };
    let timeout = seconds(args.timeout, "--timeout")?;
    let arkeo = Client::builder(args.addr.as_str())
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .blocking_timeout(seconds(args.blocking_timeout, "--blocking-timeout")?)
        .start_grace(start_grace)
        .param_key(key)
        .connect()
        .await?;
    match args.action {
        Action::Routines => {
            let active = arkeo.active_routine().await?;
            let routines = arkeo.available_routines().await?;
            let text: Vec<String> = routines
                .iter()
                .map(|routine| {
                    if active.as_deref() == Some(routine.as_str()) {
                        format!("{routine} (active)")
                    } else {
                        routine.clone()
                    }
                })
                .collect();
            output::result(
                &json!({"routines": routines, "active": active}),
                &text.join("\n"),
            );
        }
        Action::Status => print_status(&arkeo.test_status().await?),
        Action::Start { routine, .. } => {
            arkeo.start_routine(&routine).await?;
            let progress = Progress::start(&format!("starting {routine}"));
            let status = progress
                .during(arkeo.wait_until(RoutineState::Ready, wait))
                .await;
            progress.finish(if status.is_ok() { "ready" } else { "failed" });
            print_status(&status?);
        }
        Action::Measure { .. } => {
            if let Some(settings) = settings {
                arkeo.apply_settings(settings).await?;
            }
            let progress = Progress::start("measuring");
            let data = progress
                .during(arkeo.measure_with_progress(wait, |status| {
                    progress.update(status.routine_status.as_str(), status.progress_pct());
                }))
                .await;
            progress.finish(if data.is_ok() { "done" } else { "failed" });
            let data = data?;
            output::result(&data, &summary(&data));
        }
        Action::Close => {
            arkeo.close_routine().await?;
            output::result(&json!({"closed": true}), "closed");
        }
        Action::Send {
            target, command, ..
        } => {
            let request = Request::new(Target::parse(&target), command).with_parameter(parameter);
            let data = arkeo.call(request).await?.data.unwrap_or(Value::Null);
            output::result(&data, &serde_json::to_string_pretty(&data)?);
        }
    }
    Ok(())
}

fn print_status(status: &arkeo_proto::TestStatus) {
    let name = status.routine_name.as_deref().unwrap_or("?");
    let text = match (status.progress_pct(), &status.error) {
        (_, Some(error)) => format!("{name}: {} ({error})", status.routine_status),
        (Some(pct), None) => format!("{name}: {} {pct:.0}%", status.routine_status),
        (None, None) => format!("{name}: {}", status.routine_status),
    };
    let json = json!({
        "routine": status.routine_name,
        "status": status.routine_status.as_str(),
        "progress_pct": status.progress_pct(),
        "progress": status.progress,
        "error": status.error,
    });
    output::result(&json, &text);
}

/// A measurement's data for people: one line per top-level member, arrays and objects by
/// their size (`--json` prints the data itself).
fn summary(data: &Value) -> String {
    let describe = |value: &Value| match value {
        Value::Array(items) => format!("{} item(s)", items.len()),
        Value::Object(members) => format!("{} member(s)", members.len()),
        other => other.to_string(),
    };
    match data {
        Value::Object(members) => {
            let mut lines: Vec<String> = members
                .iter()
                .map(|(key, value)| format!("{key}: {}", describe(value)))
                .collect();
            lines.push("(the data itself: labwire --json arkeo measure)".to_owned());
            lines.join("\n")
        }
        other => describe(other),
    }
}

/// Starts arkeo-sim on loopback and runs the vendor's workflow with a Dark JV measurement.
pub(crate) async fn demo() -> anyhow::Result<()> {
    // Ten times real time: the routine initialises in 50 ms and measures in 200 ms.
    let sim = ArkeoSim::builder().speed(10.0).start().await?;
    let result = workflow(&sim).await;
    sim.shutdown().await;
    result
}

async fn workflow(sim: &ArkeoSim) -> anyhow::Result<()> {
    let addr = sim.local_addr();
    say!("arkeo-sim listening on {addr}");
    let arkeo = Client::builder(addr)
        .poll_interval(Duration::from_millis(20))
        .connect()
        .await?;
    let routines = arkeo.available_routines().await?;
    say!("available routines: {}", routines.join(", "));
    ensure!(
        routines.iter().any(|r| r == "Dark JV"),
        "Dark JV is not offered"
    );

    arkeo.start_routine("Dark JV").await?;
    let status = arkeo
        .wait_until(RoutineState::Ready, Duration::from_secs(5))
        .await?;
    say!("StartRoutine Dark JV -> {}", status.routine_status);

    arkeo
        .apply_settings(json!({"scan_settings": {"scan": {"Start (V)": -0.2, "End (V)": 1.0, "Step (V)": 0.05}}}))
        .await?;
    arkeo.set_info("labwire demo", "cell A1", 0.09).await?;
    arkeo.start_measurement().await?;
    let running = arkeo
        .wait_for(
            |s| s.routine_status == RoutineState::Running,
            Duration::from_secs(5),
        )
        .await?;
    say!("measuring: {:.0}%", running.progress_pct().unwrap_or(0.0));
    arkeo
        .wait_until(RoutineState::Ready, Duration::from_secs(5))
        .await?;

    let data = arkeo.test_data().await?;
    let scan = &data["scans"][0];
    let points = scan["data"].as_array().map_or(0, Vec::len);
    ensure!(points == 25, "expected 25 points, got {points}");
    let voc = lenient_f64(&scan["parameters"]["voc"]["value"]);
    let r_shunt = lenient_f64(&scan["parameters"]["r_shunt"]["value"]);
    ensure!(
        voc.is_some_and(f64::is_nan),
        "dark Voc should be NaN, got {voc:?}"
    );
    ensure!(
        r_shunt == Some(f64::INFINITY),
        "dark R_shunt should be infinite, got {r_shunt:?}"
    );
    say!(
        "GetTestData: {points} points per scan; Voc = NaN, R_shunt = Infinity (bare tokens on the wire)"
    );

    let refused = arkeo
        .command(
            Target::Led,
            "SetValues",
            json!({"address": 1, "values": [0.5, 0.5]}),
        )
        .await;
    match refused {
        Err(e) if e.device_error().and_then(|d| d.code()) == Some(codes::INVALID_ARRAY_SIZE) => {
            say!("LED SetValues with 2 values -> refused as expected: {e}");
        }
        other => bail!("expected error 1001, got {other:?}"),
    }

    arkeo.close_routine().await?;
    ensure!(
        arkeo.active_routine().await?.is_none(),
        "routine still active after CloseRoutine"
    );
    say!("CloseRoutine -> no active routine");
    Ok(())
}
