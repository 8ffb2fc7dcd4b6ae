//! The `send` example, run as a real process against a server on loopback.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use comet_socket::server::{Handlers, ServerHandle, async_handler_fn, serve};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

/// The example binary: `cargo test` builds examples next to the test binaries' directory.
fn send_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir
        .join("examples")
        .join(format!("send{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        // Only this test target was built (`cargo test --test example_send`): build the example.
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "comet-socket",
                "--features",
                "client",
                "--example",
                "send",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert!(path.exists(), "example binary at {}", path.display());
    path
}

async fn run(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(send_example());
    command.args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the example finished")
        .unwrap()
}

async fn server(never: Arc<Notify>) -> ServerHandle {
    let handlers =
        Handlers::new().handler(async_handler_fn(move |action: String, value: Value| {
            let never = never.clone();
            async move {
                match action.as_str() {
                    "ECHO" => Ok(value),
                    "FAIL" => Ok(json!("Error: SMU not connected")),
                    "HANG" => {
                        never.notified().await;
                        Ok(Value::Null)
                    }
                    _ => Ok(Value::Null),
                }
            }
        }));
    serve("127.0.0.1:0".parse().unwrap(), handlers)
        .await
        .unwrap()
}

#[tokio::test]
async fn send_prints_the_result_as_json_and_exits_zero() {
    let handle = server(Arc::default()).await;
    let addr = handle.local_addr().to_string();
    let out = run(&[&addr, "ECHO", r#"{"a": [1, 2.5]}"#]).await;
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json!({"a": [1, 2.5]}));
    let out = run(&[&addr, "UNKNOWN", "1"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
    handle.shutdown().await;
}

#[tokio::test]
async fn send_reports_a_device_refusal_with_exit_code_1() {
    let handle = server(Arc::default()).await;
    let addr = handle.local_addr().to_string();
    let out = run(&[&addr, "FAIL", "1"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SMU not connected"));
    assert!(out.stdout.is_empty());
    handle.shutdown().await;
}

#[tokio::test]
async fn send_refuses_falsy_values_as_bad_usage_with_exit_code_2() {
    let handle = server(Arc::default()).await;
    let addr = handle.local_addr().to_string();
    for value in ["{}", "[]", "null", "false", "0", "\"\""] {
        let out = run(&[&addr, "ECHO", value]).await;
        assert_eq!(out.status.code(), Some(2), "{value}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
        assert!(out.stdout.is_empty());
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn send_reports_a_refused_connection_with_exit_code_3() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let out = run(&[&addr, "ECHO", "1"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[tokio::test]
async fn send_gives_up_after_its_timeout_with_exit_code_4() {
    let handle = server(Arc::default()).await;
    let addr = handle.local_addr().to_string();
    let out = run(&["--timeout", "0.3", &addr, "HANG", "1"]).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer"));
    handle.shutdown().await;
}

#[tokio::test]
async fn send_reports_an_invalid_answer_with_exit_code_5() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let device = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // A header length past any limit, then the close.
        let _ = stream.write_all(b"\xff\xffnot a COMET frame").await;
    });
    let out = run(&[&addr, "ECHO", "1"]).await;
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid answer"));
    device.await.unwrap();
}

#[tokio::test]
async fn send_rejects_bad_usage_with_exit_code_2() {
    for args in [
        &["127.0.0.1:1", "ECHO"][..],
        &["127.0.0.1:1", "ECHO", "{not json"],
    ] {
        let out = run(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
}
