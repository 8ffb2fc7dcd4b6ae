//! Answering and ending the command in flight: its output, boardio's verdicts, and what is
//! left when its call ends early.

use std::time::Instant;

use super::{Out, Owed, Pipeline, Sync, later};
use crate::coordinator::config::PipelineTimings;
use crate::coordinator::effects::{Expect, Failure, Reply};
use crate::coordinator::matching::{boardio_commands, verdict_of};
use crate::sequence::Verdict;

impl Pipeline {
    /// Answers the current command, and ends it, as far as what came allows.
    ///
    /// The call is answered as soon as its answer is known (a plain command at its output, a
    /// sequence at its first `ERROR` or once every boardio command reported `READY`); the
    /// pipeline moves on only once every verdict the output announces has come (or the settle
    /// or verdict wait passed), so that none is taken for the next command's.
    pub(super) fn settle(&mut self, now: Instant, timings: &PipelineTimings, out: &mut Vec<Out>) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let Some(output) = &current.output else {
            return;
        };
        let expected = boardio_commands(output);
        let error = current
            .verdicts
            .iter()
            .any(|v| matches!(v, Verdict::Error(_)));
        let ready = current
            .verdicts
            .iter()
            .filter(|v| **v == Verdict::Ready)
            .count();
        if let Some(id) = current.id {
            let answer = match current.expect {
                Expect::Output => Some(None),
                Expect::Verdict if expected == 0 || error || ready >= expected => {
                    Some(verdict_of(output, &current.verdicts))
                }
                Expect::Verdict => None,
            };
            if let Some(verdict) = answer {
                let reply = Reply {
                    output: output.clone(),
                    verdict,
                };
                out.push(Out::Complete(id, Ok(reply)));
                current.id = None;
            }
        }
        let got = current.verdicts.len();
        if got >= expected {
            self.current = None;
            self.pump(now, timings, out);
        } else if got > 0 && current.settle_at.is_none() {
            current.settle_at = Some(later(now, timings.verdict_settle));
        }
    }

    /// Ends the current command with what it has; the next command may go.
    pub(super) fn finish(&mut self, out: &mut Vec<Out>) {
        let Some(current) = self.current.take() else {
            return;
        };
        let Some(id) = current.id else {
            return;
        };
        match current.output {
            Some(output) => {
                let verdict = verdict_of(&output, &current.verdicts);
                out.push(Out::Complete(id, Ok(Reply { output, verdict })));
            }
            None => out.push(Out::Complete(id, Err(Failure::Timeout))),
        }
    }

    /// The current command's call ended before the command finished: answer it,
    /// re-synchronise if its output may still come, and owe the verdicts boardio may still
    /// send for it (the next command waits for them, at most the verdict wait).
    pub(super) fn abandon_current(
        &mut self,
        failure: Failure,
        now: Instant,
        timings: &PipelineTimings,
        out: &mut Vec<Out>,
    ) {
        let Some(current) = self.current.take() else {
            return;
        };
        if let Some(id) = current.id {
            out.push(Out::Complete(id, Err(failure)));
        }
        let count = match &current.output {
            Some(output) => {
                let missing = boardio_commands(output).saturating_sub(current.verdicts.len());
                (missing > 0).then_some(Some(missing))
            }
            None => {
                self.sync = Sync::Needed { eager: true };
                current.boardio.then_some(None)
            }
        };
        if let Some(count) = count {
            self.owed = Some(Owed {
                count,
                until: later(now, timings.verdict_wait),
            });
        }
    }
}
