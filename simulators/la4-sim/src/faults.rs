//! What a fault does to one command's events.
//!
//! A pycom node never answers on the request connection: a command's answer is its events,
//! sent later on connections of their own. So the shared fault vocabulary
//! ([`labwire_simkit::Fault`]) acts on those events: the fault taken for a command is decided
//! when the command arrives and travels with its events through the destination's queue.

use std::time::Duration;

use labwire_simkit::Fault;
use pycom_proto::Body;

/// The LA4 node's own faults, as `Fault::Device(..)`, besides the shared ones.
///
/// In scenario files and control requests (snake case): `{device: drop_output}`,
/// `{device: message_before_output}`, `{device: {run_seq_error: "LED driver overheated"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum La4Fault {
    /// The command's `output` event is not sent (counted in
    /// [`Stats::events_lost`](crate::Stats::events_lost)); its `message` events still go.
    DropOutput,
    /// The command's `message` events (boardio's verdicts) go before its `output` event
    /// instead of after it.
    MessageBeforeOutput,
    /// Every `runSeq` of the command reports `BOARDIO_ERROR: <this text>` and leaves the
    /// lights as they are, like a device fault (e.g. `LED driver overheated`).
    RunSeqError(String),
}

/// `La4Fault`'s text form, read and written by hand: a YAML reader takes a one-key map for an
/// enum only as a tag (`!run_seq_error text`), and `{run_seq_error: text}` is what people write.
mod fault_serde {
    use std::fmt;

    use serde::de::{self, MapAccess, Visitor};
    use serde::ser::SerializeMap as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::La4Fault;

    const VARIANTS: &[&str] = &["drop_output", "message_before_output", "run_seq_error"];

    impl Serialize for La4Fault {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self {
                Self::DropOutput => serializer.serialize_str("drop_output"),
                Self::MessageBeforeOutput => serializer.serialize_str("message_before_output"),
                Self::RunSeqError(text) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry("run_seq_error", text)?;
                    map.end()
                }
            }
        }
    }

    struct FaultVisitor;

    impl<'de> Visitor<'de> for FaultVisitor {
        type Value = La4Fault;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "an LA4 fault: drop_output, message_before_output or {run_seq_error: <text>}",
            )
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<La4Fault, E> {
            match name {
                "drop_output" => Ok(La4Fault::DropOutput),
                "message_before_output" => Ok(La4Fault::MessageBeforeOutput),
                "run_seq_error" => Err(E::custom(
                    "`run_seq_error` needs the error text: {run_seq_error: <text>}",
                )),
                other => Err(E::unknown_variant(other, VARIANTS)),
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<La4Fault, A::Error> {
            let Some(key) = map.next_key::<String>()? else {
                return Err(de::Error::custom("an empty map is not an LA4 fault"));
            };
            let fault = match key.as_str() {
                "run_seq_error" => La4Fault::RunSeqError(map.next_value()?),
                "drop_output" | "message_before_output" => {
                    map.next_value::<de::IgnoredAny>()?;
                    self.visit_str(&key)?
                }
                other => return Err(de::Error::unknown_variant(other, VARIANTS)),
            };
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom("an LA4 fault is a map with one key"));
            }
            Ok(fault)
        }
    }

    impl<'de> Deserialize<'de> for La4Fault {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(FaultVisitor)
        }
    }
}

/// Bytes sent instead of an event under [`Fault::Garbage`]: not UTF-8, not JSON.
pub const GARBAGE: &[u8] = b"\xff\xfe{\"type_\": \"output\", garbage";

/// How one event is spoiled on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spoil {
    /// [`GARBAGE`] instead of the event.
    Garbage,
    /// The first half of the event's bytes.
    Truncate,
}

/// One event as queued: the body and what its command's fault does to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) body: Body,
    /// Wait this long (real time) before sending it.
    pub(crate) delay: Duration,
    pub(crate) spoil: Option<Spoil>,
}

impl Event {
    /// An event sent as it is.
    pub(crate) fn plain(body: Body) -> Self {
        Self {
            body,
            delay: Duration::ZERO,
            spoil: None,
        }
    }
}

/// The text `runSeq` fails with under `fault`, if any.
pub(crate) fn run_seq_error(fault: Option<&Fault<La4Fault>>) -> Option<String> {
    match fault {
        Some(Fault::Device(La4Fault::RunSeqError(text))) => Some(text.clone()),
        _ => None,
    }
}

