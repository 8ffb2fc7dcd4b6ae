//! The accept loop shared by every labwire listener.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::budget::{DEFAULT_FRAME_BUDGET, FrameBudget};
use crate::listener::{DEFAULT_BACKLOG, bind};
use crate::warn_limit::WarnLimit;

/// Live connections a [`Server`] serves when none is configured; a client that connects while
/// that many are live is refused (accepted and closed at once).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How long the accept loop pauses after an accept error such as `EMFILE`, so that a process
/// out of file descriptors does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// How a [`Server`] listens. Public fields; start from [`ServerConfig::new`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub addr: SocketAddr,
    /// Listen backlog, [`DEFAULT_BACKLOG`] by default.
    pub backlog: u32,
    /// Connections served at once, [`DEFAULT_MAX_CONNECTIONS`] by default. A client that
    /// connects while that many are live is refused at once: accepted and closed, so it sees
    /// the end of the stream (or a reset) instead of a connection that never answers, and the
    /// refusal is a rate-limited warning ([`crate::warn_limit`]). None of labwire's protocols
    /// has a "busy" answer to send instead.
    pub max_connections: usize,
    /// Bytes of partial requests all connections may hold together beyond a small free
    /// allowance each ([`crate::budget`]), [`DEFAULT_FRAME_BUDGET`] (64 MiB) by default.
    pub frame_budget: usize,
    /// Set `TCP_NODELAY` on accepted sockets (default `true`).
    pub nodelay: bool,
    /// Keep a list of the connections being served, their peer addresses and when they were
    /// accepted, for [`ServerHandle::peers`] (default `false`).
    ///
    /// Off by default because every connection pays for it: a slot in a shared table (an
    /// address and an [`Instant`], 48 bytes on 64-bit targets; the table keeps the slots of
    /// its busiest moment for reuse) and a 16-byte guard in the connection's task, which
    /// removes the entry when the task ends. The simulators' tasks still fit tokio's task
    /// allocation with the guard (measured: 48 B more per idle connection, 1.59× a bare tokio
    /// server instead of 1.50×); a task just under a 128-byte step would take the next one.
    /// Turned off, a connection's task is exactly what it is without this field.
    pub track_peers: bool,
}

impl ServerConfig {
    /// Defaults for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            backlog: DEFAULT_BACKLOG,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            frame_budget: DEFAULT_FRAME_BUDGET,
            nodelay: true,
            track_peers: false,
        }
    }
}

/// A connection a [`Server`] with [`ServerConfig::track_peers`] is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// When the connection was accepted.
    pub since: Instant,
}

/// The connections a tracking server is serving: a slab, so that a connection's entry is found
/// again by its index and freed slots are reused.
#[derive(Debug, Default)]
struct PeerTable {
    slots: Vec<Option<Peer>>,
    free: Vec<usize>,
}

type SharedPeers = Arc<Mutex<PeerTable>>;

impl PeerTable {
    fn insert(&mut self, peer: Peer) -> usize {
        if let Some(key) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(key)
        {
            *slot = Some(peer);
            return key;
        }
        self.slots.push(Some(peer));
        self.slots.len() - 1
    }

    fn remove(&mut self, key: usize) {
        if let Some(slot) = self.slots.get_mut(key)
            && slot.take().is_some()
        {
            self.free.push(key);
        }
    }

    fn list(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = self.slots.iter().flatten().copied().collect();
        peers.sort_by_key(|peer| (peer.since, peer.addr));
        peers
    }
}

/// A connection's entry in the [`PeerTable`], removed when the connection's task drops it: when
/// the handler returns, at shutdown, when the handler panics, when the runtime goes away.
struct Registered {
    peers: SharedPeers,
    key: usize,
}

impl Registered {
    fn new(peers: &SharedPeers, addr: SocketAddr) -> Self {
        let peer = Peer {
            addr,
            since: Instant::now(),
        };
        let key = lock(peers).insert(peer);
        Self {
            peers: Arc::clone(peers),
            key,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.peers).remove(self.key);
    }
}

/// The table, also after a panic elsewhere while it was held (it stays consistent: every
/// change is one assignment).
fn lock(peers: &SharedPeers) -> std::sync::MutexGuard<'_, PeerTable> {
    peers.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bound listener, not yet accepting. [`Server::serve`] starts the accept loop.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    budget: FrameBudget,
    warnings: Arc<WarnLimit>,
}

