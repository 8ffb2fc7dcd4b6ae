//! `labwire replay` on a hand-written ARKEO recording: the first stdout line names the
//! address, a recorded request gets its recorded answer (with the client's request id), an
//! unknown one gets an error object and a line on stderr; `--pace` keeps the recorded delay.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(30);

fn frame(payload: &str) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload.as_bytes());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn read_frame(stream: &mut TcpStream) -> serde_json::Value {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).await.unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn replay_serves_a_recording_and_reports_unknown_requests() {
    let request = r#"{"target":"MAIN","command":"GetActiveRoutine","request_id":1}"#;
    let answer = r#"{"status":"OK","data":{"routine":null},"request_id":1}"#;
    let recording = format!(
        "{}\n{}\n{}\n",
        r#"{"labwire_recording":1,"protocol":"arkeo"}"#,
        serde_json::json!({"t": 0.1, "conn": 1, "dir": "to_device", "bytes": hex(&frame(request)),
            "decoded": serde_json::from_str::<serde_json::Value>(request).unwrap()}),
        serde_json::json!({"t": 0.2, "conn": 1, "dir": "to_client", "bytes": hex(&frame(answer)),
            "decoded": serde_json::from_str::<serde_json::Value>(answer).unwrap()}),
    );
    let path =
        std::env::temp_dir().join(format!("labwire-cli-replay-{}.jsonl", std::process::id()));
    std::fs::write(&path, recording).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_labwire"))
        .arg("replay")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("labwire started");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, stdout.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("labwire replay running");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_owned();

    let exchange = async {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(&frame(
                r#"{"target":"MAIN","command":"GetActiveRoutine","request_id":42}"#,
            ))
            .await
            .unwrap();
        let known = read_frame(&mut stream).await;
        stream
            .write_all(&frame(
                r#"{"target":"LED","command":"Blink","request_id":43}"#,
            ))
            .await
            .unwrap();
        let unknown = read_frame(&mut stream).await;
        (known, unknown)
    };
    let (known, unknown) = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("exchange in time");
    assert_eq!(
        known,
        serde_json::json!({"status":"OK","data":{"routine":null},"request_id":42})
    );
    assert_eq!(unknown["request_id"], 43);
    assert_eq!(unknown["error"]["code"], 104);

    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let report = tokio::time::timeout(DEADLINE, stderr.next_line())
        .await
        .expect("a report in time")
        .unwrap()
        .expect("a stderr line");
    assert!(report.contains("not in the recording"), "{report}");
    child.kill().await.unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn replay_pace_keeps_the_recorded_delay() {
    let request = r#"{"target":"MAIN","command":"GetActiveRoutine","request_id":1}"#;
    let answer = r#"{"status":"OK","data":{"routine":null},"request_id":1}"#;
    // Answered 400 ms after the request.
    let recording = format!(
        "{}\n{}\n{}\n",
        r#"{"labwire_recording":1,"protocol":"arkeo"}"#,
        serde_json::json!({"t": 1.0, "conn": 1, "dir": "to_device", "bytes": hex(&frame(request)),
            "decoded": {}}),
        serde_json::json!({"t": 1.4, "conn": 1, "dir": "to_client", "bytes": hex(&frame(answer)),
            "decoded": {}}),
    );
    let path = std::env::temp_dir().join(format!(
        "labwire-cli-replay-pace-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, recording).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labwire"))
        .arg("replay")
        .arg(&path)
        .arg("--pace")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("labwire started");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, stdout.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("labwire replay --pace running");
    let addr = first.strip_prefix("listening on ").unwrap().to_owned();
    let exchange = async {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let start = Instant::now();
        stream.write_all(&frame(request)).await.unwrap();
        let answer = read_frame(&mut stream).await;
        (start.elapsed(), answer)
    };
    let (took, answer) = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("exchange in time");
    assert_eq!(answer["request_id"], 1);
    assert!(
        took >= Duration::from_millis(400),
        "answered after {took:?}"
    );
    child.kill().await.unwrap();
    let _ = std::fs::remove_file(&path);
}
