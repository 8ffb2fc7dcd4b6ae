//! The control channel (feature `control`): a small HTTP/JSON API through which a test in any
//! language reads a running simulator's state, pushes and clears faults, advances a manual
//! clock and resets the device — what the Rust handle can do.
//!
//! Served with `axum` (hyper underneath) on the simulator's tokio runtime, on loopback unless
//! [`ControlConfig::allow_remote`] is set. Routes:
//!
//! | route | does | answers |
//! |---|---|---|
//! | `GET /state` | the device state | the simulator's own JSON ([`Control::state`]) |
//! | `GET /faults` | what is scheduled | `{"queued": [..], "standing": [..], "applied": n}` |
//! | `POST /faults` | schedules one fault: `{"fault": <fault>, "count": n}`, `{"fault": .., "until_cleared": true}`, optionally `"matching"` and `"request"` ([`ScheduledFault`]) | the faults, as `GET /faults` |
//! | `DELETE /faults` | clears every fault | the faults |
//! | `POST /clock/advance` | `{"by": "2s"}`: moves a manual clock (time scale 0) | `{"now": "2000ms"}`; 409 when the clock runs on its own |
//! | `POST /reset` | the device back to its scenario's initial state, and the scenario's faults | the state |
//! | `GET /connections` | lists the connections | `{"connections": n, "requests": n, "peers": [{"addr": "127.0.0.1:5555", "since_ms": 1234}, ..]}`: connections served now, requests answered so far, and each connection, oldest first, with its client's address and when it was accepted (real milliseconds since the simulator started listening); `"peers": null` when the simulator does not track connections ([`HostConfig::track_connections`](crate::HostConfig::track_connections), on in the binaries with `--control`) |
//!
//! A fault in JSON: `"no_reply"`, `"close"`, `"truncate"`, `"garbage"`, `{"delay": "200ms"}`,
//! `{"device": <the simulator's own>}`. Every error is a 4xx with `{"error": "<what is
//! wrong>"}`: 400 for JSON that is not the route's (naming the field), 404 for an unknown
//! route, 405 for a known route with another method, 409 when the clock is not manual or
//! [`MAX_SCHEDULED`](crate::faults::MAX_SCHEDULED) faults already wait, 413 for a body over
//! [`MAX_BODY`]. The simulator keeps serving whatever a control client sends.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use labwire_net::ServerHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::duration::{self, Humane};
use crate::faults::{Faults, ScheduledFault};
use crate::layer::Requests;
use crate::{SimClock, SimHandle};

/// Largest request body the control channel reads: 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// What a simulator's state offers the control channel. Implemented by each simulator's
/// state handle (`arkeo_sim::SimState`, …).
pub trait Control: Clone + Send + Sync + 'static {
    /// The simulator's own faults (`Fault::Device(..)`).
    type Fault: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// The simulator's request matcher ([`NoMatcher`](crate::NoMatcher) for none).
    type Matcher: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;

    /// The device state as JSON (`GET /state`).
    fn state(&self) -> Value;

    /// Puts the device back into its initial state (its scenario's, or the default).
    fn reset(&self);

    /// The fault schedule the simulator started with (its scenario's), scheduled again on a
    /// reset.
    fn initial_faults(&self) -> Vec<ScheduledFault<Self::Fault, Self::Matcher>> {
        Vec::new()
    }
}

/// Where the control channel listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Serve on an address other than loopback (refused otherwise: the channel has no
    /// authentication and can make the device misbehave).
    pub allow_remote: bool,
}

impl ControlConfig {
    /// Listens on `listen`, which must be a loopback address.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            allow_remote: false,
        }
    }

    /// `127.0.0.1`, any free port.
    pub fn loopback() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Whether the address may be used.
    ///
    /// # Errors
    /// A message when the address is not loopback and remote access is not allowed.
    pub fn check(&self) -> Result<(), String> {
        if self.listen.ip().is_loopback() || self.allow_remote {
            Ok(())
        } else {
            Err(format!(
                "the control address {} is not a loopback address; the control channel has no \
                 authentication, so serving it elsewhere must be allowed explicitly \
                 (--control-allow-remote)",
                self.listen
            ))
        }
    }
}

/// What the routes share.
struct Ctx<C: Control> {
    state: C,
    faults: Faults<C::Fault, C::Matcher>,
    clock: SimClock,
    requests: Requests,
    server: Arc<ServerHandle>,
}

impl<C: Control> Ctx<C> {
    fn reset(&self) {
        reset(&self.state, &self.faults);
    }
}

fn reset<C: Control>(state: &C, faults: &Faults<C::Fault, C::Matcher>) {
    state.reset();
    if let Err(e) = faults.reschedule(&state.initial_faults()) {
        tracing::warn!("reset: {e}");
    }
}