impl Server {
    /// Binds the listener described by `config`.
    ///
    /// # Errors
    /// Any error binding the address (in use, not available, ...).
    pub async fn bind(config: ServerConfig) -> io::Result<Self> {
        let listener = bind(config.addr, config.backlog)?;
        Ok(Self {
            listener,
            budget: FrameBudget::new(config.frame_budget),
            config,
            warnings: Arc::new(WarnLimit::default()),
        })
    }

    /// The budget for the frames in flight of this server's connections
    /// ([`ServerConfig::frame_budget`]), for a serve loop of one's own
    /// ([`crate::service::serve_connection_within`]).
    pub fn frame_budget(&self) -> &FrameBudget {
        &self.budget
    }

    /// Replaces the frame budget (a protocol's server gives it its
    /// [`ClaimedLength`](crate::budget::ClaimedLength) here).
    #[must_use]
    pub fn with_frame_budget(mut self, budget: FrameBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The rate limit of this server's warnings about misbehaving peers, shared by its
    /// connections ([`crate::warn_limit`]).
    pub fn warnings(&self) -> Arc<WarnLimit> {
        Arc::clone(&self.warnings)
    }

    /// The bound address (with the real port when `addr` had port 0).
    ///
    /// # Errors
    /// If the OS cannot report the address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts accepting. Each connection runs `handler(stream, peer, token)` in its own task;
    /// the connection closes when the handler returns or when the server shuts down (the
    /// handler's future is dropped, which drops the stream). `token` is cancelled at shutdown
    /// for handlers that want to finish gracefully first.
    pub fn serve<F, Fut>(self, handler: F) -> ServerHandle
    where
        F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.serve_with_token(CancellationToken::new(), handler)
    }

    /// Like [`Server::serve`], stopping also when `shutdown` (or a parent of it) is cancelled.
    pub fn serve_with_token<F, Fut>(self, shutdown: CancellationToken, handler: F) -> ServerHandle
    where
        F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let local_addr = self.listener.local_addr().unwrap_or(self.config.addr);
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let peers = self.config.track_peers.then(SharedPeers::default);
        tracker.spawn(accept_loop(
            self.listener,
            self.config.nodelay,
            Admission {
                limit,
                warnings: self.warnings,
            },
            peers.clone(),
            shutdown.clone(),
            tracker.clone(),
            handler,
        ));
        ServerHandle {
            local_addr,
            started: Instant::now(),
            peers,
            shutdown,
            tracker,
        }
    }
}

/// Who gets a connection slot, and the warning of those refused.
struct Admission {
    limit: Arc<Semaphore>,
    warnings: Arc<WarnLimit>,
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    nodelay: bool,
    admission: Admission,
    peers: Option<SharedPeers>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handler: F,
) where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // At the cap a client is refused at once rather than left waiting in the backlog,
        // where its handshake is done and nothing ever answers it (issue 16).
        let Ok(permit) = admission.limit.clone().try_acquire_owned() else {
            crate::peer_warn!(
                admission.warnings,
                %peer,
                // The accept loop is a tracked task too.
                live = tracker.len().saturating_sub(1),
                "connection refused: at the connection cap"
            );
            drop(stream);
            continue;
        };
        if nodelay && let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
        }
        // The server's own token, not a child: cancelling it reaches every connection, and a
        // clone allocates nothing (a child token per connection would).
        let token = shutdown.clone();
        tracing::trace!(%peer, "accepted");
        let served = handler(stream, peer, token.clone());
        let connection = Connection::new(served, token, permit);
        // Two task types: untracked connections do not carry the guard, not even as a `None`.
        match &peers {
            None => tracker.spawn(connection),
            Some(peers) => tracker.spawn(Tracked {
                connection,
                _registered: Registered::new(peers, peer),
            }),
        };
    }
    tracing::debug!("accept loop stopped");
}

