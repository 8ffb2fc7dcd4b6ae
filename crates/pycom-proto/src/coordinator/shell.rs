//! The async shell around the [`NodeTable`]: the event listener, request hand-overs, the one
//! timer, and the callers waiting for their commands. The only place of the coordinator that
//! reads the clock or touches a socket.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use labwire_net::{CancellationToken, Connector, Server, ServerHandle, Stream};
use tokio::sync::{Notify, broadcast, oneshot};
use tokio_util::task::TaskTracker;

use super::config::{CoordinatorConfig, PipelineTimings, TableConfig};
use super::effects::{CommandId, Delivery, Effect, Expect, Failure, Reply, RequestId};
use super::table::NodeTable;
use super::types::{Error, Event};
use crate::message::{Identity, Message};
use crate::transport::{self, ReceiveError};
use crate::wire;

/// Makes the [`Connector`] a request to a node goes through (see
/// [`CoordinatorBuilder::connector`](super::CoordinatorBuilder::connector)).
pub(super) type NodeConnector = Arc<dyn Fn(SocketAddr) -> Connector + Send + Sync>;

/// One request being handed to its node: connects, writes, waits for the node to close (a
/// command), then tells the table how that went. Ends at shutdown (at its next poll, for one a
/// caller drives).
pub(super) type Handover = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a waiting caller gets.
pub(super) type Answer = Result<Reply, Error>;

/// A caller waiting for its command.
pub(super) struct Waiter {
    node: SocketAddr,
    timeout: Duration,
    reply: oneshot::Sender<Answer>,
}

/// The table and the callers, under one lock so that a command's answer can never be produced
/// before its caller is registered.
pub(super) struct State {
    table: NodeTable,
    waiters: HashMap<CommandId, Waiter>,
    /// Why the latest command hand-over to a node failed (one is in transit per node at most).
    send_errors: HashMap<SocketAddr, Error>,
    /// The deadline the timer sleeps until (`None`: no deadline, or the timer not started).
    /// A change moving the table's next deadline before it wakes the timer; one moving it
    /// later does not (the timer wakes at the old one, finds nothing due and sleeps again).
    armed: Option<std::time::Instant>,
}

