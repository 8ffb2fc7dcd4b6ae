//! Where results go: text for people, or JSON for scripts (`--json`).
//!
//! With `--json` every command prints exactly one JSON document on stdout (a stream such as
//! `pycom watch` prints one JSON document per line), and nothing else: narration goes to
//! stderr, progress is off unless `--progress` asks for it. The shapes are documented in the
//! crate's README.

use std::io::{IsTerminal as _, Write as _};
use std::sync::OnceLock;

use serde_json::Value;

/// How this run prints, set once from the global flags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mode {
    /// `--json`.
    pub(crate) json: bool,
    /// `--progress`: progress on stderr even with `--json`.
    pub(crate) progress: bool,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets the mode for the rest of the run (the first call wins).
pub(crate) fn set_mode(mode: Mode) {
    let _ = MODE.set(mode);
}

/// The mode of this run.
pub(crate) fn mode() -> Mode {
    MODE.get().copied().unwrap_or_default()
}

/// Whether results are printed as JSON.
pub(crate) fn json() -> bool {
    mode().json
}

/// Whether progress reports are wanted (on stderr): always in text mode, with `--json` only
/// when `--progress` asks.
pub(crate) fn progress_wanted() -> bool {
    let mode = mode();
    !mode.json || mode.progress
}

/// Whether stderr is a terminal (a progress bar redraws itself there; elsewhere plain lines).
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Prints a command's result: `json` as one line with `--json`, else `text` (each line as
/// given; nothing when empty).
pub(crate) fn result(json: &Value, text: &str) {
    if self::json() {
        line(&json.to_string());
    } else if !text.is_empty() {
        line(text.strip_suffix('\n').unwrap_or(text));
    }
}

/// Prints one line of a stream: `json` with `--json` (JSON Lines), else `text`.
pub(crate) fn stream_line(json: &Value, text: &str) {
    if self::json() {
        line(&json.to_string());
    } else {
        line(text);
    }
}

/// One line on stdout, flushed (a script reading a stream sees each line as it comes). A
/// closed stdout (`labwire ... | head -1`) is not an error worth a panic.
fn line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Narration (the demo's running commentary): stdout in text mode, stderr with `--json` so
/// that stdout stays one JSON document.
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::output::json() {
            eprintln!($($arg)*);
        } else {
            println!($($arg)*);
        }
    };
}
pub(crate) use say;
