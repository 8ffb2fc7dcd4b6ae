//! The simulator over raw sockets: framing, bad input, connection handling.

use std::time::Duration;

use labwire_simkit::testing::eventually;
use pekat_proto::{Dialect, ProjectState, Response};
use pekat_sim::{Fault, PekatFault, PekatSim, ProjectSpec, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const A: &str = r"C:\Projects\Line A";
const LIMIT: Duration = Duration::from_secs(5);

fn config(dialect: Dialect) -> SimConfig {
    let mut config = SimConfig::default()
        .with_dialect(dialect)
        .with_delays(Duration::ZERO, Duration::ZERO);
    config.projects = vec![
        ProjectSpec::new(A, 8000),
        ProjectSpec::new(r"C:\v1.2\dotted.project", 8001),
    ];
    config
}

async fn connect(sim: &PekatSim) -> TcpStream {
    timeout(LIMIT, TcpStream::connect(sim.local_addr()))
        .await
        .unwrap()
        .unwrap()
}

/// Starts a simulator on a free loopback port with `config`.
async fn start(config: SimConfig) -> PekatSim {
    PekatSim::builder().config(config).start().await.unwrap()
}

/// Starts a simulator with `config` and connects one raw client to it.
async fn start_and_connect(config: SimConfig) -> (PekatSim, TcpStream) {
    let sim = start(config).await;
    let stream = connect(&sim).await;
    (sim, stream)
}

/// Half-closes the client side, then reads everything the simulator sends until it closes.
async fn rest_after_half_close(stream: &mut TcpStream) -> String {
    stream.shutdown().await.unwrap();
    let mut got = String::new();
    timeout(LIMIT, stream.read_to_string(&mut got))
        .await
        .unwrap()
        .unwrap();
    got
}

/// Reads one answer (the simulator writes each in one write; loopback delivers it whole).
async fn answer(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 128];
    let n = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn ask(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    answer(stream).await
}

/// Like [`ask`], also returning how long the answer took in real time.
async fn timed_ask(stream: &mut TcpStream, request: &[u8]) -> (String, Duration) {
    let started = std::time::Instant::now();
    let answer = ask(stream, request).await;
    (answer, started.elapsed())
}

/// Whether the peer has closed: `read` returns 0 (or a reset) within the limit.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        timeout(LIMIT, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn bad_input_gets_the_3_18_error_answer_and_the_connection_goes_on() {
    let (sim, mut s) = start_and_connect(config(Dialect::V3_18)).await;
    assert_eq!(
        ask(&mut s, b"\x00\x01\x02\xff junk").await,
        "Unknown command"
    );
    assert_eq!(ask(&mut s, b"start:\xff\xfe").await, "Unknown command");
    assert_eq!(ask(&mut s, b"Start:C:\\x").await, "Unknown command");
    assert_eq!(ask(&mut s, b"start|C:\\x").await, "Unknown command");
    // After a request, a bare line ending is its (late) tail, not a request: no answer.
    s.write_all(b"\r\n").await.unwrap();
    // A path with a colon: the command ends at the first separator.
    assert_eq!(ask(&mut s, br"start:C:\x").await, "not-found");
    assert_eq!(ask(&mut s, b"status:").await, "not-found");
    assert_eq!(
        ask(&mut s, format!("status:{A}").as_bytes()).await,
        "stopped"
    );
    // As the first bytes of a connection, a bare line ending is an empty request.
    let mut fresh = connect(&sim).await;
    assert_eq!(ask(&mut fresh, b"\r\n").await, "Unknown command");
    assert_eq!(sim.requests(), 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_3_19_error_answer_with_the_id_echoed() {
    let (sim, mut s) = start_and_connect(config(Dialect::V3_19)).await;
    assert_eq!(ask(&mut s, b"5.launch|x").await, "5.err:invalid-command");
    assert_eq!(ask(&mut s, b"start:C:\\x").await, "err:invalid-command");
    assert_eq!(ask(&mut s, b"bad id.start|x").await, "err:invalid-command");
    assert_eq!(ask(&mut s, b"6.start|\xff").await, "6.err:invalid-command");
    assert_eq!(
        ask(&mut s, b"\x00\x01\x02\xff junk").await,
        "err:invalid-command"
    );
    // After a request, a bare line ending is its (late) tail, not a request: no answer.
    s.write_all(b"\r\n").await.unwrap();
    // A path with a colon in 3.19: the separator is `|`, the colon is part of the path.
    assert_eq!(ask(&mut s, br"8.start|C:\x").await, "8.err:not-found");
    assert_eq!(
        ask(&mut s, br"7.start|C:\v1.2\dotted.project").await,
        "7.suc:done"
    );
    assert_eq!(
        ask(&mut s, br"status|c:/V1.2/dotted.project/").await,
        "suc:running"
    );
    // As the first bytes of a connection, a bare line ending is an empty request.
    let mut fresh = connect(&sim).await;
    assert_eq!(ask(&mut fresh, b"\r\n").await, "err:invalid-command");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_endless_request_is_refused_and_closed_without_disturbing_others() {
    let mut config = config(Dialect::V3_18);
    config.max_request_len = 4096;
    // Bytes pile up into one request only while the server waits for more of it: with a quiet
    // period. Without one (the default) each read of such bytes is a request of its own,
    // answered at once, as on the real server (see the next test).
    config.quiet_period = Duration::from_millis(300);
    let sim = start(config).await;
    let mut other = connect(&sim).await;
    let mut flood = connect(&sim).await;
    let chunk = vec![b'a'; 1024];
    let flooding = async {
        // The server closes once the limit is passed; writes then fail, which ends the flood.
        for _ in 0..64 {
            if flood.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let mut got = Vec::new();
        let _ = timeout(LIMIT, flood.read_to_end(&mut got)).await.unwrap();
        got
    };
    let got = flooding.await;
    assert!(
        got.is_empty() || got == b"Unknown command",
        "unexpected {got:?}"
    );
    assert_eq!(
        ask(&mut other, format!("status:{A}").as_bytes()).await,
        "stopped"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn without_a_quiet_period_a_read_past_the_limit_is_refused_and_closed() {
    let mut config = config(Dialect::V3_18);
    config.max_request_len = 16;
    let sim = start(config).await;
    let mut other = connect(&sim).await;
    let mut s = connect(&sim).await;
    s.write_all(format!("status:{A}").as_bytes()).await.unwrap();
    assert_eq!(rest_after_half_close(&mut s).await, "Unknown command");
    // Bytes that cannot begin a request, read on their own, are answered as what they are.
    let mut s = connect(&sim).await;
    assert_eq!(ask(&mut s, b"GET / HTTP/1.0").await, "Unknown command");
    assert_eq!(ask(&mut other, b"status:none").await, "not-found");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_split_inside_its_path_is_read_whole_within_the_quiet_period() {
    let mut config = config(Dialect::V3_18);
    config.quiet_period = Duration::from_millis(300);
    let (sim, mut s) = start_and_connect(config).await;
    s.write_all(br"status:C:\Projects\Li").await.unwrap();
    s.write_all(b"ne A").await.unwrap();
    assert_eq!(answer(&mut s).await, "stopped");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_split_before_its_separator_waits_for_the_rest() {
    let mut config = config(Dialect::V3_19);
    config.quiet_period = Duration::ZERO;
    let (sim, mut s) = start_and_connect(config).await;
    s.write_all(b"12.sta").await.unwrap();
    s.flush().await.unwrap();
    tokio::task::yield_now().await;
    s.write_all(format!("tus|{A}").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut s).await, "12.suc:stopped");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_that_stops_half_way_is_answered_after_the_request_timeout() {
    let mut config = config(Dialect::V3_18);
    config.request_timeout = Duration::from_millis(100);
    let (sim, mut s) = start_and_connect(config).await;
    assert_eq!(ask(&mut s, b"sta").await, "Unknown command");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_cut_short_by_eof_is_answered_then_closed() {
    let (_sim, mut s) = start_and_connect(config(Dialect::V3_18)).await;
    s.write_all(format!("status:{A}").as_bytes()).await.unwrap();
    assert_eq!(rest_after_half_close(&mut s).await, "stopped");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut config = config(Dialect::V3_18);
    config.idle_timeout = Duration::from_millis(100);
    let (sim, mut s) = start_and_connect(config).await;
    assert!(closed(&mut s).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn one_request_per_connection_mode_closes_after_the_answer() {
    let mut config = config(Dialect::V3_18);
    config.one_request_per_connection = true;
    let (sim, mut s) = start_and_connect(config).await;
    assert_eq!(ask(&mut s, format!("start:{A}").as_bytes()).await, "done");
    assert!(closed(&mut s).await);
    assert_eq!(sim.state().project_state(A), Some(ProjectState::Running));
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_close_or_garble_the_answer() {
    let mut config = config(Dialect::V3_18);
    config.garbage = b"\xff\xfe".to_vec().into();
    let sim = start(config).await;
    let state = sim.state();
    let faults = sim.faults();
    faults.set(Some(Fault::Garbage));
    let mut s = connect(&sim).await;
    assert_eq!(
        ask(&mut s, format!("status:{A}").as_bytes()).await,
        "\u{fffd}\u{fffd}"
    );
    faults.set(Some(Fault::Close));
    s.write_all(format!("start:{A}").as_bytes()).await.unwrap();
    assert!(closed(&mut s).await);
    // The request was still carried out.
    assert_eq!(state.project_state(A), Some(ProjectState::Running));
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_disconnects_connected_clients() {
    let (sim, mut s) = start_and_connect(config(Dialect::V3_18)).await;
    assert_eq!(
        ask(&mut s, format!("status:{A}").as_bytes()).await,
        "stopped"
    );
    timeout(LIMIT, sim.shutdown()).await.unwrap();
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn a_scaled_clock_makes_simulated_delays_pass_faster() {
    let sim = PekatSim::builder()
        .config(config(Dialect::V3_18))
        .delays(Duration::from_secs(20), Duration::ZERO)
        .speed(100.0)
        .start()
        .await
        .unwrap();
    assert_eq!(sim.clock().speed(), 100.0);
    let mut s = connect(&sim).await;
    // 20 simulated seconds at 100x: about 200 ms of real time.
    let (answer, took) = timed_ask(&mut s, format!("start:{A}").as_bytes()).await;
    assert_eq!(answer, "done");
    assert!(took >= Duration::from_millis(150), "took {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(sim.state().project_state(A), Some(ProjectState::Running));
    sim.shutdown().await;
}

#[tokio::test]
async fn status_during_a_start_reports_starting_to_other_connections() {
    let config = config(Dialect::V3_19).with_delays(Duration::from_millis(300), Duration::ZERO);
    let sim = start(config).await;
    let mut starter = connect(&sim).await;
    starter
        .write_all(format!("1.start|{A}").as_bytes())
        .await
        .unwrap();
    let state = sim.state();
    assert!(
        eventually(LIMIT, || state.project_state(A)
            == Some(ProjectState::Starting))
        .await
    );
    let mut other = connect(&sim).await;
    assert_eq!(
        ask(&mut other, format!("2.status|{A}").as_bytes()).await,
        "2.suc:starting"
    );
    assert_eq!(answer(&mut starter).await, "1.suc:done");
    assert_eq!(
        ask(&mut other, format!("status|{A}").as_bytes()).await,
        "suc:running"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_ending_in_a_lone_carriage_return_is_answered_promptly() {
    let mut config = config(Dialect::V3_18);
    config.request_timeout = Duration::from_secs(30);
    let (sim, mut s) = start_and_connect(config).await;
    let (answer, took) = timed_ask(&mut s, format!("status:{A}\r").as_bytes()).await;
    assert_eq!(answer, "stopped");
    // Answered at once, long before the request deadline.
    assert!(took < Duration::from_secs(4));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_late_line_ending_gets_no_answer_even_without_a_quiet_period() {
    let mut config = config(Dialect::V3_18);
    config.quiet_period = Duration::ZERO;
    let (sim, mut s) = start_and_connect(config).await;
    // Answered at once (no quiet period), so its line ending arrives after the answer.
    assert_eq!(
        ask(&mut s, format!("status:{A}").as_bytes()).await,
        "stopped"
    );
    s.write_all(b"\r").await.unwrap();
    s.write_all(b"\n").await.unwrap();
    assert_eq!(ask(&mut s, b"status:C:\\nowhere").await, "not-found");
    assert_eq!(sim.requests(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_during_a_slow_start_frees_its_connection() {
    let config = config(Dialect::V3_18).with_delays(Duration::from_secs(3600), Duration::ZERO);
    let (sim, mut s) = start_and_connect(config).await;
    s.write_all(format!("start:{A}").as_bytes()).await.unwrap();
    let state = sim.state();
    assert!(
        eventually(LIMIT, || state.project_state(A)
            == Some(ProjectState::Starting))
        .await
    );
    assert_eq!(sim.connection_count(), 1);
    drop(s);
    assert!(eventually(LIMIT, || sim.connection_count() == 0).await);
    // The start goes on without the client.
    assert_eq!(state.project_state(A), Some(ProjectState::Starting));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_slow_start_is_answered_after_a_half_close() {
    let config = config(Dialect::V3_18).with_delays(Duration::from_millis(100), Duration::ZERO);
    let (sim, mut s) = start_and_connect(config).await;
    s.write_all(format!("start:{A}").as_bytes()).await.unwrap();
    assert_eq!(rest_after_half_close(&mut s).await, "done");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_builder_configures_dialect_projects_and_faults_from_the_start() {
    let sim = PekatSim::builder()
        .dialect(Dialect::V3_19)
        .projects([ProjectSpec::new(A, 8000)])
        .project(r"D:\Other", 8100)
        .delays(Duration::ZERO, Duration::ZERO)
        .garbage(&b"license expired"[..])
        .one_request_per_connection(true)
        .backlog(64)
        .max_connections(4)
        .start()
        .await
        .unwrap();
    sim.faults().set(Some(Fault::Garbage));
    assert!(sim.local_addr().ip().is_loopback());
    assert_eq!(sim.config().dialect, Dialect::V3_19);
    assert_eq!(sim.state().projects().len(), 2);
    assert_eq!(sim.faults().standing(), Some(Fault::Garbage));
    let mut s = connect(&sim).await;
    assert_eq!(
        ask(&mut s, format!("7.status|{A}").as_bytes()).await,
        "license expired"
    );
    assert!(closed(&mut s).await, "one request per connection");
    sim.faults().clear();
    let mut s = connect(&sim).await;
    assert_eq!(ask(&mut s, br"8.status|D:\Other").await, "8.suc:stopped");
    sim.shutdown().await;
    assert_eq!(sim.connection_count(), 0);
}

#[tokio::test]
async fn a_config_struct_starts_the_same_simulator_as_the_builder() {
    let mut config = config(Dialect::V3_18);
    config.silent_start_stop = true;
    let sim = PekatSim::builder().config(config).start().await.unwrap();
    assert!(sim.state().silent_start_stop());
    assert_eq!(sim.clock().speed(), 1.0);
    let mut s = connect(&sim).await;
    s.write_all(format!("start:{A}").as_bytes()).await.unwrap();
    // No answer to start, but the state changed; status still answers.
    let state = sim.state().clone();
    assert!(
        eventually(LIMIT, || state.project_state(A)
            == Some(ProjectState::Running))
        .await
    );
    assert_eq!(
        ask(&mut s, format!("status:{A}").as_bytes()).await,
        "running"
    );
    // Switched off while running: start and stop are answered again.
    state.set_silent_start_stop(false);
    assert_eq!(ask(&mut s, format!("stop:{A}").as_bytes()).await, "done");
    sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_the_shutdown_token_stops_the_simulator() {
    let sim = PekatSim::builder().start().await.unwrap();
    let mut s = connect(&sim).await;
    assert_eq!(
        ask(&mut s, format!("status:{A}").as_bytes()).await,
        "not-found"
    );
    sim.shutdown_token().cancel();
    assert!(closed(&mut s).await);
    timeout(LIMIT, sim.shutdown()).await.unwrap();
    assert!(TcpStream::connect(sim.local_addr()).await.is_err());
}

#[tokio::test]
async fn a_client_that_never_takes_its_answer_is_disconnected_after_the_idle_timeout() {
    let mut config = config(Dialect::V3_18);
    config.idle_timeout = Duration::from_millis(200);
    // An answer far larger than the socket buffers: the write cannot complete while the client
    // does not read.
    config.garbage = vec![b'x'; 32 << 20].into();
    let (sim, mut s) = start_and_connect(config).await;
    sim.faults().set(Some(Fault::Garbage));
    s.write_all(format!("status:{A}").as_bytes()).await.unwrap();
    assert!(eventually(LIMIT, || sim.requests() == 1).await);
    assert!(
        eventually(LIMIT, || sim.connection_count() == 0).await,
        "the connection is still held"
    );
    drop(s);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_answer_delay_fault_holds_each_answer_back() {
    let (sim, mut s) = start_and_connect(config(Dialect::V3_18)).await;
    sim.faults()
        .set(Some(Fault::Delay(Duration::from_millis(200))));
    let (answer, took) = timed_ask(&mut s, format!("status:{A}").as_bytes()).await;
    assert_eq!(answer, "stopped");
    assert!(took >= Duration::from_millis(200));
    sim.faults().clear();
    let (answer, took) = timed_ask(&mut s, format!("status:{A}").as_bytes()).await;
    assert_eq!(answer, "stopped");
    assert!(took < Duration::from_millis(200));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_state_handle_changes_projects_ports_and_delays_while_serving() {
    let (sim, mut s) = start_and_connect(config(Dialect::V3_18)).await;
    let state = sim.state();
    let new = r"E:\Added Later";
    assert_eq!(
        ask(&mut s, format!("status:{new}").as_bytes()).await,
        "not-found"
    );
    state.add_project(new, 8500);
    assert_eq!(
        ask(&mut s, format!("status:{new}").as_bytes()).await,
        "stopped"
    );
    state.occupy_port(8500);
    assert_eq!(
        ask(&mut s, format!("start:{new}").as_bytes()).await,
        "error:port"
    );
    state.release_port(8500);
    // Delays changed at run time apply to the next transition.
    state.set_delays(Duration::from_secs(3600), Duration::ZERO);
    let outcome = state.handle(pekat_proto::Command::Start, new);
    assert!(
        matches!(
            outcome,
            pekat_sim::Outcome::At(at, pekat_proto::Response::Done) if at >= Duration::from_secs(3600)
        ),
        "{outcome:?}"
    );
    assert_eq!(
        ask(&mut s, format!("status:{new}").as_bytes()).await,
        "starting"
    );
    assert!(state.remove_project(new));
    assert!(!state.remove_project(new));
    assert_eq!(
        ask(&mut s, format!("status:{new}").as_bytes()).await,
        "not-found"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_time_scale_of_zero_stops_the_clock_until_it_is_advanced() {
    let sim = PekatSim::builder()
        .config(config(Dialect::V3_18))
        .delays(Duration::from_secs(1), Duration::ZERO)
        .time_scale(0.0)
        .start()
        .await
        .unwrap();
    assert!(sim.clock().is_manual());
    let state = sim.state();
    let mut s = connect(&sim).await;
    s.write_all(format!("start:{A}").as_bytes()).await.unwrap();
    assert!(
        eventually(LIMIT, || state.project_state(A)
            == Some(ProjectState::Starting))
        .await
    );
    // Real time alone does not move a stopped clock: the start is not answered.
    let mut buf = [0u8; 16];
    assert!(
        timeout(Duration::from_millis(100), s.read(&mut buf))
            .await
            .is_err()
    );
    sim.clock().advance(Duration::from_secs(1));
    assert_eq!(answer(&mut s).await, "done");
    assert_eq!(state.project_state(A), Some(ProjectState::Running));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_shared_faults_lose_or_cut_one_answer_and_device_faults_change_it() {
    let (sim, mut s) = start_and_connect(config(Dialect::V3_18)).await;
    let status = format!("status:{A}");
    sim.faults().push(Fault::NoReply);
    sim.faults()
        .push(Fault::Device(PekatFault::Answer(Response::PortInUse)));
    s.write_all(status.as_bytes()).await.unwrap();
    // Handled, not answered: the next answer read is the next request's.
    assert!(eventually(LIMIT, || sim.requests() == 1).await);
    let start = format!("start:{A}");
    assert_eq!(ask(&mut s, start.as_bytes()).await, "error:port");
    assert_eq!(sim.state().project_state(A), Some(ProjectState::Running));
    sim.faults().push(Fault::Truncate);
    assert_eq!(ask(&mut s, status.as_bytes()).await, "run");
    assert!(closed(&mut s).await);
    assert_eq!(sim.faults().applied(), 3);
    sim.shutdown().await;
}
