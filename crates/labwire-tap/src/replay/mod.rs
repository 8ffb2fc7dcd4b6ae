//! Replay: serve a [`Recording`] as the device.
//!
//! Each request a client sends is decoded with the tap's decoder for the protocol and looked
//! up among the recorded requests; the answer is the bytes the device sent after the matching
//! recorded request, exactly as recorded. Matching is on the **decoded** request with its
//! correlation id left out (ARKEO `request_id`, PEKAT 3.19's `id.` prefix); COMET matches on
//! `action` and `value`. A request that did not decode is matched on its bytes. Recorded
//! requests are decoded again from their `bytes` (the `decoded` field is only a fallback), so
//! hand-written recordings match however their `decoded` is spelled.
//!
//! - **Correlation ids**: when the new request's id differs from the recorded one, the answer
//!   is decoded, given the new id and encoded again with the protocol crate (ARKEO
//!   `request_id`, PEKAT's echoed id); otherwise the recorded bytes go out unchanged.
//! - **Repeated requests** are answered in recorded order, counted over all connections (one
//!   device, one history): the 2nd identical request gets the 2nd recorded answer. After the
//!   last recorded answer, the last one is repeated.
//! - **Requests the recording does not have** get the protocol's own refusal, and a line on
//!   stderr (unless [`ReplayConfig::report`] is off): ARKEO an error object with code
//!   [`UNKNOWN_COMMAND`](arkeo_proto::codes::UNKNOWN_COMMAND) (104, or
//!   [`INVALID_REQUEST`](arkeo_proto::codes::INVALID_REQUEST) for bytes that did not decode)
//!   and a message starting `labwire replay:`; PEKAT its dialect's unknown-command answer
//!   (`Unknown command`, 3.19 `err:invalid-command`, echoing the id); COMET
//!   `{"result": "Error: labwire replay: ..."}`, the form in which the instrument itself refuses a
//!   command it cannot run. With [`ReplayConfig::strict`] the connection is closed instead.
//! - **Timing**: answers go out as fast as possible; with [`ReplayConfig::pace`] each waits
//!   the recorded delay between its request and the first bytes of its answer.
//! - **Bounds**: it runs on labwire-net's serve loop ([`labwire_net::service::serve`]): the
//!   protocol's decode limits, read/write deadlines, a connection cap.
//!
//! A recorded request that had no answer (a PEKAT command the device did not answer) gets no
//! answer either, and the connection stays open.
//!
//! # pycom
//! A pycom recording is served as the LA4 node: each request connection is read to EOF
//! (pycom-proto's limits, the read deadline) and closed without an answer, as the node does;
//! the events recorded for the matching request are then sent, in recorded order, each on a
//! **new** connection to the requester's IP (never another) and the `port` its request
//! advertises, within [`pycom::SEND_TIMEOUT`] each. Which events answer which request comes
//! from the recording (the tap's `reply_to`, see [`crate::pycom`]).
//! - **Matching** leaves out the coordinator's identity ([`pycom::IGNORED_FIELDS`]: `id`,
//!   `name`, `ip`, `port`, `version`), which differs between runs; `coordinator`, `type_`,
//!   `command` and any other field must match. Key order does not matter.
//! - **The one rewrite**: each event's `port` is replaced (its digits only) by the replay's
//!   own listening port, as the tap replaced it by its own: a coordinator knows a node by the
//!   IP its events come from and the `port` in them, and it sent its request here. Every other
//!   byte is sent as recorded.
//! - **Unknown requests**: a command gets the node's form of a failure, an `output` event
//!   (`labwire replay: not in the recording: <command>`), in the node's identity from the
//!   recording; a heartbeat or a request that does not decode gets nothing (a node sends
//!   nothing for them either). With [`ReplayConfig::strict`], nothing is sent and the
//!   connection is closed. Both are reported on stderr.
//! - **Timing**: with [`ReplayConfig::pace`] each event waits its recorded delay after its
//!   request.
//! - **Bounds**: at most [`pycom::MAX_PENDING`] requests' events waiting to be sent; each
//!   coordinator's events go in order, a coordinator that does not take them delays only its
//!   own.
//!
//! # Recordings double as test data
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let recording = labwire_tap::Recording::load("tests/data/arkeo-session.jsonl")?;
//! let device = labwire_tap::replay::serve(recording).await?;
//! let addr = device.local_addr(); // point the client under test here
//! # let _ = addr;
//! assert_eq!(device.unmatched(), 0, "the client sent only recorded requests");
//! device.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use labwire_net::service::{Action, Plan, PlannedService};
use labwire_net::{CancellationToken, Exchange, Server, ServerConfig, ServerHandle};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::{Framing, Protocol};
use crate::recording::{Decoded, Direction, Recording, to_hex};
use crate::{Arkeo, Comet, Pekat, Pycom};

