//! The coordinator's event listener: one message per connection, read in parallel, handled in
//! the order the connections from one IP were accepted.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labwire_net::{CancellationToken, Server, ServerHandle};
use tokio::sync::oneshot;

use crate::message::Message;
use crate::transport::{ReceiveError, read_message};
use crate::wire::Limits;

/// Serves one message per connection on `server`: reads each (connections in parallel, under
/// the size limit and deadline), hands it to `handle` — for one peer IP, in the order the
/// connections were accepted — and closes the connection once `handle` has finished.
pub(super) fn serve_messages<F, Fut>(
    server: Server,
    shutdown: CancellationToken,
    limits: Limits,
    read_timeout: Duration,
    handle: F,
) -> ServerHandle
where
    F: Fn(SocketAddr, Result<Message, ReceiveError>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let order = Arc::new(ArrivalOrder::default());
    let handle = Arc::new(handle);
    server.serve_with_token(shutdown, move |mut stream, peer, _| {
        let handle = Arc::clone(&handle);
        // Called in accept order: this is where the turn is taken.
        let mut turn = ArrivalOrder::arrive(&order, peer.ip());
        async move {
            let received = read_message(&mut stream, &limits, read_timeout).await;
            turn.wait_for_previous().await;
            handle(peer, received).await;
            // Closed only once handled, for senders that wait for the close.
            drop(stream);
            drop(turn);
        }
    })
}

/// Keeps the messages of one peer IP in the order their connections were accepted.
///
/// A peer sends messages one connection after another, but connection tasks run in parallel, so
/// a short second message could be read before a longer first one. Reading stays parallel; only
/// handling waits for the previous connection from the same IP to be handled (or to end). A
/// peer that stalls delays the events behind it by at most the read deadline.
#[derive(Debug, Default)]
struct ArrivalOrder {
    /// Per IP, the turn of the latest accepted connection, signalled when it is done.
    last: Mutex<HashMap<IpAddr, (u64, oneshot::Receiver<()>)>>,
    next: AtomicU64,
}

struct Turn {
    order: Arc<ArrivalOrder>,
    ip: IpAddr,
    id: u64,
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped (signalling the next connection) when this turn ends, however it ends.
    _done: oneshot::Sender<()>,
}

impl ArrivalOrder {
    /// Takes the next turn for `ip`; call it in accept order.
    fn arrive(order: &Arc<Self>, ip: IpAddr) -> Turn {
        let id = order.next.fetch_add(1, Ordering::Relaxed);
        let (done, next_waits) = oneshot::channel();
        let previous = order
            .lock()
            .insert(ip, (id, next_waits))
            .map(|(_, previous)| previous);
        Turn {
            order: Arc::clone(order),
            ip,
            id,
            previous,
            _done: done,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, (u64, oneshot::Receiver<()>)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Turn {
    /// Waits until the previous connection from the same IP has been handled (or has ended).
    async fn wait_for_previous(&mut self) {
        if let Some(previous) = self.previous.take() {
            // An error only means the previous connection ended without a signal: go on.
            let _ = previous.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut last = self.order.lock();
        if last.get(&self.ip).is_some_and(|(id, _)| *id == self.id) {
            last.remove(&self.ip);
        }
    }
}
