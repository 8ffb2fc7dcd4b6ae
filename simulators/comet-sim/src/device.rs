//! The simulated COMET endpoint itself: its state, its handlers and its answers. No sockets:
//! it takes a received frame and returns the answer (the simulator serves it, see
//! [`crate::CometSim`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use comet_socket::Frame;
use comet_socket::dispatch::{Answer, Incoming};
use comet_socket::server::{Handler, HandlerError, Handlers};
use labwire_simkit::{Device, SimClock};
use serde_json::{Map, Value, json};

use crate::config::{ECHO_ACTION, ScheduledFault, SimConfig};
use crate::scenario::CometMatcher;

/// How many received requests and Telegram messages the state keeps (oldest dropped first).
pub const LOG_CAPACITY: usize = 1000;

/// COMET's own faults, queued or set as [`Fault::Device`](crate::Fault::Device) through
/// [`CometSim::faults`](crate::CometSim) like every other fault.
///
/// In scenario files and control requests: `{device: {error: <text>}}`,
/// `{device: {slow: <duration>}}` (`"200ms"`, `"1.5s"`: durations carry their unit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CometFault {
    /// Answer `{"result": <this string>}` without running any handler, the way a COMET handler
    /// reports a device error.
    Error(String),
    /// The handlers take this long, in simulated time: the clock's time scale applies, and a
    /// stopped clock waits for `advance`. In fidelity mode it holds up every other request, as
    /// COMET's single thread would. Past the connection deadline the connection is closed
    /// without an answer.
    Slow(#[serde(with = "labwire_simkit::duration::humane")] Duration),
}

/// `CometFault`'s text form, read by hand: a YAML reader takes a one-key map for an enum only
/// as a tag (`!slow 200ms`), and `{slow: 200ms}` is what people write.
mod fault_serde {
    use std::fmt;

    use labwire_simkit::duration::Humane;
    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::CometFault;

    const VARIANTS: &[&str] = &["error", "slow"];

    struct FaultVisitor;

    impl<'de> Visitor<'de> for FaultVisitor {
        type Value = CometFault;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a COMET fault: {error: <text>} or {slow: <duration>}")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<CometFault, E> {
            match name {
                "error" | "slow" => {
                    Err(E::custom(format!("`{name}` needs a value: {{{name}: ..}}")))
                }
                other => Err(E::unknown_variant(other, VARIANTS)),
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CometFault, A::Error> {
            let Some(key) = map.next_key::<String>()? else {
                return Err(de::Error::custom("an empty map is not a COMET fault"));
            };
            let fault = match key.as_str() {
                "error" => CometFault::Error(map.next_value()?),
                "slow" => CometFault::Slow(map.next_value::<Humane>()?.0),
                other => return Err(de::Error::unknown_variant(other, VARIANTS)),
            };
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom("a COMET fault is a map with one key"));
            }
            Ok(fault)
        }
    }

    impl<'de> Deserialize<'de> for CometFault {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(FaultVisitor)
        }
    }
}

/// A valid request the simulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The action.
    pub action: String,
    /// The value.
    pub value: Value,
}

/// A message the Telegram-bot handler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramMessage {
    /// The chat id (the key of the value object).
    pub chat_id: String,
    /// The text received.
    pub text: String,
    /// The reply sent back.
    pub reply: String,
}

/// What the simulator has seen. (Every request, valid or not, is counted by
/// [`CometSim::requests`](labwire_simkit::SimHandle::requests); faults applied by
/// [`Faults::applied`](labwire_simkit::Faults::applied).)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted.
    pub connections: u64,
    /// Valid requests (handed to the handlers, or to a device-error fault).
    pub requests: u64,
    /// Requests with a missing or falsy action or value.
    pub invalid: u64,
    /// Requests with binary content.
    pub binary: u64,
    /// Connections closed without an answer because the request was malformed (its frame or
    /// its content).
    pub malformed: u64,
    /// Requests held without an answer because their content is falsy (fidelity mode only;
    /// they are counted in no other field).
    pub held: u64,
}

/// The simulator's state, shared by every connection and by the test holding it. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Mutex<StateInner>>,
    /// What a reset goes back to: the settings the simulator started with (its scenario's).
    initial: Arc<SimConfig>,
    clock: SimClock,
}

/// How many of the latest requests and Telegram messages the control channel's state shows.
const STATE_LOG: usize = 20;

