//! Interop: a standard-library Python test that starts the `la4-sim` program with a control
//! channel, talks pycom to it like the vendor's coordinator, and injects and clears faults over
//! HTTP/JSON (`tests/python/control_la4.py`, the guide `docs/simulators-in-ci.md` in a test).

use labwire_tests::TEST_DEADLINE;
use labwire_tests::python::run_script;

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    let Some(lines) = run_script("control_la4.py", "la4-sim", &[], TEST_DEADLINE * 3).await else {
        return;
    };
    assert_eq!(
        lines,
        [
            "started",
            "unit_info unit_info light_array",
            "normal 'hello\\n'",
            "pushed 200 1",
            "fault reached the client output BOARDIO_ERROR: LED driver overheated",
            "pushed 200 1",
            "output dropped message BOARDIO_READY",
            "cleared 200 [] []",
            "normal again output BOARDIO_READY",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving 'still\\n'",
            "state 200 py-node True 1",
            "reset 200 False 0",
            "exit 0",
        ]
    );
}
