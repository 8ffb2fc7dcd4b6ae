//! pekat-sim's Projects Manager: a conversation of requests through the sans-IO
//! `Manager::handle`, the state machine behind every simulator connection.
//!
//! Input: one byte picking the dialect (bit 0) and the starting manager (the simulator's
//! defaults, each example scenario, or the defaults with no delays), then records of a
//! time-step byte (the simulated time advances by its square in milliseconds: 0 to 65 s), a
//! length byte and that many bytes: what one read from the client's connection delivers (PEKAT
//! is unframed: a read that ends a request is the request). pekat-proto's own `ServerCodec`
//! (256-byte limit) decodes the arrivals, and the connection's end (`decode_eof`) the rest. A
//! request over the limit is answered as a bad request, then ends the conversation with the
//! fatal `TooLarge`.
//!
//! Contract, for every request: exactly one reply, echoing the request's id, that pekat-proto's
//! server codec encodes and its client codec reads back as the same reply; `not-found` exactly
//! when the path names no project; `status` answers the project's state, now; `start`, `stop`
//! and `switch` answer `done`/`success` or `error:port`, never before now and at most a stop and
//! a start (or switch) delay later, and when the answer is due the transition is complete: the
//! project is running (stopped after `stop`), and after `switch` every other project is stopped.
//! After every request no two running projects share a port. Replaying the same requests at the
//! same times on a fresh manager gives the same outcomes (the simulator is deterministic).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pekat_proto::{
    ClientCodec, Command, DecodeError, Dialect, Incoming, ProjectState, Reply, Request, Response,
    ServerCodec,
};
use pekat_sim::{Manager, Outcome, PekatScenario, SimConfig};
use tokio_util::codec::{Decoder, Encoder};

/// The request limit: small, so `TooLarge` is reached within `-max_len`.
const MAX_REQUEST: usize = 256;

/// A starting manager and its delays.
struct Start {
    manager: Manager,
    start: Duration,
    stop: Duration,
    switch: Duration,
}

fn manager_for(config: &SimConfig, scenario: Option<&PekatScenario>) -> Start {
    let mut manager = Manager::new(config.start_delay, config.stop_delay);
    manager.set_switch_delay(config.switch_delay);
    for project in &config.projects {
        manager.add_project(project.path.clone(), project.port);
    }
    if let Some(scenario) = scenario {
        for &port in &scenario.ports_in_use {
            manager.occupy_port(port);
        }
        for entry in scenario.projects.iter().flatten() {
            if let Some(state) = entry.state {
                manager.set_state(&entry.path, state, Duration::ZERO);
            }
        }
    }
    Start {
        manager,
        start: config.start_delay,
        stop: config.stop_delay,
        switch: config.switch_delay.unwrap_or(config.start_delay),
    }
}

/// The starting managers: the simulator's defaults, its example scenarios, no delays at all.
fn starts() -> &'static [Start] {
    static STARTS: OnceLock<Vec<Start>> = OnceLock::new();
    STARTS.get_or_init(|| {
        let scenarios = [
            (
                "typical.yaml",
                include_str!("../../simulators/pekat-sim/scenarios/typical.yaml"),
            ),
            (
                "flaky.yaml",
                include_str!("../../simulators/pekat-sim/scenarios/flaky.yaml"),
            ),
            (
                "silent-3.19.yaml",
                include_str!("../../simulators/pekat-sim/scenarios/silent-3.19.yaml"),
            ),
        ];
        let mut starts = vec![manager_for(&SimConfig::default(), None)];
        for (file, text) in scenarios {
            let scenario = PekatScenario::from_yaml(text, file).expect("an example scenario loads");
            let mut config = SimConfig::default();
            scenario.apply(&mut config);
            starts.push(manager_for(&config, Some(&scenario)));
        }
        let instant = SimConfig::default().with_delays(Duration::ZERO, Duration::ZERO);
        starts.push(manager_for(&instant, None));
        starts
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, arrivals)) = data.split_first() else {
        return;
    };
    let dialect = if pick & 1 == 0 {
        Dialect::V3_18
    } else {
        Dialect::V3_19
    };
    let start = &starts()[usize::from(pick >> 1) % starts().len()];
    let mut conversation = Conversation {
        manager: start.manager.clone(),
        longest: start.stop + start.start.max(start.switch),
        dialect,
        now: Duration::ZERO,
        handled: Vec::new(),
    };
    let mut codec = ServerCodec::new(dialect).with_max_request_len(MAX_REQUEST);
    let mut buf = BytesMut::new();
    let mut input = arrivals;
    let mut open = true;
    while let [step, len, rest @ ..] = input {
        let (arrived, later) = rest.split_at(usize::from(*len).min(rest.len()));
        input = later;
        buf.extend_from_slice(arrived);
        conversation.now += Duration::from_millis(u64::from(*step).pow(2));
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => conversation.answer(item),
                Ok(None) => break,
                Err(error) => {
                    fatal(&error);
                    open = false;
                    break;
                }
            }
        }
        if !open {
            break;
        }
    }
    if open {
        // The client closes its side: what is left is one last request, or nothing.
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => conversation.answer(item),
            Ok(None) => assert!(buf.is_empty()),
            Err(error) => fatal(&error),
        }
    }

    // Deterministic: the same requests at the same times give the same outcomes.
    let mut twin = start.manager.clone();
    for (request, at, outcome) in &conversation.handled {
        assert_eq!(&twin.handle(request.command, &request.path, *at), outcome);
    }
});

