//! The proxy: accept a client, connect upstream, forward both ways, decode on the side.
//!
//! Forwarding comes first: each read is written to the other side unchanged before it is
//! decoded, so a decoder never delays, alters or drops a byte. Each direction runs its own
//! [`SideDecoder`]; its events go over a bounded channel to one sink thread that prints them
//! and writes the recording in batches (when that thread falls behind, forwarding waits for it
//! rather than buffering without bound).

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::decode::{Piece, Protocol, SideDecoder};
use crate::recording::{Direction, Event, Writer};

/// Bytes read from a socket at once (and so the most one event of undecoded bytes holds).
pub const READ_BUFFER: usize = 16 * 1024;

/// Default for [`TapConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default for [`TapConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Events waiting for the sink before forwarding waits for it.
const EVENT_QUEUE: usize = 1024;

/// How long the sink leaves the channel alone after writing a batch (so a message is printed
/// and recorded at most this late while messages keep coming; the queue fills in no less
/// than this at up to 200 000 messages a second).
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

/// What the tap prints on stdout for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Print {
    /// Nothing (a library user reads the recording).
    #[default]
    Nothing,
    /// One line per message: time, connection, direction, a short summary.
    Summary,
    /// The recording line of each message.
    Json,
}

/// How a tap runs. Public fields; start from [`TapConfig::new`].
#[derive(Debug, Clone)]
pub struct TapConfig {
    /// Where clients connect (loopback port 0 by default).
    pub listen: SocketAddr,
    /// The real device (or a simulator), `HOST:PORT`, resolved for each connection.
    pub upstream: String,
    /// Bound on connecting upstream ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Client connections served at once ([`DEFAULT_MAX_CONNECTIONS`]); a client past them is
    /// refused at once (accepted and closed, with a notice), as by every labwire server.
    pub max_connections: usize,
    /// What to print on stdout.
    pub print: Print,
    /// Print connection notices (upstream refused, closed) on stderr.
    pub notices: bool,
    /// Write a recording (JSON Lines) to this file.
    pub record: Option<PathBuf>,
    /// What to do with a peer that sends a message over the protocol's limits (a length
    /// prefix or header claiming more, unframed text longer than a message may be): `false`
    /// (the default) forwards it unchanged and stops decoding that direction, the rest of the
    /// connection recorded as undecoded bytes; `true` cuts the connection instead: the
    /// message's bytes of that read are not forwarded, both sides are closed, and the cut is
    /// noted in the recording (the event's `note`) and on stderr (with [`TapConfig::notices`]).
    /// Bytes of the message that came in earlier reads were forwarded already: the tap never
    /// holds a message back to look at it whole.
    pub cut_oversize: bool,
}

impl TapConfig {
    /// A tap on `127.0.0.1:0` in front of `upstream`, printing nothing, recording nothing.
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: upstream.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            print: Print::Nothing,
            notices: false,
            record: None,
            cut_oversize: false,
        }
    }
}

/// What the sink receives.
enum Note {
    Event(Event, String),
    Notice(String),
}

/// Shared by the accept loop and every connection task.
pub(crate) struct Ctx {
    pub(crate) protocol: Arc<dyn Protocol>,
    pub(crate) upstream: String,
    pub(crate) connect_timeout: Duration,
    /// [`TapConfig::cut_oversize`].
    pub(crate) cut_oversize: bool,
    /// The port clients connect to (pycom events name it as the node's).
    pub(crate) listen_port: u16,
    started: Instant,
    notes: mpsc::Sender<Note>,
    /// Whether anyone prints or records events (otherwise they are decoded and dropped here,
    /// sparing a wake-up of the sink per message).
    events_wanted: bool,
    next_conn: AtomicU64,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) slots: Arc<Semaphore>,
    max_connections: usize,
    finished: watch::Sender<u64>,
    pub(crate) pycom: crate::pycom::Listeners,
}