pub mod pycom;

/// Default for [`ReplayConfig::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// How a replay runs. Public fields; start from [`ReplayConfig::new`].
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Where clients connect (loopback port 0 by default).
    pub listen: SocketAddr,
    /// Close the connection on a request the recording does not have (instead of answering
    /// with the protocol's refusal).
    pub strict: bool,
    /// Keep the recorded delay between each request and its answer.
    pub pace: bool,
    /// Print a line on stderr for each request the recording does not have.
    pub report: bool,
    /// Connections served at once; a client past them is refused at once (accepted and
    /// closed), as by every labwire server.
    pub max_connections: usize,
    /// Bound on finishing a request once begun, and on the client taking an answer
    /// ([`DEFAULT_DEADLINE`]).
    pub deadline: Duration,
    /// A connection with no request for this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
}

impl ReplayConfig {
    /// Loopback port 0, not strict, not paced, reporting, the usual bounds.
    pub fn new() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            strict: false,
            pace: false,
            report: true,
            max_connections: labwire_net::DEFAULT_MAX_CONNECTIONS,
            deadline: DEFAULT_DEADLINE,
            idle_timeout: None,
        }
    }
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The recording has no header naming its protocol.
    #[error("the recording has no header line naming its protocol")]
    NoHeader,
    /// The protocol (or an option of it) is not one replay serves.
    #[error("cannot replay protocol {0:?} (replay serves arkeo, pekat, comet and pycom)")]
    Unsupported(String),
    /// The listener could not be bound.
    #[error("cannot listen")]
    Bind(#[source] std::io::Error),
}

/// The protocols replay serves, with what each needs to rewrite answers.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Arkeo(Arkeo),
    Pekat(Pekat),
    Comet(Comet),
    Pycom(Pycom),
}

impl Kind {
    fn from_recording(recording: &Recording) -> Result<Self, ReplayError> {
        let header = recording.header.as_ref().ok_or(ReplayError::NoHeader)?;
        match header.protocol.as_str() {
            "arkeo" => Ok(Self::Arkeo(Arkeo::default())),
            "comet" => Ok(Self::Comet(Comet::default())),
            "pycom" => Ok(Self::Pycom(Pycom::default())),
            "pekat" => {
                let mut pekat = Pekat::default();
                if let Some(dialect) = header.options.get("dialect") {
                    pekat.dialect = dialect
                        .as_str()
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(|| ReplayError::Unsupported(format!("pekat {dialect}")))?;
                }
                Ok(Self::Pekat(pekat))
            }
            other => Err(ReplayError::Unsupported(other.to_owned())),
        }
    }

    fn protocol(&self) -> &dyn Protocol {
        match self {
            Self::Arkeo(p) => p,
            Self::Pekat(p) => p,
            Self::Comet(p) => p,
            Self::Pycom(p) => p,
        }
    }