pub(super) struct Inner {
    pub(super) config: CoordinatorConfig,
    pub(super) identity: Identity,
    state: Mutex<State>,
    pub(super) events: broadcast::Sender<Event>,
    /// Wakes the timer: the table's next deadline moved before the one it sleeps until.
    wake: Notify,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
    runtime: tokio::runtime::Handle,
    listener: std::sync::OnceLock<ServerHandle>,
    /// How requests reach nodes: TCP to the node's address when `None`.
    connector: Option<NodeConnector>,
    /// How many times the timer called `handle_timeout` (a spinning timer shows here).
    #[cfg(test)]
    timer_rounds: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The clock, read here only.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Inner {
    /// Binds nothing: `server` is already bound. Starts the listener and the timer.
    pub(super) fn start(
        config: CoordinatorConfig,
        identity: Identity,
        server: Server,
        connector: Option<NodeConnector>,
    ) -> Arc<Self> {
        let table_config = TableConfig {
            heartbeat_interval: config.heartbeat_interval,
            offline_after: config.offline_after,
            timings: PipelineTimings {
                resync_timeout: config.resync_timeout,
                verdict_settle: config.verdict_settle,
                verdict_wait: config.verdict_wait,
            },
            manage_discovered: config.manage_discovered,
            max_nodes: config.max_nodes,
        };
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let inner = Arc::new(Self {
            state: Mutex::new(State {
                table: NodeTable::new(table_config, identity.clone(), now()),
                waiters: HashMap::new(),
                send_errors: HashMap::new(),
                armed: None,
            }),
            config,
            identity,
            events,
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            listener: std::sync::OnceLock::new(),
            connector,
            #[cfg(test)]
            timer_rounds: std::sync::atomic::AtomicUsize::new(0),
        });
        let weak = Arc::downgrade(&inner);
        let listener = super::listener::serve_messages(
            server,
            inner.shutdown.child_token(),
            inner.config.limits,
            (inner.config.read_timeout, super::listener::ORDER_WINDOW),
            move |peer, received| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_received(peer, received);
                }
                std::future::ready(())
            },
        );
        let _ = inner.listener.set(listener);
        inner.spawn(timer(Arc::downgrade(&inner), inner.shutdown.clone()));
        inner
    }

    pub(super) fn listener(&self) -> Option<&ServerHandle> {
        self.listener.get()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the table in a state worse than stopping
        // every coordinator call would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        // Through the handle: callable from a `Drop` outside the runtime's context too.
        self.runtime.spawn(self.tasks.track_future(task));
    }

    /// Runs `change` on the table at the current time, then carries out what it asked for.
    pub(super) fn run<T>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut State, std::time::Instant) -> T,
    ) -> T {
        self.run_with(change, |request, message| {
            self.spawn(self.handover(request, message));
        })
    }

    /// [`Inner::run`], handing each request to `hand_over` instead of a task of its own.
    fn run_with<T>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut State, std::time::Instant) -> T,
        mut hand_over: impl FnMut(RequestId, Message),
    ) -> T {
        let mut sends = Vec::new();
        let mut publish = Vec::new();
        let mut answers = Vec::new();
        let (value, earlier) = {
            let mut state = self.lock();
            let value = change(&mut state, now());
            let State {
                table,
                waiters,
                send_errors,
                armed,
            } = &mut *state;
            while let Some(effect) = table.poll_effect() {
                match effect {
                    Effect::Send { request, message } => sends.push((request, message)),
                    Effect::Publish(event) => publish.push(event),
                    Effect::Complete { command, result } => {
                        if let Some(waiter) = waiters.remove(&command) {
                            let answer = result.map_err(|failure| {
                                self.error(failure, &waiter, send_errors.remove(&waiter.node))
                            });
                            answers.push((waiter.reply, answer));
                        }
                    }
                }
            }
            let next = table.poll_timeout();
            let earlier = match (next, *armed) {
                (Some(next), Some(at)) => next < at,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if earlier {
                // Counted as armed from now on: one wake-up however many changes come before
                // the timer reads the table again.
                *armed = next;
            }
            (value, earlier)
        };
        if earlier {
            self.wake.notify_one();
        }
        for event in publish {
            // No receiver is not an error: nobody is listening right now.
            let _ = self.events.send(event);
        }
        for (request, message) in sends {
            hand_over(request, message);
        }
        for (reply, answer) in answers {
            // The caller may have gone: nothing to tell then.
            let _ = reply.send(answer);
        }
        value
    }

    fn error(&self, failure: Failure, waiter: &Waiter, sent: Option<Error>) -> Error {
        match failure {
            Failure::Timeout | Failure::Cancelled => Error::Timeout(waiter.timeout),
            Failure::NotDelivered => sent.unwrap_or(Error::Timeout(self.config.send_timeout)),
            Failure::Shutdown => Error::Shutdown,
        }
    }

    /// Queues a command and registers its caller; the answer comes on the returned receiver.
    ///
    /// The hand-over the command started at once (the node was idle), if any, is returned for
    /// the caller to drive while it waits for the answer ([`Inner::spawn_handover`] what is left
    /// of it when the caller stops): the round trip then runs in the caller's task, rather than
    /// also waking a task of its own on another worker thread. Any other hand-over it started
    /// gets its own task, as every hand-over the table asks for elsewhere does.
    pub(super) fn submit(
        self: &Arc<Self>,
        node: SocketAddr,
        command: String,
        expect: Expect,
        timeout: Duration,
    ) -> (CommandId, oneshot::Receiver<Answer>, Option<Handover>) {
        let deadline = transport::deadline_after(timeout).into_std();
        let (reply, answer) = oneshot::channel();
        let message = command;
        let mut started: Option<Handover> = None;
        let change = move |state: &mut State, now| {
            let id = state.table.submit(node, message, expect, deadline, now);
            state.waiters.insert(
                id,
                Waiter {
                    node: super::table::canonical(node),
                    timeout,
                    reply,
                },
            );
            id
        };
        let id = self.run_with(change, |request, message| {
            let handover = self.handover(request, message);
            // A submit starts one request at most (one per node is in transit): should it ever
            // start more, the others are not the caller's to wait on.
            match started {
                None => started = Some(handover),
                Some(_) => self.spawn(handover),
            }
        });
        (id, answer, started)
    }

    /// Carries on `handover` in a task of its own (its caller stopped driving it).
    pub(super) fn spawn_handover(&self, handover: Handover) {
        self.spawn(handover);
    }

    /// The caller of `command` stopped waiting.
    pub(super) fn cancel(self: &Arc<Self>, node: SocketAddr, command: CommandId) {
        self.run(|state, now| {
            if state.waiters.remove(&command).is_some() {
                state.table.cancel(node, command, now);
            }
        });
    }

    /// Hands `message` to its node, then tells the table how that went.
    fn handover(self: &Arc<Self>, request: RequestId, message: Message) -> Handover {
        let inner = Arc::clone(self);
        let node = request.node();
        // Commands wait until the node has read the request (closed the connection), so that
        // the next one cannot overtake it; heartbeats need not.
        let confirm = !request.is_heartbeat();
        Box::pin(async move {
            let sent = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                sent = inner.deliver(node, &message, confirm) => sent,
            };
            let delivery = match &sent {
                Ok(()) => Delivery::Delivered,
                Err(Error::Connect { .. } | Error::Encode(_)) => Delivery::NotDelivered,
                Err(_) => Delivery::Unknown,
            };
            inner.run(move |state, now| {
                if let Err(error) = sent {
                    tracing::debug!(%node, %error, "request not delivered");
                    if !request.is_heartbeat() {
                        state.send_errors.insert(node, error);
                    }
                }
                state.table.on_sent(request, delivery, now);
            });
        })
    }

    /// Delivers `message` to `node`: connect (TCP, or the configured connector) within the
    /// connect timeout, one write, shut the sending side down, and, when `await_close` is set,
    /// wait for the node to close, within the send timeout.
    async fn deliver(
        &self,
        node: SocketAddr,
        message: &Message,
        await_close: bool,
    ) -> Result<(), Error> {
        let bytes = wire::encode(message, &self.config.limits)?;
        tracing::debug!(%node, ?message, "sending message");
        let connect_timeout = self.config.connect_timeout;
        let timeout = self.config.send_timeout;
        match &self.connector {
            // TCP as it is (no `Stream` to dispatch through on the common path).
            None => {
                let mut stream =
                    labwire_net::connect(node, connect_timeout)
                        .await
                        .map_err(|source| Error::Connect {
                            peer: node.to_string(),
                            source,
                        })?;
                let deadline = (transport::deadline_after(timeout), timeout);
                transport::send_on(&mut stream, node, &bytes, deadline, await_close).await?;
            }
            Some(connector) => {
                let connector = connector(node);
                let mut stream: Stream =
                    connector
                        .connect(connect_timeout)
                        .await
                        .map_err(|source| Error::Connect {
                            peer: connector.peer().to_owned(),
                            source,
                        })?;
                let deadline = (transport::deadline_after(timeout), timeout);
                transport::send_on(&mut stream, node, &bytes, deadline, await_close).await?;
            }
        }
        Ok(())
    }

    fn on_received(self: &Arc<Self>, peer: SocketAddr, received: Result<Message, ReceiveError>) {
        match received {
            Ok(message) => self.run(|state, now| state.table.on_message(peer, message, now)),
            Err(error) => {
                tracing::debug!(%peer, %error, "rejected event");
                let _ = self.events.send(Event::Rejected {
                    peer,
                    error: Arc::new(error),
                });
            }
        }
    }

    /// Hands one heartbeat to `node` now and waits until the node has read it.
    pub(super) async fn heartbeat(self: &Arc<Self>, node: SocketAddr) -> Result<(), Error> {
        let message = Message::heartbeat(self.identity.clone());
        self.deliver(node, &message, true).await?;
        self.run(|state, now| state.table.reached(node, now));
        Ok(())
    }

    /// Fails every waiting command and stops the timer and the listener.
    pub(super) async fn shutdown(self: &Arc<Self>) {
        self.run(|state, _| state.table.shutdown());
        self.shutdown.cancel();
        if let Some(listener) = self.listener() {
            listener.shutdown().await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub(super) fn with_table<T>(&self, read: impl FnOnce(&NodeTable) -> T) -> T {
        read(&self.lock().table)
    }

    pub(super) fn change_table(
        self: &Arc<Self>,
        change: impl FnOnce(&mut NodeTable, std::time::Instant),
    ) {
        self.run(|state, now| change(&mut state.table, now));
    }
}

/// Calls the table's [`NodeTable::handle_timeout`] whenever its next deadline passes.
async fn timer(inner: Weak<Inner>, shutdown: CancellationToken) {
    loop {
        let (next, wake) = {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let next = {
                let mut state = strong.lock();
                state.armed = state.table.poll_timeout();
                state.armed
            };
            (next, Arc::clone(&strong))
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.wake.notified() => continue,
            () = sleep => {}
        }
        #[cfg(test)]
        wake.timer_rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        wake.run(|state, now| state.table.handle_timeout(now));
    }
}

#[cfg(test)]
mod tests;
