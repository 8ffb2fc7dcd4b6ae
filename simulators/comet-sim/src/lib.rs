#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use comet_socket::dispatch::{Incoming, binary_answer, classify, invalid_answer};
use comet_socket::io::{ReadError, linger, read_frame};
use comet_socket::json::is_falsy_content;
use comet_socket::server::{
    CancellationToken, CometServer, Handler, HandlerError, ServerConfig, ServerHandle,
};
use comet_socket::{Frame, Limits, Response, wire};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The simulator's clock: delays are given in simulated time, which runs `speed` times faster
/// than real time ([`SimConfig::time_scale`]; [`SimClock::new`] runs it in real time for a
/// speed that is not finite and positive).
pub use labwire_simkit::SimClock;

/// COMET's default port.
pub const DEFAULT_PORT: u16 = 65432;
/// Where the simulator listens unless told otherwise: COMET's default, `127.0.0.1:65432`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT));
/// The action of COMET's Telegram bot messages.
pub const DEFAULT_TELEGRAM_ACTION: &str = "Telegram";
/// The action the built-in echo handler answers.
pub const ECHO_ACTION: &str = "ECHO";
/// How many received requests and Telegram messages the state keeps (oldest dropped first).
pub const LOG_CAPACITY: usize = 1000;
/// What the `Garbage` fault writes instead of an answer: not a COMET frame (its prefix claims a
/// header of 65534 bytes).
pub const GARBAGE: &[u8] = b"\xff\xfe this is not a COMET frame \x00\x01\x02";
/// At most this many bytes are discarded while a connection is held without an answer.
const HOLD_BYTES: usize = 1024 * 1024;

/// How a [`CometSim`] starts, for those who prefer a struct to [`CometSim::builder`]'s setters.
/// Public fields; start from [`SimConfig::default`] or [`SimConfig::loopback`], then
/// [`CometSim::start`] or `CometSim::builder().config(config)`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on ([`DEFAULT_LISTEN`]; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Listen backlog (`labwire_net::DEFAULT_BACKLOG`).
    pub backlog: u32,
    /// Connections served at once (`labwire_net::DEFAULT_MAX_CONNECTIONS`); more wait in the
    /// backlog.
    pub max_connections: usize,
    /// Reproduce COMET's quirks where that is safe (see the crate docs).
    pub fidelity: bool,
    /// Simulated seconds per real second for simulated delays: 10.0 makes a 5 s delay take
    /// 0.5 s. Values that are not positive and finite count as 1.0.
    pub time_scale: f64,
    /// Real time one connection may take from accept to close.
    pub connection_deadline: Duration,
    /// The action the Telegram-bot handler answers.
    pub telegram_action: String,
    /// Fixed answers per action, tried before the built-in handlers.
    pub answers: BTreeMap<String, Value>,
    /// The text the Telegram bot reports for `status`.
    pub status: String,
    /// Frame size limits.
    pub limits: Limits,
    /// A fault applied to every connection from the start (none by default); see
    /// [`Faults::set`].
    pub fault: Option<Fault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            backlog: labwire_net::DEFAULT_BACKLOG,
            max_connections: labwire_net::DEFAULT_MAX_CONNECTIONS,
            fidelity: false,
            time_scale: 1.0,
            connection_deadline: comet_socket::server::DEFAULT_CONNECTION_DEADLINE,
            telegram_action: DEFAULT_TELEGRAM_ACTION.to_owned(),
            answers: BTreeMap::new(),
            status: "idle".to_owned(),
            limits: Limits::default(),
            fault: None,
        }
    }
}

impl SimConfig {
    /// The defaults, on `127.0.0.1` port 0: what tests want.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            ..Self::default()
        }
    }
}

/// A fault to inject into the next connection(s); see [`Faults::push`] and [`Faults::set`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long (simulated time, see [`SimConfig::time_scale`]) before answering.
    Delay(Duration),
    /// Read the request and never answer; the connection stays open until the client closes
    /// it or the connection deadline passes.
    NoReply,
    /// Write the first half of the answer, then close.
    CloseMidFrame,
    /// Write [`GARBAGE`] instead of the answer, then close.
    Garbage,
    /// Answer `{"result": <this string>}` without running any handler, the way a COMET
    /// handler reports a device error.
    DeviceError(String),
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

/// What the simulator has seen.
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
    /// Connections closed without an answer because the request was malformed.
    pub malformed: u64,
    /// Faults applied.
    pub faults: u64,
}

