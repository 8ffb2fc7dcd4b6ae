//! The accept loop shared by every labwire listener.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::listener::{DEFAULT_BACKLOG, bind};

/// Live connections a [`Server`] accepts when none is configured; more wait in the backlog.
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
    /// Connections served at once, [`DEFAULT_MAX_CONNECTIONS`] by default. Further clients wait
    /// in the backlog until a connection ends.
    pub max_connections: usize,
    /// Set `TCP_NODELAY` on accepted sockets (default `true`).
    pub nodelay: bool,
}

impl ServerConfig {
    /// Defaults for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            backlog: DEFAULT_BACKLOG,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            nodelay: true,
        }
    }
}

/// A bound listener, not yet accepting. [`Server::serve`] starts the accept loop.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
}

impl Server {
    /// Binds the listener described by `config`.
    ///
    /// # Errors
    /// Any error binding the address (in use, not available, ...).
    pub async fn bind(config: ServerConfig) -> io::Result<Self> {
        let listener = bind(config.addr, config.backlog)?;
        Ok(Self { listener, config })
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
        tracker.spawn(accept_loop(
            self.listener,
            self.config.nodelay,
            limit,
            shutdown.clone(),
            tracker.clone(),
            handler,
        ));
        ServerHandle {
            local_addr,
            shutdown,
            tracker,
        }
    }
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    nodelay: bool,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handler: F,
) where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
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
        if nodelay && let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
        }
        // The server's own token, not a child: cancelling it reaches every connection, and a
        // clone allocates nothing (a child token per connection would).
        let token = shutdown.clone();
        tracing::trace!(%peer, "accepted");
        let served = handler(stream, peer, token.clone());
        tracker.spawn(Connection::new(served, token, permit));
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

/// A running server. Dropping the handle shuts the server down without waiting;
/// [`ServerHandle::shutdown`] also waits until every connection is closed.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
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
    async fn connection_limit_queues_extra_clients_until_a_slot_frees() {
        let mut config = loopback();
        config.max_connections = 1;
        let handle = Server::bind(config)
            .await
            .unwrap()
            .serve(|s, _, _| echo_once(s));
        let addr = handle.local_addr();
        let mut first = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        // The second client connects (backlog) but is not served while the first holds the slot.
        let mut second = crate::connect(addr, Duration::from_secs(5)).await.unwrap();
        second.write_all(b"two").await.unwrap();
        first.write_all(b"one").await.unwrap();
        let mut reply = Vec::new();
        first.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"one");
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, b"two");
        handle.shutdown().await;
    }
}