    /// The correlation id field of a decoded request or answer.
    fn id_field(&self) -> Option<&'static str> {
        match self {
            Self::Arkeo(_) => Some("request_id"),
            Self::Pekat(_) => Some("id"),
            Self::Comet(_) | Self::Pycom(_) => None,
        }
    }

    /// The fields a request is matched without.
    fn ignored_fields(&self) -> &'static [&'static str] {
        match self {
            Self::Arkeo(_) => &["request_id"],
            Self::Pekat(_) => &["id"],
            Self::Comet(_) => &[],
            Self::Pycom(_) => &pycom::IGNORED_FIELDS,
        }
    }

    /// The lookup key of a request: its decoded form without the correlation id, or its bytes.
    fn key(&self, decoded: &Decoded, bytes: &[u8]) -> String {
        match decoded.message() {
            Some(value) => {
                let mut value = pycom::sorted(value);
                if let Value::Object(object) = &mut value {
                    for field in self.ignored_fields() {
                        object.remove(*field);
                    }
                }
                format!("msg:{value}")
            }
            None => format!("bytes:{}", to_hex(bytes)),
        }
    }

    fn id_of(&self, decoded: &Decoded) -> Option<Value> {
        let field = self.id_field()?;
        decoded.message()?.get(field).cloned()
    }

    /// `answer` (recorded for a request with id `old`) for a request with id `new`.
    fn rewrite(&self, answer: &Bytes, old: &Option<Value>, new: &Option<Value>) -> Bytes {
        if old == new {
            return answer.clone();
        }
        let rewritten = match self {
            Self::Arkeo(arkeo) => rewrite_arkeo(arkeo, answer, new),
            Self::Pekat(pekat) => rewrite_pekat(pekat, answer, new),
            Self::Comet(_) | Self::Pycom(_) => None,
        };
        rewritten.unwrap_or_else(|| answer.clone())
    }

    /// The protocol's refusal of a request the recording does not have.
    fn refusal(&self, request: &Incoming) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Self::Arkeo(arkeo) => {
                use arkeo_proto::{Response, codes};
                let message = request.decoded.message();
                let field = |name: &str| {
                    message
                        .and_then(|m| m.get(name))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned()
                };
                let id = message
                    .and_then(|m| m.get("request_id"))
                    .and_then(Value::as_u64);
                let response = if message.is_some() {
                    Response::error(
                        codes::UNKNOWN_COMMAND,
                        format!(
                            "labwire replay: not in the recording: {} {}",
                            field("target"),
                            field("command")
                        ),
                        id,
                    )
                } else {
                    Response::error(
                        codes::INVALID_REQUEST,
                        "labwire replay: not in the recording (a request that does not decode)",
                        None,
                    )
                };
                let _ = arkeo_proto::wire::encode_response(
                    &response,
                    arkeo.limits.max_frame_length,
                    &mut out,
                );
            }
            Self::Pekat(pekat) => {
                let id = self
                    .id_of(&request.decoded)
                    .and_then(|v| v.as_str().and_then(|s| s.parse().ok()));
                let reply = pekat_proto::Reply {
                    id,
                    response: pekat_proto::Response::UnknownCommand,
                };
                let _ = pekat_proto::wire::encode_reply(
                    &reply,
                    pekat.dialect,
                    pekat.limits.max_response_len,
                    &mut out,
                );
            }
            Self::Comet(comet) => {
                let content = serde_json::json!({
                    "result": "Error: labwire replay: request not in the recording"
                })
                .to_string();
                let _ =
                    comet_socket::wire::encode_json(content.as_bytes(), &comet.limits, &mut out);
            }
            // A node answers nothing on the request connection (its refusal is an event).
            Self::Pycom(_) => {}
        }
        out.freeze()
    }
}

