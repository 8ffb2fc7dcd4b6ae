//! The Projects Manager's state, sans-IO: a registry of projects and their state machines.
//!
//! Time is passed in as simulated time since the simulator started (a [`Duration`]); nothing
//! here reads a clock or touches a socket, so every transition is deterministic and testable.
//!
//! ```text
//! stopped --start--> starting --(start delay)--> running --stop--> stopping --(stop delay)--> stopped
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pekat_proto::{Command, ProjectState, Response};

/// One project the simulated Projects Manager knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    /// The path as configured (answers and logs use it).
    pub path: String,
    /// The port the project serves on when running.
    pub port: u16,
    /// Its state now.
    pub state: ProjectState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Starting { ready_at: Duration },
    Running,
    Stopping { done_at: Duration },
}

impl Phase {
    fn state(self) -> ProjectState {
        match self {
            Self::Stopped => ProjectState::Stopped,
            Self::Starting { .. } => ProjectState::Starting,
            Self::Running => ProjectState::Running,
            Self::Stopping { .. } => ProjectState::Stopping,
        }
    }

    /// Whether the project's process holds its port.
    fn holds_port(self) -> bool {
        !matches!(self, Self::Stopped)
    }
}

#[derive(Debug, Clone)]
struct Project {
    path: String,
    port: u16,
    phase: Phase,
}

/// What to answer, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer now.
    Now(Response),
    /// Answer once the simulated time reaches the instant (a transition completes then).
    At(Duration, Response),
}

impl Outcome {
    /// The answer.
    pub fn response(&self) -> &Response {
        match self {
            Self::Now(response) | Self::At(_, response) => response,
        }
    }
}

