//! The host settings every simulator shares: where it listens, how many connections it serves,
//! how much memory their partial frames may hold, how long an idle one stays, and how fast its
//! simulated time runs.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use labwire_net::service::Exchange;
use labwire_net::{
    DEFAULT_BACKLOG, DEFAULT_FRAME_BUDGET, DEFAULT_MAX_CONNECTIONS, Server, ServerConfig,
};

use crate::SimClock;

/// Where and how a simulator listens, and its clock. Public fields; every simulator builder
/// has the same setters for them ([`host_setters!`](crate::host_setters)).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Address to listen on; port 0 picks a free one. Builders default to `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Listen backlog ([`DEFAULT_BACKLOG`]).
    pub backlog: u32,
    /// Connections served at once ([`DEFAULT_MAX_CONNECTIONS`]); a client that connects while
    /// that many are live is refused at once (accepted and closed, with a rate-limited warning).
    pub max_connections: usize,
    /// Bytes of partial frames all connections may hold together beyond a small free allowance
    /// each ([`DEFAULT_FRAME_BUDGET`], 64 MiB; see [`labwire_net::budget`]). A frame larger than
    /// the whole budget ends its connection.
    pub frame_budget: usize,
    /// How long a connection with no request begun stays open, instead of the simulator's own
    /// default (`None`, the default: the simulator's own — arkeo-sim 5 min, pekat-sim 60 s,
    /// comet-sim 30 s, la4-sim 5 s; [`Duration::MAX`]: never closed for idling). See
    /// [`HostConfig::idle_timeout_or`].
    pub idle_timeout: Option<Duration>,
    /// Simulated time runs this many times faster than real time; `0.0` stops it, so that only
    /// [`SimClock::advance`] moves it. The same meaning in every simulator.
    pub time_scale: f64,
    /// A clock to use instead of one made from `time_scale` (e.g. one shared by several
    /// simulators, or [`SimClock::manual`]).
    pub clock: Option<SimClock>,
    /// Keep a list of the connections being served, their addresses and since when, for the
    /// control channel's `GET /connections` and [`SimHandle::peers`](crate::SimHandle::peers)
    /// (default `false`; the binaries turn it on with `--control`). It costs memory on every
    /// connection ([`ServerConfig::track_peers`]).
    pub track_connections: bool,
}

impl HostConfig {
    /// Listens on `listen`, with the default backlog, connection limit and real time.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            backlog: DEFAULT_BACKLOG,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            frame_budget: DEFAULT_FRAME_BUDGET,
            idle_timeout: None,
            time_scale: 1.0,
            clock: None,
            track_connections: false,
        }
    }

    /// Loopback, any free port: what tests want.
    pub fn loopback() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The simulator's clock: the one given, or one running at `time_scale`
    /// ([`SimClock::scaled`]: `0.0` stops it).
    pub fn clock(&self) -> SimClock {
        self.clock
            .clone()
            .unwrap_or_else(|| SimClock::scaled(self.time_scale))
    }

    /// The listener settings.
    pub fn server_config(&self) -> ServerConfig {
        let mut server = ServerConfig::new(self.listen);
        server.backlog = self.backlog;
        server.max_connections = self.max_connections;
        server.frame_budget = self.frame_budget;
        server.track_peers = self.track_connections;
        server
    }

    /// The idle limit to serve with: [`HostConfig::idle_timeout`] when set, else `own` (the
    /// simulator's default). `None`: never closed for idling ([`Duration::MAX`] given here).
    pub fn idle_timeout_or(&self, own: Option<Duration>) -> Option<Duration> {
        match self.idle_timeout {
            Some(Duration::MAX) => None,
            Some(idle) => Some(idle),
            None => own,
        }
    }

    /// `exchange` (the simulator's own settings) with the idle limit of
    /// [`HostConfig::idle_timeout_or`].
    pub fn exchange(&self, exchange: Exchange) -> Exchange {
        Exchange {
            idle_timeout: self.idle_timeout_or(exchange.idle_timeout),
            ..exchange
        }
    }

    /// Binds the listener.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(&self) -> io::Result<Server> {
        Server::bind(self.server_config()).await
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        Self::loopback()
    }
}

