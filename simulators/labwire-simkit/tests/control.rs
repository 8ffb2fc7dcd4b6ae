//! The control channel over real sockets: a toy line device ("ping" → "pong", "data" → "42")
//! on the simulator kit, driven over HTTP/JSON while a client talks to it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use labwire_net::CancellationToken;
use labwire_net::service::{Exchange, serve};
use labwire_simkit::control::{Control, ControlConfig, MAX_BODY};
use labwire_simkit::faults::MAX_SCHEDULED;
use labwire_simkit::testing::TEST_DEADLINE;
use labwire_simkit::{
    Device, Fault, Faults, Faulty, HostConfig, Matcher, Requests, ScheduledFault, SimClock,
    SimHandle,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::LinesCodec;
use tokio_util::task::TaskTracker;

/// The device's state: how many requests it answered; reset to the scenario's count.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<u64>>);

impl Counter {
    fn get(&self) -> u64 {
        *self.0.lock().unwrap()
    }
}

/// Its own fault: answer in upper case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Shout {
    Shout,
}

/// Its matcher: one request word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Word {
    word: String,
}

impl Matcher<String> for Word {
    fn matches(&self, request: &String) -> bool {
        *request == self.word
    }
}

impl Control for Counter {
    type Fault = Shout;
    type Matcher = Word;

    fn state(&self) -> Value {
        json!({ "answered": self.get() })
    }

    fn reset(&self) {
        *self.0.lock().unwrap() = 0;
    }

    fn initial_faults(&self) -> Vec<ScheduledFault<Shout, Word>> {
        vec![ScheduledFault::next(Fault::Device(Shout::Shout)).from_request(1000)]
    }
}

struct Lines(Counter);

impl Device for Lines {
    type Request = String;
    type Response = String;
    type Fault = Shout;

    async fn call(&self, _peer: SocketAddr, request: String, fault: Option<Shout>) -> String {
        *self.0.0.lock().unwrap() += 1;
        let answer = match request.as_str() {
            "ping" => "pong".to_owned(),
            "data" => "42".to_owned(),
            other => format!("unknown {other}"),
        };
        match fault {
            Some(Shout::Shout) => answer.to_uppercase(),
            None => answer,
        }
    }
}

type Sim = SimHandle<Counter, Shout, Word>;

async fn start(clock: SimClock) -> (Sim, SocketAddr) {
    start_with(clock, false).await
}

async fn start_with(clock: SimClock, track_connections: bool) -> (Sim, SocketAddr) {
    let host = HostConfig {
        clock: Some(clock.clone()),
        track_connections,
        ..HostConfig::loopback()
    };
    let state = Counter::default();
    let faults: Faults<Shout, Word> = Faults::default();
    faults.reschedule(&state.initial_faults()).unwrap();
    let requests = Requests::default();
    let service = Faulty::new(
        Lines(state.clone()),
        faults.clone(),
        Bytes::from_static(b"\xff\xfe garbage"),
        requests.clone(),
    );
    let shutdown = CancellationToken::new();
    let server = serve(
        host.bind().await.unwrap(),
        shutdown.child_token(),
        service,
        LinesCodec::new,
        Exchange::new(),
    );
    let sim = SimHandle::new(
        server,
        state,
        clock,
        faults,
        requests,
        shutdown,
        TaskTracker::new(),
    );
    let control = sim.serve_control(&ControlConfig::loopback()).await.unwrap();
    (sim, control)
}

/// One HTTP/1.1 exchange (`Connection: close`): the status and the body as JSON.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8(response).unwrap();
        let status: u16 = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let json = serde_json::from_str(body).unwrap_or(Value::Null);
        (status, json)
    };
    timeout(TEST_DEADLINE, exchange)
        .await
        .expect("control channel hangs")
}

