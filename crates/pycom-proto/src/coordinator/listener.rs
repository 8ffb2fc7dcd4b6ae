//! The coordinator's event listener: one message per connection, read in parallel, handled in
//! the order the connections from one IP were accepted, for the connections that send their
//! message promptly.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labwire_net::{CancellationToken, Server, ServerHandle};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::message::Message;
use crate::transport::{ReceiveError, read_to_eof};
use crate::wire::Limits;

/// How long after its accept a connection keeps its place in its IP's order while its message
/// is incomplete (at most the read deadline). A node writes each event in one write right after
/// connecting, so on any working network its message is complete long before this.
pub(super) const ORDER_WINDOW: Duration = Duration::from_millis(250);

/// Serves one message per connection on `server`: reads each (connections in parallel, under
/// the size limit and deadline), hands it to `handle` and closes the connection once `handle`
/// has finished.
///
/// For one peer IP, messages are handled in the order their connections were accepted, as long
/// as each is complete within `order_window` of its accept (every event a node sends is: one
/// write right after connecting). A connection whose message is not complete by then gives up
/// its place: the connections behind it go on without it, and its message is handled once it is
/// complete, as if its connection had been accepted then. So however many connections stall,
/// the ones behind them wait at most `order_window`.
pub(super) fn serve_messages<F, Fut>(
    server: Server,
    shutdown: CancellationToken,
    limits: Limits,
    (read_timeout, order_window): (Duration, Duration),
    handle: F,
) -> ServerHandle
where
    F: Fn(SocketAddr, Result<Message, ReceiveError>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let order = Arc::new(ArrivalOrder::default());
    let order_window = order_window.min(read_timeout);
    let shared = Arc::new((handle, limits, (read_timeout, order_window), order));
    server.serve_with_token(shutdown, move |stream, peer, _| {
        let shared = Arc::clone(&shared);
        // Called in accept order: this is where the turn is taken.
        let turn = ArrivalOrder::arrive(&shared.3, peer.ip());
        async move {
            // Until the first byte the task holds only the socket, its turn and a readiness
            // wait (a task is as large as its largest state, and idle connections are what a
            // listener has most of): reading, handing in and handling are boxed below.
            // Only the deadline and the turn are kept across the wait (one await: a task is as
            // large as its largest state).
            let deadline = Instant::now() + shared.2.0;
            let mut turn = Some(turn);
            let arrived = loop {
                let limit = match turn {
                    Some(_) => shared.2.1,
                    None => deadline.saturating_duration_since(Instant::now()),
                };
                match labwire_net::idle::readable_within(&stream, Some(limit)).await {
                    // Silent past the window: its place goes to the connections behind it.
                    Err(_) if turn.is_some() => drop(turn.take()),
                    arrived => break arrived,
                }
            };
            Box::pin(async move {
                let (handle, limits, (read_timeout, order_window), order) = &*shared;
                let window = deadline - (*read_timeout - *order_window);
                let mut stream = stream;
                let received = match arrived {
                    Ok(()) => {
                        let receiving = receive(&mut stream, limits, deadline, *read_timeout);
                        let mut receiving = std::pin::pin!(receiving);
                        if turn.is_some() {
                            tokio::select! {
                                biased;
                                received = &mut receiving => received,
                                () = tokio::time::sleep_until(window) => {
                                    // Incomplete past the window: as above.
                                    drop(turn.take());
                                    receiving.await
                                }
                            }
                        } else {
                            receiving.await
                        }
                    }
                    Err(_) => Err(ReceiveError::TimedOut(*read_timeout)),
                };
                // A connection that gave up its place takes one now, behind those before it.
                let turn = turn.unwrap_or_else(|| ArrivalOrder::arrive(order, peer.ip()));
                turn.hand_in(peer, received).handled(handle).await;
                // Closed only once handled, for senders that wait for the close.
                drop(stream);
            })
            .await;
        }
    })
}

/// Reads the connection's message by `deadline` (`read_timeout` after it was accepted).
async fn receive(
    stream: &mut TcpStream,
    limits: &Limits,
    deadline: Instant,
    read_timeout: Duration,
) -> Result<Message, ReceiveError> {
    match tokio::time::timeout_at(deadline, read_to_eof(stream, limits)).await {
        Err(_) => Err(ReceiveError::TimedOut(read_timeout)),
        Ok(received) => Ok(received?),
    }
}

