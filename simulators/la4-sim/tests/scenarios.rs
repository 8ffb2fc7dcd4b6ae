//! Every scenario in `scenarios/` loads, and changes what a vendor-style coordinator sees; the
//! fault schedule and the initial state act as documented; bad files name the line and field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use la4_sim::{La4Scenario, La4Sim};
use pycom_proto::transport::{read_message, send_message};
use pycom_proto::{Body, Identity, Limits, Message};
use tokio::net::TcpListener;

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(10);

/// The vendor's idiom for the normal sequence.
const VENDOR_IDIOM: &str = r#"echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"#;

/// The commands a vendor-style coordinator sends, after its heartbeat.
const COMMANDS: [&str; 4] = [
    "echo hello",
    VENDOR_IDIOM,
    "cat /home/rigsters/la4_sequence_standalone.csv",
    "boardiocli runSeq",
];

/// What a vendor-style coordinator sees of a node: a heartbeat, then [`COMMANDS`], each event
/// (or undecodable event) as text, in the order they came. On a stopped clock advanced past
/// the boot; no discovery. The end is a last `echo END` sent with the faults cleared: events
/// for one coordinator come in order, so everything before it has come (or is lost) by then.
async fn transcript(scenario: &La4Scenario) -> Vec<String> {
    let sim = La4Sim::builder()
        .time_scale(0.0)
        .scenario(scenario)
        .discovery_targets([])
        .start()
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(3600));
    let events = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = events.local_addr().unwrap().port();
    let me = Identity::new("7756f193", "test", "127.0.0.1", port, "0.1.0", true);
    let send = async |message: Message| {
        // Waiting for the node to close: it has read the request, so they run in order.
        send_message(
            sim.local_addr(),
            &message,
            &Limits::default(),
            DEADLINE,
            true,
        )
        .await
        .unwrap();
    };
    send(Message::heartbeat(me.clone())).await;
    for command in COMMANDS {
        send(Message::cmd(me.clone(), command)).await;
    }
    sim.faults().clear();
    send(Message::cmd(me.clone(), "echo END")).await;
    let mut seen = Vec::new();
    loop {
        let (mut stream, _) = tokio::time::timeout(DEADLINE, events.accept())
            .await
            .expect("the node's events stopped before `END`")
            .unwrap();
        let event = match read_message(&mut stream, &Limits::default(), DEADLINE).await {
            Ok(event) => event,
            Err(e) => {
                seen.push(format!("undecodable: {e}"));
                continue;
            }
        };
        let from = &event.identity;
        let from = format!("{} {} {}", from.id, from.name, from.version);
        match event.body {
            Body::Output { output } if output == "END\n" => break,
            Body::Output { output } => seen.push(format!("{from} output: {output:?}")),
            Body::Message { message } => seen.push(format!("{from} message: {message}")),
            Body::UnitInfo(info) => seen.push(format!("{from} unit_info: {info:?}")),
            other => seen.push(format!("{from} {other:?}")),
        }
    }
    sim.shutdown().await;
    seen
}

fn scenario_files() -> Vec<PathBuf> {
    labwire_simkit::scenario::files_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
}