fn rewrite_arkeo(arkeo: &Arkeo, answer: &[u8], new: &Option<Value>) -> Option<Bytes> {
    let max = arkeo.limits.max_frame_length;
    let (payload, used) = arkeo_proto::wire::split_frame(answer, max).ok()??;
    let mut response = arkeo_proto::wire::decode_response(payload).ok()?;
    response.request_id = new.as_ref().and_then(Value::as_u64);
    let mut out = BytesMut::new();
    arkeo_proto::wire::encode_response(&response, max, &mut out).ok()?;
    out.extend_from_slice(answer.get(used..)?);
    Some(out.freeze())
}

fn rewrite_pekat(pekat: &Pekat, answer: &[u8], new: &Option<Value>) -> Option<Bytes> {
    let mut reply = pekat_proto::wire::parse_response(answer).ok()?;
    reply.id = match new {
        Some(id) => Some(id.as_str()?.parse().ok()?),
        None => None,
    };
    let mut out = BytesMut::new();
    pekat_proto::wire::encode_reply(
        &reply,
        pekat.dialect,
        pekat.limits.max_response_len,
        &mut out,
    )
    .ok()?;
    Some(out.freeze())
}

/// One recorded request and what followed it.
#[derive(Debug)]
struct Answer {
    request_id: Option<Value>,
    bytes: Bytes,
    delay: Duration,
    /// pycom: the events sent back on new connections.
    events: Vec<pycom::RecordedEvent>,
}

/// A request as the replay reads it: its bytes and what they decoded to.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The bytes of the request, as received.
    pub bytes: Bytes,
    /// The decoded request, or why it did not decode.
    pub decoded: Decoded,
}

/// The tap's request decoder as a tokio-util codec; answers are written as given.
struct ReplayCodec {
    framing: Box<dyn Framing>,
}

impl Decoder for ReplayCodec {
    type Item = Incoming;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Self::Error> {
        let next = self
            .framing
            .next(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        match next {
            Some(found) => {
                let used = found.used.max(1).min(buf.len());
                Ok(Some(Incoming {
                    bytes: buf.split_to(used).freeze(),
                    decoded: found.decoded,
                }))
            }
            None if buf.len() > self.framing.max_message() => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "request over the limit ({} bytes buffered, at most {})",
                    buf.len(),
                    self.framing.max_message()
                ),
            )),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Self::Error> {
        if let Some(found) = self.decode(buf)? {
            return Ok(Some(found));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        Ok(self.framing.at_eof(buf).map(|found| Incoming {
            bytes: buf.split().freeze(),
            decoded: found.decoded,
        }))
    }
}

impl Encoder<Bytes> for ReplayCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// The device: the recorded answers, and how far each repeated request has got.
struct Device {
    kind: Kind,
    answers: HashMap<String, Vec<Answer>>,
    next: Mutex<HashMap<String, usize>>,
    strict: bool,
    pace: bool,
    report: bool,
    unmatched: AtomicU64,
    /// pycom: the events' sender.
    events: Option<Arc<pycom::Events>>,
}

impl Device {
    fn new(kind: Kind, recording: &Recording, config: &ReplayConfig, listen_port: u16) -> Self {
        let mut answers: HashMap<String, Vec<Answer>> = HashMap::new();
        let mut events = None;
        if let Kind::Pycom(protocol) = kind {
            let mut framing = protocol.framing(Direction::ToDevice);
            for request in pycom::requests(recording) {
                let decoded = framing
                    .at_eof(&request.bytes)
                    .map_or(request.decoded, |found| found.decoded);
                answers
                    .entry(kind.key(&decoded, &request.bytes))
                    .or_default()
                    .push(Answer {
                        request_id: None,
                        bytes: request.answer,
                        delay: Duration::ZERO,
                        events: request.events,
                    });
            }
            let identity = pycom::node_identity(recording, &protocol.limits);
            events = Some(Arc::new(pycom::Events::new(
                listen_port,
                identity,
                protocol.limits,
                config.pace,
                config.report,
            )));
        }
        let connections = if events.is_some() {
            Vec::new()
        } else {
            recording.connections()
        };
        for conn in connections {
            // Each request with the answer bytes that followed it on its connection.
            let mut current: Option<(String, Answer, f64)> = None;
            let mut flush = |current: &mut Option<(String, Answer, f64)>| {
                if let Some((key, answer, _)) = current.take() {
                    answers.entry(key).or_default().push(answer);
                }
            };
            let mut pending = BytesMut::new();
            // The recorded bytes decoded again, as a new request will be: a hand-written
            // `decoded` need not be in the decoder's exact form.
            let mut framing = kind.protocol().framing(Direction::ToDevice);
            for event in recording.events.iter().filter(|e| e.conn == conn) {
                match event.dir {
                    Direction::ToDevice => {
                        if let Some((_, answer, _)) = current.as_mut() {
                            answer.bytes = pending.split().freeze();
                        }
                        flush(&mut current);
                        pending.clear();
                        let decoded = match framing.next(&event.bytes) {
                            Ok(Some(found)) if found.used == event.bytes.len() => found.decoded,
                            _ => event.decoded.clone(),
                        };
                        let key = kind.key(&decoded, &event.bytes);
                        let answer = Answer {
                            request_id: kind.id_of(&decoded),
                            bytes: Bytes::new(),
                            delay: Duration::ZERO,
                            events: Vec::new(),
                        };
                        current = Some((key, answer, event.t));
                    }
                    Direction::ToClient => {
                        if let Some((_, answer, t)) = current.as_mut()
                            && pending.is_empty()
                        {
                            answer.delay =
                                Duration::try_from_secs_f64(event.t - *t).unwrap_or(Duration::ZERO);
                        }
                        if current.is_some() {
                            pending.extend_from_slice(&event.bytes);
                        }
                    }
                }
            }
            if let Some((_, answer, _)) = current.as_mut() {
                answer.bytes = pending.split().freeze();
            }
            flush(&mut current);
        }
        Self {
            kind,
            answers,
            next: Mutex::new(HashMap::new()),
            strict: config.strict,
            pace: config.pace,
            report: config.report,
            unmatched: AtomicU64::new(0),
            events,
        }
    }

