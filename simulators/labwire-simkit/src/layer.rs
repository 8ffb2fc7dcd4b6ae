//! The fault layer: a simulated device wrapped so that the simulator's [`Faults`] act on its
//! answers without the device knowing, the same way in every simulator.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use labwire_net::PlannedService;
use labwire_net::service::{Action, Plan};

use crate::faults::{Fault, Faults, Matcher, NoMatcher};

/// A simulated device: a [`labwire_net::Service`] that is also told of the device fault (if
/// any) planned for the request it answers.
pub trait Device: Send + Sync + 'static {
    /// What a client sends, as the protocol's server codec decodes it.
    type Request: Send + 'static;
    /// What is sent back.
    type Response: Send + 'static;
    /// The simulator's own faults ([`NoDeviceFault`](crate::NoDeviceFault) for none).
    type Fault: Clone + std::fmt::Debug + Send + Sync + 'static;

    /// Answers `request` from `peer`, under `fault` when one of the simulator's own is due.
    fn call(
        &self,
        peer: SocketAddr,
        request: Self::Request,
        fault: Option<Self::Fault>,
    ) -> impl Future<Output = Self::Response> + Send;
}

/// Requests answered so far, one counter shared by the fault layer and the simulator handle.
#[derive(Debug, Clone, Default)]
pub struct Requests(Arc<AtomicU64>);

impl Requests {
    /// Counts one request.
    pub fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `device` with `faults` applied to its answers: a [`PlannedService`] for
/// [`labwire_net::service::serve`]. Every request reaches the device (a fault loses or spoils
/// the answer, not the request), then the next fault decides how the answer goes out. `M` is
/// the simulator's [`Matcher`]: scheduled faults with one apply to the requests it picks.
#[derive(Debug)]
pub struct Faulty<D: Device, M = NoMatcher> {
    device: D,
    faults: Faults<D::Fault, M>,
    garbage: Bytes,
    requests: Requests,
}

impl<D: Device, M> Faulty<D, M> {
    /// Wraps `device`; [`Fault::Garbage`] sends `garbage` (bytes the protocol cannot parse).
    pub fn new(device: D, faults: Faults<D::Fault, M>, garbage: Bytes, requests: Requests) -> Self {
        Self {
            device,
            faults,
            garbage,
            requests,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }
}

impl<D, M> PlannedService for Faulty<D, M>
where
    D: Device,
    M: Matcher<D::Request> + Clone + Send + Sync + 'static,
{
    type Request = D::Request;
    type Response = D::Response;

    async fn call(&self, peer: SocketAddr, request: D::Request) -> (D::Response, Plan) {
        self.requests.count();
        let fault = self.faults.take_for(|matcher| matcher.matches(&request));
        if let Some(fault) = &fault {
            tracing::debug!(?fault, "fault injection");
        }
        let (device_fault, plan) = plan(fault, &self.garbage);
        (self.device.call(peer, request, device_fault).await, plan)
    }
}

/// Splits a fault into the device's part and the answer's plan.
fn plan<P>(fault: Option<Fault<P>>, garbage: &Bytes) -> (Option<P>, Plan) {
    let action = |action| Plan {
        action,
        ..Plan::default()
    };
    match fault {
        None => (None, Plan::default()),
        Some(Fault::Device(fault)) => (Some(fault), Plan::default()),
        Some(Fault::Delay(delay)) => (
            None,
            Plan {
                delay,
                ..Plan::default()
            },
        ),
        Some(Fault::NoReply) => (None, action(Action::NoReply)),
        Some(Fault::Close) => (None, action(Action::Close)),
        Some(Fault::Truncate) => (None, action(Action::Truncate)),
        Some(Fault::Garbage) => (None, action(Action::Garbage(garbage.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Echoes the request, marked with the device fault it was told of.
    struct Echo;

    impl Device for Echo {
        type Request = String;
        type Response = String;
        type Fault = &'static str;

        async fn call(
            &self,
            _peer: SocketAddr,
            request: String,
            fault: Option<&'static str>,
        ) -> String {
            match fault {
                Some(fault) => format!("{request} ({fault})"),
                None => request,
            }
        }
    }

    #[tokio::test]
    async fn every_request_reaches_the_device_and_each_fault_becomes_its_plan() {
        let faults = Faults::new();
        let requests = Requests::default();
        let layer = Faulty::new(
            Echo,
            faults.clone(),
            Bytes::from_static(b"junk"),
            requests.clone(),
        );
        faults.push(Fault::Delay(Duration::from_millis(7)));
        faults.push(Fault::NoReply);
        faults.push(Fault::Close);
        faults.push(Fault::Truncate);
        faults.push(Fault::Garbage);
        faults.push(Fault::Device("wrong id"));
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut seen = Vec::new();
        for i in 0..7 {
            seen.push(PlannedService::call(&layer, peer, format!("r{i}")).await);
        }
        let plan = |action| Plan {
            action,
            ..Plan::default()
        };
        assert_eq!(seen[0].1.delay, Duration::from_millis(7));
        assert_eq!(seen[1].1, plan(Action::NoReply));
        assert_eq!(seen[2].1, plan(Action::Close));
        assert_eq!(seen[3].1, plan(Action::Truncate));
        assert_eq!(
            seen[4].1,
            plan(Action::Garbage(Bytes::from_static(b"junk")))
        );
        assert_eq!(seen[5], ("r5 (wrong id)".to_owned(), Plan::default()));
        assert_eq!(seen[6], ("r6".to_owned(), Plan::default()));
        assert_eq!(requests.get(), 7);
        assert_eq!(faults.applied(), 6);
    }
}
