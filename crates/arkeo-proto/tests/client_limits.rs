//! Client edge cases against an in-process `arkeo-sim` on 127.0.0.1.
#![cfg(feature = "client")]

use std::time::Duration;

use arkeo_proto::{Client, RoutineState};
use arkeo_sim::ArkeoSim;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn waiting_without_a_time_limit_is_allowed() {
    let sim = ArkeoSim::builder().speed(50.0).start().await.unwrap();
    let arkeo = Client::connect(sim.local_addr()).await.unwrap();
    arkeo.start_routine("JV").await.unwrap();
    // `Duration::MAX` means "no limit": it must not overflow the deadline.
    let status = timeout(
        DEADLINE,
        arkeo.wait_until(RoutineState::Ready, Duration::MAX),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.routine_status, RoutineState::Ready);
    sim.shutdown().await;
}