/// Keeps the messages of one peer IP in the order their connections were accepted.
///
/// A peer sends messages one connection after another, but connection tasks run in parallel, so
/// a short second message could be read before a longer first one. Reading stays parallel; a
/// message read is handed in under its turn, and handled once every earlier turn of its IP has
/// been. Whichever connection hands in the next turn due handles it and every later one already
/// waiting, one after the other, and tells each that it was handled: the connections of a burst
/// do not wait on each other in a chain of wake-ups. A connection that stalls gives up its turn
/// at the order window (see [`serve_messages`]), so it delays the events behind it by at most
/// that.
#[derive(Debug, Default)]
struct ArrivalOrder {
    queues: Mutex<HashMap<IpAddr, Queue>>,
}

/// One IP's turns.
#[derive(Debug, Default)]
struct Queue {
    /// The turn the next accepted connection takes.
    next_turn: u64,
    /// The turn handled next.
    next_due: u64,
    /// Turns handed in and not handled yet.
    waiting: BTreeMap<u64, Entry>,
    /// Whether a connection is handling this IP's turns right now.
    draining: bool,
}

#[derive(Debug)]
struct Entry {
    peer: SocketAddr,
    /// `None`: the connection gave up its turn (silent past the order window) or ended without
    /// handing anything in (the server shutting down).
    received: Option<Result<Message, ReceiveError>>,
    /// Tells the waiting connection what became of its turn.
    notify: Option<oneshot::Sender<Signal>>,
}

/// What a waiting connection is told.
#[derive(Debug)]
enum Signal {
    /// Its message was handled: close.
    Handled,
    /// Its turn is due and nobody is handling turns (the one who was ended early): handle them.
    Drain,
}

impl Queue {
    /// Whether every turn taken has been handled.
    fn is_done(&self) -> bool {
        !self.draining && self.waiting.is_empty() && self.next_due == self.next_turn
    }

    /// With nobody draining: skips the turns of connections that ended without a message, then
    /// returns the waiting connection whose turn is due, now asked to drain.
    fn hand_over(&mut self) -> Option<oneshot::Sender<Signal>> {
        while let Some(entry) = self.waiting.get_mut(&self.next_due) {
            if entry.received.is_some() {
                let notify = entry.notify.take()?;
                self.draining = true;
                return Some(notify);
            }
            self.waiting.remove(&self.next_due);
            self.next_due += 1;
        }
        None
    }
}

