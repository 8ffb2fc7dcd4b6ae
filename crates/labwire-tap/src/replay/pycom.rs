//! pycom replay: the node answers a request with events on **new** connections.
//!
//! A recording of a pycom tap has two kinds of connections: request connections (their first
//! event is `to_device`: a coordinator's request) and event connections (their first event is
//! `to_client`: an event the node sent). Each event is given to the request named by its
//! `reply_to` (the tap writes it), or, in a recording without it, to the latest request before
//! it. Replaying a request sends its events, in recorded order, each on its own connection to
//! the requester's IP and the `port` its request advertises, as the node does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pycom_proto::{Body, Identity, Limits, Message, wire};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::recording::{Decoded, Direction, Event, Recording};

/// Request fields left out when a request is matched: the coordinator's identity, which
/// legitimately differs between runs (its `port` is a free port, its `id` may be generated,
/// its `ip`, `name` and `version` are informational to the node). `coordinator` is kept (a
/// node sends `unit_info` only to coordinators), and so is everything else (`type_`,
/// `command`, unknown fields).
pub const IGNORED_FIELDS: [&str; 5] = ["id", "name", "ip", "port", "version"];

/// Bound on connecting to a coordinator and writing one event to it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Event deliveries (one request's events each) waiting or under way at once; more are dropped
/// and reported.
pub const MAX_PENDING: usize = 1024;

/// Coordinators (destinations) with events in order at once; more are dropped and reported.
const MAX_LANES: usize = 256;

/// One recorded event: its bytes and when it came after its request.
#[derive(Debug, Clone)]
pub(super) struct RecordedEvent {
    pub(super) bytes: Bytes,
    pub(super) offset: Duration,
}

/// One recorded request: its bytes, what they decoded to in the recording, what the node
/// wrote on the request connection (normally nothing) and the events given to it.
#[derive(Debug)]
pub(super) struct RecordedRequest {
    pub(super) bytes: Bytes,
    pub(super) decoded: Decoded,
    pub(super) answer: Bytes,
    pub(super) events: Vec<RecordedEvent>,
}

/// The requests of a pycom recording, in recorded order, each with its events.
pub(super) fn requests(recording: &Recording) -> Vec<RecordedRequest> {
    let mut first_dir: HashMap<u64, Direction> = HashMap::new();
    for event in &recording.events {
        first_dir.entry(event.conn).or_insert(event.dir);
    }
    let mut requests: Vec<(RecordedRequest, f64, BytesMut, BytesMut)> = Vec::new();
    // Request connection → its index; event connection → (request index, event index).
    let mut request_of_conn: HashMap<u64, usize> = HashMap::new();
    let mut event_of_conn: HashMap<u64, (usize, usize)> = HashMap::new();
    for event in &recording.events {
        let is_request_conn = first_dir.get(&event.conn) == Some(&Direction::ToDevice);
        match (is_request_conn, event.dir) {
            (true, Direction::ToDevice) => {
                let index = *request_of_conn.entry(event.conn).or_insert_with(|| {
                    requests.push((
                        RecordedRequest {
                            bytes: Bytes::new(),
                            decoded: event.decoded.clone(),
                            answer: Bytes::new(),
                            events: Vec::new(),
                        },
                        event.t,
                        BytesMut::new(),
                        BytesMut::new(),
                    ));
                    requests.len() - 1
                });
                if let Some((_, _, bytes, _)) = requests.get_mut(index) {
                    bytes.extend_from_slice(&event.bytes);
                }
            }
            (true, Direction::ToClient) => {
                if let Some((_, _, _, answer)) = request_of_conn
                    .get(&event.conn)
                    .and_then(|&i| requests.get_mut(i))
                {
                    answer.extend_from_slice(&event.bytes);
                }
            }
            (false, Direction::ToClient) => {
                add_event(event, &mut requests, &request_of_conn, &mut event_of_conn)
            }
            // What a coordinator wrote on an event connection: not part of pycom.
            (false, Direction::ToDevice) => {}
        }
    }
    requests
        .into_iter()
        .map(|(mut request, _, bytes, answer)| {
            request.bytes = bytes.freeze();
            request.answer = answer.freeze();
            request
        })
        .collect()
}

fn add_event(
    event: &Event,
    requests: &mut [(RecordedRequest, f64, BytesMut, BytesMut)],
    request_of_conn: &HashMap<u64, usize>,
    event_of_conn: &mut HashMap<u64, (usize, usize)>,
) {
    // A later piece of the same event (an event that did not decode in one piece).
    if let Some(&(request, index)) = event_of_conn.get(&event.conn) {
        if let Some(recorded) = requests
            .get_mut(request)
            .and_then(|(r, ..)| r.events.get_mut(index))
        {
            let mut bytes = BytesMut::from(&recorded.bytes[..]);
            bytes.extend_from_slice(&event.bytes);
            recorded.bytes = bytes.freeze();
        }
        return;
    }
    let request = event
        .reply_to
        .and_then(|conn| request_of_conn.get(&conn).copied())
        .or_else(|| requests.len().checked_sub(1));
    let Some((recorded, t, ..)) = request.and_then(|i| requests.get_mut(i)) else {
        // An event before any request (a node's discovery probe): nobody to send it to.
        return;
    };
    let offset = Duration::try_from_secs_f64(event.t - *t).unwrap_or(Duration::ZERO);
    recorded.events.push(RecordedEvent {
        bytes: Bytes::copy_from_slice(&event.bytes),
        offset,
    });
    if let Some(request) = request {
        event_of_conn.insert(event.conn, (request, recorded.events.len() - 1));
    }
}

