//! Interop: a standard-library Python test that starts the `comet-sim` program with a scenario
//! and a control channel, talks COMET's socket protocol to it as COMET's own client does, and
//! injects and clears faults over HTTP/JSON (`tests/python/control_comet.py`, the guide
//! `docs/simulators-in-ci.md` in a test).

use labwire_tests::TEST_DEADLINE;
use labwire_tests::python::{run_script, workspace_path};

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    let Some(lines) = run_script(
        "control_comet.py",
        "comet-sim",
        &[workspace_path(
            "simulators/comet-sim/scenarios/typical.yaml",
        )],
        TEST_DEADLINE * 3,
    )
    .await
    else {
        return;
    };
    assert_eq!(
        lines,
        [
            "started",
            "echo True",
            "status measuring",
            "telegram Status: measuring IV on W42-07",
            "pushed 200 1",
            "echo unaffected 1",
            "fault reached the client Error: SMU not connected",
            "no reply",
            "cleared 200 [] []",
            "normal again measuring",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving ok",
            "state 200 measuring IV on W42-07 ECHO",
            "advanced 200 2000ms",
            "reset 200 0",
            "exit 0",
        ]
    );
}
