//! Interop: a standard-library Python test that starts the `pekat-sim` program with a control
//! channel, talks PEKAT to it as the vendor's example does, injects and clears faults over
//! HTTP/JSON and resets the device (`tests/python/control_pekat.py`, the guide
//! `docs/simulators-in-ci.md` in a test).

use labwire_tests::TEST_DEADLINE;
use labwire_tests::python::run_script;

#[tokio::test]
async fn python_drives_the_binary_through_its_control_channel() {
    let Some(lines) = run_script("control_pekat.py", "pekat-sim", &[], TEST_DEADLINE * 3).await
    else {
        return;
    };
    assert_eq!(
        lines,
        [
            "started",
            "status stopped",
            "pushed 200 1",
            "fault reached the client license expired",
            "no reply",
            "cleared 200 [] []",
            "normal again stopped",
            "start done",
            "state 200 running",
            "reset 200 stopped",
            "bad fault 400 True",
            "bad json 400 True",
            "wrong method 405",
            "still serving stopped",
            "exit 0",
        ]
    );
}