pin_project_lite::pin_project! {
    /// One connection's task: its handler's future, ended early by shutdown, holding the
    /// connection's slot until it ends.
    ///
    /// Written out rather than an `async` block: a task is as large as its future, so every idle
    /// connection pays for what this holds, and an `async` block would store the handler's
    /// future twice (captured, then moved into the `select!`). No span and no peer address
    /// either: the handler has the peer and logs the connection's end with it.
    struct Connection<Fut> {
        #[pin]
        served: Fut,
        #[pin]
        shutdown: WaitForCancellationFutureOwned,
        permit: OwnedSemaphorePermit,
    }
}

impl<Fut: Future<Output = ()>> Connection<Fut> {
    fn new(served: Fut, shutdown: CancellationToken, permit: OwnedSemaphorePermit) -> Self {
        Self {
            served,
            shutdown: shutdown.cancelled_owned(),
            permit,
        }
    }
}

impl<Fut: Future<Output = ()>> Future for Connection<Fut> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let _ = this.permit;
        if this.served.poll(cx).is_ready() {
            tracing::trace!("connection closed");
            return Poll::Ready(());
        }
        if this.shutdown.poll(cx).is_ready() {
            tracing::debug!("connection closed by shutdown");
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A [`Connection`] of a server that tracks its peers: the connection's entry goes when
    /// this task is dropped, however it ends.
    struct Tracked<Fut> {
        #[pin]
        connection: Connection<Fut>,
        _registered: Registered,
    }
}

impl<Fut: Future<Output = ()>> Future for Tracked<Fut> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().connection.poll(cx)
    }
}

