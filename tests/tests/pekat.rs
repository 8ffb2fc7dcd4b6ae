//! The PEKAT client against the PEKAT simulator, over loopback: every command and state
//! transition in both dialects, refusals, timeouts, silent start/stop, kept connections,
//! concurrent clients.

use std::time::Duration;

use labwire_tests::{TEST_DEADLINE, eventually};
use pekat_proto::{
    Client, ClientConfig, Command, DecodeError, DeviceError, Dialect, Error, ProjectState, Reply,
    Request, RequestId, Response, Terminator,
};
use pekat_sim::{Fault, PekatFault, PekatSim, ProjectSpec};
use tokio::time::timeout;

const A: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";
const B: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 2";
/// Shares A's port.
const C: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 3";
const MISSING: &str = r"C:\Users\pekat\PekatVisionProjects\Nope";

async fn sim(dialect: Dialect, start: Duration, stop: Duration) -> PekatSim {
    PekatSim::builder()
        .dialect(dialect)
        .delays(start, stop)
        .start()
        .await
        .unwrap()
}

fn client(sim: &PekatSim, dialect: Dialect) -> Client {
    Client::builder(sim.local_addr().to_string())
        .dialect(dialect)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(10))
        .build()
}

/// Runs `transition` (a start or stop of A) in its own task: while it runs, the simulator and
/// the client's status both report `during`; then the transition succeeds.
async fn passes_through(
    client: &Client,
    sim: &PekatSim,
    during: ProjectState,
    transition: impl Future<Output = Result<(), Error>> + Send + 'static,
) {
    let task = tokio::spawn(transition);
    let state = sim.state();
    assert!(eventually(TEST_DEADLINE, || state.project_state(A) == Some(during)).await);
    assert_eq!(client.status(A).await.unwrap(), during);
    timeout(TEST_DEADLINE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

async fn every_command_and_transition(dialect: Dialect) {
    let delay = Duration::from_millis(150);
    let sim = sim(dialect, delay, delay).await;
    let client = client(&sim, dialect);
    let state = sim.state();

    assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);

    // start answers `done` once running; meanwhile another client sees `starting`.
    let starting = {
        let client = client.clone();
        async move { client.start(A).await }
    };
    passes_through(&client, &sim, ProjectState::Starting, starting).await;
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Running);
    // Starting a running project is done at once.
    client.start(A).await.unwrap();

    // A project on the same port cannot start.
    let err = client.start(C).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::PortInUse));

    // stop: stopping, then stopped.
    let stopping = {
        let client = client.clone();
        async move { client.stop(A).await }
    };
    passes_through(&client, &sim, ProjectState::Stopping, stopping).await;
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);

    // switch stops every other project and starts the target.
    assert!(state.set_project_state(A, ProjectState::Running));
    assert!(state.set_project_state(B, ProjectState::Running));
    client.switch(C).await.unwrap();
    assert_eq!(client.status(C).await.unwrap(), ProjectState::Running);
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);
    assert_eq!(client.status(B).await.unwrap(), ProjectState::Stopped);

    // Unknown projects.
    for command in Command::ALL {
        let reply = client
            .call_reply(Request::new(command, MISSING))
            .await
            .unwrap();
        assert_eq!(reply.response, Response::NotFound, "{command}");
    }
    assert_eq!(
        client.status(MISSING).await.unwrap_err().device_error(),
        Some(&DeviceError::NotFound)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn every_command_and_transition_in_dialect_3_18() {
    every_command_and_transition(Dialect::V3_18).await;
}

#[tokio::test]
async fn every_command_and_transition_in_dialect_3_19() {
    every_command_and_transition(Dialect::V3_19).await;
}

#[tokio::test]
async fn a_client_in_the_wrong_dialect_is_told_unknown_command() {
    let sim = sim(Dialect::V3_19, Duration::ZERO, Duration::ZERO).await;
    let err = client(&sim, Dialect::V3_18).status(A).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::UnknownCommand));
    let sim18 = self::sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let err = client(&sim18, Dialect::V3_19).status(A).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::UnknownCommand));
    sim.shutdown().await;
    sim18.shutdown().await;
}

