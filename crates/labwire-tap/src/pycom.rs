//! pycom: one JSON object per connection, and events back on **new** connections.
//!
//! A coordinator sends each request on its own connection to the node; the node answers
//! nothing there, but opens a new connection to the coordinator's *observed IP* and the
//! `port` the request advertises, sends one event, and closes. Through the tap the node
//! observes the tap's IP (the tap opened the connection), so the tap:
//!
//! 1. reads the coordinator's request to EOF (at most [`Limits::max_message_len`] bytes, within
//!    [`REQUEST_TIMEOUT`]);
//! 2. if it decodes (pycom-proto's `wire::decode`) and has exactly one top-level `port` key,
//!    opens (once per coordinator: its observed IP and advertised port, at most
//!    [`MAX_EVENT_LISTENERS`]) an event listener on the tap's IP as the node sees it, and
//!    forwards the request with **only the digits of the `port` value replaced** by that
//!    listener's port. Without it the node's events would go to the tap's IP and the
//!    coordinator's port, where nobody (or the wrong program) listens;
//! 3. reads each event the node sends to that listener to EOF (the same bounds), and forwards
//!    it to the coordinator's real listener (observed IP + advertised port) with **only the
//!    digits of its `port` value replaced by the tap's own listening port**. A coordinator
//!    knows a node by the IP its events come from and the `port` in them (pycom-proto's
//!    `Coordinator` does): its events must name the address the coordinator sent the request
//!    to, the tap's, or they are taken for another node's and the call never completes.
//!
//! These two rewrites are the only exceptions to "every byte unchanged"; every other byte —
//! `ip` included, which is informational (the node replies to the observed peer address) — is
//! forwarded as sent. The recording keeps the **original** bytes and notes each rewrite in the
//! event's `note`. Each event also records the connection number of the request it is taken
//! to answer (`reply_to`): the latest request from the same coordinator the tap had forwarded
//! when the event came (pycom events carry no correlation id; a coordinator that waits for
//! each command's output, as pycom-proto's does, makes this exact).
//!
//! A request or event that does not decode or times out is forwarded unchanged (a real node
//! would not act on it either). One over the limit is forwarded unchanged too, or, with
//! [`TapConfig::cut_oversize`](crate::TapConfig::cut_oversize), not forwarded: both
//! connections are closed and the cut is noted. Both directions are decoded at EOF with
//! pycom-proto's limits; requests are `to_device`, events `to_client`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pycom_proto::Limits;
use pycom_proto::wire;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::decode::{Fatal, Found, Framing, Piece, Protocol, SideDecoder, error_summary, short};
use crate::proxy::{Ctx, READ_BUFFER, pump};
use crate::recording::{Decoded, Direction};

/// Bound on reading a coordinator's whole request before it is forwarded.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Event listeners (distinct coordinators) a tap opens at most; later coordinators' requests are
/// forwarded unchanged (their events then go to the tap's IP, as the node would send them).
pub const MAX_EVENT_LISTENERS: usize = 64;

/// pycom, decoded with pycom-proto's `wire::decode` under its [`Limits`]: each connection
/// carries one message, decoded when the sender closes. A request or event decodes to its JSON
/// object as sent; one that pycom-proto rejects is a decode error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pycom {
    /// The bounds of what is decoded (and of a request the tap reads before rewriting it).
    pub limits: Limits,
}

impl Protocol for Pycom {
    fn name(&self) -> &'static str {
        "pycom"
    }

    fn framing(&self, _dir: Direction) -> Box<dyn Framing> {
        Box::new(PycomFraming {
            limits: self.limits,
        })
    }

    fn pycom_limits(&self) -> Option<Limits> {
        Some(self.limits)
    }
}

struct PycomFraming {
    limits: Limits,
}

impl Framing for PycomFraming {
    fn next(&mut self, _buf: &[u8]) -> Result<Option<Found>, Fatal> {
        // EOF ends the message.
        Ok(None)
    }

    fn at_eof(&mut self, buf: &[u8]) -> Option<Found> {
        Some(decode(buf, &self.limits))
    }

    fn max_message(&self) -> usize {
        self.limits.max_message_len
    }
}

