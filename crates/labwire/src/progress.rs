//! Progress on stderr while a command waits on a device (`arkeo measure`, `pekat start
//! --wait`): a bar (or a spinner, where the device reports no percentage) when stderr is a
//! terminal; plain lines otherwise — one when the state changes, at most one a second while
//! the percentage moves, and one every [`QUIET_LINE_EVERY`] while nothing changes. Nothing
//! with `--json` unless `--progress` asks.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output;

/// Plain lines while the percentage moves: at most one per this interval.
const LINE_EVERY: Duration = Duration::from_secs(1);
/// Plain lines while nothing changes: one per this interval, so a log shows the wait goes on.
const QUIET_LINE_EVERY: Duration = Duration::from_secs(10);
/// How often [`Progress::during`] looks at the clock.
const TICK: Duration = Duration::from_millis(200);

/// One wait's progress report.
pub(crate) struct Progress {
    what: String,
    started: Instant,
    sink: Sink,
}

enum Sink {
    Off,
    Bar(ProgressBar),
    Lines(Mutex<Lines>),
}

/// What the plain lines last said.
struct Lines {
    state: String,
    pct: Option<f64>,
    printed: Instant,
}

impl Progress {
    /// Starts reporting the wait named `what` (e.g. `measuring`), as the output mode and
    /// stderr allow.
    pub(crate) fn start(what: &str) -> Self {
        let started = Instant::now();
        let sink = if !output::progress_wanted() {
            Sink::Off
        } else if output::stderr_is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(spinner_style());
            bar.set_prefix(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            Sink::Bar(bar)
        } else {
            eprintln!("{what}: started");
            Sink::Lines(Mutex::new(Lines {
                state: "waiting".to_owned(),
                pct: None,
                printed: started,
            }))
        };
        Self {
            what: what.to_owned(),
            started,
            sink,
        }
    }

    /// The device reports `state`, and `pct` percent done where it says.
    pub(crate) fn update(&self, state: &str, pct: Option<f64>) {
        match &self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => {
                if let Some(pct) = pct {
                    if bar.length().is_none() {
                        bar.set_length(100);
                        bar.set_style(bar_style());
                    }
                    bar.set_position(percent(pct));
                }
                bar.set_message(state.to_owned());
            }
            Sink::Lines(lines) => {
                let Ok(mut lines) = lines.lock() else { return };
                let now = Instant::now();
                let changed = lines.state != state;
                let moved = pct.is_some()
                    && pct != lines.pct
                    && now.duration_since(lines.printed) >= LINE_EVERY;
                let quiet = now.duration_since(lines.printed) >= QUIET_LINE_EVERY;
                if changed || moved || quiet {
                    self.line(state, pct);
                    lines.printed = now;
                }
                state.clone_into(&mut lines.state);
                lines.pct = pct;
            }
        }
    }

    /// Keeps the report alive while nothing new is known (the spinner spins by itself; plain
    /// lines say every [`QUIET_LINE_EVERY`] that the wait goes on).
    fn tick(&self) {
        if let Sink::Lines(lines) = &self.sink {
            let (state, pct) = match lines.lock() {
                Ok(lines) => (lines.state.clone(), lines.pct),
                Err(_) => return,
            };
            self.update(&state, pct);
        }
    }

    /// Runs `work` to its end, keeping the report alive meanwhile.
    pub(crate) async fn during<F: Future>(&self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticks.tick() => self.tick(),
            }
        }
    }

    /// Ends the report: the bar is cleared, plain lines end with `outcome` and the time taken.
    pub(crate) fn finish(self, outcome: &str) {
        match &self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => bar.finish_and_clear(),
            Sink::Lines(_) => eprintln!(
                "{}: {outcome} after {:.1} s",
                self.what,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }

    fn line(&self, state: &str, pct: Option<f64>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        match pct {
            Some(pct) => eprintln!("{}: {state} {pct:.0}% ({elapsed:.1} s)", self.what),
            None => eprintln!("{}: {state} ({elapsed:.1} s)", self.what),
        }
    }
}

/// A percentage as a bar position, 0 to 100.
fn percent(pct: f64) -> u64 {
    if pct.is_finite() {
        // Clamped first: the conversion cannot wrap.
        pct.clamp(0.0, 100.0).round() as u64
    } else {
        0
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}: {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}: {msg} [{bar:30}] {pos:>3}% {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_become_positions_within_the_bar() {
        assert_eq!(percent(42.4), 42);
        assert_eq!(percent(-3.0), 0);
        assert_eq!(percent(250.0), 100);
        assert_eq!(percent(f64::NAN), 0);
    }
}