/// The node's identity as its first decodable recorded event names it.
pub(super) fn node_identity(recording: &Recording, limits: &Limits) -> Option<Identity> {
    recording
        .events
        .iter()
        .filter(|e| e.dir == Direction::ToClient)
        .find_map(|e| wire::decode(&e.bytes, limits).ok())
        .filter(|m| !m.identity.coordinator)
        .map(|m| m.identity)
}

/// Where the events for a request from `peer` go: its IP and the `port` it advertises (never
/// another IP).
pub(super) fn reply_addr(peer: SocketAddr, decoded: &Decoded) -> Option<SocketAddr> {
    let port = decoded.message()?.get("port")?.as_u64()?;
    let port = u16::try_from(port).ok().filter(|&p| p != 0)?;
    Some(SocketAddr::new(peer.ip().to_canonical(), port))
}

/// Whether a decoded request is a command (the one request a node answers by itself).
pub(super) fn command(decoded: &Decoded) -> Option<&str> {
    let message = decoded.message()?;
    (message.get("type_")? == "cmd").then_some(())?;
    message.get("command")?.as_str()
}

/// Sends events back to coordinators: one request's events in order, each destination's
/// requests in order, destinations independent of each other; bounded in number and time.
#[derive(Debug)]
pub(super) struct Events {
    listen_port: u16,
    identity: Identity,
    limits: Limits,
    pace: bool,
    report: bool,
    pending: Arc<Semaphore>,
    lanes: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
    pub(super) cancel: CancellationToken,
    pub(super) tracker: TaskTracker,
    pub(super) delivered: AtomicU64,
}

impl Events {
    pub(super) fn new(
        listen_port: u16,
        identity: Option<Identity>,
        limits: Limits,
        pace: bool,
        report: bool,
    ) -> Self {
        let identity = identity.unwrap_or_else(|| {
            Identity::new(
                "00000000",
                "labwire-replay",
                IpAddr::from([127, 0, 0, 1]).to_string(),
                listen_port,
                env!("CARGO_PKG_VERSION"),
                false,
            )
        });
        Self {
            listen_port,
            identity,
            limits,
            pace,
            report,
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
            lanes: Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            delivered: AtomicU64::new(0),
        }
    }

    /// The node's `output` event refusing `command`: what it sends, as a node reports a
    /// command it cannot run.
    pub(super) fn refusal(&self, command: &str) -> Option<RecordedEvent> {
        let mut identity = self.identity.clone();
        identity.port = self.listen_port;
        let output = format!("labwire replay: not in the recording: {command}\n");
        let bytes = wire::encode(
            &Message::new(identity, Body::Output { output }),
            &self.limits,
        );
        Some(RecordedEvent {
            bytes: Bytes::from(bytes.ok()?),
            offset: Duration::ZERO,
        })
    }

    /// `event` as this replay sends it: its `port` names the replay (as the tap's forwarded
    /// copy named the tap, see [`crate::pycom`]); every other byte as recorded.
    fn outgoing(&self, event: &Bytes) -> Bytes {
        match wire::decode(event, &self.limits) {
            Ok(message) if message.identity.port != self.listen_port => {
                crate::pycom::rewrite_port(event, self.listen_port)
                    .map_or_else(|| event.clone(), Bytes::from)
            }
            _ => event.clone(),
        }
    }

    /// Sends `events` to `to`, after the events of earlier requests to `to`; with pacing,
    /// each at its recorded offset from `arrived`.
    pub(super) fn send(
        self: &Arc<Self>,
        to: SocketAddr,
        events: Vec<RecordedEvent>,
        arrived: Instant,
    ) {
        if events.is_empty() {
            return;
        }
        let Ok(permit) = Arc::clone(&self.pending).try_acquire_owned() else {
            self.dropped(to, "too many deliveries waiting");
            return;
        };
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            if lanes.len() >= MAX_LANES {
                lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
            }
            if lanes.len() >= MAX_LANES && !lanes.contains_key(&to) {
                drop(lanes);
                self.dropped(to, "too many coordinators at once");
                return;
            }
            Arc::clone(lanes.entry(to).or_default())
        };
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let _permit = permit;
            let cancel = this.cancel.clone();
            tokio::select! {
                () = cancel.cancelled() => {}
                () = this.deliver_all(to, &lane, events, arrived) => {}
            }
        });
    }

    async fn deliver_all(
        &self,
        to: SocketAddr,
        lane: &tokio::sync::Mutex<()>,
        events: Vec<RecordedEvent>,
        arrived: Instant,
    ) {
        let _turn = lane.lock().await;
        for event in events {
            if self.pace {
                tokio::time::sleep(event.offset.saturating_sub(arrived.elapsed())).await;
            }
            let bytes = self.outgoing(&event.bytes);
            match deliver(to, &bytes).await {
                Ok(()) => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // As a node: an event the coordinator cannot take is lost.
                    if self.report {
                        eprintln!("replay: event to {to} not delivered: {e}");
                    }
                }
            }
        }
    }

    fn dropped(&self, to: SocketAddr, why: &str) {
        if self.report {
            eprintln!("replay: events to {to} dropped: {why}");
        }
    }
}

/// Connects to `to`, writes `bytes`, closes: one event, within [`SEND_TIMEOUT`].
async fn deliver(to: SocketAddr, bytes: &[u8]) -> std::io::Result<()> {
    let send = async {
        let mut stream = labwire_net::connect(to, SEND_TIMEOUT).await?;
        stream.write_all(bytes).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(SEND_TIMEOUT, send)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed"))?
}

/// `value` with its object keys in sorted order, so that matching does not depend on the order
/// a client writes its keys in.
pub(super) fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut keys: Vec<_> = object.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                keys.into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
