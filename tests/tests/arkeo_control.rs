//! Interop: a standard-library Python test that starts the `arkeo-sim` program with a control
//! channel, talks ARKEO to it, and injects and clears faults over HTTP/JSON
//! (`tests/python/control_arkeo.py`, the guide `docs/simulators-in-ci.md` in a test).

use labwire_tests::TEST_DEADLINE;
use labwire_tests::python::run_script;

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    let Some(lines) = run_script("control_arkeo.py", "arkeo-sim", &[], TEST_DEADLINE * 3).await
    else {
        return;
    };
    assert_eq!(
        lines,
        [
            "started",
            "routines 11",
            "pushed 200 1",
            "fault reached the client True",
            "no reply",
            "cleared 200 [] []",
            "normal again OK 4",
            "connections 200 True True",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving OK",
            "state 200 None",
            "advanced 200 2000ms",
            "exit 0",
        ]
    );
}