fn load(name: &str) -> La4Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    La4Scenario::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_scenario_loads_and_changes_what_a_client_sees() {
    let files = scenario_files();
    assert!(files.len() >= 3, "{files:?}");
    let default = transcript(&La4Scenario::default()).await;
    assert_eq!(default.len(), 7, "{default:?}");
    for file in files {
        let scenario = La4Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let seen = transcript(&scenario).await;
        assert_ne!(
            seen,
            default,
            "{} changes nothing a client sees",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typical_node_has_its_own_identity_and_unit_info() {
    let seen = transcript(&load("typical.yaml")).await;
    assert!(
        seen[0].starts_with("0000beef bench-la4 0.14.0 unit_info: "),
        "{seen:?}"
    );
    assert!(seen[0].contains("dc:a6:32:00:be:ef"), "{seen:?}");
    assert!(seen[0].contains("2.1.0"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flaky_schedule_drops_the_first_output_fails_a_run_and_garbles_every_cat() {
    let seen = transcript(&load("flaky.yaml")).await;
    // unit_info; `echo hello`'s output lost (it has no verdict); the idiom's output, then
    // its failed runSeq; `cat` garbled; the second runSeq as usual.
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen[0].contains("unit_info"), "{seen:?}");
    assert!(
        seen[1].contains("output: ") && seen[1].contains("runSeq"),
        "{seen:?}"
    );
    assert!(
        seen[2].ends_with("message: BOARDIO_ERROR: LED driver overheated"),
        "{seen:?}"
    );
    assert!(seen[3].starts_with("undecodable: "), "{seen:?}");
    assert!(
        seen[4].contains("output: ") && seen[4].contains("runSeq"),
        "{seen:?}"
    );
    assert!(seen[5].ends_with("message: BOARDIO_READY"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_variant_reports_the_load_and_has_a_stored_standalone_sequence() {
    let seen = transcript(&load("vendor-variant.yaml")).await;
    assert!(seen[0].contains("scanner-2 0.15.1 unit_info"), "{seen:?}");
    assert!(seen[0].contains("human_scanning"), "{seen:?}");
    let verdicts = seen
        .iter()
        .filter(|s| s.ends_with("message: BOARDIO_READY"))
        .count();
    assert_eq!(
        verdicts, 3,
        "uSeq's, the idiom's runSeq, the last runSeq: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.contains(r#"output: "LED_FAN,1\nMODEL_LIGHT,10\n""#)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_goes_back_to_the_scenarios_device_and_faults() {
    let scenario = load("vendor-variant.yaml");
    let sim = La4Sim::builder()
        .time_scale(0.0)
        .scenario(&scenario)
        .faults([la4_sim::ScheduledFault::next(la4_sim::Fault::NoReply).count(2)])
        .start()
        .await
        .unwrap();
    assert_eq!(sim.faults().queued(), 2);
    sim.clock().advance(Duration::from_secs(10));
    assert!(sim.state().is_booted());
    assert!(sim.state().lights().fans, "the standalone sequence ran");
    sim.state().set_reports_load(false);
    sim.faults().clear();
    sim.reset();
    assert!(!sim.state().is_booted(), "booting again");
    assert!(!sim.state().lights().fans, "power-on lights");
    assert!(sim.state().reports_load());
    assert_eq!(sim.faults().queued(), 2);
    sim.clock().advance(Duration::from_secs(10));
    assert!(sim.state().lights().fans);
    sim.shutdown().await;
}

#[test]
fn bad_scenarios_name_the_line_and_the_field() {
    for (text, expected) in [
        (
            "faults:\n  - { fault: no_replyy }\n",
            "s.yaml:2:14: faults[0].fault: unknown variant `no_replyy`",
        ),
        (
            "faults:\n  - { matching: { comand: X }, fault: close }\n",
            "faults[0].matching: unknown field `comand`",
        ),
        (
            "faults:\n  - { fault: { device: drop_outputt } }\n",
            "unknown variant `drop_outputt`",
        ),
        (
            "faults:\n  - { fault: { device: run_seq_error } }\n",
            "needs the error text",
        ),
        ("timings: { boot: 3 }\n", "timings.boot: "),
        ("unit_info: { mac: x }\n", "unit_info: unknown field `mac`"),
        ("discovery: [nowhere]\n", "discovery[0]: "),
        (
            "sequence:\n  standalone: \"MODEL_LIGHT,500\\n\"\n",
            "s.yaml:2:3: sequence: invalid sequence CSV: row 0: MODEL_LIGHT power",
        ),
        (
            "sequence: { report_load: true }\n",
            "sequence: unknown field `report_load`",
        ),
        ("nodes: 0\n", "nodes: must be at least 1"),
        ("node: 2\n", "s.yaml:1:1: unknown field `node`"),
    ] {
        let error = La4Scenario::from_yaml(text, "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