impl<S, P, M> SimHandle<S, P, M>
where
    S: Control<Fault = P, Matcher = M>,
    P: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static,
    M: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static,
{
    /// Serves the control channel on `config.listen` until the simulator shuts down; returns
    /// the bound address. Serve it once per simulator.
    ///
    /// # Errors
    /// `InvalidInput` when the address is not loopback and remote access is not allowed;
    /// when the address cannot be bound.
    pub async fn serve_control(&self, config: &ControlConfig) -> io::Result<SocketAddr> {
        config
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let ctx = Arc::new(Ctx {
            state: self.state().clone(),
            faults: self.faults().clone(),
            clock: self.clock().clone(),
            requests: self.request_counter().clone(),
            server: Arc::clone(self.server()),
        });
        let shutdown = self.shutdown_token();
        self.tasks().spawn(async move {
            let served = axum::serve(listener, router(ctx))
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!("control channel: {e}");
            }
        });
        tracing::debug!(%addr, "control channel listening");
        Ok(addr)
    }

    /// Puts the device back into its initial state and its faults back to the initial
    /// schedule (what `POST /reset` does).
    pub fn reset(&self) {
        reset(self.state(), self.faults());
    }
}

fn router<C: Control>(ctx: Arc<Ctx<C>>) -> Router {
    Router::new()
        .route("/state", get(get_state::<C>))
        .route(
            "/faults",
            get(get_faults::<C>)
                .post(post_faults::<C>)
                .delete(delete_faults::<C>),
        )
        .route("/clock/advance", post(advance::<C>))
        .route("/reset", post(post_reset::<C>))
        .route("/connections", get(connections::<C>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

/// A refusal: a 4xx and `{"error": ..}`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn ok(value: impl Serialize) -> Response {
    axum::Json(value).into_response()
}

/// Reads a body as `T`, naming the field that is wrong.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Refusal> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal(status, format!("the body is larger than {MAX_BODY} bytes"))
        } else {
            Refusal(status, rejection.body_text())
        }
    })?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            format!("bad request body: {inner}")
        } else {
            format!("bad request body: {path}: {inner}")
        };
        Refusal(StatusCode::BAD_REQUEST, message)
    })?;
    de.end()
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))?;
    Ok(value)
}

async fn get_state<C: Control>(State(ctx): State<Arc<Ctx<C>>>) -> Response {
    ok(ctx.state.state())
}

async fn get_faults<C: Control>(State(ctx): State<Arc<Ctx<C>>>) -> Response {
    ok(ctx.faults.snapshot())
}

async fn post_faults<C: Control>(
    State(ctx): State<Arc<Ctx<C>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let scheduled: ScheduledFault<C::Fault, C::Matcher> = parse(body)?;
    tracing::debug!(?scheduled, "control: fault scheduled");
    ctx.faults
        .schedule(scheduled)
        .map_err(|e| Refusal(StatusCode::CONFLICT, e.to_string()))?;
    Ok(ok(ctx.faults.snapshot()))
}

async fn delete_faults<C: Control>(State(ctx): State<Arc<Ctx<C>>>) -> Response {
    ctx.faults.clear();
    tracing::debug!("control: faults cleared");
    ok(ctx.faults.snapshot())
}

/// `POST /clock/advance`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    by: Humane,
}

async fn advance<C: Control>(
    State(ctx): State<Arc<Ctx<C>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let Advance { by } = parse(body)?;
    if !ctx.clock.is_manual() {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!(
                "the clock runs on its own (time scale {}); only a stopped clock (time scale 0) \
                 is advanced over the control channel",
                ctx.clock.speed()
            ),
        ));
    }
    ctx.clock.advance(by.0);
    Ok(ok(json!({ "now": duration::format(ctx.clock.now()) })))
}

async fn post_reset<C: Control>(State(ctx): State<Arc<Ctx<C>>>) -> Response {
    ctx.reset();
    tracing::debug!("control: reset");
    ok(ctx.state.state())
}

async fn connections<C: Control>(State(ctx): State<Arc<Ctx<C>>>) -> Response {
    let started = ctx.server.started();
    let peers = ctx.server.peers().map(|peers| {
        peers
            .iter()
            .map(|peer| {
                let since = peer.since.saturating_duration_since(started).as_millis();
                json!({ "addr": peer.addr.to_string(), "since_ms": u64::try_from(since).unwrap_or(u64::MAX) })
            })
            .collect::<Vec<_>>()
    });
    ok(json!({
        "connections": ctx.server.connection_count(),
        "requests": ctx.requests.get(),
        "peers": peers,
    }))
}

async fn not_found(uri: axum::http::Uri) -> Refusal {
    Refusal(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}; the routes are GET /state, GET|POST|DELETE /faults, \
             POST /clock/advance, POST /reset, GET /connections",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Refusal {
    Refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
