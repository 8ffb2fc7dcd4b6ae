//! One handle for every running simulator: its address, state, clock, faults, counters and
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use labwire_net::{CancellationToken, Peer, ServerHandle};
use tokio_util::task::TaskTracker;

use crate::SimClock;
use crate::faults::{Faults, NoDeviceFault, NoMatcher};
use crate::layer::Requests;

/// A running simulator with state `S`, device faults `P` and request matcher `M`. Dropping it
/// stops the simulator without waiting; [`SimHandle::shutdown`] also waits until every
/// connection is closed and every background task (the control channel too) has ended. Each
/// simulator's own type (`ArkeoSim`, …) dereferences to it.
#[derive(Debug)]
pub struct SimHandle<S, P = NoDeviceFault, M = NoMatcher> {
    server: Arc<ServerHandle>,
    state: S,
    clock: SimClock,
    faults: Faults<P, M>,
    requests: Requests,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl<S, P: Clone, M: Clone> SimHandle<S, P, M> {
    /// Assembles a handle. `shutdown` must stop `server` and every task in `tasks` (make the
    /// server's token a child of it).
    pub fn new(
        server: ServerHandle,
        state: S,
        clock: SimClock,
        faults: Faults<P, M>,
        requests: Requests,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        tasks.close();
        Self {
            server: Arc::new(server),
            state,
            clock,
            faults,
            requests,
            shutdown,
            tasks,
        }
    }

    /// The address the simulator listens on (with the real port when it was asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The device's state, for tests to read and change directly.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The simulated clock (advance it by hand when its time scale is 0).
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// Fault injection: what is queued or set here applies to the requests answered from now on.
    pub fn faults(&self) -> &Faults<P, M> {
        &self.faults
    }

    /// Requests the device was asked to answer so far (those its protocol could decode).
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Connections being served right now.
    pub fn connection_count(&self) -> usize {
        self.server.connection_count()
    }

    /// The connections being served right now, oldest first, when the simulator tracks them
    /// ([`HostConfig::track_connections`](crate::HostConfig::track_connections)); `None` when
    /// it does not.
    pub fn peers(&self) -> Option<Vec<Peer>> {
        self.server.peers()
    }

    /// The token that stops the simulator when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops listening, closes every connection, stops the background tasks, and waits for it
    /// all. Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.server.shutdown().await;
        self.tasks.wait().await;
    }
}

impl<S, P, M> SimHandle<S, P, M> {
    /// The listener, shared with the control channel.
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    pub(crate) fn server(&self) -> &Arc<ServerHandle> {
        &self.server
    }

    /// The request counter, shared with the control channel.
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    pub(crate) fn request_counter(&self) -> &Requests {
        &self.requests
    }

    /// The background tasks (the control channel runs among them).
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

impl<S, P, M> Drop for SimHandle<S, P, M> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