/// A client of the device, one line each way.
struct Client(BufReader<TcpStream>);

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self(BufReader::new(TcpStream::connect(addr).await.unwrap()))
    }

    /// The answer, or `None` when none comes within `within`.
    async fn ask_within(&mut self, request: &str, within: Duration) -> Option<String> {
        self.0
            .get_mut()
            .write_all(format!("{request}\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        match timeout(within, self.0.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => Some(line.trim_end().to_owned()),
            _ => None,
        }
    }

    async fn ask(&mut self, request: &str) -> String {
        self.ask_within(request, TEST_DEADLINE)
            .await
            .expect("no answer")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_pushed_over_http_reach_the_client_and_clearing_restores_answers() {
    let (sim, control) = start(SimClock::manual()).await;
    let mut client = Client::connect(sim.local_addr()).await;
    assert_eq!(client.ask("ping").await, "pong");

    // A device fault for the next request.
    let (status, faults) = http(
        control,
        "POST",
        "/faults",
        r#"{"fault": {"device": "shout"}, "count": 1}"#,
    )
    .await;
    assert_eq!(status, 200, "{faults}");
    assert_eq!(faults["queued"].as_array().unwrap().len(), 2, "{faults}");
    assert_eq!(client.ask("ping").await, "PONG");
    assert_eq!(client.ask("ping").await, "pong");

    // A delay only on `data`, until cleared.
    let (status, _) = http(
        control,
        "POST",
        "/faults",
        r#"{"matching": {"word": "data"}, "fault": {"delay": "10ms"}, "until_cleared": true}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(client.ask("data").await, "42");
    let (_, faults) = http(control, "GET", "/faults", "").await;
    assert_eq!(
        faults["standing"][0]["matching"]["word"], "data",
        "{faults}"
    );
    assert_eq!(faults["standing"][0]["until_cleared"], true, "{faults}");
    assert_eq!(faults["applied"], 2, "{faults}");

    // No reply, then cleared.
    let (status, _) = http(
        control,
        "POST",
        "/faults",
        r#"{"fault": "no_reply", "until_cleared": true}"#,
    )
    .await;
    assert_eq!(status, 200);
    let mut second = Client::connect(sim.local_addr()).await;
    assert_eq!(
        second.ask_within("ping", Duration::from_millis(200)).await,
        None
    );
    let (status, faults) = http(control, "DELETE", "/faults", "").await;
    assert_eq!(status, 200);
    assert!(faults["queued"].as_array().unwrap().is_empty(), "{faults}");
    assert!(
        faults["standing"].as_array().unwrap().is_empty(),
        "{faults}"
    );
    assert_eq!(client.ask("ping").await, "pong");
    assert_eq!(client.ask("data").await, "42");

    let (status, connections) = http(control, "GET", "/connections", "").await;
    assert_eq!(status, 200);
    assert_eq!(connections["connections"], 2, "{connections}");
    assert_eq!(connections["requests"], sim.requests(), "{connections}");
    // Not tracked unless asked.
    assert_eq!(connections["peers"], Value::Null, "{connections}");
    assert_eq!(sim.peers(), None);
    sim.shutdown().await;
}

/// `GET /connections` until `done` holds for its answer (at most the test deadline).
async fn connections_until(control: SocketAddr, done: impl Fn(&Value) -> bool) -> Value {
    let poll = async {
        loop {
            let (status, connections) = http(control, "GET", "/connections", "").await;
            assert_eq!(status, 200, "{connections}");
            if done(&connections) {
                return connections;
            }
            tokio::task::yield_now().await;
        }
    };
    timeout(TEST_DEADLINE, poll)
        .await
        .expect("GET /connections never showed the expected peers")
}

fn peer_addrs(connections: &Value) -> Vec<String> {
    connections["peers"]
        .as_array()
        .expect("peers listed")
        .iter()
        .map(|peer| peer["addr"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_lists_each_client_until_it_leaves() {
    let (sim, control) = start_with(SimClock::manual(), true).await;
    let (_, connections) = http(control, "GET", "/connections", "").await;
    assert_eq!(connections["peers"], json!([]), "{connections}");

    let mut first = Client::connect(sim.local_addr()).await;
    assert_eq!(first.ask("ping").await, "pong");
    let mut second = Client::connect(sim.local_addr()).await;
    assert_eq!(second.ask("ping").await, "pong");
    let me = [
        first.0.get_ref().local_addr().unwrap().to_string(),
        second.0.get_ref().local_addr().unwrap().to_string(),
    ];
    let connections = connections_until(control, |c| c["connections"] == 2).await;
    // Oldest first, each with when it came.
    assert_eq!(peer_addrs(&connections), me, "{connections}");
    let since: Vec<u64> = connections["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|peer| peer["since_ms"].as_u64().unwrap())
        .collect();
    assert!(since[0] <= since[1], "{connections}");
    assert_eq!(connections["requests"], 2, "{connections}");
    let listed = sim.peers().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].addr.to_string(), me[0]);

    // The first client leaves: only the second is listed.
    drop(first);
    let connections = connections_until(control, |c| c["connections"] == 1).await;
    assert_eq!(peer_addrs(&connections), [me[1].clone()], "{connections}");
    assert_eq!(second.ask("data").await, "42");
    drop(second);
    let connections = connections_until(control, |c| c["connections"] == 0).await;
    assert_eq!(connections["peers"], json!([]), "{connections}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_clock_and_reset() {
    let clock = SimClock::manual();
    let (sim, control) = start(clock.clone()).await;
    let mut client = Client::connect(sim.local_addr()).await;
    client.ask("ping").await;
    client.ask("data").await;
    assert_eq!(
        http(control, "GET", "/state", "").await,
        (200, json!({"answered": 2}))
    );

    let (status, now) = http(control, "POST", "/clock/advance", r#"{"by": "2s"}"#).await;
    assert_eq!((status, now), (200, json!({"now": "2000ms"})));
    assert_eq!(clock.now(), Duration::from_secs(2));

    http(
        control,
        "POST",
        "/faults",
        r#"{"fault": "close", "count": 3}"#,
    )
    .await;
    let (status, state) = http(control, "POST", "/reset", "").await;
    assert_eq!((status, state), (200, json!({"answered": 0})));
    // Back to the initial schedule only.
    let (_, faults) = http(control, "GET", "/faults", "").await;
    assert_eq!(faults["queued"].as_array().unwrap().len(), 1, "{faults}");
    assert_eq!(faults["queued"][0]["request"], 1000, "{faults}");
    assert_eq!(client.ask("ping").await, "pong");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_clock_is_not_advanced() {
    let (sim, control) = start(SimClock::scaled(1.0)).await;
    let (status, error) = http(control, "POST", "/clock/advance", r#"{"by": "2s"}"#).await;
    assert_eq!(status, 409);
    assert!(
        error["error"].as_str().unwrap().contains("time scale 0"),
        "{error}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_naming_the_problem_and_the_device_keeps_answering() {
    let (sim, control) = start(SimClock::manual()).await;
    let mut client = Client::connect(sim.local_addr()).await;
    let huge = format!(r#"{{"fault": "close", "pad": "{}"}}"#, "x".repeat(MAX_BODY));
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            "/faults",
            r#"{"fault": "no_replyy"}"#,
            400,
            "fault: unknown variant `no_replyy`",
        ),
        (
            "POST",
            "/faults",
            r#"{"fault": {"delay": 200}}"#,
            400,
            "fault.delay: invalid type",
        ),
        (
            "POST",
            "/faults",
            r#"{"fault": {"delay": "200"}}"#,
            400,
            "with a unit",
        ),
        (
            "POST",
            "/faults",
            r#"{"fault": "close", "count": 0}"#,
            400,
            "1 or more",
        ),
        (
            "POST",
            "/faults",
            r#"{"fault": "close", "cuont": 2}"#,
            400,
            "unknown field `cuont`",
        ),
        (
            "POST",
            "/faults",
            r#"{"fault": {"device": "whisper"}}"#,
            400,
            "fault.device: unknown variant `whisper`",
        ),
        (
            "POST",
            "/faults",
            r#"{"matching": {"wrd": "x"}, "fault": "close"}"#,
            400,
            "matching.wrd",
        ),
        ("POST", "/faults", "{not json", 400, "bad request body"),
        (
            "POST",
            "/faults",
            r#"{"fault": "close"} trailing"#,
            400,
            "trailing",
        ),
        ("POST", "/faults", "", 400, "EOF"),
        ("POST", "/faults", &huge, 413, "larger than 65536 bytes"),
        ("POST", "/clock/advance", r#"{"by": "soon"}"#, 400, "by:"),
        ("PUT", "/faults", "", 405, "PUT is not allowed on /faults"),
        ("GET", "/reset", "", 405, "GET is not allowed on /reset"),
        ("GET", "/nowhere", "", 404, "no route /nowhere"),
    ];
    for (method, path, body, status, expected) in cases {
        let (got, error) = http(control, method, path, body).await;
        assert_eq!(got, *status, "{method} {path} {body:.60}: {error}");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{method} {path} {body:.60}: {message}"
        );
        // Still serving, both sides.
        assert_eq!(client.ask("ping").await, "pong");
    }
    let (_, faults) = http(control, "GET", "/faults", "").await;
    assert_eq!(
        faults["queued"].as_array().unwrap().len(),
        1,
        "nothing scheduled: {faults}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_from_outside_is_bounded() {
    let (sim, control) = start(SimClock::manual()).await;
    let body = r#"{"matching": {"word": "never"}, "fault": "close"}"#;
    // One entry is the initial schedule's.
    for _ in 1..MAX_SCHEDULED {
        assert_eq!(http(control, "POST", "/faults", body).await.0, 200);
    }
    let (status, error) = http(control, "POST", "/faults", body).await;
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("clear them"),
        "{error}"
    );
    assert_eq!(http(control, "DELETE", "/faults", "").await.0, 200);
    assert_eq!(http(control, "POST", "/faults", body).await.0, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_remote_address_is_refused_unless_allowed() {
    let (sim, _) = start(SimClock::manual()).await;
    let remote = ControlConfig::new("0.0.0.0:0".parse().unwrap());
    let error = sim.serve_control(&remote).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let allowed = ControlConfig {
        allow_remote: true,
        ..remote
    };
    assert!(sim.serve_control(&allowed).await.is_ok());
    // Shutdown ends every control channel too.
    timeout(TEST_DEADLINE, sim.shutdown()).await.unwrap();
}