/// The simulator's state, shared by every connection and by the test holding it. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Mutex<StateInner>>,
}

#[derive(Debug, Default)]
struct StateInner {
    answers: BTreeMap<String, Value>,
    status: String,
    fault: Option<Fault>,
    once: VecDeque<Fault>,
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

impl SimState {
    fn new(config: &SimConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(StateInner {
                answers: config.answers.clone(),
                status: config.status.clone(),
                fault: config.fault.clone(),
                ..StateInner::default()
            })),
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

    fn count(&self, update: impl FnOnce(&mut Counters)) {
        update(&mut self.lock().counters);
    }
}

/// Fault injection, shared by every connection: what the simulator does wrong, on purpose.
/// Clones share the same settings; [`CometSim::faults`] hands one out.
///
/// One-shot faults ([`Faults::push`]) apply to the next connections, one each, in order; the
/// persistent one ([`Faults::set`]) to every connection after them until cleared.
#[derive(Debug, Clone)]
pub struct Faults {
    state: SimState,
}

impl Faults {
    /// Applies `fault` to every connection from now on (`None` clears it). One-shot faults
    /// from [`Faults::push`] go first.
    pub fn set(&self, fault: Option<Fault>) {
        self.state.lock().fault = fault;
    }

    /// Applies `fault` to one upcoming connection (queued in order).
    pub fn push(&self, fault: Fault) {
        self.state.lock().once.push_back(fault);
    }

    /// The persistent fault in force.
    pub fn persistent(&self) -> Option<Fault> {
        self.state.lock().fault.clone()
    }

    /// One-shot faults still queued.
    pub fn queued(&self) -> usize {
        self.state.lock().once.len()
    }

    /// Clears the persistent fault and the queued ones.
    pub fn clear(&self) {
        let mut inner = self.state.lock();
        inner.fault = None;
        inner.once.clear();
    }

