//! What a coordinator sees over real sockets (127.0.0.1, port 0) when the node is unkind:
//! a command's events lost, late, truncated or garbled, dropped outputs, verdicts before
//! outputs, an extra verdict for `uSeq`, a failing `runSeq`; and the standalone sequence,
//! `unit_info` once per coordinator id, boot and reboot.

use std::net::SocketAddr;
use std::time::Duration;

use la4_sim::{BOARDIO_READY, Fault, GARBAGE, La4Fault, La4Sim, SimClock};
use labwire_simkit::testing::eventually;
use pycom_proto::transport::{read_message, send_message};
use pycom_proto::{Body, Identity, Limits, Message, Row, Sequence, wire};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(10);

const SEQUENCE_FILE: &str = "/home/rigsters/la4_sequence.csv";
const STANDALONE_FILE: &str = "/home/rigsters/la4_sequence_standalone.csv";

/// The vendor's idiom for the normal sequence.
const VENDOR_IDIOM: &str = r#"echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"#;

/// What the vendor idiom prints.
const VENDOR_OUTPUT: &str =
    "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\nBOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n";

/// A coordinator as a test plays it: a plain listener for the node's events, and the identity
/// it sends requests with (`coordinator: true`, the listener's port).
struct Coordinator {
    node: SocketAddr,
    events: TcpListener,
    identity: Identity,
}

impl Coordinator {
    async fn new(node: SocketAddr, id: &str) -> Self {
        let events = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = events.local_addr().unwrap().port();
        let identity = Identity::new(id, "test", "127.0.0.1", port, "0.1.0", true);
        Self {
            node,
            events,
            identity,
        }
    }

    /// A coordinator that has made itself known to a booted node and received its
    /// `unit_info`.
    async fn introduced(sim: &La4Sim) -> Self {
        let coordinator = Self::new(sim.local_addr(), "7756f193").await;
        coordinator.heartbeat().await;
        coordinator.expect_unit_info().await;
        coordinator
    }

    async fn send(&self, message: Message) {
        // Waiting for the node to close means it has read the request, so requests are
        // handled in the order sent.
        send_message(self.node, &message, &Limits::default(), DEADLINE, true)
            .await
            .unwrap();
    }

    async fn heartbeat(&self) {
        self.send(Message::heartbeat(self.identity.clone())).await;
    }

    async fn cmd(&self, command: &str) {
        self.send(Message::cmd(self.identity.clone(), command))
            .await;
    }

    /// The bytes of the next event, whatever they are, within the deadline.
    async fn next_event_bytes(&self) -> Vec<u8> {
        let (mut stream, _) = tokio::time::timeout(DEADLINE, self.events.accept())
            .await
            .expect("no event within the deadline")
            .unwrap();
        let mut bytes = Vec::new();
        tokio::time::timeout(
            DEADLINE,
            (&mut stream).take(64 * 1024).read_to_end(&mut bytes),
        )
        .await
        .expect("the event did not end within the deadline")
        .unwrap();
        bytes
    }

    /// The next event, from the node, within the deadline.
    async fn next_event(&self) -> Body {
        let (mut stream, _) = tokio::time::timeout(DEADLINE, self.events.accept())
            .await
            .expect("no event within the deadline")
            .unwrap();
        let event = read_message(&mut stream, &Limits::default(), DEADLINE)
            .await
            .unwrap();
        assert!(!event.identity.coordinator, "{event:?}");
        assert_eq!(event.identity.port, self.node.port());
        event.body
    }

    async fn expect_output(&self, expected: &str) {
        assert_eq!(self.next_event().await, output(expected));
    }

    async fn expect_message(&self, expected: &str) {
        assert_eq!(self.next_event().await, message(expected));
    }

    async fn expect_unit_info(&self) {
        let event = self.next_event().await;
        assert!(matches!(event, Body::UnitInfo(_)), "{event:?}");
    }
}

fn output(text: &str) -> Body {
    Body::Output {
        output: text.into(),
    }
}

fn message(text: &str) -> Body {
    Body::Message {
        message: text.into(),
    }
}