/// The only fatal decoder error: a request over the limit, after its bad-request answer.
fn fatal(error: &DecodeError) {
    match error {
        DecodeError::TooLarge { max, .. } => assert_eq!(*max, MAX_REQUEST),
        other => panic!("a request decoder error other than TooLarge: {other:?}"),
    }
}

/// One connection's requests, answered by the manager at simulated time.
struct Conversation {
    manager: Manager,
    /// The longest an answer may be due after its request: a stop and a start (or switch).
    longest: Duration,
    dialect: Dialect,
    now: Duration,
    handled: Vec<(Request, Duration, Outcome)>,
}

impl Conversation {
    /// Exactly one reply for one decoded request or bad request.
    fn answer(&mut self, item: Incoming) {
        let now = self.now;
        let reply = match item {
            Ok(request) => {
                let known = self.manager.state(&request.path, now);
                let outcome = self.manager.handle(request.command, &request.path, now);
                check_outcome(&self.manager, &request, known, &outcome, now, self.longest);
                check_ports(&mut self.manager, now);
                let reply = Reply::to(&request, outcome.response().clone());
                self.handled.push((request, now, outcome));
                reply
            }
            Err(bad) => {
                let reply = bad.reply();
                assert_eq!(reply.response, Response::UnknownCommand);
                assert_eq!(reply.id, bad.id);
                reply
            }
        };
        check_reply_round_trip(&reply, self.dialect);
    }
}

fn check_outcome(
    manager: &Manager,
    request: &Request,
    known: Option<ProjectState>,
    outcome: &Outcome,
    now: Duration,
    longest: Duration,
) {
    let Some(state_before) = known else {
        assert_eq!(outcome, &Outcome::Now(Response::NotFound));
        return;
    };
    let (due, response) = match outcome {
        Outcome::Now(response) => (now, response),
        Outcome::At(at, response) => {
            assert!(*at >= now, "an answer due at {at:?}, before {now:?}");
            (*at, response)
        }
    };
    assert!(due - now <= longest, "an answer {:?} away", due - now);
    // The project as it will be when the answer goes out (with no other request meanwhile).
    let mut then = manager.clone();
    let state_then = then.state(&request.path, due);
    match (request.command, response) {
        (Command::Status, Response::Status(state)) => {
            assert_eq!(due, now);
            assert_eq!(*state, state_before);
        }
        (Command::Start, Response::Done) => {
            assert_eq!(state_then, Some(ProjectState::Running));
        }
        (Command::Stop, Response::Done) => {
            assert_eq!(state_then, Some(ProjectState::Stopped));
        }
        (Command::Switch, Response::Success) => {
            assert_eq!(state_then, Some(ProjectState::Running));
            let target = then
                .projects(due)
                .into_iter()
                .filter(|p| p.state != ProjectState::Stopped)
                .count();
            assert_eq!(target, 1, "after a switch only its project runs");
        }
        (Command::Start | Command::Switch, Response::PortInUse) => {
            assert_eq!(due, now);
            assert_eq!(then.state(&request.path, now), Some(state_before));
        }
        (command, response) => panic!("{command} answered {response:?}"),
    }
}

/// No two running projects share a port.
fn check_ports(manager: &mut Manager, now: Duration) {
    let mut running: BTreeMap<u16, String> = BTreeMap::new();
    for project in manager.projects(now) {
        if project.state == ProjectState::Running
            && let Some(other) = running.insert(project.port, project.path.clone())
        {
            panic!(
                "{other} and {} both run on port {}",
                project.path, project.port
            );
        }
    }
}

/// The reply encodes and the client reads it back unchanged.
fn check_reply_round_trip(reply: &Reply, dialect: Dialect) {
    let mut bytes = BytesMut::new();
    ServerCodec::new(dialect)
        .encode(reply, &mut bytes)
        .expect("the reply encodes");
    let mut client = ClientCodec::new(dialect);
    let expected_id = reply.id.clone().filter(|_| dialect.supports_ids());
    client.expect_id(expected_id.clone());
    let total = bytes.len();
    let decoded = match client.decode(&mut bytes) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => client
            .decode_eof(&mut bytes)
            .expect("the client reads the reply at EOF")
            .expect("a whole reply"),
        Err(e) => panic!("the client cannot read {reply:?}: {e}"),
    };
    assert!(bytes.is_empty(), "{} of {total} bytes left", bytes.len());
    assert_eq!(decoded.response, reply.response);
    assert_eq!(decoded.id, expected_id);
}