    /// The fault for the connection being served, if any (counted).
    fn next(&self) -> Option<Fault> {
        let mut inner = self.state.lock();
        let fault = inner.once.pop_front().or_else(|| inner.fault.clone());
        if fault.is_some() {
            inner.counters.faults += 1;
        }
        fault
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
        match text.trim().to_lowercase().as_str() {
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

struct Shared {
    server: CometServer,
    state: SimState,
    faults: Faults,
    clock: SimClock,
    fidelity: bool,
    /// In fidelity mode requests are handled one at a time, as COMET's single thread does.
    serial: tokio::sync::Mutex<()>,
    limits: Limits,
    deadline: Duration,
}

/// Configures a [`CometSim`]; see [`CometSim::builder`]. Every setter changes one field of the
/// [`SimConfig`] it holds.
#[derive(Debug, Clone)]
pub struct CometSimBuilder {
    config: SimConfig,
    shutdown: Option<CancellationToken>,
}

impl CometSimBuilder {
    /// Replaces the whole configuration (keeps a token given with
    /// [`CometSimBuilder::stop_on`]).
    #[must_use]
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`: loopback, any free port).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Listen backlog ([`labwire_net::DEFAULT_BACKLOG`] by default).
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.config.backlog = backlog;
        self
    }

    /// Connections served at once; more wait in the backlog.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// COMET-fidelity mode (see the crate docs); off by default.
    #[must_use]
    pub fn fidelity(mut self, on: bool) -> Self {
        self.config.fidelity = on;
        self
    }

    /// Runs simulated time `speed` times faster than real time (default 1.0); see
    /// [`SimConfig::time_scale`].
    #[must_use]
    pub fn speed(mut self, speed: f64) -> Self {
        self.config.time_scale = speed;
        self
    }

    /// Real time one connection may take from accept to close.
    #[must_use]
    pub fn connection_deadline(mut self, deadline: Duration) -> Self {
        self.config.connection_deadline = deadline;
        self
    }

    /// The action the Telegram-bot handler answers ([`DEFAULT_TELEGRAM_ACTION`]).
    #[must_use]
    pub fn telegram_action(mut self, action: impl Into<String>) -> Self {
        self.config.telegram_action = action.into();
        self
    }

    /// Answers `action` with `value`, before the built-in handlers (adds to the answers).
    #[must_use]
    pub fn answer(mut self, action: impl Into<String>, value: Value) -> Self {
        self.config.answers.insert(action.into(), value);
        self
    }

    /// Replaces every fixed answer.
    #[must_use]
    pub fn answers(mut self, answers: BTreeMap<String, Value>) -> Self {
        self.config.answers = answers;
        self
    }

    /// The text the Telegram bot reports for `status` (`idle`).
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.config.status = status.into();
        self
    }

    /// Frame size limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// A fault applied to every connection from the start; see [`Faults::set`].
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.config.fault = Some(fault);
        self
    }

    /// Stops the simulator also when `token` is cancelled (e.g. a parent's shutdown).
    #[must_use]
    pub fn stop_on(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// The configuration so far.
    pub fn current_config(&self) -> &SimConfig {
        &self.config
    }

    /// Binds and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> io::Result<CometSim> {
        let config = self.config;
        let state = SimState::new(&config);
        let faults = Faults {
            state: state.clone(),
        };
        let clock = SimClock::new(config.time_scale);
        let server = CometServer::builder()
            .handler(FixedAnswers(state.clone()))
            .handler(Echo)
            .handler(TelegramBot {
                action: config.telegram_action.clone(),
                state: state.clone(),
            })
            .limits(config.limits)
            .connection_deadline(config.connection_deadline)
            .build();
        let shared = Arc::new(Shared {
            server,
            state: state.clone(),
            faults: faults.clone(),
            clock: clock.clone(),
            fidelity: config.fidelity,
            serial: tokio::sync::Mutex::new(()),
            limits: config.limits,
            deadline: config.connection_deadline,
        });
        let mut net = ServerConfig::new(config.listen);
        net.backlog = config.backlog;
        net.max_connections = config.max_connections;
        let listener = labwire_net::Server::bind(net).await?;
        let shutdown = self.shutdown.unwrap_or_default();
        let handle = listener.serve_with_token(shutdown, move |stream, _peer, _token| {
            let shared = shared.clone();
            async move { shared.serve(stream).await }
        });
        tracing::info!(addr = %handle.local_addr(), fidelity = config.fidelity, "COMET simulator started");
        Ok(CometSim {
            handle,
            state,
            faults,
            clock,
        })
    }
}

/// A running simulated COMET endpoint. Dropping it stops the server without waiting;
/// [`CometSim::shutdown`] also waits until every client is disconnected.
#[derive(Debug)]
pub struct CometSim {
    handle: ServerHandle,
    state: SimState,
    faults: Faults,
    clock: SimClock,
}

impl CometSim {
    /// A builder with the defaults of [`SimConfig::loopback`]: `127.0.0.1` port 0, real-time
    /// clock, no fixed answers, no faults.
    pub fn builder() -> CometSimBuilder {
        CometSimBuilder {
            config: SimConfig::loopback(),
            shutdown: None,
        }
    }

    /// Starts a simulator configured by `config`; the same as
    /// `CometSim::builder().config(config).start()`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        Self::builder().config(config).start().await
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The shared state: read what arrived, set answers.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// The simulated clock.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Connections open right now.
    pub fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    /// Stops accepting, closes every connection and waits for them to end. Idempotent.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await;
        tracing::info!("COMET simulator stopped");
    }

    /// The token that stops the simulator when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.handle.shutdown_token()
    }
}

impl Shared {
    async fn serve(&self, mut stream: TcpStream) {
        self.state.count(|c| c.connections += 1);
        match tokio::time::timeout(self.deadline, self.exchange(&mut stream)).await {
            Ok(Ok(())) => tracing::trace!("connection done"),
            Ok(Err(reason)) => tracing::debug!(%reason, "connection ended without an answer"),
            Err(_) => tracing::debug!(deadline = ?self.deadline, "connection deadline passed"),
        }
    }

    async fn exchange(&self, stream: &mut TcpStream) -> Result<(), String> {
        let frame = match read_frame(stream, &self.limits).await {
            Ok(frame) => frame,
            Err(ReadError::Closed { received: 0 }) => return Err("closed before a request".into()),
            Err(e) => {
                self.state.count(|c| c.malformed += 1);
                return Err(comet_socket::error::report(&e));
            }
        };
        if self.fidelity && frame.is_json() && is_falsy_content(&frame.content) {
            // A real COMET server spins at 100 % CPU on this and never answers. We only hold the
            // connection, without the spinning.
            tracing::debug!("falsy content: holding the connection without answering, as COMET");
            hold(stream).await;
            return Ok(());
        }
        let fault = self.faults.next();
        if fault == Some(Fault::NoReply) {
            tracing::debug!("fault: no reply");
            hold(stream).await;
            return Ok(());
        }
        // COMET handles one request at a time: in fidelity mode a slow (delayed) answer holds up
        // every other connection, as it would there.
        let serial = if self.fidelity {
            Some(self.serial.lock().await)
        } else {
            None
        };
        if let Some(Fault::Delay(delay)) = &fault {
            tracing::debug!(?delay, "fault: delaying the answer");
            self.clock.sleep(*delay).await;
        }
        let answer = self.answer(&frame, fault.as_ref()).await;
        drop(serial);
        let answer = answer?;
        let bytes = wire::encode_to_bytes(&answer, &self.limits).map_err(|e| e.to_string())?;
        let written = match &fault {
            Some(Fault::Garbage) => {
                tracing::debug!("fault: garbage instead of the answer");
                stream.write_all(GARBAGE).await
            }
            Some(Fault::CloseMidFrame) => {
                tracing::debug!("fault: closing mid-frame");
                let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
                stream.write_all(half).await
            }
            _ => stream.write_all(&bytes).await,
        };
        written.map_err(|e| e.to_string())?;
        linger(stream).await;
        Ok(())
    }

    async fn answer(&self, frame: &Frame, fault: Option<&Fault>) -> Result<Frame, String> {
        let incoming = match classify(frame) {
            Ok(incoming) => incoming,
            Err(e) => {
                self.state.count(|c| c.malformed += 1);
                return Err(format!(
                    "malformed request: {}",
                    comet_socket::error::report(&e)
                ));
            }
        };
        let answer = match incoming {
            Incoming::Request(request) => {
                self.state.count(|c| c.requests += 1);
                tracing::debug!(action = %request.action, value = %request.value, "request");
                push_bounded(
                    &mut self.state.lock().received,
                    Received {
                        action: request.action.clone(),
                        value: request.value.clone(),
                    },
                );
                let result = if let Some(Fault::DeviceError(message)) = fault {
                    Value::String(message.clone())
                } else {
                    self.server.dispatch(&request).await
                };
                tracing::debug!(%result, "answer");
                Response::new(result).to_frame()
            }
            Incoming::Invalid(invalid) => {
                self.state.count(|c| c.invalid += 1);
                invalid_answer(&invalid)
            }
            Incoming::Binary(frame) => {
                self.state.count(|c| c.binary += 1);
                Ok(binary_answer(&frame))
            }
            _ => return Err("unsupported request".into()),
        };
        answer.map_err(|e| e.to_string())
    }
}

/// Keeps a connection open without answering until the peer closes it (the caller's deadline
/// bounds the wait). At most [`HOLD_BYTES`] are read and discarded.
async fn hold(stream: &mut TcpStream) {
    let mut discarded = 0;
    let mut buf = [0u8; 4096];
    while discarded < HOLD_BYTES {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_shot_faults_go_before_the_persistent_one() {
        let state = SimState::new(&SimConfig::default());
        let faults = Faults {
            state: state.clone(),
        };
        faults.set(Some(Fault::Garbage));
        faults.push(Fault::NoReply);
        assert_eq!(faults.queued(), 1);
        assert_eq!(faults.next(), Some(Fault::NoReply));
        assert_eq!(faults.next(), Some(Fault::Garbage));
        assert_eq!(faults.persistent(), Some(Fault::Garbage));
        faults.clear();
        assert_eq!(faults.next(), None);
        assert_eq!(state.counters().faults, 2);
    }

    #[tokio::test]
    async fn the_telegram_bot_answers_each_chat_and_never_runs_commands() {
        let state = SimState::new(&SimConfig::default());
        state.set_status("measuring");
        let bot = TelegramBot {
            action: DEFAULT_TELEGRAM_ACTION.into(),
            state: state.clone(),
        };
        let answer = bot
            .handle(
                "Telegram",
                &json!({"1": "Status?", "2": "ping", "3": "rm -rf /"}),
            )
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({"1": "Status: measuring", "2": "pong",
                   "3": "Unknown command \"rm -rf /\"; send help for the commands"})
        );
        assert_eq!(state.telegram_messages().len(), 3);
        assert!(bot.handle("Telegram", &json!("text")).await.is_err());
        assert_eq!(
            bot.handle("Other", &json!({"1": "ping"})).await.unwrap(),
            Value::Null
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
