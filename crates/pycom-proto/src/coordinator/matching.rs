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

/// The boardio commands an output shows were sent: `X` of each `BOARDIO_CLI: Sent: "X" to FIFO
/// file` line.
pub(super) fn boardio_sent(output: &str) -> impl Iterator<Item = &str> {
    output.lines().filter_map(|line| {
        let (_, rest) = line.split_once("Sent:")?;
        let rest = rest.trim_start().strip_prefix('"')?;
        rest.split_once('"').map(|(command, _)| command)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boardio_commands_sent_are_read_from_the_vendors_output() {
        let output = "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\nBOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n";
        assert_eq!(boardio_sent(output).collect::<Vec<_>>(), ["uSeq", "runSeq"]);
        assert_eq!(boardio_commands(output), 2);
        assert_eq!(boardio_sent("sh: 1: boardiocli: not found\n").count(), 0);
    }
}