/// A node booted at once.
async fn node() -> La4Sim {
    La4Sim::builder()
        .boot_time(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn no_reply_delay_truncate_and_garbage_act_on_one_commands_events() {
    let sim = node().await;
    let coordinator = Coordinator::introduced(&sim).await;
    let identity = sim.state().identity().clone();
    let faults = sim.faults();

    // Heartbeats take no fault: it waits for the next command.
    faults.push(Fault::NoReply);
    coordinator.heartbeat().await;
    assert_eq!(faults.queued(), 1);
    // NoReply: the command runs, none of its events is sent; the next command's output is
    // the next event.
    coordinator.cmd(VENDOR_IDIOM).await;
    assert_eq!(sim.state().lights().model_light, 100, "the command ran");
    coordinator.cmd("echo after").await;
    coordinator.expect_output("after\n").await;
    assert_eq!(
        sim.state().stats().events_lost,
        2,
        "its output and its verdict"
    );

    // Delay: the command's events leave that much later (real time), in order.
    let delay = Duration::from_millis(200);
    faults.push(Fault::Delay(delay));
    let sent = tokio::time::Instant::now();
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    coordinator.expect_message(BOARDIO_READY).await;

    // Truncate: each event cut to the first half of its bytes.
    faults.push(Fault::Truncate);
    coordinator.cmd("echo half").await;
    let whole = wire::encode(
        &Message::output(identity.clone(), "half\n"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        coordinator.next_event_bytes().await,
        whole[..whole.len() / 2]
    );

    // Garbage: bytes that are not a message instead of each event.
    faults.push(Fault::Garbage);
    coordinator.cmd(VENDOR_IDIOM).await;
    assert_eq!(coordinator.next_event_bytes().await, GARBAGE);
    assert_eq!(coordinator.next_event_bytes().await, GARBAGE);

    // Every fault was taken; the next command is answered as usual.
    assert_eq!((faults.queued(), faults.applied()), (0, 4));
    coordinator.cmd("echo plain").await;
    coordinator.expect_output("plain\n").await;
    // Spoiled events count as sent (unit_info, then 1 + 2 + 1 + 2 + 1 of the commands); only
    // the NoReply's were lost.
    assert!(eventually(DEADLINE, || sim.state().stats().events_sent == 8).await);
    assert_eq!(sim.state().stats().events_lost, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_output_loses_that_many_outputs_then_the_next_one_arrives() {
    let sim = node().await;
    let coordinator = Coordinator::introduced(&sim).await;
    let drop_output = Fault::Device(La4Fault::DropOutput);
    sim.faults().push_n(drop_output.clone(), 2);
    coordinator.cmd("echo one").await;
    coordinator.cmd("echo two").await;
    coordinator.cmd("echo three").await;
    coordinator.expect_output("three\n").await;
    assert_eq!(sim.faults().queued(), 0);
    assert_eq!(sim.state().stats().events_lost, 2);
    // Only outputs are dropped: a sequence's verdict still comes, after its lost output.
    sim.faults().push(drop_output);
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_message(BOARDIO_READY).await;
    coordinator.cmd("echo four").await;
    coordinator.expect_output("four\n").await;
    assert_eq!(sim.state().stats().events_lost, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn message_before_output_sends_the_verdict_before_the_output() {
    let sim = node().await;
    sim.faults()
        .set(Some(Fault::Device(La4Fault::MessageBeforeOutput)));
    let coordinator = Coordinator::introduced(&sim).await;
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_message(BOARDIO_READY).await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    // Switched off, the order is the usual one again.
    sim.faults().clear();
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    coordinator.expect_message(BOARDIO_READY).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn reports_load_yields_a_ready_for_useq_then_the_run_verdict() {
    let sim = La4Sim::builder()
        .boot_time(Duration::ZERO)
        .reports_load(true)
        .start()
        .await
        .unwrap();
    let coordinator = Coordinator::introduced(&sim).await;
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    coordinator.expect_message(BOARDIO_READY).await;
    coordinator.expect_message(BOARDIO_READY).await;
    // A bad row: uSeq's error, then runSeq's (nothing loaded).
    coordinator
        .cmd(&format!(
            "echo \"MODEL_LIGHT,101\" > {SEQUENCE_FILE} && boardiocli uSeq && boardiocli runSeq"
        ))
        .await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    for _ in 0..2 {
        let event = coordinator.next_event().await;
        assert!(
            matches!(&event, Body::Message { message } if message.starts_with("BOARDIO_ERROR")),
            "{event:?}"
        );
    }
    // A marker proves nothing else came in between.
    coordinator.cmd("echo labwire-sync-0000002a").await;
    coordinator.expect_output("labwire-sync-0000002a\n").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn run_seq_error_reports_the_fault_and_leaves_the_lights_alone() {
    let sim = node().await;
    let coordinator = Coordinator::introduced(&sim).await;
    sim.faults().set(Some(Fault::Device(La4Fault::RunSeqError(
        "LED driver overheated".into(),
    ))));
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    coordinator
        .expect_message("BOARDIO_ERROR: LED driver overheated")
        .await;
    let lights = sim.state().lights();
    assert_eq!(
        (lights.model_light, lights.fans, lights.runs),
        (0, false, 0)
    );
    // Fault cleared: the same command lights up.
    sim.faults().clear();
    coordinator.cmd(VENDOR_IDIOM).await;
    coordinator.expect_output(VENDOR_OUTPUT).await;
    coordinator.expect_message(BOARDIO_READY).await;
    assert_eq!(sim.state().lights().model_light, 100);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_vendor_standalone_idiom_runs_the_sequence_at_once() {
    let sim = node().await;
    let coordinator = Coordinator::introduced(&sim).await;
    coordinator
        .cmd(&format!(
            "echo \"DIGITAL_POLARIZER,1\" > {STANDALONE_FILE} && boardiocli uSeqStandalone && boardiocli runSeq"
        ))
        .await;
    coordinator
        .expect_output(
            "BOARDIO_CLI: Sent: \"uSeqStandalone\" to FIFO file\n\
             BOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n",
        )
        .await;
    coordinator.expect_message(BOARDIO_READY).await;
    coordinator.expect_message(BOARDIO_READY).await;
    let lights = sim.state().lights();
    assert!(lights.polarizer);
    assert_eq!(lights.standalone, lights.last_run);
    sim.shutdown().await;
}

#[tokio::test]
async fn unit_info_is_not_resent_to_a_coordinator_back_on_a_new_port_with_its_id() {
    let sim = node().await;
    let first = Coordinator::introduced(&sim).await;
    // Its next event arriving means its unit_info has been recorded as delivered.
    first.cmd("echo labwire-sync-00000001").await;
    first.expect_output("labwire-sync-00000001\n").await;
    // The same coordinator application, restarted: a new listener, the same id.
    let again = Coordinator::new(sim.local_addr(), &first.identity.id).await;
    again.cmd("echo labwire-sync-00000002").await;
    again.expect_output("labwire-sync-00000002\n").await;
    let coordinators = sim.state().coordinators();
    assert_eq!(coordinators.len(), 2);
    assert!(coordinators.iter().all(|c| c.unit_info_sent));
    assert_eq!(
        sim.state().stats().unit_info_sent_to,
        [first.events.local_addr().unwrap()]
    );
    // Another coordinator does get its own.
    let other = Coordinator::new(sim.local_addr(), "0badc0de").await;
    other.heartbeat().await;
    other.expect_unit_info().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn the_configured_standalone_sequence_runs_at_the_end_of_boot_and_of_each_reboot() {
    let fan = Sequence::new([Row::LedFan { on: true }, Row::ModelLight { power: 25 }]).unwrap();
    let sim = La4Sim::builder()
        .boot_time(Duration::from_secs(3))
        .clock(SimClock::manual())
        .standalone_sequence(fan.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(sim.state().files().standalone, Some(fan.to_csv()));
    assert!(!sim.state().lights().fans, "boardio is still booting");
    sim.clock().advance(Duration::from_secs(3));
    let lights = sim.state().lights();
    assert!(lights.fans);
    assert_eq!(lights.model_light, 25);
    assert_eq!(lights.runs, 1);

    // A coordinator stores another standalone sequence (without running it) and changes the
    // lights.
    let coordinator = Coordinator::introduced(&sim).await;
    coordinator
        .cmd(&format!(
            "echo \"DIGITAL_POLARIZER,1\" > {STANDALONE_FILE} && boardiocli uSeqStandalone"
        ))
        .await;
    coordinator
        .expect_output("BOARDIO_CLI: Sent: \"uSeqStandalone\" to FIFO file\n")
        .await;
    coordinator.expect_message(BOARDIO_READY).await;
    assert!(!sim.state().lights().polarizer, "stored, not run");

    sim.state().reboot();
    assert!(!sim.state().is_booted());
    let lights = sim.state().lights();
    assert!(!lights.fans && !lights.polarizer && lights.model_light == 0);
    coordinator.cmd("boardiocli runSeq").await;
    coordinator
        .expect_output("BOARDIO_CLI: boardio is not running\n")
        .await;

    sim.clock().advance(Duration::from_secs(3));
    assert!(sim.state().is_booted());
    let lights = sim.state().lights();
    assert!(lights.polarizer, "the stored sequence ran");
    assert!(!lights.fans);
    assert_eq!(lights.runs, 2);
    // No event for the boot-time run, and no second unit_info: the marker comes next.
    coordinator.cmd("echo labwire-sync-00000002").await;
    coordinator.expect_output("labwire-sync-00000002\n").await;
    assert_eq!(sim.state().stats().unit_info_sent_to.len(), 1);
    sim.shutdown().await;
}