#[derive(Debug, Default)]
struct StateInner {
    answers: BTreeMap<String, Value>,
    delays: BTreeMap<String, Duration>,
    status: String,
    /// Keyed by the command in lower case, trimmed.
    replies: BTreeMap<String, String>,
    received: VecDeque<Received>,
    telegram: VecDeque<TelegramMessage>,
    counters: Counters,
}

fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() >= LOG_CAPACITY {
        log.pop_front();
    }
    log.push_back(item);
}

impl StateInner {
    fn new(config: &SimConfig) -> Self {
        Self {
            answers: config.answers.clone(),
            delays: config.delays.clone(),
            status: config.status.clone(),
            replies: config
                .telegram_replies
                .iter()
                .map(|(command, reply)| (command.trim().to_lowercase(), reply.clone()))
                .collect(),
            ..Self::default()
        }
    }
}

impl SimState {
    pub(crate) fn new(config: &SimConfig, clock: SimClock) -> Self {
        Self {
            inner: Arc::new(Mutex::new(StateInner::new(config))),
            initial: Arc::new(config.clone()),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, StateInner> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers `action` with `value` from now on, before the built-in handlers. A falsy
    /// `value` lets the built-in handlers answer, as a falsy handler result does in COMET.
    pub fn set_answer(&self, action: impl Into<String>, value: Value) {
        self.lock().answers.insert(action.into(), value);
    }

    /// Removes the fixed answer for `action`, returning it.
    pub fn remove_answer(&self, action: &str) -> Option<Value> {
        self.lock().answers.remove(action)
    }

    /// The fixed answer for `action`, if any.
    pub fn answer(&self, action: &str) -> Option<Value> {
        self.lock().answers.get(action).cloned()
    }

    /// From now on the handlers take `delay` (simulated time) for every request of `action`;
    /// `None` removes the delay. See [`SimConfig::delays`].
    pub fn set_delay(&self, action: impl Into<String>, delay: Option<Duration>) {
        let mut inner = self.lock();
        let action = action.into();
        match delay {
            Some(delay) => inner.delays.insert(action, delay),
            None => inner.delays.remove(&action),
        };
    }

    /// How long the handlers take for a request of `action`, if set.
    pub fn delay(&self, action: &str) -> Option<Duration> {
        self.lock().delays.get(action).copied()
    }

    /// From now on the Telegram bot replies `reply` to `command` (any case, trimmed).
    pub fn set_telegram_reply(&self, command: &str, reply: impl Into<String>) {
        self.lock()
            .replies
            .insert(command.trim().to_lowercase(), reply.into());
    }

    /// Back to the settings the simulator started with (its scenario's): fixed answers,
    /// delays, status and Telegram replies; the logs and counters emptied. (The faults are
    /// the [`SimHandle`](labwire_simkit::SimHandle)'s: `sim.reset()` resets both.)
    pub fn reset(&self) {
        *self.lock() = StateInner::new(&self.initial);
    }

    /// The state as JSON, as the control channel's `GET /state` shows it: the settings,
    /// [`Counters`], and the latest 20 requests and Telegram messages.
    pub fn to_json(&self) -> Value {
        let inner = self.lock();
        let latest = |len: usize| len.saturating_sub(STATE_LOG);
        let c = inner.counters;
        json!({
            "fidelity": self.initial.fidelity,
            "telegram_action": self.initial.telegram_action,
            "status": inner.status,
            "answers": inner.answers,
            "delays": inner.delays.iter()
                .map(|(action, d)| (action.clone(), Value::from(labwire_simkit::duration::format(*d))))
                .collect::<Map<_, _>>(),
            "telegram_replies": inner.replies,
            "counters": {
                "connections": c.connections,
                "requests": c.requests,
                "invalid": c.invalid,
                "binary": c.binary,
                "malformed": c.malformed,
                "held": c.held,
            },
            "received": inner.received.iter().skip(latest(inner.received.len()))
                .map(|r| json!({"action": r.action, "value": r.value}))
                .collect::<Vec<_>>(),
            "telegram_messages": inner.telegram.iter().skip(latest(inner.telegram.len()))
                .map(|m| json!({"chat_id": m.chat_id, "text": m.text, "reply": m.reply}))
                .collect::<Vec<_>>(),
            "clock": labwire_simkit::duration::format(self.clock.now()),
        })
    }

    /// Sets the text the Telegram bot reports for `status`.
    pub fn set_status(&self, status: impl Into<String>) {
        self.lock().status = status.into();
    }

    /// The text the Telegram bot reports for `status`.
    pub fn status(&self) -> String {
        self.lock().status.clone()
    }

    /// The valid requests received, oldest first (the last [`LOG_CAPACITY`]).
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.iter().cloned().collect()
    }

    /// The Telegram messages answered, oldest first (the last [`LOG_CAPACITY`]).
    pub fn telegram_messages(&self) -> Vec<TelegramMessage> {
        self.lock().telegram.iter().cloned().collect()
    }

    /// What the simulator has seen so far.
    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    pub(crate) fn count(&self, update: impl FnOnce(&mut Counters)) {
        update(&mut self.lock().counters);
    }

    /// Counts what `incoming` is, and logs a valid request.
    fn record(&self, incoming: &Incoming) {
        let mut inner = self.lock();
        match incoming {
            Incoming::Request(request) => {
                inner.counters.requests += 1;
                push_bounded(
                    &mut inner.received,
                    Received {
                        action: request.action.clone(),
                        value: request.value.clone(),
                    },
                );
            }
            Incoming::Invalid(_) => inner.counters.invalid += 1,
            Incoming::Binary(_) => inner.counters.binary += 1,
            _ => inner.counters.malformed += 1,
        }
    }
}

/// Fixed answers from the state.
struct FixedAnswers(SimState);

impl Handler for FixedAnswers {
    async fn handle(&self, action: &str, _value: &Value) -> Result<Value, HandlerError> {
        Ok(self.0.answer(action).unwrap_or(Value::Null))
    }
}

/// `ECHO` answers the value.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, action: &str, value: &Value) -> Result<Value, HandlerError> {
        Ok(if action == ECHO_ACTION {
            value.clone()
        } else {
            Value::Null
        })
    }
}