impl ArrivalOrder {
    /// Takes the next turn for `ip`; call it in accept order.
    fn arrive(order: &Arc<Self>, ip: IpAddr) -> Turn {
        let mut queues = order.lock();
        let queue = queues.entry(ip).or_default();
        let id = queue.next_turn;
        queue.next_turn += 1;
        Turn {
            order: Arc::clone(order),
            ip,
            id,
            handed_in: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Queue>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles `ip`'s due turns one after the other until the next one has not been handed in;
    /// the caller has set `draining`.
    async fn drain<F, Fut>(self: &Arc<Self>, ip: IpAddr, handle: &F)
    where
        F: Fn(SocketAddr, Result<Message, ReceiveError>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut draining = Draining {
            order: Arc::clone(self),
            ip,
            done: false,
        };
        loop {
            let entry = {
                let mut queues = self.lock();
                let Some(queue) = queues.get_mut(&ip) else {
                    draining.done = true;
                    return;
                };
                match queue.waiting.remove(&queue.next_due) {
                    Some(entry) => {
                        queue.next_due += 1;
                        entry
                    }
                    None => {
                        queue.draining = false;
                        if queue.is_done() {
                            queues.remove(&ip);
                        }
                        draining.done = true;
                        return;
                    }
                }
            };
            if let Some(received) = entry.received {
                handle(entry.peer, received).await;
            }
            if let Some(notify) = entry.notify {
                // The connection may be gone (the server shutting down): nothing to tell then.
                let _ = notify.send(Signal::Handled);
            }
        }
    }
}

/// Drains one IP's turns; ended early (the server shutting down, a handler panicking), it
/// hands the job to the connection whose turn is due.
struct Draining {
    order: Arc<ArrivalOrder>,
    ip: IpAddr,
    done: bool,
}

impl Drop for Draining {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let next = {
            let mut queues = self.order.lock();
            queues.get_mut(&self.ip).and_then(|queue| {
                queue.draining = false;
                queue.hand_over()
            })
        };
        if let Some(next) = next {
            let _ = next.send(Signal::Drain);
        }
    }
}

/// A connection's place among the connections from its IP.
struct Turn {
    order: Arc<ArrivalOrder>,
    ip: IpAddr,
    id: u64,
    handed_in: bool,
}

impl Turn {
    /// Hands in what the connection received, under its turn.
    fn hand_in(mut self, peer: SocketAddr, received: Result<Message, ReceiveError>) -> HandedIn {
        let (notify, told) = oneshot::channel();
        let mut queues = self.order.lock();
        let queue = queues.entry(self.ip).or_default();
        queue.waiting.insert(
            self.id,
            Entry {
                peer,
                received: Some(received),
                notify: Some(notify),
            },
        );
        self.handed_in = true;
        let drain_now = queue.next_due == self.id && !queue.draining;
        if drain_now {
            queue.draining = true;
        }
        drop(queues);
        HandedIn {
            order: Arc::clone(&self.order),
            ip: self.ip,
            // Every earlier turn has been handled: this connection handles its own, and the
            // later ones waiting. Otherwise the one handling the turns before it handles it too.
            told: (!drain_now).then_some(told),
        }
    }
}

/// A connection's message, handed in.
struct HandedIn {
    order: Arc<ArrivalOrder>,
    ip: IpAddr,
    /// Where the connection is told what became of its turn; `None` when it is to handle it.
    told: Option<oneshot::Receiver<Signal>>,
}

impl HandedIn {
    /// Returns once the message has been handled (by this connection, or by the one handling
    /// the turns before it).
    async fn handled<F, Fut>(self, handle: &F)
    where
        F: Fn(SocketAddr, Result<Message, ReceiveError>) -> Fut,
        Fut: Future<Output = ()>,
    {
        if let Some(told) = self.told
            && !matches!(told.await, Ok(Signal::Drain))
        {
            return;
        }
        // Boxed: a waiting connection's task need not hold room for handling messages.
        Box::pin(self.order.drain(self.ip, handle)).await;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.handed_in {
            return;
        }
        // Given up (silent past the order window) or ended before handing anything in (the
        // server shutting down): the turn is skipped.
        let next = {
            let mut queues = self.order.lock();
            let Some(queue) = queues.get_mut(&self.ip) else {
                return;
            };
            queue.waiting.insert(
                self.id,
                Entry {
                    peer: SocketAddr::new(self.ip, 0),
                    received: None,
                    notify: None,
                },
            );
            let next = if queue.draining {
                None
            } else {
                queue.hand_over()
            };
            if queue.is_done() {
                queues.remove(&self.ip);
            }
            next
        };
        if let Some(next) = next {
            let _ = next.send(Signal::Drain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, Identity};
    use labwire_net::ServerConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn output(text: &str) -> Vec<u8> {
        let node = Identity::new("n", "node", "127.0.0.1", 5999, "0.14.0", false);
        crate::wire::encode(&Message::output(node, text), &Limits::default()).unwrap()
    }

    /// A listener that reports each handled output (or `rejected`), and panics on `boom`; every
    /// connection keeps its place in the order up to the read deadline.
    async fn listener(read_timeout: Duration) -> (ServerHandle, mpsc::UnboundedReceiver<String>) {
        windowed(read_timeout, read_timeout).await
    }

    /// As [`listener`], a connection keeping its place for `order_window` only.
    async fn windowed(
        read_timeout: Duration,
        order_window: Duration,
    ) -> (ServerHandle, mpsc::UnboundedReceiver<String>) {
        let server = Server::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = serve_messages(
            server,
            CancellationToken::new(),
            Limits::default(),
            (read_timeout, order_window),
            move |_, received| {
                let text = match received {
                    Ok(Message {
                        body: Body::Output { output },
                        ..
                    }) => output,
                    _ => "rejected".to_owned(),
                };
                assert_ne!(text, "boom", "a handler that panics");
                let _ = tx.send(text);
                std::future::ready(())
            },
        );
        (handle, rx)
    }

    async fn connect(handle: &ServerHandle) -> TcpStream {
        labwire_net::connect(handle.local_addr(), DEADLINE)
            .await
            .unwrap()
    }

    async fn send(handle: &ServerHandle, bytes: &[u8]) -> TcpStream {
        let mut stream = connect(handle).await;
        stream.write_all(bytes).await.unwrap();
        stream.shutdown().await.unwrap();
        stream
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("handled in time")
            .expect("listener running")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_behind_a_slow_first_connection_is_handled_in_accept_order() {
        let (handle, mut rx) = listener(DEADLINE).await;
        let first = output("0");
        let mut slow = connect(&handle).await;
        slow.write_all(&first[..5]).await.unwrap();
        // Connections are accepted in the order they were opened, each complete before the
        // next one opens.
        let mut rest = Vec::new();
        for i in 1..40 {
            rest.push(send(&handle, &output(&i.to_string())).await);
        }
        // Nothing can be handled before the first connection is.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), rx.recv())
                .await
                .is_err()
        );
        slow.write_all(&first[5..]).await.unwrap();
        slow.shutdown().await.unwrap();
        for i in 0..40 {
            assert_eq!(next(&mut rx).await, i.to_string());
        }
        handle.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_is_closed_only_once_its_message_is_handled() {
        let (handle, mut rx) = listener(DEADLINE).await;
        let mut slow = connect(&handle).await;
        let first = output("first");
        slow.write_all(&first[..5]).await.unwrap();
        let mut waiting = send(&handle, &output("second")).await;
        // Its message is read, but not handled while the first is unfinished: still open.
        let mut byte = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting.read(&mut byte))
                .await
                .is_err()
        );
        slow.write_all(&first[5..]).await.unwrap();
        slow.shutdown().await.unwrap();
        assert_eq!(next(&mut rx).await, "first");
        assert_eq!(next(&mut rx).await, "second");
        let closed = tokio::time::timeout(DEADLINE, waiting.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
        handle.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_connection_is_rejected_at_the_read_deadline_behind_the_ones_it_let_pass() {
        let (handle, mut rx) = listener(Duration::from_millis(200)).await;
        let _stalled = connect(&handle).await;
        let _sent = send(&handle, &output("after")).await;
        assert_eq!(next(&mut rx).await, "after");
        assert_eq!(next(&mut rx).await, "rejected");
        handle.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_that_panics_does_not_stop_the_turns_behind_it() {
        let (handle, mut rx) = listener(DEADLINE).await;
        let mut slow = connect(&handle).await;
        let first = output("boom");
        slow.write_all(&first[..5]).await.unwrap();
        let mut behind = Vec::new();
        for i in 0..5 {
            behind.push(send(&handle, &output(&i.to_string())).await);
        }
        slow.write_all(&first[5..]).await.unwrap();
        slow.shutdown().await.unwrap();
        for i in 0..5 {
            assert_eq!(next(&mut rx).await, i.to_string());
        }
        handle.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_connections_delay_the_next_ones_by_the_order_window_only() {
        // A read deadline far beyond the test's: only the window can let the message through.
        let (handle, mut rx) = windowed(Duration::from_secs(60), Duration::from_millis(100)).await;
        let mut silent = Vec::new();
        for _ in 0..50 {
            silent.push(connect(&handle).await);
        }
        let started = tokio::time::Instant::now();
        let _sent = send(&handle, &output("after")).await;
        assert_eq!(next(&mut rx).await, "after");
        assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
        handle.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_completed_after_the_window_is_handled_after_those_behind_it() {
        let (handle, mut rx) = windowed(DEADLINE, Duration::from_millis(100)).await;
        let late = output("late");
        let mut slow = connect(&handle).await;
        slow.write_all(&late[..5]).await.unwrap();
        let _sent = send(&handle, &output("prompt")).await;
        assert_eq!(next(&mut rx).await, "prompt");
        slow.write_all(&late[5..]).await.unwrap();
        slow.shutdown().await.unwrap();
        assert_eq!(next(&mut rx).await, "late");
        // Its connection is closed once handled, like any other.
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(DEADLINE, slow.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
        handle.shutdown().await;
    }
}