fn decode(buf: &[u8], limits: &Limits) -> Found {
    let (decoded, summary) = match wire::decode(buf, limits) {
        Ok(message) => {
            let value = serde_json::from_slice::<Value>(buf).unwrap_or(Value::Null);
            let what = match &message.body {
                pycom_proto::Body::Heartbeat => "heartbeat".to_owned(),
                pycom_proto::Body::Cmd { command } => format!("cmd {}", short(command, 80)),
                pycom_proto::Body::Output { output } => format!("output {}", short(output, 80)),
                pycom_proto::Body::Message { message } => {
                    format!("message {}", short(message, 80))
                }
                other => other.type_name().unwrap_or("?").to_owned(),
            };
            let id = &message.identity;
            (
                Decoded::Message(value),
                format!(
                    "{} ({}, port {}): {what}",
                    short(&id.name, 30),
                    id.id,
                    id.port
                ),
            )
        }
        Err(e) => error_summary("message", &e),
    };
    Found {
        used: buf.len(),
        decoded,
        summary,
    }
}

/// The event listeners of one tap: coordinator (observed IP, advertised port) and the tap's IP
/// as the node sees it → the listener.
#[derive(Debug, Default)]
pub(crate) struct Listeners(Mutex<HashMap<(SocketAddr, IpAddr), EventListener>>);

/// One coordinator's event listener.
#[derive(Debug, Clone)]
struct EventListener {
    port: u16,
    /// The connection number of the latest request from this coordinator forwarded (0: none).
    last_request: Arc<AtomicU64>,
}