    fn answer(&self, peer: SocketAddr, request: &Incoming) -> (Bytes, Plan) {
        let arrived = tokio::time::Instant::now();
        let key = self.kind.key(&request.decoded, &request.bytes);
        let Some(recorded) = self.answers.get(&key).filter(|a| !a.is_empty()) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            if self.report {
                let what = match request.decoded.message() {
                    Some(value) => value.to_string(),
                    None => format!("bytes {}", to_hex(&request.bytes)),
                };
                let then = if self.strict { "closing" } else { "refused" };
                eprintln!("replay: {peer}: not in the recording ({then}): {what}");
            }
            if self.strict {
                let plan = Plan {
                    action: Action::Close,
                    ..Plan::default()
                };
                return (Bytes::new(), plan);
            }
            if let Some(events) = &self.events
                && let (Some(to), Some(command)) = (
                    pycom::reply_addr(peer, &request.decoded),
                    pycom::command(&request.decoded),
                )
            {
                events.send(to, events.refusal(command).into_iter().collect(), arrived);
            }
            return (self.kind.refusal(request), Plan::default());
        };
        let index = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let n = next.entry(key).or_insert(0);
            let index = (*n).min(recorded.len() - 1);
            *n = n.saturating_add(1);
            index
        };
        let Some(answer) = recorded.get(index) else {
            return (Bytes::new(), Plan::default());
        };
        if let Some(events) = &self.events {
            if let Some(to) = pycom::reply_addr(peer, &request.decoded) {
                events.send(to, answer.events.clone(), arrived);
            } else if !answer.events.is_empty() && self.report {
                eprintln!("replay: {peer}: the request advertises no port; its events not sent");
            }
            // The request connection: what the node wrote there (nothing), then the close.
            return (answer.bytes.clone(), Plan::default());
        }
        let new_id = self.kind.id_of(&request.decoded);
        let bytes = self
            .kind
            .rewrite(&answer.bytes, &answer.request_id, &new_id);
        let plan = Plan {
            delay: if self.pace {
                answer.delay
            } else {
                Duration::ZERO
            },
            action: if bytes.is_empty() {
                Action::NoReply
            } else {
                Action::Reply
            },
        };
        (bytes, plan)
    }
}