impl Ctx {
    /// The next connection number.
    pub(crate) fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// One more connection handled to its end.
    pub(crate) fn finished_one(&self) {
        self.finished.send_modify(|n| *n += 1);
    }

    /// Seconds since the tap started.
    pub(crate) fn now(&self) -> f64 {
        self.elapsed()
    }

    /// Sends one event with a note (a pycom message whose forwarded copy was rewritten, a
    /// cut) and, for a pycom event, the request connection it answers.
    pub(crate) async fn emit_noted(
        &self,
        t: f64,
        conn: u64,
        dir: Direction,
        piece: Piece,
        note: Option<String>,
        reply_to: Option<u64>,
    ) {
        if !self.events_wanted {
            return;
        }
        let summary = match &note {
            Some(note) => format!("{} [{note}]", piece.summary),
            None => piece.summary,
        };
        let event = Event {
            t,
            conn,
            dir,
            bytes: piece.bytes,
            decoded: piece.decoded,
            note,
            reply_to,
        };
        let _ = self.notes.send(Note::Event(event, summary)).await;
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(crate) async fn notice(&self, text: String) {
        let _ = self.notes.send(Note::Notice(text)).await;
    }

    pub(crate) async fn emit(&self, t: f64, conn: u64, dir: Direction, pieces: &mut Vec<Piece>) {
        if !self.events_wanted {
            pieces.clear();
            return;
        }
        for piece in pieces.drain(..) {
            let event = Event {
                t,
                conn,
                dir,
                bytes: piece.bytes,
                decoded: piece.decoded,
                note: None,
                reply_to: None,
            };
            // A sink that is gone (its writer failed) must not stop forwarding.
            let _ = self.notes.send(Note::Event(event, piece.summary)).await;
        }
    }
}

/// A running tap; see [`start`].
#[derive(Debug)]
pub struct TapHandle {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    accept: JoinHandle<()>,
    sink: JoinHandle<io::Result<()>>,
    finished: watch::Receiver<u64>,
}

impl TapHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections handled to their end so far (refused upstream ones included).
    pub fn finished_connections(&self) -> u64 {
        *self.finished.borrow()
    }