#[tokio::test]
async fn request_ids_are_echoed_and_checked_in_3_19() {
    let sim = sim(Dialect::V3_19, Duration::ZERO, Duration::ZERO).await;
    let mut config = ClientConfig {
        dialect: Dialect::V3_19,
        request_ids: true,
        call_timeout: Duration::from_secs(5),
        blocking_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let client = Client::new(sim.local_addr().to_string(), config.clone());
    let reply = client
        .call_reply(Request::status(A).with_id(RequestId::new("job-7").unwrap()))
        .await
        .unwrap();
    assert_eq!(
        reply,
        Reply {
            id: Some(RequestId::new("job-7").unwrap()),
            response: Response::Status(ProjectState::Stopped)
        }
    );
    // Numbered automatically.
    let reply = client.call_reply(Request::status(A)).await.unwrap();
    assert!(reply.id.is_some());
    client.start(A).await.unwrap();

    // An answer echoing another id means the connection is out of step.
    let wrong_id = PekatFault::WrongId(RequestId::from(999_999));
    sim.faults().set(Some(Fault::Device(wrong_id)));
    config.keep_connection = true;
    let kept = Client::new(sim.local_addr().to_string(), config);
    let err = kept.status(A).await.unwrap_err();
    assert!(matches!(err, Error::IdMismatch { .. }), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn no_answer_times_out_and_the_next_call_works() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(Duration::from_millis(200))
        .blocking_timeout(Duration::from_millis(200))
        .keep_connection(true)
        .build();
    sim.faults().set(Some(Fault::NoReply));
    let err = client.status(A).await.unwrap_err();
    assert!(err.is_timeout() && err.is_no_answer(), "{err:?}");
    sim.faults().clear();
    // The timed-out connection was dropped: no stale answer can be read now.
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);
    sim.shutdown().await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let addr = sim.local_addr();
    sim.shutdown().await;
    drop(sim);
    let client = Client::builder(addr.to_string())
        .connect_timeout(Duration::from_secs(2))
        .build();
    let err = client.status(A).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_does_not_accept_is_a_connect_timeout() {
    // A listener that never accepts, with a full accept queue: the kernel drops further SYNs,
    // so connecting hangs until the client's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    let client = Client::builder(addr.to_string())
        .connect_timeout(Duration::from_millis(200))
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .build();
    let started = tokio::time::Instant::now();
    let err = timeout(TEST_DEADLINE, client.status(A))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(queued);
}

#[tokio::test]
async fn a_server_closing_without_answer_is_reported_as_closed() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    sim.faults().set(Some(Fault::Close));
    let err = client(&sim, Dialect::V3_18).status(A).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn unexpected_answers_are_kept_as_text() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let license = PekatFault::Answer(Response::Other("license expired".into()));
    sim.faults().set(Some(Fault::Device(license)));
    let err = client(&sim, Dialect::V3_18).start(A).await.unwrap_err();
    assert_eq!(
        err.device_error(),
        Some(&DeviceError::Other("license expired".into()))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn oversized_or_non_utf8_answers_are_typed_decode_errors() {
    // The real server's answers fit the vendor client's single recv(64).
    let oversized = PekatSim::builder()
        .garbage(vec![b'x'; 65])
        .start()
        .await
        .unwrap();
    oversized.faults().set(Some(Fault::Garbage));
    let err = client(&oversized, Dialect::V3_18)
        .status(A)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::TooLarge { max: 64, .. })),
        "{err:?}"
    );
    oversized.shutdown().await;
    // The simulator's garbage is not UTF-8.
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let client = client(&sim, Dialect::V3_18);
    sim.faults().set(Some(Fault::Garbage));
    let err = client.status(A).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::InvalidUtf8)),
        "{err:?}"
    );
    sim.faults().clear();
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);
    sim.shutdown().await;
}