/// Answers `{"<chat id>": "<text>"}` with `{"<chat id>": "<reply>"}`, the shape of COMET's
/// Telegram-bot messages. It knows `ping`, `status` and `help`; it never runs anything.
struct TelegramBot {
    action: String,
    state: SimState,
}

impl TelegramBot {
    fn reply(&self, text: &str) -> String {
        let command = text.trim().to_lowercase();
        if let Some(reply) = self.state.lock().replies.get(&command) {
            return reply.clone();
        }
        match command.as_str() {
            "ping" | "/ping" => "pong".to_owned(),
            "status" | "status?" | "/status" => format!("Status: {}", self.state.status()),
            "help" | "/help" | "/start" => "Commands: ping, status, help".to_owned(),
            _ => format!(
                "Unknown command {:?}; send help for the commands",
                text.trim()
            ),
        }
    }
}

impl Handler for TelegramBot {
    async fn handle(&self, action: &str, value: &Value) -> Result<Value, HandlerError> {
        if action != self.action {
            return Ok(Value::Null);
        }
        let Value::Object(messages) = value else {
            return Err("Telegram messages are {\"<chat id>\": \"<text>\"}".into());
        };
        let mut replies = Map::new();
        for (chat_id, text) in messages {
            let Value::String(text) = text else {
                return Err(format!("message for chat {chat_id} is not text").into());
            };
            let reply = self.reply(text);
            push_bounded(
                &mut self.state.lock().telegram,
                TelegramMessage {
                    chat_id: chat_id.clone(),
                    text: text.clone(),
                    reply: reply.clone(),
                },
            );
            replies.insert(chat_id.clone(), Value::String(reply));
        }
        Ok(Value::Object(replies))
    }
}

/// The simulated endpoint: fixed answers, `ECHO` and the Telegram bot, tried in that order as
/// COMET's handler chain, with COMET's treatment of invalid, binary and malformed requests and,
/// in fidelity mode, its quirks.
pub(crate) struct CometDevice {
    state: SimState,
    handlers: Handlers,
    clock: SimClock,
    fidelity: bool,
    deadline: Duration,
    /// In fidelity mode requests are handled one at a time, as COMET's single thread does.
    serial: tokio::sync::Mutex<()>,
}

impl CometDevice {
    pub(crate) fn new(config: &SimConfig, state: SimState, clock: SimClock) -> Self {
        let handlers = Handlers::new()
            .handler(FixedAnswers(state.clone()))
            .handler(Echo)
            .handler(TelegramBot {
                action: config.telegram_action.clone(),
                state: state.clone(),
            });
        Self {
            state,
            handlers,
            clock,
            fidelity: config.fidelity,
            deadline: config.connection_deadline,
            serial: tokio::sync::Mutex::new(()),
        }
    }
}

impl Device for CometDevice {
    type Request = Frame;
    type Response = Answer;
    type Fault = CometFault;

