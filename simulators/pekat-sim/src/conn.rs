//! One client connection: gather a request (no framing on the wire), act, answer in one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use pekat_proto::wire::{self, Completeness, Hex};
use pekat_proto::{Command, DEFAULT_MAX_RESPONSE_LEN, Dialect, Reply, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::state::Outcome;
use crate::{Shared, SimConfig};

/// Bytes read per `read` call; the buffer never exceeds the request limit by more than this.
const READ_CHUNK: usize = 1024;

/// How gathering a request ended.
enum Gathered {
    /// The buffer holds one request; `eof` when the client has finished sending.
    Message { eof: bool },
    /// More bytes than one request may have.
    TooLarge,
    /// The connection failed.
    Failed,
}

/// Reads at most [`READ_CHUNK`] more bytes into `buf`; `Ok(0)` at end of stream.
async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n)
}

/// Reads until the buffer holds one whole request.
///
/// There is no delimiter, so: while the bytes cannot be a whole request yet (no separator, the
/// head still a valid beginning) wait for more until `request_timeout`; once they can, wait a
/// short quiet period for bytes that still belong to it (a path split across TCP segments).
/// When a deadline passes, what arrived is the request.
async fn gather(stream: &mut TcpStream, buf: &mut BytesMut, config: &SimConfig) -> Gathered {
    let deadline = crate::after(config.request_timeout);
    loop {
        if wire::check_len(buf, config.max_request_len).is_err() {
            return Gathered::TooLarge;
        }
        let mut completeness = wire::request_completeness(buf, config.dialect);
        if let Some(before_cr) = buf.strip_suffix(b"\r")
            && !config.quiet_period.is_zero()
        {
            // A whole request ending in `\r`: the quiet period decides whether a `\n` follows.
            completeness = wire::request_completeness(before_cr, config.dialect);
        }
        let wait_until = match completeness {
            Completeness::NeedMore => deadline,
            Completeness::Complete if config.quiet_period.is_zero() => {
                return Gathered::Message { eof: false };
            }
            Completeness::Complete => crate::after(config.quiet_period).min(deadline),
        };
        match timeout_at(wait_until, read_more(stream, buf)).await {
            Err(_) => return Gathered::Message { eof: false },
            Ok(Ok(0)) => return Gathered::Message { eof: true },
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "read failed");
                return Gathered::Failed;
            }
        }
    }
}

/// Writes `reply` in one write, as the vendor's clients read it with one `recv(64)`.
async fn send(stream: &mut TcpStream, reply: &Reply, dialect: Dialect) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    if let Err(error) = wire::encode_reply(reply, dialect, DEFAULT_MAX_RESPONSE_LEN, &mut out) {
        tracing::warn!(%error, ?reply, "cannot encode answer");
        return Err(std::io::Error::other(error));
    }
    tracing::debug!(?reply, "answer");
    tracing::trace!(hex = %Hex(&out), "answer bytes");
    stream.write_all(&out).await
}

/// Waits until `until` while watching the connection, so that a client that gives up on a
/// slow answer frees its connection at once. Bytes that arrive meanwhile (the next request,
/// sent early) are kept in `buf`. Whether the client is still there.
async fn wait_for_answer_time(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    until: Instant,
    config: &SimConfig,
) -> bool {
    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(until) => return true,
            read = read_more(stream, buf) => match read {
                Ok(0) | Err(_) => return false,
                Ok(_) if wire::check_len(buf, config.max_request_len).is_err() => return false,
                Ok(_) => {}
            },
        }
    }
}

/// Serves one connection until the client closes, goes idle, or breaks the protocol.
pub(crate) async fn serve(mut stream: TcpStream, shared: Arc<Shared>, config: Arc<SimConfig>) {
    let dialect = config.dialect;
    let mut buf = BytesMut::new();
    loop {
        if buf.is_empty() {
            match timeout(config.idle_timeout, read_more(&mut stream, &mut buf)).await {
                Err(_) => {
                    tracing::debug!(idle = ?config.idle_timeout, "idle; closing");
                    return;
                }
                Ok(Ok(0)) => {
                    tracing::trace!("client closed");
                    return;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "read failed");
                    return;
                }
                Ok(Ok(_)) => {}
            }
        }
        let eof = match gather(&mut stream, &mut buf, &config).await {
            Gathered::Message { eof } => eof,
            Gathered::Failed => return,
            Gathered::TooLarge => {
                shared.requests.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    len = buf.len(),
                    max = config.max_request_len,
                    "request too large; answering the error and closing"
                );
                let error_answer = Reply::new(Response::UnknownCommand);
                let sending = send(&mut stream, &error_answer, dialect);
                let _ = timeout(config.idle_timeout, sending).await;
                return;
            }
        };
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let msg = buf.split();
        tracing::trace!(hex = %Hex(&msg), "request bytes");
        let (reply, answer_at, start_or_stop) = match wire::parse_request(&msg, dialect) {
            Ok(request) => {
                tracing::debug!(?request, "request");
                let outcome = {
                    let now = shared.clock.now();
                    shared.manager().handle(request.command, &request.path, now)
                };
                let answer_at = match &outcome {
                    Outcome::At(at, _) => Some(*at),
                    Outcome::Now(_) => None,
                };
                let reply = Reply::to(&request, outcome.response().clone());
                let start_or_stop = matches!(request.command, Command::Start | Command::Stop);
                (reply, answer_at, start_or_stop)
            }
            Err(bad) => {
                tracing::debug!(%bad, "bad request");
                (bad.reply(), None, false)
            }
        };
        let faults = shared.faults();
        if faults.no_answer || (start_or_stop && faults.silent_start_stop) {
            tracing::debug!(?reply, "not answering (fault)");
        } else {
            // The real server answers start/stop/switch once the transition is complete.
            let mut answer_time =
                answer_at.map_or_else(Instant::now, |at| crate::real_instant(&shared.clock, at));
            if !faults.answer_delay.is_zero() {
                answer_time = answer_time.max(crate::after(faults.answer_delay));
            }
            let still_there = if eof {
                // Half-closed after sending: nothing more to watch, just answer on time.
                tokio::time::sleep_until(answer_time).await;
                true
            } else {
                wait_for_answer_time(&mut stream, &mut buf, answer_time, &config).await
            };
            if !still_there {
                tracing::debug!("client left before its answer");
                return;
            }
            if faults.close_instead_of_answer {
                tracing::debug!("closing instead of answering (fault)");
                return;
            }
            // A client that sends but never reads would otherwise hold this task forever once
            // the socket buffers are full.
            let write = async {
                if let Some(garbage) = &faults.garbage {
                    tracing::debug!(
                        len = garbage.len(),
                        "sending garbage instead of the answer (fault)"
                    );
                    tracing::trace!(hex = %Hex(garbage), "garbage bytes");
                    stream.write_all(garbage).await
                } else {
                    send(&mut stream, &reply, dialect).await
                }
            };
            match timeout(config.idle_timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "write failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(idle = ?config.idle_timeout, "answer not taken; closing");
                    return;
                }
            }
        }
        if eof || config.one_request_per_connection {
            let _ = stream.shutdown().await;
            return;
        }
    }
}