    /// Waits until `n` connections have ended (both directions closed, their events sent to
    /// the sink).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_finished(&self, n: u64) {
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done >= n).await;
    }

    /// Stops accepting, closes every connection, and waits until the recording is flushed.
    ///
    /// # Errors
    /// The first error writing the recording, if any.
    pub async fn shutdown(self) -> io::Result<()> {
        self.cancel.cancel();
        let _ = self.accept.await;
        match self.sink.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// Binds `config.listen` and starts tapping `protocol` between clients and
/// `config.upstream`. Must be called within a tokio runtime.
///
/// # Errors
/// When the listener cannot be bound or the recording file cannot be created.
pub async fn start(protocol: Arc<dyn Protocol>, config: TapConfig) -> io::Result<TapHandle> {
    let listener = labwire_net::bind(config.listen, labwire_net::DEFAULT_BACKLOG)?;
    let local_addr = listener.local_addr()?;
    let writer = match &config.record {
        Some(path) => {
            let mut writer = Writer::create(path)?;
            writer.write_header(&protocol.header())?;
            Some(writer)
        }
        None => None,
    };
    let (notes, rx) = mpsc::channel(EVENT_QUEUE);
    let print = config.print;
    let events_wanted = print != Print::Nothing || writer.is_some();
    let notices = config.notices;
    // Blocking file and stdout writes stay off the runtime's workers.
    let sink = tokio::task::spawn_blocking(move || {
        Sink {
            writer,
            print,
            notices,
            first_error: None,
        }
        .run(rx)
    });
    let cancel = CancellationToken::new();
    let (finished_tx, finished) = watch::channel(0);
    let ctx = Arc::new(Ctx {
        protocol,
        upstream: config.upstream,
        connect_timeout: config.connect_timeout,
        cut_oversize: config.cut_oversize,
        listen_port: local_addr.port(),
        started: Instant::now(),
        notes,
        events_wanted,
        next_conn: AtomicU64::new(0),
        cancel: cancel.clone(),
        tracker: TaskTracker::new(),
        slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
        max_connections: config.max_connections.max(1),
        finished: finished_tx,
        pycom: crate::pycom::Listeners::default(),
    });
    let accept = tokio::spawn(accept_loop(listener, ctx));
    Ok(TapHandle {
        local_addr,
        cancel,
        accept,
        sink,
        finished,
    })
}

/// The thread that prints and records what the connections hand over.
struct Sink {
    writer: Option<Writer<std::fs::File>>,
    print: Print,
    notices: bool,
    first_error: Option<io::Error>,
}

impl Sink {
    /// Takes notes in batches until every sender is gone: after each batch it leaves the
    /// channel alone for [`BATCH_INTERVAL`], so the connections' sends meanwhile wake nobody
    /// (a wake-up per message cost the recording tap about 40 % of a loopback round trip).
    /// A note that comes to an idle sink is written at once.
    fn run(mut self, mut rx: mpsc::Receiver<Note>) -> io::Result<()> {
        let mut batch = Vec::new();
        while let Some(note) = rx.blocking_recv() {
            batch.push(note);
            while batch.len() < EVENT_QUEUE {
                match rx.try_recv() {
                    Ok(note) => batch.push(note),
                    Err(_) => break,
                }
            }
            self.write(&mut batch);
            if !rx.is_closed() {
                std::thread::sleep(BATCH_INTERVAL);
            }
        }
        self.first_error.map_or(Ok(()), Err)
    }

    /// Records and prints `batch` in order, one flush each for the file and stdout.
    fn write(&mut self, batch: &mut Vec<Note>) {
        if let Some(w) = &mut self.writer {
            let events = batch.iter().filter_map(|note| match note {
                Note::Event(event, _) => Some(event),
                Note::Notice(_) => None,
            });
            if let Err(e) = w.write_events(events) {
                eprintln!("recording stopped: {e}");
                self.writer = None;
                self.first_error.get_or_insert(e);
            }
        }
        let mut out = io::stdout().lock();
        for note in batch.drain(..) {
            match note {
                Note::Notice(text) => {
                    if self.notices {
                        // Notices go to stderr; what came before them on stdout goes first.
                        let _ = out.flush();
                        eprintln!("{text}");
                    }
                }
                Note::Event(event, summary) => print_event(&mut out, self.print, &event, &summary),
            }
        }
        let _ = out.flush();
    }
}

fn print_event(out: &mut impl io::Write, print: Print, event: &Event, summary: &str) {
    let _ = match print {
        Print::Nothing => return,
        Print::Summary => writeln!(
            out,
            "{:>10.6} conn {} {:<9} {summary}",
            event.t, event.conn, event.dir
        ),
        Print::Json => serde_json::to_string(event).map_or(Ok(()), |line| writeln!(out, "{line}")),
    };
}

async fn accept_loop(listener: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    let cancel = ctx.cancel.clone();
    let slots = ctx.slots.clone();
    let slots_max = ctx.max_connections;
    loop {
        let (client, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep listening.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // At the cap a client is refused at once rather than left in the backlog with its
        // handshake done and no answer for as long as the others stay.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(client);
            ctx.notice(format!(
                "refused a connection from {peer}: {} connections already (max_connections)",
                slots_max
            ))
            .await;
            continue;
        };
        let conn = ctx.next_conn();
        let task_ctx = ctx.clone();
        let cancel = cancel.clone();
        ctx.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = connection(client, peer, conn, &task_ctx) => {}
            }
            drop(permit);
            task_ctx.finished_one();
        });
    }
    drop(listener);
    ctx.tracker.close();
    let tracker = ctx.tracker.clone();
    drop(ctx);
    tracker.wait().await;
}