/// Writes the shared host setters (`listen`, `backlog`, `max_connections`, `frame_budget`,
/// `idle_timeout`, `time_scale`, its alias `speed`, `clock`, `track_connections`, `host`) into a
/// simulator builder that has a `host: HostConfig` field, so that every simulator's builder
/// offers them, the same, from one definition.
#[macro_export]
macro_rules! host_setters {
    () => {
        /// Address to listen on (`127.0.0.1:0` by default: loopback, any free port).
        #[must_use]
        pub fn listen(mut self, addr: ::std::net::SocketAddr) -> Self {
            self.host.listen = addr;
            self
        }

        /// Listen backlog.
        #[must_use]
        pub fn backlog(mut self, backlog: u32) -> Self {
            self.host.backlog = backlog;
            self
        }

        /// Connections served at once (1024 by default); a client that connects while that
        /// many are live is refused at once (accepted and closed, with a rate-limited warning).
        #[must_use]
        pub fn max_connections(mut self, max: usize) -> Self {
            self.host.max_connections = max;
            self
        }

        /// Bytes of partial frames all connections may hold together (64 MiB by default; see
        /// `labwire_net::budget`). A frame larger than the whole budget ends its connection.
        #[must_use]
        pub fn frame_budget(mut self, bytes: usize) -> Self {
            self.host.frame_budget = bytes;
            self
        }

        /// Closes a connection with no request begun for this long, instead of the
        /// simulator's own default (see `HostConfig::idle_timeout`). Takes a `Duration`, or an
        /// `Option<Duration>` where `None` means never.
        #[must_use]
        pub fn idle_timeout(
            mut self,
            timeout: impl ::std::convert::Into<::std::option::Option<::std::time::Duration>>,
        ) -> Self {
            self.host.idle_timeout =
                ::std::option::Option::Some(timeout.into().unwrap_or(::std::time::Duration::MAX));
            self
        }

        /// Runs simulated time `scale` times faster than real time (1.0 by default; 0.0 stops
        /// it, so that only the clock's `advance` moves it). Replaces a clock set with `clock`.
        #[must_use]
        pub fn time_scale(mut self, scale: f64) -> Self {
            self.host.time_scale = scale;
            self.host.clock = None;
            self
        }

        /// The same as `time_scale`.
        #[must_use]
        pub fn speed(self, speed: f64) -> Self {
            self.time_scale(speed)
        }

        /// Uses `clock` (e.g. `SimClock::manual()` for tests that step time themselves, or one
        /// clock shared by several simulators). Overrides `time_scale`.
        #[must_use]
        pub fn clock(mut self, clock: $crate::SimClock) -> Self {
            self.host.time_scale = clock.speed();
            self.host.clock = Some(clock);
            self
        }

        /// Keeps a list of the connections being served (off by default; every connection pays
        /// for it in memory), listed by the handle's `peers()` and the control channel's
        /// `GET /connections`.
        #[must_use]
        pub fn track_connections(mut self, on: bool) -> Self {
            self.host.track_connections = on;
            self
        }

        /// Replaces every host setting at once.
        #[must_use]
        pub fn host(mut self, host: $crate::HostConfig) -> Self {
            self.host = host;
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Builder {
        host: HostConfig,
    }

    // A private builder: the generated setters are public items nobody outside can reach.
    #[allow(unreachable_pub, dead_code)]
    impl Builder {
        crate::host_setters!();
    }

    #[tokio::test(start_paused = true)]
    async fn a_time_scale_of_zero_stops_the_clock_and_one_runs_it_in_real_time() {
        let stopped = Builder {
            host: HostConfig::loopback(),
        }
        .time_scale(0.0)
        .host
        .clock();
        let real = Builder {
            host: HostConfig::loopback(),
        }
        .speed(1.0)
        .host
        .clock();
        let fast = HostConfig {
            time_scale: 10.0,
            ..HostConfig::loopback()
        }
        .clock();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(stopped.now(), Duration::ZERO);
        assert_eq!(real.now(), Duration::from_secs(2));
        assert_eq!(fast.now(), Duration::from_secs(20));
    }

    #[test]
    fn setters_fill_the_host_config() {
        let clock = SimClock::manual();
        let built = Builder {
            host: HostConfig::loopback(),
        }
        .listen("127.0.0.2:7".parse().unwrap())
        .backlog(7)
        .max_connections(3)
        .track_connections(true)
        .clock(clock.clone());
        assert_eq!(built.host.listen.to_string(), "127.0.0.2:7");
        assert_eq!(built.host.backlog, 7);
        assert_eq!(built.host.max_connections, 3);
        assert!(built.host.clock().is_manual());
        assert_eq!(built.host.server_config().backlog, 7);
        assert!(built.host.server_config().track_peers);
        assert!(!HostConfig::loopback().server_config().track_peers);
    }

    #[test]
    fn the_frame_budget_reaches_the_listener() {
        let built = Builder {
            host: HostConfig::loopback(),
        }
        .frame_budget(1024);
        assert_eq!(built.host.server_config().frame_budget, 1024);
        assert_eq!(
            HostConfig::loopback().server_config().frame_budget,
            labwire_net::DEFAULT_FRAME_BUDGET
        );
    }

    #[test]
    fn an_idle_timeout_overrides_the_simulators_own_and_none_means_never() {
        let own = Exchange {
            idle_timeout: Some(Duration::from_secs(30)),
            ..Exchange::new()
        };
        // Not set: the simulator's own default stays.
        assert_eq!(HostConfig::loopback().exchange(own), own);
        let builder = || Builder {
            host: HostConfig::loopback(),
        };
        let one = builder().idle_timeout(Duration::from_secs(1)).host;
        assert_eq!(one.exchange(own).idle_timeout, Some(Duration::from_secs(1)));
        assert_eq!(one.exchange(own).read_timeout, own.read_timeout);
        let some = builder().idle_timeout(Some(Duration::from_secs(2))).host;
        assert_eq!(some.idle_timeout_or(None), Some(Duration::from_secs(2)));
        let never = builder().idle_timeout(None).host;
        assert_eq!(never.idle_timeout, Some(Duration::MAX));
        assert_eq!(never.exchange(own).idle_timeout, None);
    }
}