    async fn call(&self, _peer: SocketAddr, frame: Frame, fault: Option<CometFault>) -> Answer {
        if self.fidelity && frame.has_falsy_content() {
            // A real COMET server spins at 100 % CPU on this and never answers. We only hold
            // the connection: the serve loop parks on the socket and the deadline's timer.
            tracing::debug!(
                content_type = %frame.content_type,
                "falsy content: holding the connection without answering, as COMET"
            );
            self.state.count(|c| c.held += 1);
            return Answer::Hold;
        }
        // COMET handles one request at a time: in fidelity mode a slow answer holds up every
        // other connection, as it would there.
        let _serial = if self.fidelity {
            Some(self.serial.lock().await)
        } else {
            None
        };
        let incoming = Incoming::from_frame(&frame);
        let slow = match (&fault, &incoming) {
            (Some(CometFault::Slow(slow)), _) => {
                tracing::debug!(?slow, "fault: slow handlers");
                Some(*slow)
            }
            (_, Incoming::Request(request)) => self.state.delay(&request.action),
            _ => None,
        };
        if let Some(slow) = slow
            && tokio::time::timeout(self.deadline, self.clock.sleep(slow))
                .await
                .is_err()
        {
            return Answer::Close;
        }
        self.state.record(&incoming);
        match (incoming, fault) {
            (Incoming::Request(_), Some(CometFault::Error(message))) => {
                tracing::debug!(%message, "fault: device error");
                Answer::result(Value::String(message))
            }
            (incoming, _) => self.handlers.answer(incoming).await,
        }
    }
}

impl labwire_simkit::control::Control for SimState {
    type Fault = CometFault;
    type Matcher = CometMatcher;

    fn state(&self) -> Value {
        self.to_json()
    }

    fn reset(&self) {
        SimState::reset(self);
    }

    fn initial_faults(&self) -> Vec<ScheduledFault> {
        initial_faults(&self.initial)
    }
}

/// The faults a simulator with `config` starts with: [`SimConfig::fault`] until cleared, then
/// the schedule.
pub(crate) fn initial_faults(config: &SimConfig) -> Vec<ScheduledFault> {
    config
        .fault
        .iter()
        .map(|fault| ScheduledFault::next(fault.clone()).until_cleared())
        .chain(config.schedule.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_telegram_bot_answers_each_chat_and_never_runs_commands() {
        let state = SimState::new(&SimConfig::default(), SimClock::manual());
        state.set_status("measuring");
        state.set_telegram_reply(" Calibrate ", "queued");
        let bot = TelegramBot {
            action: crate::DEFAULT_TELEGRAM_ACTION.into(),
            state: state.clone(),
        };
        let answer = bot
            .handle(
                "Telegram",
                &json!({"1": "Status?", "2": "ping", "3": "rm -rf /", "4": "CALIBRATE"}),
            )
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({"1": "Status: measuring", "2": "pong",
                   "3": "Unknown command \"rm -rf /\"; send help for the commands",
                   "4": "queued"})
        );
        assert_eq!(state.telegram_messages().len(), 4);
        assert!(bot.handle("Telegram", &json!("text")).await.is_err());
        assert_eq!(
            bot.handle("Other", &json!({"1": "ping"})).await.unwrap(),
            Value::Null
        );
    }

    #[test]
    fn comet_faults_read_as_one_key_maps_with_units() {
        let read = |text: &str| serde_json::from_str::<CometFault>(text).map_err(|e| e.to_string());
        assert_eq!(
            read(r#"{"error": "Overload"}"#),
            Ok(CometFault::Error("Overload".into()))
        );
        assert_eq!(
            read(r#"{"slow": "250ms"}"#),
            Ok(CometFault::Slow(Duration::from_millis(250)))
        );
        assert!(read(r#"{"slow": 2}"#).is_err());
        assert!(read(r#""slow""#).unwrap_err().contains("needs a value"));
        assert!(
            read(r#"{"sloww": "1s"}"#)
                .unwrap_err()
                .contains("unknown variant")
        );
        assert!(
            read(r#"{"error": "a", "slow": "1s"}"#)
                .unwrap_err()
                .contains("one key")
        );
        assert_eq!(
            serde_json::to_value(CometFault::Slow(Duration::from_millis(1500))).unwrap(),
            json!({"slow": "1500ms"})
        );
    }

    #[test]
    fn logs_keep_only_the_latest_entries() {
        let mut log = VecDeque::new();
        for i in 0..LOG_CAPACITY + 5 {
            push_bounded(&mut log, i);
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log.front(), Some(&5));
    }
}
