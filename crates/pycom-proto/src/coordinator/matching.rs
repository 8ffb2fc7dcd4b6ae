//! How the coordinator recognises what a node sent: its own marker commands' outputs, the
//! boardio commands an output shows were sent, and a sequence's verdict from boardio's messages.

use crate::sequence::Verdict;

/// How marker commands' tokens begin; the rest is 16 hex digits. Only letters, digits and `-`:
/// nothing in it is special to `sh`.
pub const MARKER_PREFIX: &str = "labwire-sync-";

/// The first half of the marker tokens of one node's pipeline: `labwire-sync-` and its seed.
/// Every output starting with it is one of that pipeline's markers, earlier ones included.
pub(super) fn token_stem(seed: u64) -> String {
    format!("{MARKER_PREFIX}{:08x}", seed as u32)
}

/// The token of a marker command's output (`<token>\n`), if it is one.
pub fn marker_token(output: &str) -> Option<&str> {
    let token = output.strip_suffix('\n').unwrap_or(output);
    let token = token.strip_suffix('\r').unwrap_or(token);
    token
        .strip_prefix(MARKER_PREFIX)
        .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|_| token)
}

/// How many boardio commands an output shows were sent (`BOARDIO_CLI: Sent: "…"` lines): each
/// can be answered by a verdict.
pub(super) fn boardio_commands(output: &str) -> usize {
    output.lines().filter(|line| line.contains("Sent:")).count()
}

/// A sequence's verdict from what came: the first `ERROR` if any (a `READY` for loading never
/// hides an `ERROR` for running), else `READY` if any; `None` when boardio was not reached or
/// nothing came.
pub(super) fn verdict_of(output: &str, verdicts: &[Verdict]) -> Option<Verdict> {
    if boardio_commands(output) == 0 {
        return None;
    }
    verdicts
        .iter()
        .find(|v| matches!(v, Verdict::Error(_)))
        .or_else(|| verdicts.first())
        .cloned()
}