struct ReplayService(Arc<Device>);

impl PlannedService for ReplayService {
    type Request = Incoming;
    type Response = Bytes;

    async fn call(&self, peer: SocketAddr, request: Incoming) -> (Bytes, Plan) {
        self.0.answer(peer, &request)
    }
}

/// A running replay.
#[derive(Debug)]
pub struct ReplayHandle {
    server: ServerHandle,
    device: Arc<Device>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("protocol", &self.kind.protocol().name())
            .field("requests", &self.answers.len())
            .finish_non_exhaustive()
    }
}

impl ReplayHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// How many requests were not in the recording so far.
    pub fn unmatched(&self) -> u64 {
        self.device.unmatched.load(Ordering::Relaxed)
    }

    /// The protocol served (`arkeo`, `pekat`, `comet`, `pycom`).
    pub fn protocol(&self) -> &'static str {
        self.device.kind.protocol().name()
    }

    /// pycom: how many events were delivered to coordinators so far (0 for the others).
    pub fn events_delivered(&self) -> u64 {
        self.device
            .events
            .as_ref()
            .map_or(0, |events| events.delivered.load(Ordering::Relaxed))
    }

    /// Stops accepting, disconnects clients, stops sending pycom events and waits for the
    /// tasks.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
        if let Some(events) = &self.device.events {
            events.cancel.cancel();
            events.tracker.close();
            events.tracker.wait().await;
        }
    }
}

/// Serves `recording` on loopback port 0 with [`ReplayConfig::new`]: the test helper.
///
/// # Errors
/// See [`start`].
pub async fn serve(recording: Recording) -> Result<ReplayHandle, ReplayError> {
    start(&recording, ReplayConfig::new()).await
}

/// Serves `recording` as the device, as `config` says.
///
/// # Errors
/// [`ReplayError::NoHeader`] or [`ReplayError::Unsupported`] when the recording does not name
/// a protocol replay serves; [`ReplayError::Bind`] when the listener cannot be bound.
pub async fn start(
    recording: &Recording,
    config: ReplayConfig,
) -> Result<ReplayHandle, ReplayError> {
    let kind = Kind::from_recording(recording)?;
    let mut server_config = ServerConfig::new(config.listen);
    server_config.max_connections = config.max_connections.max(1);
    let server = Server::bind(server_config)
        .await
        .map_err(ReplayError::Bind)?;
    let listen_port = server.local_addr().map_err(ReplayError::Bind)?.port();
    let device = Arc::new(Device::new(kind, recording, &config, listen_port));
    let exchange = Exchange {
        once: matches!(kind, Kind::Comet(_) | Kind::Pycom(_)),
        read_timeout: config.deadline,
        idle_timeout: config.idle_timeout,
        write_timeout: config.deadline,
        quiet_period: None,
    };
    let protocol: Arc<dyn Protocol> = match kind {
        Kind::Arkeo(p) => Arc::new(p),
        Kind::Pekat(p) => Arc::new(p),
        Kind::Comet(p) => Arc::new(p),
        Kind::Pycom(p) => Arc::new(p),
    };
    let codec = move || ReplayCodec {
        framing: protocol.framing(Direction::ToDevice),
    };
    let server = labwire_net::service::serve(
        server,
        CancellationToken::new(),
        ReplayService(Arc::clone(&device)),
        codec,
        exchange,
    );
    Ok(ReplayHandle { server, device })
}
