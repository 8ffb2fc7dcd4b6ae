//! One device platform: the four simulators through the same kit. The same fault, pushed
//! through the same `Faults` vocabulary, has the same effect on each protocol's client; and a
//! time scale means the same in each simulator.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use labwire_simkit::{Fault, Faults, SimClock};
use labwire_tests::{TEST_DEADLINE, eventually};

/// What a client saw of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The answer it expected.
    Answered,
    /// Nothing within its deadline.
    TimedOut,
    /// An error, or an answer that is not the expected one.
    Failed,
}

/// The transport faults every simulator takes, whatever its own faults are.
#[derive(Debug, Clone, Copy)]
enum Shared {
    NoReply,
    Delay(Duration),
    Truncate,
}

fn push<P: Clone, M: Clone>(faults: &Faults<P, M>, fault: Shared) {
    faults.push(match fault {
        Shared::NoReply => Fault::NoReply,
        Shared::Delay(delay) => Fault::Delay(delay),
        Shared::Truncate => Fault::Truncate,
    });
}

type Ask<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// One running simulator and a client of it, seen through what the kit shares.
trait UnderTest {
    fn name(&self) -> &'static str;
    fn push(&self, fault: Shared);
    fn applied(&self) -> u64;
    fn clock(&self) -> &SimClock;
    /// One exchange, answered within `timeout` or not.
    fn ask(&self, timeout: Duration) -> Ask<'_>;
    /// Whether a cut answer is seen as a failure at once. pycom answers with events on
    /// connections of their own: a cut event is rejected by the coordinator's listener like any
    /// other malformed connection, so the command only learns of it at its deadline.
    fn cut_answer_fails_at_once(&self) -> bool {
        true
    }
}

struct Arkeo {
    sim: arkeo_sim::ArkeoSim,
    client: arkeo_proto::Client,
}

impl UnderTest for Arkeo {
    fn name(&self) -> &'static str {
        "arkeo"
    }
    fn push(&self, fault: Shared) {
        push(self.sim.faults(), fault);
    }
    fn applied(&self) -> u64 {
        self.sim.faults().applied()
    }
    fn clock(&self) -> &SimClock {
        self.sim.clock()
    }
    fn ask(&self, timeout: Duration) -> Ask<'_> {
        Box::pin(async move {
            let request = arkeo_proto::Request::new(arkeo_proto::Target::Main, "GetActiveRoutine");
            match self.client.call_with_timeout(request, timeout).await {
                Ok(_) => Outcome::Answered,
                Err(error) if error.is_timeout() => Outcome::TimedOut,
                Err(_) => Outcome::Failed,
            }
        })
    }
}

const PEKAT_PROJECT: &str = r"C:\projects\one";

struct Pekat {
    sim: pekat_sim::PekatSim,
}

impl UnderTest for Pekat {
    fn name(&self) -> &'static str {
        "pekat"
    }
    fn push(&self, fault: Shared) {
        push(self.sim.faults(), fault);
    }
    fn applied(&self) -> u64 {
        self.sim.faults().applied()
    }
    fn clock(&self) -> &SimClock {
        self.sim.clock()
    }
    fn ask(&self, timeout: Duration) -> Ask<'_> {
        Box::pin(async move {
            let client = pekat_proto::Client::builder(self.sim.local_addr().to_string())
                .call_timeout(timeout)
                .build();
            match client.status(PEKAT_PROJECT).await {
                Ok(pekat_proto::ProjectState::Stopped) => Outcome::Answered,
                Ok(_) => Outcome::Failed,
                Err(error) if error.is_timeout() => Outcome::TimedOut,
                Err(_) => Outcome::Failed,
            }
        })
    }
}

struct Comet {
    sim: comet_sim::CometSim,
}

impl UnderTest for Comet {
    fn name(&self) -> &'static str {
        "comet"
    }
    fn push(&self, fault: Shared) {
        push(self.sim.faults(), fault);
    }
    fn applied(&self) -> u64 {
        self.sim.faults().applied()
    }
    fn clock(&self) -> &SimClock {
        self.sim.clock()
    }
    fn ask(&self, timeout: Duration) -> Ask<'_> {
        Box::pin(async move {
            let client = comet_socket::Client::builder(self.sim.local_addr()).build();
            let value = serde_json::json!({"probe": 1});
            let request = comet_socket::Request::new("ECHO", value.clone());
            match client.call_with_timeout(request, timeout).await {
                Ok(answer) if answer.result == value => Outcome::Answered,
                Ok(_) => Outcome::Failed,
                Err(error) if error.is_timeout() => Outcome::TimedOut,
                Err(_) => Outcome::Failed,
            }
        })
    }
}

struct La4 {
    sim: la4_sim::La4Sim,
    coordinator: pycom_proto::Coordinator,
}