/// A running server. Dropping the handle shuts the server down without waiting;
/// [`ServerHandle::shutdown`] also waits until every connection is closed.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    started: Instant,
    peers: Option<SharedPeers>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served right now.
    pub fn connection_count(&self) -> usize {
        // The accept loop is a tracked task too.
        self.tracker
            .len()
            .saturating_sub(usize::from(!self.is_shut_down()))
    }

    /// The connections being served right now, oldest first, when the server tracks them
    /// ([`ServerConfig::track_peers`]); `None` when it does not.
    ///
    /// A connection is listed from its accept until its task ends (the handler returned, or
    /// shutdown); one still in the listen backlog, not yet accepted, is not listed, nor is one
    /// refused at the connection cap.
    pub fn peers(&self) -> Option<Vec<Peer>> {
        self.peers.as_ref().map(|peers| lock(peers).list())
    }

    /// When the server started accepting (the reference for [`Peer::since`] in reports).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The token that stops this server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Whether shutdown has begun.
    pub fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Stops accepting, closes every connection, and waits until all connection tasks have
    /// ended. Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn loopback() -> ServerConfig {
        ServerConfig::new("127.0.0.1:0".parse().unwrap())
    }

    async fn echo_once(mut stream: TcpStream) {
        let mut buf = [0u8; 64];
        if let Ok(n) = stream.read(&mut buf).await {
            let _ = stream.write_all(&buf[..n]).await;
        }
    }

    #[tokio::test]
    async fn serves_each_connection_with_nodelay() {
        let handle = Server::bind(loopback())
            .await
            .unwrap()
            .serve(|stream, _, _| async move {
                assert!(stream.nodelay().unwrap());
                echo_once(stream).await;
            });
        let mut client = crate::connect(handle.local_addr(), Duration::from_secs(5))
            .await
            .unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"ping");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_disconnects_idle_clients_and_stops_accepting() {
        let handle = Server::bind(loopback())
            .await
            .unwrap()
            .serve(|stream, _, _| async move {
                // Never answers: only shutdown can end this connection.
                let _stream = stream;
                std::future::pending::<()>().await;
            });
        let addr = handle.local_addr();
        let mut client = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while handle.connection_count() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the server closed the connection");
        assert!(crate::connect(addr, Duration::from_secs(5)).await.is_err());
    }

    #[tokio::test]
    async fn at_the_connection_cap_a_new_client_is_refused_at_once_and_served_once_a_slot_frees() {
        let mut config = loopback();
        config.max_connections = 1;
        let handle = Server::bind(config)
            .await
            .unwrap()
            .serve(|s, _, _| echo_once(s));
        let addr = handle.local_addr();
        let mut first = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        until(|| handle.connection_count() == 1).await;
        // The second client is accepted and closed: it sees the end (or a reset) promptly,
        // instead of a handshake that nothing ever answers.
        let mut second = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        let mut reply = Vec::new();
        let refused = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut reply))
            .await
            .expect("refused promptly");
        assert!(
            refused.is_err() || reply.is_empty(),
            "{refused:?} {reply:?}"
        );
        first.write_all(b"one").await.unwrap();
        let mut reply = Vec::new();
        first.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"one");
        // The slot is free again: a new client is served.
        until(|| handle.connection_count() == 0).await;
        let mut third = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        third.write_all(b"three").await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, b"three");
        handle.shutdown().await;
    }

    /// Waits (at most 5 s) until `done` holds.
    async fn until(mut done: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !done() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("condition not reached");
    }

    fn addrs(handle: &ServerHandle) -> Vec<SocketAddr> {
        let peers = handle.peers().expect("tracked");
        peers.iter().map(|peer| peer.addr).collect()
    }

    #[tokio::test]
    async fn peers_are_not_tracked_unless_asked() {
        let handle = Server::bind(loopback())
            .await
            .unwrap()
            .serve(|s, _, _| echo_once(s));
        let _client = crate::connect(handle.local_addr(), Duration::from_secs(5))
            .await
            .unwrap();
        until(|| handle.connection_count() == 1).await;
        assert_eq!(handle.peers(), None);
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn tracked_peers_appear_while_served_and_go_when_their_connection_ends() {
        let mut config = loopback();
        config.track_peers = true;
        let handle = Server::bind(config)
            .await
            .unwrap()
            .serve(|s, _, _| echo_once(s));
        assert_eq!(handle.peers(), Some(Vec::new()));
        let addr = handle.local_addr();
        let mut first = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        until(|| handle.connection_count() == 1).await;
        let mut second = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        until(|| handle.connection_count() == 2).await;
        let me = [first.local_addr().unwrap(), second.local_addr().unwrap()];
        // Oldest first.
        assert_eq!(addrs(&handle), me);
        let peers = handle.peers().unwrap();
        assert!(handle.started() <= peers[0].since && peers[0].since <= peers[1].since);

        // The handler returns (one echo): the first goes, the second stays.
        first.write_all(b"one").await.unwrap();
        let mut reply = Vec::new();
        first.read_to_end(&mut reply).await.unwrap();
        until(|| handle.connection_count() == 1).await;
        assert_eq!(addrs(&handle), [me[1]]);

        // The client goes away: the handler's read ends, and so does its entry.
        drop(first);
        second.shutdown().await.unwrap();
        until(|| handle.connection_count() == 0).await;
        assert_eq!(addrs(&handle), []);

        // A new connection reuses the freed slot.
        let third = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        until(|| handle.connection_count() == 1).await;
        assert_eq!(addrs(&handle), [third.local_addr().unwrap()]);
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn tracked_peers_go_at_shutdown_and_when_a_handler_panics() {
        let mut config = loopback();
        config.track_peers = true;
        let handle = Server::bind(config)
            .await
            .unwrap()
            .serve(|mut stream, _, _| async move {
                let mut buf = [0u8; 8];
                if let Ok(n) = stream.read(&mut buf).await
                    && &buf[..n] == b"panic"
                {
                    panic!("the handler panics");
                }
                // Otherwise never ends: only shutdown closes it.
                std::future::pending::<()>().await;
            });
        let addr = handle.local_addr();
        let mut panicking = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        let idle = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        until(|| handle.peers().unwrap().len() == 2).await;
        panicking.write_all(b"panic").await.unwrap();
        until(|| handle.peers().unwrap().len() == 1).await;
        assert_eq!(addrs(&handle), [idle.local_addr().unwrap()]);
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .unwrap();
        assert_eq!(addrs(&handle), []);
    }

    #[test]
    fn the_peer_table_reuses_freed_slots() {
        let mut table = PeerTable::default();
        let peer = |port| Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            since: Instant::now(),
        };
        let a = table.insert(peer(1));
        let b = table.insert(peer(2));
        table.remove(a);
        table.remove(a); // twice: harmless
        assert_eq!(table.free, [a]);
        assert_eq!(table.insert(peer(3)), a);
        table.remove(b);
        table.remove(a);
        assert!(table.list().is_empty());
        assert_eq!(table.slots.len(), 2);
    }
}