/// The byte range of the value of the one top-level `port` key of a JSON object, if there is
/// exactly one such key written without escapes.
pub fn port_value_span(text: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut i = skip_ws(text, 0);
    if text.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        i = skip_ws(text, i);
        match text.get(i)? {
            b'}' => return found,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(text, i)?;
        let key = text.get(i + 1..key_end - 1)?;
        i = skip_ws(text, key_end);
        if text.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(text, i + 1);
        let end = skip_value(text, start)?;
        if key == b"port" {
            if found.is_some() {
                return None;
            }
            found = Some(start..end);
        }
        i = end;
    }
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while matches!(text.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `i` at a `"`: the index just past the closing quote.
fn skip_string(text: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match text.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

fn skip_value(text: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match text.get(i)? {
            b'"' => i = skip_string(text, i)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b',' if depth == 0 => return Some(i),
            b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => return Some(i),
            _ => i += 1,
        }
    }
}

/// `request` with the value of its `port` key replaced by `port`, if it has exactly one.
pub fn rewrite_port(request: &[u8], port: u16) -> Option<Vec<u8>> {
    let span = port_value_span(request)?;
    let mut out = Vec::with_capacity(request.len() + 5);
    out.extend_from_slice(request.get(..span.start)?);
    out.extend_from_slice(port.to_string().as_bytes());
    out.extend_from_slice(request.get(span.end..)?);
    Some(out)
}

/// A whole message, read to EOF.
enum Whole {
    /// The sender closed its side within the bounds.
    Complete(Vec<u8>),
    /// More than the limit came (the bytes so far, one read past the limit at most).
    OverLimit(Vec<u8>),
    /// The deadline passed or reading failed (the bytes so far).
    Incomplete(Vec<u8>),
}

/// Reads one message to EOF, at most `limits.max_message_len` bytes (plus one read) within
/// [`REQUEST_TIMEOUT`].
async fn read_whole(from: &mut OwnedReadHalf, limits: &Limits) -> Whole {
    let mut message = Vec::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let read = async {
        loop {
            match from.read(&mut buf).await {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    message.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if message.len() > limits.max_message_len {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(true)) => Whole::Complete(message),
        Ok(Ok(false)) => Whole::OverLimit(message),
        Ok(Err(_)) | Err(_) => Whole::Incomplete(message),
    }
}

/// What came on a pycom connection when it is not one whole message within the limits:
/// recorded and forwarded unchanged, then the connection goes on as a plain proxy; or, over
/// the limit with `cut_oversize`, recorded and the connection cut.
async fn not_whole(
    whole: Whole,
    conn: u64,
    dir: Direction,
    ctx: &Ctx,
    (from_read, mut from_write): (OwnedReadHalf, OwnedWriteHalf),
    (to_read, mut to_write): (OwnedReadHalf, OwnedWriteHalf),
) {
    let t = ctx.now();
    let (bytes, over_limit) = match whole {
        Whole::OverLimit(bytes) => (bytes, true),
        Whole::Incomplete(bytes) | Whole::Complete(bytes) => (bytes, false),
    };
    let mut side = SideDecoder::new(ctx.protocol.framing(dir));
    let mut pieces = Vec::new();
    side.push(&bytes, &mut pieces);
    if over_limit && ctx.cut_oversize {
        let e = crate::proxy::cut_connection(ctx, t, conn, dir, &mut pieces).await;
        ctx.notice(format!("conn {conn}: closed: {e}")).await;
        let _ = from_write.shutdown().await;
        let _ = to_write.shutdown().await;
        return;
    }
    ctx.emit(t, conn, dir, &mut pieces).await;
    if to_write.write_all(&bytes).await.is_err() {
        return;
    }
    let forward = pump(from_read, to_write, conn, dir, ctx, Some(side));
    let back = pump(to_read, from_write, conn, dir.reverse(), ctx, None);
    if let Err(e) = tokio::try_join!(forward, back) {
        ctx.notice(format!("conn {conn}: closed: {e}")).await;
    }
}

/// One coordinator → node connection.
pub(crate) async fn connection(
    client: TcpStream,
    peer: SocketAddr,
    conn: u64,
    ctx: &Arc<Ctx>,
    limits: Limits,
) {
    let _ = client.set_nodelay(true);
    let upstream = match labwire_net::connect(ctx.upstream.as_str(), ctx.connect_timeout).await {
        Ok(upstream) => upstream,
        Err(e) => {
            ctx.notice(format!(
                "conn {conn} from {peer}: upstream {} failed ({e}); closed the client's \
                 connection, still listening",
                ctx.upstream
            ))
            .await;
            return;
        }
    };
    let tap_ip = upstream.local_addr().map(|a| a.ip()).ok();
    let (mut client_read, client_write) = client.into_split();
    let (upstream_read, mut upstream_write) = upstream.into_split();
    let request = match read_whole(&mut client_read, &limits).await {
        Whole::Complete(request) => request,
        other => {
            not_whole(
                other,
                conn,
                Direction::ToDevice,
                ctx,
                (client_read, client_write),
                (upstream_read, upstream_write),
            )
            .await;
            return;
        }
    };
    let t = ctx.now();
    let found = decode(&request, &limits);
    let mut note = None;
    let mut forwarded = None;
    if let (Ok(message), Some(tap_ip)) = (wire::decode(&request, &limits), tap_ip) {
        let coordinator = SocketAddr::new(peer.ip(), message.identity.port);
        match event_listener(ctx, coordinator, tap_ip) {
            Ok(listener) => {
                if let Some(rewritten) = rewrite_port(&request, listener.port) {
                    note = Some(format!(
                        "forwarded with port {} rewritten to {}, the tap's event listener \
                         on {tap_ip}",
                        message.identity.port, listener.port
                    ));
                    forwarded = Some(rewritten);
                }
                // Before the request goes: its events cannot come earlier.
                listener.last_request.store(conn, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.notice(format!(
                    "conn {conn}: no event listener for {coordinator} ({e}); request \
                     forwarded unchanged"
                ))
                .await;
            }
        }
    }
    let piece = Piece {
        bytes: request.clone(),
        decoded: found.decoded,
        summary: found.summary,
    };
    if !request.is_empty() {
        ctx.emit_noted(t, conn, Direction::ToDevice, piece, note, None)
            .await;
    }
    let out = forwarded.as_deref().unwrap_or(&request);
    if upstream_write.write_all(out).await.is_err() {
        return;
    }
    let _ = upstream_write.shutdown().await;
    drop(upstream_write);
    let _ = pump(
        upstream_read,
        client_write,
        conn,
        Direction::ToClient,
        ctx,
        None,
    )
    .await;
}

/// The event listener for `coordinator`, opened on `tap_ip` if needed.
fn event_listener(
    ctx: &Arc<Ctx>,
    coordinator: SocketAddr,
    tap_ip: IpAddr,
) -> io::Result<EventListener> {
    let mut map = ctx
        .pycom
        .0
        .lock()
        .map_err(|_| io::Error::other("poisoned"))?;
    if let Some(listener) = map.get(&(coordinator, tap_ip)) {
        return Ok(listener.clone());
    }
    if map.len() >= MAX_EVENT_LISTENERS {
        return Err(io::Error::other(format!(
            "{MAX_EVENT_LISTENERS} event listeners open already"
        )));
    }
    let listener = labwire_net::bind(SocketAddr::new(tap_ip, 0), labwire_net::DEFAULT_BACKLOG)?;
    let entry = EventListener {
        port: listener.local_addr()?.port(),
        last_request: Arc::new(AtomicU64::new(0)),
    };
    map.insert((coordinator, tap_ip), entry.clone());
    ctx.tracker.spawn(event_loop(
        listener,
        coordinator,
        entry.last_request.clone(),
        ctx.clone(),
    ));
    Ok(entry)
}

/// Accepts the node's event connections and forwards each to `coordinator`.
async fn event_loop(
    listener: TcpListener,
    coordinator: SocketAddr,
    last_request: Arc<AtomicU64>,
    ctx: Arc<Ctx>,
) {
    loop {
        let permit = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            permit = ctx.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (node, peer) = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = ctx.next_conn();
        let reply_to = Some(last_request.load(Ordering::Relaxed)).filter(|&n| n != 0);
        let task_ctx = ctx.clone();
        ctx.tracker.spawn(async move {
            tokio::select! {
                () = task_ctx.cancel.cancelled() => {}
                () = event_connection(node, peer, coordinator, (conn, reply_to), &task_ctx) => {}
            }
            drop(permit);
            task_ctx.finished_one();
        });
    }
}

/// One node → coordinator event: read whole, forwarded with its `port` naming the tap.
async fn event_connection(
    node: TcpStream,
    peer: SocketAddr,
    coordinator: SocketAddr,
    (conn, reply_to): (u64, Option<u64>),
    ctx: &Ctx,
) {
    let _ = node.set_nodelay(true);
    let limits = ctx.protocol.pycom_limits().unwrap_or_default();
    let (mut node_read, node_write) = node.into_split();
    // Read before connecting on: an event the coordinator cannot take is still recorded.
    let whole = read_whole(&mut node_read, &limits).await;
    let target = match labwire_net::connect(coordinator, ctx.connect_timeout).await {
        Ok(target) => target,
        Err(e) => {
            if let Whole::Complete(event) = whole {
                let found = decode(&event, &limits);
                let piece = Piece {
                    bytes: event,
                    decoded: found.decoded,
                    summary: found.summary,
                };
                let note = format!("not delivered: coordinator {coordinator} failed ({e})");
                let t = ctx.now();
                ctx.emit_noted(t, conn, Direction::ToClient, piece, Some(note), reply_to)
                    .await;
            }
            ctx.notice(format!(
                "conn {conn}: event from {peer}: coordinator {coordinator} failed ({e}); \
                 the event is lost, as it would be without the tap"
            ))
            .await;
            return;
        }
    };
    let (target_read, mut target_write) = target.into_split();
    let event = match whole {
        Whole::Complete(event) => event,
        other => {
            not_whole(
                other,
                conn,
                Direction::ToClient,
                ctx,
                (node_read, node_write),
                (target_read, target_write),
            )
            .await;
            return;
        }
    };
    let t = ctx.now();
    let found = decode(&event, &limits);
    let mut note = None;
    let mut forwarded = None;
    if let Ok(message) = wire::decode(&event, &limits)
        && message.identity.port != ctx.listen_port
        && let Some(rewritten) = rewrite_port(&event, ctx.listen_port)
    {
        note = Some(format!(
            "forwarded with port {} rewritten to {}, the tap's own port (the coordinator \
             knows the node by the address it sent the request to)",
            message.identity.port, ctx.listen_port
        ));
        forwarded = Some(rewritten);
    }
    let piece = Piece {
        bytes: event.clone(),
        decoded: found.decoded,
        summary: found.summary,
    };
    if !event.is_empty() {
        ctx.emit_noted(t, conn, Direction::ToClient, piece, note, reply_to)
            .await;
    }
    let out = forwarded.as_deref().unwrap_or(&event);
    if target_write.write_all(out).await.is_err() {
        return;
    }
    let _ = target_write.shutdown().await;
    drop(target_write);
    // Whatever the coordinator sends back (nothing, then its close) goes to the node.
    let _ = pump(
        target_read,
        node_write,
        conn,
        Direction::ToDevice,
        ctx,
        None,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_port_digits_change() {
        let request = br#"{"id": "ab", "x": {"port": 1}, "port" : 5000 , "ip":"1.2.3.4"}"#;
        let out = rewrite_port(request, 41234).unwrap();
        assert_eq!(
            out,
            br#"{"id": "ab", "x": {"port": 1}, "port" : 41234 , "ip":"1.2.3.4"}"#
        );
        assert!(rewrite_port(br#"{"port":1,"port":2}"#, 9).is_none());
        assert!(rewrite_port(br#"{"a":"\"port\""}"#, 9).is_none());
        assert_eq!(rewrite_port(br#"{"port":7}"#, 9).unwrap(), br#"{"port":9}"#);
    }
}