/// The key a path is looked up by. Windows paths are case-insensitive and accept `/` for `\`;
/// a trailing separator names the same folder.
pub(crate) fn key(path: &str) -> String {
    let mut key: String = path
        .chars()
        .map(|c| {
            if c == '/' {
                '\\'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    while key.len() > 1 && key.ends_with('\\') {
        key.pop();
    }
    key
}

/// The simulated Projects Manager.
#[derive(Debug, Clone)]
pub struct Manager {
    projects: BTreeMap<String, Project>,
    occupied_ports: BTreeSet<u16>,
    start_delay: Duration,
    stop_delay: Duration,
    /// How long the target of a `switch` takes to start; `None`: the start delay.
    switch_delay: Option<Duration>,
}

impl Manager {
    /// A manager without projects; starting takes `start_delay`, stopping `stop_delay`
    /// (simulated time).
    pub fn new(start_delay: Duration, stop_delay: Duration) -> Self {
        Self {
            projects: BTreeMap::new(),
            occupied_ports: BTreeSet::new(),
            start_delay,
            stop_delay,
            switch_delay: None,
        }
    }

    /// How long the target of a `switch` takes to start once every other project has
    /// stopped, for switches that begin from now on; `None` (the default): the start delay.
    pub fn set_switch_delay(&mut self, delay: Option<Duration>) {
        self.switch_delay = delay;
    }

    /// The start, stop and switch delays.
    pub fn delays(&self) -> (Duration, Duration, Option<Duration>) {
        (self.start_delay, self.stop_delay, self.switch_delay)
    }

    /// Ports marked as held by another program ([`Manager::occupy_port`]), in order.
    pub fn occupied_ports(&self) -> Vec<u16> {
        self.occupied_ports.iter().copied().collect()
    }

    /// Adds (or replaces) a stopped project.
    pub fn add_project(&mut self, path: impl Into<String>, port: u16) {
        let path = path.into();
        self.projects.insert(
            key(&path),
            Project {
                path,
                port,
                phase: Phase::Stopped,
            },
        );
    }

    /// Removes a project; whether it existed.
    pub fn remove_project(&mut self, path: &str) -> bool {
        self.projects.remove(&key(path)).is_some()
    }

    /// Marks `port` as held by some other program: starting a project on it answers
    /// `error:port`.
    pub fn occupy_port(&mut self, port: u16) {
        self.occupied_ports.insert(port);
    }

    /// Frees a port taken with [`Manager::occupy_port`].
    pub fn release_port(&mut self, port: u16) {
        self.occupied_ports.remove(&port);
    }

    /// Changes the delays for transitions that begin from now on.
    pub fn set_delays(&mut self, start_delay: Duration, stop_delay: Duration) {
        self.start_delay = start_delay;
        self.stop_delay = stop_delay;
    }

    /// Completes every transition due at `now`.
    fn settle(&mut self, now: Duration) {
        for project in self.projects.values_mut() {
            project.phase = match project.phase {
                Phase::Starting { ready_at } if ready_at <= now => Phase::Running,
                Phase::Stopping { done_at } if done_at <= now => Phase::Stopped,
                phase => phase,
            };
        }
    }

    /// The state of the project at `path` at `now`, if there is one.
    pub fn state(&mut self, path: &str, now: Duration) -> Option<ProjectState> {
        self.settle(now);
        self.projects.get(&key(path)).map(|p| p.phase.state())
    }

    /// Every project at `now`.
    pub fn projects(&mut self, now: Duration) -> Vec<ProjectInfo> {
        self.settle(now);
        self.projects
            .values()
            .map(|p| ProjectInfo {
                path: p.path.clone(),
                port: p.port,
                state: p.phase.state(),
            })
            .collect()
    }

    /// Forces the project at `path` into `state` (a transitional state completes after the
    /// configured delay). Whether the project exists.
    pub fn set_state(&mut self, path: &str, state: ProjectState, now: Duration) -> bool {
        let (start_delay, stop_delay) = (self.start_delay, self.stop_delay);
        let Some(project) = self.projects.get_mut(&key(path)) else {
            return false;
        };
        project.phase = match state {
            ProjectState::Stopped => Phase::Stopped,
            ProjectState::Running => Phase::Running,
            ProjectState::Starting => Phase::Starting {
                ready_at: now.saturating_add(start_delay),
            },
            ProjectState::Stopping => Phase::Stopping {
                done_at: now.saturating_add(stop_delay),
            },
        };
        true
    }

    /// Carries out `command` on the project at `path` at simulated time `now`.
    pub fn handle(&mut self, command: Command, path: &str, now: Duration) -> Outcome {
        self.settle(now);
        let key = key(path);
        if !self.projects.contains_key(&key) {
            return Outcome::Now(Response::NotFound);
        }
        match command {
            Command::Status => self.status(&key),
            Command::Start => self.start(&key, now),
            Command::Stop => self.stop(&key, now),
            Command::Switch => self.switch(&key, now),
        }
    }

    fn status(&self, key: &str) -> Outcome {
        match self.projects.get(key) {
            Some(project) => Outcome::Now(Response::Status(project.phase.state())),
            None => Outcome::Now(Response::NotFound),
        }
    }

    /// Whether `port` is held by another program or by a project other than `key`.
    fn port_taken(&self, port: u16, key: &str) -> bool {
        self.occupied_ports.contains(&port)
            || self
                .projects
                .iter()
                .any(|(k, p)| k != key && p.port == port && p.phase.holds_port())
    }

    fn start(&mut self, key: &str, now: Duration) -> Outcome {
        let start_delay = self.start_delay;
        let Some(port) = self.projects.get(key).map(|p| p.port) else {
            return Outcome::Now(Response::NotFound);
        };
        let port_taken = self.port_taken(port, key);
        let Some(project) = self.projects.get_mut(key) else {
            return Outcome::Now(Response::NotFound);
        };
        let ready_at = match project.phase {
            Phase::Running => return Outcome::Now(Response::Done),
            Phase::Starting { ready_at } => return Outcome::At(ready_at, Response::Done),
            _ if port_taken => return Outcome::Now(Response::PortInUse),
            Phase::Stopped => now.saturating_add(start_delay),
            // Starts again once it has finished stopping.
            Phase::Stopping { done_at } => done_at.saturating_add(start_delay),
        };
        project.phase = Phase::Starting { ready_at };
        self.settle(now);
        Outcome::At(ready_at, Response::Done)
    }

    fn stop(&mut self, key: &str, now: Duration) -> Outcome {
        let stop_delay = self.stop_delay;
        let Some(project) = self.projects.get_mut(key) else {
            return Outcome::Now(Response::NotFound);
        };
        let done_at = match project.phase {
            Phase::Stopped => return Outcome::Now(Response::Done),
            Phase::Stopping { done_at } => return Outcome::At(done_at, Response::Done),
            // A start in progress is abandoned.
            Phase::Running | Phase::Starting { .. } => now.saturating_add(stop_delay),
        };
        project.phase = Phase::Stopping { done_at };
        self.settle(now);
        Outcome::At(done_at, Response::Done)
    }

    fn switch(&mut self, key: &str, now: Duration) -> Outcome {
        let start_delay = self.switch_delay.unwrap_or(self.start_delay);
        let stop_delay = self.stop_delay;
        let Some(port) = self.projects.get(key).map(|p| p.port) else {
            return Outcome::Now(Response::NotFound);
        };
        if self.occupied_ports.contains(&port) {
            return Outcome::Now(Response::PortInUse);
        }
        // Stop every other project; the target starts once they all have stopped.
        let mut all_stopped = now;
        for (k, project) in &mut self.projects {
            if k == key {
                continue;
            }
            match project.phase {
                Phase::Running | Phase::Starting { .. } => {
                    project.phase = Phase::Stopping {
                        done_at: now.saturating_add(stop_delay),
                    };
                    all_stopped = all_stopped.max(now.saturating_add(stop_delay));
                }
                Phase::Stopping { done_at } => all_stopped = all_stopped.max(done_at),
                Phase::Stopped => {}
            }
        }
        let Some(project) = self.projects.get_mut(key) else {
            return Outcome::Now(Response::NotFound);
        };
        let ready_at = match project.phase {
            Phase::Running => all_stopped,
            Phase::Starting { ready_at } => ready_at.max(all_stopped),
            Phase::Stopped => all_stopped.saturating_add(start_delay),
            Phase::Stopping { done_at } => done_at.max(all_stopped).saturating_add(start_delay),
        };
        if project.phase != Phase::Running {
            project.phase = Phase::Starting { ready_at };
        }
        self.settle(now);
        if ready_at <= now {
            Outcome::Now(Response::Success)
        } else {
            Outcome::At(ready_at, Response::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r"C:\Projects\A";
    const B: &str = r"C:\Projects\B";
    const C: &str = r"C:\Projects\C";
    const SEC: Duration = Duration::from_secs(1);

    fn manager() -> Manager {
        let mut m = Manager::new(2 * SEC, SEC);
        m.add_project(A, 8000);
        m.add_project(B, 8001);
        m.add_project(C, 8000);
        m
    }

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn start_goes_through_starting_to_running_after_the_delay() {
        let mut m = manager();
        assert_eq!(m.state(A, at(0)), Some(ProjectState::Stopped));
        assert_eq!(
            m.handle(Command::Start, A, at(0)),
            Outcome::At(at(2), Response::Done)
        );
        assert_eq!(m.state(A, at(1)), Some(ProjectState::Starting));
        assert_eq!(m.state(A, at(2)), Some(ProjectState::Running));
        assert_eq!(
            m.handle(Command::Start, A, at(3)),
            Outcome::Now(Response::Done)
        );
    }

    #[test]
    fn stop_goes_through_stopping_to_stopped_after_the_delay() {
        let mut m = manager();
        m.set_state(A, ProjectState::Running, at(0));
        assert_eq!(
            m.handle(Command::Stop, A, at(0)),
            Outcome::At(at(1), Response::Done)
        );
        assert_eq!(
            m.handle(Command::Status, A, at(0)),
            Outcome::Now(Response::Status(ProjectState::Stopping))
        );
        assert_eq!(m.state(A, at(1)), Some(ProjectState::Stopped));
        assert_eq!(
            m.handle(Command::Stop, A, at(1)),
            Outcome::Now(Response::Done)
        );
    }

    #[test]
    fn unknown_paths_are_not_found_and_lookup_ignores_case_and_slashes() {
        let mut m = manager();
        for command in Command::ALL {
            assert_eq!(
                m.handle(command, r"C:\Nope", at(0)),
                Outcome::Now(Response::NotFound)
            );
        }
        assert_eq!(
            m.handle(Command::Status, "", at(0)).response(),
            &Response::NotFound
        );
        assert_eq!(
            m.state("c:/projects/a/", at(0)),
            Some(ProjectState::Stopped)
        );
    }

    #[test]
    fn a_project_whose_port_is_held_by_another_cannot_start() {
        let mut m = manager();
        m.handle(Command::Start, A, at(0));
        assert_eq!(
            m.handle(Command::Start, C, at(0)),
            Outcome::Now(Response::PortInUse)
        );
        assert_eq!(m.state(C, at(5)), Some(ProjectState::Stopped));
        m.handle(Command::Stop, A, at(5));
        // Still stopping: the port is not free yet.
        assert_eq!(
            m.handle(Command::Start, C, at(5)),
            Outcome::Now(Response::PortInUse)
        );
        assert_eq!(
            m.handle(Command::Start, C, at(6)),
            Outcome::At(at(8), Response::Done)
        );
    }

    #[test]
    fn a_port_held_by_another_program_blocks_start_and_switch() {
        let mut m = manager();
        m.occupy_port(8001);
        assert_eq!(
            m.handle(Command::Start, B, at(0)),
            Outcome::Now(Response::PortInUse)
        );
        assert_eq!(
            m.handle(Command::Switch, B, at(0)),
            Outcome::Now(Response::PortInUse)
        );
        m.release_port(8001);
        assert!(matches!(
            m.handle(Command::Start, B, at(0)),
            Outcome::At(..)
        ));
    }

    #[test]
    fn switch_stops_every_other_project_then_starts_the_target() {
        let mut m = manager();
        m.set_state(A, ProjectState::Running, at(0));
        m.set_state(B, ProjectState::Running, at(0));
        // C shares A's port: it starts after A has stopped (1 s) plus its start delay (2 s).
        assert_eq!(
            m.handle(Command::Switch, C, at(0)),
            Outcome::At(at(3), Response::Success)
        );
        assert_eq!(m.state(A, at(0)), Some(ProjectState::Stopping));
        assert_eq!(m.state(C, at(2)), Some(ProjectState::Starting));
        assert_eq!(m.state(C, at(3)), Some(ProjectState::Running));
        assert_eq!(m.state(A, at(3)), Some(ProjectState::Stopped));
        assert_eq!(m.state(B, at(3)), Some(ProjectState::Stopped));
    }

    #[test]
    fn a_switch_delay_replaces_the_start_delay_for_the_switched_project_only() {
        let mut m = manager();
        m.set_switch_delay(Some(5 * SEC));
        m.set_state(A, ProjectState::Running, at(0));
        // A stops (1 s), then B starts in the switch delay (5 s).
        assert_eq!(
            m.handle(Command::Switch, B, at(0)),
            Outcome::At(at(6), Response::Success)
        );
        assert_eq!(
            m.handle(Command::Start, C, at(6)),
            Outcome::At(at(8), Response::Done)
        );
        assert_eq!(m.delays(), (2 * SEC, SEC, Some(5 * SEC)));
    }

    #[test]
    fn switch_to_the_only_running_project_succeeds_at_once() {
        let mut m = manager();
        m.set_state(B, ProjectState::Running, at(0));
        assert_eq!(
            m.handle(Command::Switch, B, at(0)),
            Outcome::Now(Response::Success)
        );
        assert_eq!(m.state(B, at(0)), Some(ProjectState::Running));
    }

    #[test]
    fn start_while_stopping_runs_after_the_stop_completes() {
        let mut m = manager();
        m.set_state(A, ProjectState::Running, at(0));
        m.handle(Command::Stop, A, at(0));
        assert_eq!(
            m.handle(Command::Start, A, at(0)),
            Outcome::At(at(3), Response::Done)
        );
        assert_eq!(m.state(A, at(3)), Some(ProjectState::Running));
    }

    #[test]
    fn zero_delays_complete_transitions_at_once() {
        let mut m = Manager::new(Duration::ZERO, Duration::ZERO);
        m.add_project(A, 1);
        assert_eq!(
            m.handle(Command::Start, A, at(0)),
            Outcome::At(at(0), Response::Done)
        );
        assert_eq!(m.state(A, at(0)), Some(ProjectState::Running));
    }
}