impl UnderTest for La4 {
    fn name(&self) -> &'static str {
        "la4"
    }
    fn push(&self, fault: Shared) {
        push(self.sim.faults(), fault);
    }
    fn applied(&self) -> u64 {
        self.sim.faults().applied()
    }
    fn clock(&self) -> &SimClock {
        self.sim.clock()
    }
    fn ask(&self, timeout: Duration) -> Ask<'_> {
        Box::pin(async move {
            let node = self.sim.local_addr();
            match self
                .coordinator
                .call_with_timeout(node, "echo probe", timeout)
                .await
            {
                Ok(answer) if answer.output == "probe\n" => Outcome::Answered,
                Ok(_) => Outcome::Failed,
                Err(error) if error.is_timeout() => Outcome::TimedOut,
                Err(_) => Outcome::Failed,
            }
        })
    }
    fn cut_answer_fails_at_once(&self) -> bool {
        false
    }
}

/// Every simulator on loopback with the same host settings, and a client of each.
async fn all(time_scale: f64) -> Vec<Box<dyn UnderTest>> {
    let arkeo = arkeo_sim::ArkeoSim::builder()
        .time_scale(time_scale)
        .start()
        .await
        .unwrap();
    let client = arkeo_proto::Client::builder(arkeo.local_addr()).build();
    let pekat = pekat_sim::PekatSim::builder()
        .time_scale(time_scale)
        .project(PEKAT_PROJECT, 8100)
        .start()
        .await
        .unwrap();
    let comet = comet_sim::CometSim::builder()
        .time_scale(time_scale)
        .start()
        .await
        .unwrap();
    let la4 = la4_sim::La4Sim::builder()
        .time_scale(time_scale)
        .start()
        .await
        .unwrap();
    let me = pycom_proto::Identity::new("c0ffee00", "tests", "127.0.0.1", 0, "0.1.0", true);
    let coordinator = pycom_proto::Coordinator::builder("127.0.0.1:0".parse().unwrap(), me)
        .start()
        .await
        .unwrap();
    vec![
        Box::new(Arkeo { sim: arkeo, client }),
        Box::new(Pekat { sim: pekat }),
        Box::new(Comet { sim: comet }),
        Box::new(La4 {
            sim: la4,
            coordinator,
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fault_has_the_same_effect_on_every_simulator() {
    const SHORT: Duration = Duration::from_millis(300);
    const DELAY: Duration = Duration::from_millis(250);
    for sim in all(1.0).await {
        let name = sim.name();
        assert_eq!(sim.ask(TEST_DEADLINE).await, Outcome::Answered, "{name}");

        // One unanswered request: the client's deadline passes; the next exchange is answered.
        sim.push(Shared::NoReply);
        assert_eq!(sim.ask(SHORT).await, Outcome::TimedOut, "{name}: no reply");
        assert_eq!(sim.ask(TEST_DEADLINE).await, Outcome::Answered, "{name}");

        // A delay: the answer comes, that much later.
        sim.push(Shared::Delay(DELAY));
        let started = Instant::now();
        assert_eq!(
            sim.ask(TEST_DEADLINE).await,
            Outcome::Answered,
            "{name}: delay"
        );
        assert!(
            started.elapsed() >= DELAY,
            "{name}: {:?}",
            started.elapsed()
        );

        // A close mid-answer: the exchange fails (at once where the answer travels on the
        // request's connection); the next one is answered.
        sim.push(Shared::Truncate);
        let started = Instant::now();
        if sim.cut_answer_fails_at_once() {
            let outcome = sim.ask(TEST_DEADLINE).await;
            assert_eq!(outcome, Outcome::Failed, "{name}: truncate");
            assert!(started.elapsed() < TEST_DEADLINE / 2, "{name}");
        } else {
            assert_eq!(sim.ask(SHORT).await, Outcome::TimedOut, "{name}: truncate");
        }
        assert_eq!(sim.ask(TEST_DEADLINE).await, Outcome::Answered, "{name}");

        assert_eq!(sim.applied(), 3, "{name}: every fault applied once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_scale_means_the_same_in_every_simulator() {
    for sim in all(0.0).await {
        // Stopped: only an advance by hand moves it.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(sim.clock().now(), Duration::ZERO, "{}", sim.name());
        sim.clock().advance(Duration::from_secs(5));
        assert_eq!(sim.clock().now(), Duration::from_secs(5), "{}", sim.name());
    }
    for sim in all(1000.0).await {
        // A thousand times real time: 10 simulated seconds within a few real milliseconds.
        let clock = sim.clock().clone();
        assert!(
            eventually(TEST_DEADLINE, || clock.now() >= Duration::from_secs(10)).await,
            "{}",
            sim.name()
        );
    }
}