#[tokio::test]
async fn silent_start_and_stop_are_tolerated_by_the_waiting_helpers() {
    for dialect in [Dialect::V3_18, Dialect::V3_19] {
        let sim = PekatSim::builder()
            .dialect(dialect)
            .delays(Duration::from_millis(100), Duration::from_millis(100))
            .silent_start_stop(true)
            .start()
            .await
            .unwrap();
        let client = Client::builder(sim.local_addr().to_string())
            .dialect(dialect)
            .call_timeout(Duration::from_millis(300))
            .blocking_timeout(Duration::from_millis(300))
            .no_answer_grace(Duration::from_millis(50))
            .poll_interval(Duration::from_millis(10))
            .build();
        // The plain call times out: there is no answer to start.
        assert!(client.start(B).await.unwrap_err().is_no_answer());
        client.stop_and_wait(B, TEST_DEADLINE).await.unwrap();
        assert_eq!(sim.state().project_state(B), Some(ProjectState::Stopped));
        client.start_and_wait(A, TEST_DEADLINE).await.unwrap();
        assert_eq!(sim.state().project_state(A), Some(ProjectState::Running));
        client.stop_and_wait(A, TEST_DEADLINE).await.unwrap();
        assert_eq!(sim.state().project_state(A), Some(ProjectState::Stopped));
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn waiting_helpers_report_refusals_and_their_deadline() {
    let sim = sim(Dialect::V3_18, Duration::from_secs(60), Duration::ZERO).await;
    let client = client(&sim, Dialect::V3_18);
    let client = Client::new(
        sim.local_addr().to_string(),
        ClientConfig {
            no_answer_grace: Duration::from_millis(50),
            ..client.config().clone()
        },
    );
    let err = client
        .start_and_wait(MISSING, TEST_DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::NotFound));

    // The start takes a minute: the wait gives up at its deadline, having seen `starting`.
    let started = tokio::time::Instant::now();
    let err = client
        .start_and_wait(A, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(
            err,
            Error::WaitTimedOut {
                target: ProjectState::Running,
                last: Some(ProjectState::Starting),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout());

    sim.state().occupy_port(8001);
    let err = client.start_and_wait(B, TEST_DEADLINE).await.unwrap_err();
    assert_eq!(err.device_error(), Some(&DeviceError::PortInUse));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_waiting_helpers_keep_one_deadline_when_nothing_answers() {
    let sim = sim(Dialect::V3_19, Duration::ZERO, Duration::ZERO).await;
    sim.faults().set(Some(Fault::NoReply));
    // Grace and answer timeout far beyond the deadline: the deadline alone must end the wait.
    let client = Client::builder(sim.local_addr().to_string())
        .dialect(Dialect::V3_19)
        .call_timeout(Duration::from_secs(60))
        .blocking_timeout(Duration::from_secs(60))
        .no_answer_grace(Duration::from_secs(60))
        .poll_interval(Duration::from_millis(10))
        .build();
    for target in [ProjectState::Running, ProjectState::Stopped] {
        let within = Duration::from_millis(300);
        let started = tokio::time::Instant::now();
        let waiting = async {
            if target == ProjectState::Running {
                client.start_and_wait(A, within).await
            } else {
                client.stop_and_wait(A, within).await
            }
        };
        let err = timeout(TEST_DEADLINE, waiting).await.unwrap().unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, Error::WaitTimedOut { target: t, last: None, .. } if t == target),
            "{err:?}"
        );
        assert!(took >= Duration::from_millis(300), "took {took:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_kept_connection_carries_several_requests() {
    let sim = sim(Dialect::V3_19, Duration::ZERO, Duration::ZERO).await;
    let client = Client::builder(sim.local_addr().to_string())
        .dialect(Dialect::V3_19)
        .keep_connection(true)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .build();
    client.start(A).await.unwrap();
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Running);
    client.stop(A).await.unwrap();
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);
    assert_eq!(sim.state().connections_accepted(), 1);
    assert_eq!(sim.requests(), 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_kept_connection_is_replaced_when_the_server_closes_after_each_answer() {
    let sim = PekatSim::builder()
        .delays(Duration::ZERO, Duration::ZERO)
        .one_request_per_connection(true)
        .start()
        .await
        .unwrap();
    let client = Client::builder(sim.local_addr().to_string())
        .keep_connection(true)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .build();
    for _ in 0..3 {
        assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);
    }
    assert!(sim.state().connections_accepted() >= 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_fresh_connection_is_used_per_request_by_default() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let client = client(&sim, Dialect::V3_18);
    for _ in 0..3 {
        client.status(A).await.unwrap();
    }
    assert_eq!(sim.state().connections_accepted(), 3);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_in_a_burst_are_all_answered() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let clients = 8;
    let per_client = 25;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let client = client(&sim, Dialect::V3_18);
            tokio::spawn(async move {
                let path = if i % 2 == 0 { A } else { B };
                for _ in 0..per_client {
                    assert_eq!(client.status(path).await.unwrap(), ProjectState::Stopped);
                }
            })
        })
        .collect();
    for task in tasks {
        timeout(TEST_DEADLINE, task).await.unwrap().unwrap();
    }
    assert_eq!(
        sim.state().connections_accepted(),
        (clients * per_client) as u64
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn custom_projects_and_case_insensitive_paths() {
    let sim = PekatSim::builder()
        .delays(Duration::ZERO, Duration::ZERO)
        .projects([ProjectSpec::new(r"D:\Lines\Line 1", 9000)])
        .start()
        .await
        .unwrap();
    let client = client(&sim, Dialect::V3_18);
    client.start(r"d:/lines/LINE 1").await.unwrap();
    assert_eq!(
        client.status(r"D:\Lines\Line 1").await.unwrap(),
        ProjectState::Running
    );
    assert_eq!(
        client.status(A).await.unwrap_err().device_error(),
        Some(&DeviceError::NotFound)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unbounded_timeouts_are_accepted() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let client = Client::builder(sim.local_addr().to_string())
        .call_timeout(Duration::MAX)
        .blocking_timeout(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .build();
    client.start_and_wait(A, Duration::MAX).await.unwrap();
    assert_eq!(client.status(A).await.unwrap(), ProjectState::Running);
    sim.shutdown().await;
}

/// Reads one answer from a raw socket (the simulator writes each in one write; loopback
/// delivers it whole). Two answers read together come back together, so an extra answer shows.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 128];
    let n = timeout(TEST_DEADLINE, stream.read(&mut buf))
        .await
        .expect("no answer in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The deliberate pause between a request and its late line ending: long enough that the
/// server has taken the request before the line ending arrives (the simulator answers at once
/// by default, and a quiet period, when set, is a few milliseconds).
const LATE: Duration = Duration::from_millis(30);

#[tokio::test]
async fn a_line_ending_arriving_after_the_quiet_period_gets_no_answer_of_its_own() {
    use tokio::io::AsyncWriteExt;
    // The default (what one read delivers is the request) and a quiet period of 3 ms.
    let quiet_periods = [Duration::ZERO, Duration::from_millis(3)];
    for (dialect, quiet) in [Dialect::V3_18, Dialect::V3_19]
        .into_iter()
        .flat_map(|d| quiet_periods.map(|q| (d, q)))
    {
        let sim = PekatSim::builder()
            .dialect(dialect)
            .delays(Duration::ZERO, Duration::ZERO)
            .quiet_period(quiet)
            .start()
            .await
            .unwrap();
        assert!(sim.state().set_project_state(B, ProjectState::Running));
        let sep = char::from(dialect.separator());
        let (stopped, running) = match dialect {
            Dialect::V3_18 => ("stopped", "running"),
            _ => ("suc:stopped", "suc:running"),
        };
        let mut s = timeout(
            TEST_DEADLINE,
            tokio::net::TcpStream::connect(sim.local_addr()),
        )
        .await
        .unwrap()
        .unwrap();
        s.set_nodelay(true).unwrap();
        // Each way a line ending can be cut from its request; every request alternates between
        // A (stopped) and B (running), so an answer out of step shows.
        let splits: [&[&[u8]]; 4] = [
            &[b"\r", b"\n"],
            &[b"", b"\r\n"],
            &[b"", b"\n"],
            &[b"", b"\r", b"\n"],
        ];
        for (i, split) in splits.iter().enumerate() {
            let (path, expected) = if i % 2 == 0 {
                (A, stopped)
            } else {
                (B, running)
            };
            let mut first = format!("status{sep}{path}").into_bytes();
            first.extend_from_slice(split[0]);
            s.write_all(&first).await.unwrap();
            for late in &split[1..] {
                tokio::time::sleep(LATE).await;
                s.write_all(late).await.unwrap();
            }
            let answer = read_answer(&mut s).await;
            assert_eq!(answer, expected, "{dialect} {quiet:?} split {i}");
        }
        // The connection is still in step: the next request gets exactly its own answer.
        s.write_all(format!("status{sep}{B}").as_bytes())
            .await
            .unwrap();
        assert_eq!(read_answer(&mut s).await, running, "{dialect} {quiet:?}");
        assert_eq!(sim.requests(), 5, "{dialect} {quiet:?}");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_integrators_unknown_command_spelling_is_recognised() {
    for (dialect, text) in [
        (Dialect::V3_18, "unknown-command"),
        (Dialect::V3_19, "err:unknown-command"),
        (Dialect::V3_19, "ERR:Unknown-Command"),
    ] {
        let sim = sim(dialect, Duration::ZERO, Duration::ZERO).await;
        let answer = PekatFault::Answer(Response::Other(text.into()));
        sim.faults().set(Some(Fault::Device(answer)));
        let client = Client::builder(sim.local_addr().to_string())
            .dialect(dialect)
            .request_ids(dialect.supports_ids())
            .call_timeout(Duration::from_secs(5))
            .blocking_timeout(Duration::from_secs(5))
            .build();
        let reply = client.call_reply(Request::status(A)).await.unwrap();
        assert_eq!(reply.response, Response::UnknownCommand, "{text}");
        assert_eq!(reply.id.is_some(), dialect.supports_ids(), "{text}");
        let err = client.start(A).await.unwrap_err();
        assert_eq!(
            err.device_error(),
            Some(&DeviceError::UnknownCommand),
            "{text}"
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn raw_commands_send_any_text_and_return_the_answer_as_it_came() {
    let sim18 = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let client = client(&sim18, Dialect::V3_18);
    let raw = |text: String| {
        let client = client.clone();
        async move { client.call_raw(&text).await.unwrap() }
    };
    assert_eq!(raw(format!("status:{A}")).await, "stopped");
    assert_eq!(raw(format!("launch:{A}")).await, "Unknown command");
    assert_eq!(raw(format!("Status:{A}")).await, "Unknown command");
    assert_eq!(raw(format!("start:{MISSING}")).await, "not-found");
    assert_eq!(raw(format!("start:{A}")).await, "done");
    assert_eq!(sim18.state().project_state(A), Some(ProjectState::Running));
    sim18.shutdown().await;

    // 3.19 on a kept connection: ids and prefixes come back untouched.
    let sim19 = sim(Dialect::V3_19, Duration::ZERO, Duration::ZERO).await;
    let kept = Client::builder(sim19.local_addr().to_string())
        .dialect(Dialect::V3_19)
        .keep_connection(true)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .build();
    let answer = kept.call_raw(&format!("7.status|{A}")).await.unwrap();
    assert_eq!(answer, "7.suc:stopped");
    let answer = kept.call_raw(&format!("start|{A}")).await.unwrap();
    assert_eq!(answer, "suc:done");
    let answer = kept.call_raw(&format!("x-1.stop:{A}")).await.unwrap();
    assert_eq!(answer, "x-1.err:invalid-command");
    // Typed and raw calls share the connection.
    assert_eq!(kept.status(A).await.unwrap(), ProjectState::Running);
    assert_eq!(sim19.state().connections_accepted(), 1);
    sim19.shutdown().await;
}

#[tokio::test]
async fn raw_commands_keep_the_clients_limits_and_deadlines() {
    let sim = sim(Dialect::V3_18, Duration::ZERO, Duration::ZERO).await;
    let client = Client::builder(sim.local_addr().to_string())
        .keep_connection(true)
        .call_timeout(Duration::from_secs(5))
        .blocking_timeout(Duration::from_secs(5))
        .limits(pekat_proto::Limits {
            max_request_len: 16,
            max_response_len: 12,
        })
        .build();
    // Refused before anything is sent.
    for (text, what) in [
        ("", "empty"),
        ("status:a\r\nstop:b", "line ending"),
        ("status:0123456789", "too long"),
    ] {
        let err = client.call_raw(text).await.unwrap_err();
        assert!(matches!(err, Error::Encode(_)), "{what}: {err:?}");
    }
    let err = client.status("0123456789").await.unwrap_err();
    assert!(matches!(err, Error::Encode(_)), "typed, too long: {err:?}");
    assert_eq!(sim.requests(), 0);
    // An answer longer than the limit.
    sim.faults()
        .set(Some(Fault::Device(PekatFault::Answer(Response::Other(
            "license expired".into(),
        )))));
    let err = client.call_raw("status:x").await.unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::TooLarge { max: 12, .. })),
        "{err:?}"
    );
    // No answer within the call's own deadline; the next call gets its own answer.
    sim.faults().set(Some(Fault::NoReply));
    let started = tokio::time::Instant::now();
    let err = client
        .call_raw_with_timeout("status:x", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.is_no_answer(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    sim.faults().clear();
    assert_eq!(client.call_raw("status:x").await.unwrap(), "not-found");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_terminator_option_writes_nothing_lf_or_crlf_after_each_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    // The vendor's example sends no terminator; so does the client unless told otherwise.
    assert_eq!(ClientConfig::default().terminator, Terminator::None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for terminator in Terminator::ALL {
        let client = Client::builder(addr.to_string())
            .terminator(terminator)
            .call_timeout(Duration::from_secs(5))
            .blocking_timeout(Duration::from_secs(5))
            .build();
        for raw in [false, true] {
            let mut expected = format!("status:{A}").into_bytes();
            expected.extend_from_slice(terminator.as_bytes());
            let server = async {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                while got.len() < expected.len() {
                    let mut buf = [0u8; 256];
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                stream.write_all(b"stopped").await.unwrap();
                got
            };
            let call = async {
                if raw {
                    client.call_raw(&format!("status:{A}")).await.unwrap()
                } else {
                    client.status(A).await.unwrap().to_string()
                }
            };
            let (got, answer) = timeout(TEST_DEADLINE, async { tokio::join!(server, call) })
                .await
                .unwrap();
            assert_eq!(got, expected, "{terminator}, raw {raw}");
            assert_eq!(answer, "stopped", "{terminator}, raw {raw}");
        }
    }
}

#[tokio::test]
async fn every_terminator_keeps_a_kept_connection_in_step_with_the_simulator() {
    for dialect in [Dialect::V3_18, Dialect::V3_19] {
        let sim = sim(dialect, Duration::ZERO, Duration::ZERO).await;
        assert!(sim.state().set_project_state(B, ProjectState::Running));
        for terminator in Terminator::ALL {
            let client = Client::builder(sim.local_addr().to_string())
                .dialect(dialect)
                .request_ids(dialect.supports_ids())
                .terminator(terminator)
                .keep_connection(true)
                .call_timeout(Duration::from_secs(5))
                .blocking_timeout(Duration::from_secs(5))
                .build();
            for _ in 0..3 {
                assert_eq!(client.status(A).await.unwrap(), ProjectState::Stopped);
                assert_eq!(client.status(B).await.unwrap(), ProjectState::Running);
            }
        }
        // One connection per client: no answer ever came out of step.
        assert_eq!(sim.state().connections_accepted(), 3, "{dialect}");
        assert_eq!(sim.requests(), 18, "{dialect}");
        sim.shutdown().await;
    }
}