async fn connection(client: TcpStream, peer: SocketAddr, conn: u64, ctx: &Arc<Ctx>) {
    if let Some(limits) = ctx.protocol.pycom_limits() {
        crate::pycom::connection(client, peer, conn, ctx, limits).await;
        return;
    }
    let _ = client.set_nodelay(true);
    let upstream = match labwire_net::connect(ctx.upstream.as_str(), ctx.connect_timeout).await {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::debug!(conn, %peer, error = %e, "upstream connect failed");
            ctx.notice(format!(
                "conn {conn} from {peer}: upstream {} failed ({e}); closed the client's \
                 connection, still listening",
                ctx.upstream
            ))
            .await;
            return;
        }
    };
    tracing::debug!(conn, %peer, "connection open");
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let to_device = pump(
        client_read,
        upstream_write,
        conn,
        Direction::ToDevice,
        ctx,
        None,
    );
    let to_client = pump(
        upstream_read,
        client_write,
        conn,
        Direction::ToClient,
        ctx,
        None,
    );
    // The first error (a reset, a failed write) ends both directions: dropping the halves
    // closes both sockets, so each peer sees the close.
    let outcome = tokio::try_join!(to_device, to_client);
    if let Err(e) = outcome {
        ctx.notice(format!("conn {conn}: closed: {e}")).await;
    }
}

/// Forwards `from` to `to` until `from` ends, then shuts down `to`'s write side (a half-close
/// is forwarded as one). `side` continues a decoder that has seen earlier bytes; `None` starts
/// a fresh one.
pub(crate) async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    conn: u64,
    dir: Direction,
    ctx: &Ctx,
    side: Option<SideDecoder>,
) -> io::Result<()> {
    let mut side = side.unwrap_or_else(|| SideDecoder::new(ctx.protocol.framing(dir)));
    let mut buf = vec![0u8; READ_BUFFER];
    let mut pieces = Vec::new();
    loop {
        let n = from.read(&mut buf).await?;
        let t = ctx.elapsed();
        let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else {
            side.finish(&mut pieces);
            ctx.emit(t, conn, dir, &mut pieces).await;
            // The peer may be gone already; the other direction decides what happens next.
            let _ = to.shutdown().await;
            return Ok(());
        };
        if ctx.cut_oversize {
            // Decoded before it is forwarded, so that an oversize message is not.
            let cut = side.push(bytes, &mut pieces);
            let forward = cut.map_or(bytes, |at| bytes.get(..at).unwrap_or_default());
            to.write_all(forward).await?;
            if cut.is_some() {
                return Err(cut_connection(ctx, t, conn, dir, &mut pieces).await);
            }
        } else {
            to.write_all(bytes).await?;
            // Decoded only for someone: with nothing printed or recorded (and no cut to
            // decide) the messages would be summarised and dropped.
            if ctx.events_wanted {
                side.push(bytes, &mut pieces);
            }
        }
        ctx.emit(t, conn, dir, &mut pieces).await;
    }
}

/// The `note` on the recorded event of a message that made the tap cut its connection
/// ([`TapConfig::cut_oversize`]).
pub const CUT_NOTE: &str =
    "cut: over the protocol's limit, not forwarded; both sides of the connection closed";

/// Records a cut (the last of `pieces` is the oversize message) and says why the connection
/// ends.
pub(crate) async fn cut_connection(
    ctx: &Ctx,
    t: f64,
    conn: u64,
    dir: Direction,
    pieces: &mut Vec<Piece>,
) -> io::Error {
    let last = pieces.pop();
    ctx.emit(t, conn, dir, pieces).await;
    let why = last
        .as_ref()
        .and_then(|piece| piece.decoded.error_text().map(str::to_owned))
        .unwrap_or_else(|| "message over the limit".to_owned());
    if let Some(piece) = last {
        ctx.emit_noted(t, conn, dir, piece, Some(CUT_NOTE.to_owned()), None)
            .await;
    }
    io::Error::other(format!(
        "cut (cut_oversize): a {dir} message over the protocol's limit ({why}); both sides \
         closed"
    ))
}