/// A command's events (its `output`, then boardio's `messages`) under `fault`: those to queue,
/// in order, and how many are lost.
pub(crate) fn command_events(
    output: Body,
    messages: Vec<Body>,
    fault: Option<&Fault<La4Fault>>,
) -> (Vec<Event>, u64) {
    let all = 1 + messages.len() as u64;
    let (bodies, delay, spoil) = match fault {
        // The request connection is closed anyway: a closed answer is no answer.
        Some(Fault::NoReply | Fault::Close) => return (Vec::new(), all),
        Some(Fault::Device(La4Fault::DropOutput)) => (messages, Duration::ZERO, None),
        Some(Fault::Device(La4Fault::MessageBeforeOutput)) => {
            let mut bodies = messages;
            bodies.push(output);
            (bodies, Duration::ZERO, None)
        }
        other => {
            let bodies = std::iter::once(output).chain(messages).collect();
            match other {
                Some(Fault::Delay(delay)) => (bodies, *delay, None),
                Some(Fault::Garbage) => (bodies, Duration::ZERO, Some(Spoil::Garbage)),
                Some(Fault::Truncate) => (bodies, Duration::ZERO, Some(Spoil::Truncate)),
                _ => (bodies, Duration::ZERO, None),
            }
        }
    };
    let lost = all - bodies.len() as u64;
    let events = bodies
        .into_iter()
        .enumerate()
        // Only the first waits: the others follow it in the destination's queue.
        .map(|(i, body)| Event {
            body,
            delay: if i == 0 { delay } else { Duration::ZERO },
            spoil,
        })
        .collect();
    (events, lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_acts_on_the_commands_events_as_documented() {
        let output = Body::Output {
            output: "x\n".into(),
        };
        let ready = Body::Message {
            message: "BOARDIO_READY".into(),
        };
        let run = |fault: Fault<La4Fault>| {
            command_events(output.clone(), vec![ready.clone(); 2], Some(&fault))
        };
        let plain = |bodies: &[&Body]| -> Vec<Event> {
            bodies.iter().map(|&b| Event::plain(b.clone())).collect()
        };
        let (events, lost) = command_events(output.clone(), vec![ready.clone(); 2], None);
        assert_eq!((events, lost), (plain(&[&output, &ready, &ready]), 0));
        assert_eq!(run(Fault::NoReply), (Vec::new(), 3));
        assert_eq!(run(Fault::Close), (Vec::new(), 3));
        // Only the first waits: the others follow it in the destination's queue.
        let delay = Duration::from_millis(40);
        let delays: Vec<_> = run(Fault::Delay(delay)).0.iter().map(|e| e.delay).collect();
        assert_eq!(delays, [delay, Duration::ZERO, Duration::ZERO]);
        for (fault, spoil) in [
            (Fault::Garbage, Spoil::Garbage),
            (Fault::Truncate, Spoil::Truncate),
        ] {
            let (events, lost) = run(fault);
            assert_eq!((events.len(), lost), (3, 0));
            assert!(events.iter().all(|e| e.spoil == Some(spoil)));
        }
        let drop = Fault::Device(La4Fault::DropOutput);
        assert_eq!(run(drop.clone()), (plain(&[&ready, &ready]), 1));
        let first = Fault::Device(La4Fault::MessageBeforeOutput);
        assert_eq!(run(first), (plain(&[&ready, &ready, &output]), 0));
        // RunSeqError acts on boardio, not on the events.
        let error = Fault::Device(La4Fault::RunSeqError("hot".into()));
        assert_eq!(run_seq_error(Some(&error)), Some("hot".to_owned()));
        assert_eq!(run_seq_error(Some(&drop)), None);
        assert_eq!(run(error), (plain(&[&output, &ready, &ready]), 0));
    }

    #[test]
    fn device_faults_read_and_write_in_snake_case() {
        for (fault, json) in [
            (La4Fault::DropOutput, r#""drop_output""#),
            (La4Fault::MessageBeforeOutput, r#""message_before_output""#),
            (
                La4Fault::RunSeqError("hot".into()),
                r#"{"run_seq_error":"hot"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&fault).unwrap(), json);
            assert_eq!(serde_json::from_str::<La4Fault>(json).unwrap(), fault);
        }
        for bad in [
            r#""drop""#,
            r#""run_seq_error""#,
            "{}",
            r#"{"run_seq_error":"a","x":1}"#,
        ] {
            assert!(serde_json::from_str::<La4Fault>(bad).is_err(), "{bad}");
        }
    }
}
