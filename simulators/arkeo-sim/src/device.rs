//! The simulated ARKEO application: a sans-IO state machine.
//!
//! [`Device::handle`] takes one request and the current simulated time and returns the
//! response. It never touches a socket or reads a clock, so every behaviour can be tested by
//! passing times in. [`Device::handle_timed`] also says how long the hardware works before the
//! answer goes out (the blocking custom commands); the server waits that long on the
//! simulator's clock.

use std::collections::BTreeMap;
use std::time::Duration;

use arkeo_proto::{Request, Response, RoutineState, Target, codes};
use serde_json::{Map, Value, json};

use crate::data;

/// Number of channels on every LED board.
pub const LED_CHANNELS: usize = 12;
/// Number of relays on the MUX (the vendor's `Multiplexer_v1.1` has 4).
pub const MUX_RELAYS: usize = 4;
/// The firmware string `MUX GetStatus` reports, as the vendor's example does.
pub const MUX_FIRMWARE: &str = "Multiplexer_v1.1";
/// The driver `LED GetStatus` reports, as the vendor's example does.
pub const LED_DRIVER: &str = "LVVISA";
/// Largest a routine's settings may grow, serialized as JSON: 1 MiB. `ApplySettings` merges
/// what clients send into the stored settings; beyond this it is refused with 101, so clients
/// cannot grow the simulator's memory without bound.
pub const MAX_SETTINGS_LEN: usize = 1024 * 1024;
/// Longest a spectrum acquisition blocks, whatever the settings say: 1 h of simulated time.
pub const MAX_ACQUISITION: Duration = Duration::from_secs(3600);

/// Routine names the simulated application offers.
pub const ROUTINES: &[&str] = &[
    "JV",
    "Dark JV",
    "MPPT",
    "Impedance",
    "Luminescence",
    "IPCE",
    "TCSPC",
    "Resistivity",
    "Photo-CELIV",
    "TPR",
    "Connection Test",
];

/// The temperature controllers on the simulated TMPCTL bus: `(address, channel, name)` — one
/// dual-channel controller at address 1.
pub const TMPCTL_CONTROLLERS: &[(i64, i64, &str)] = &[(1, 1, "Sample stage"), (1, 2, "Chuck")];

/// Ambient temperature (°C): where a disabled controller drifts to.
const AMBIENT: f64 = 23.5;

/// How long each routine phase and each blocking command lasts, in simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durations {
    /// Initializing → Ready after `StartRoutine` (default 0.5 s).
    pub initializing: Duration,
    /// After `StartMeasurement` answered OK, the routine still reports Ready for this long
    /// before it shows Starting (default 0.25 s), as the real application may: a client that
    /// waits for Ready straight after the start returns at once and reads the previous run's
    /// data. `Duration::ZERO` switches to Starting inside the reply.
    pub start_lag: Duration,
    /// Starting → Running (default 0.3 s).
    pub starting: Duration,
    /// Running → Ready (default 2 s).
    pub running: Duration,
    /// Luminescence `AutoExposure` answers after this (default 6 s: longer than a client's
    /// usual 5 s call timeout, as on the real hardware).
    pub auto_exposure: Duration,
    /// IPCE `StartCalibration` answers after this (default 60 s: a lamp sweep).
    pub calibration: Duration,
}

impl Default for Durations {
    fn default() -> Self {
        Self {
            initializing: Duration::from_millis(500),
            start_lag: Duration::from_millis(250),
            starting: Duration::from_millis(300),
            running: Duration::from_secs(2),
            auto_exposure: Duration::from_secs(6),
            calibration: Duration::from_secs(60),
        }
    }
}

/// The active routine.
#[derive(Debug, Clone)]
pub struct Routine {
    name: String,
    state: RoutineState,
    /// `StartMeasurement` was accepted but the routine still reports Ready (the start lag).
    start_pending: bool,
    since: Duration,
    settings: Map<String, Value>,
    data: Option<Value>,
    error: Option<String>,
    laser_on: bool,
    shutter_open: bool,
    wavelength: f64,
    calibration: Option<String>,
    /// Resistivity: the applied current (A) and the device dimensions (µm, mm, mm).
    current: f64,
    dimensions: [f64; 3],
    /// Connection Test: the output (V or A by mode); changes only while Running.
    output: f64,
}

impl Routine {
    fn new(name: &str, now: Duration) -> Self {
        Self {
            name: name.to_owned(),
            state: RoutineState::Initializing,
            start_pending: false,
            since: now,
            settings: default_settings(name),
            data: None,
            error: None,
            laser_on: false,
            shutter_open: false,
            wavelength: 550.0,
            calibration: None,
            current: 0.01,
            dimensions: [100.0, 25.0, 20.0],
            output: 0.0,
        }
    }

    /// The routine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state at the last [`Device::advance`], as `GetTestStatus` reports it (Ready during
    /// the start lag).
    pub fn state(&self) -> &RoutineState {
        &self.state
    }

    /// Whether a `StartMeasurement` was accepted and the routine still reports Ready (the
    /// start lag, [`Durations::start_lag`]).
    pub fn start_pending(&self) -> bool {
        self.start_pending
    }

    /// The current settings.
    pub fn settings(&self) -> &Map<String, Value> {
        &self.settings
    }

    /// The latest measurement data.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    /// Whether a measurement is on its way (start lag, Starting or Running).
    fn measuring(&self) -> bool {
        self.start_pending || matches!(self.state, RoutineState::Starting | RoutineState::Running)
    }

    fn enter(&mut self, state: RoutineState, at: Duration) {
        self.state = state;
        self.start_pending = false;
        self.since = at;
    }
}

fn default_settings(routine: &str) -> Map<String, Value> {
    let value = match routine {
        "Luminescence" => json!({"integration_time": 100, "averages": 1, "pixel_smoothing": 1}),
        "JV" | "Dark JV" => json!({
            "device_type": "NI-SMU",
            "device_settings": {"Compliance (A)": 0.01},
            "scan_settings": {"scan": {"Start (V)": -0.2, "End (V)": 1.2, "Step (V)": 0.02, "Rate (V/s)": 0.2}},
        }),
        "IPCE" => json!({
            "wavelength": {"Start": 300, "Step": 10, "End": 900},
            "acquisition": {
                "Acquisition time (s)": 1, "Averaging": 1, "Delay (s)": 0,
                "Bias Voltage (V)": 0, "LED Level": 0, "Chopper Frequency (Hz)": 0,
            },
            "device": {"type": "Simulate", "configuration": {}},
        }),
        "Connection Test" => json!({
            "Device Name": "SMU",
            "Device_General": {"Mode": "Constant Voltage", "Sample Rate (S/s)": 10, "Autorange": true},
            "Device_Specific": {"Current limit (A)": 0.01, "Voltage Limit (V)": 6},
        }),
        _ => json!({}),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn custom_commands(routine: &str) -> &'static [&'static str] {
    match routine {
        "Luminescence" => &[
            "AcquireDark",
            "AcquireReference",
            "AcquireSingle",
            "AutoExposure",
            "SetLaser",
        ],
        "TCSPC" => &["GetRates", "SetLaser"],
        "IPCE" => &[
            "SetShutter",
            "SetWavelength",
            "StartCalibration",
            "GetChopperFrequency",
            "GetMonochromatorStatus",
        ],
        "Resistivity" => &["ApplyCurrent", "SetDeviceDimensions"],
        "Connection Test" => &["SetOutput"],
        _ => &[],
    }
}

/// One temperature controller.
#[derive(Debug, Clone)]
struct Controller {
    address: i64,
    channel: i64,
    name: String,
    enabled: bool,
    setpoint: f64,
    temperature: f64,
}

/// An LED board.
#[derive(Debug, Clone)]
struct LedBoard {
    address: i64,
    values: [f64; LED_CHANNELS],
}

/// The whole simulated application; one instance is shared by every connection.
#[derive(Debug, Clone)]
pub struct Device {
    durations: Durations,
    routine: Option<Routine>,
    measurements: u64,
    info: Value,
    controllers: Vec<Controller>,
    /// Index into `controllers` of the one `SetController` selected.
    selected: usize,
    temperature_updated: Duration,
    mux_connected: bool,
    relays: Vec<bool>,
    leds: Vec<LedBoard>,
    requests: u64,
    /// Routines `GetAvailableRoutines` lists and `StartRoutine` accepts.
    available: Vec<String>,
    /// Per routine: settings merged over the defaults when it starts.
    settings: BTreeMap<String, Map<String, Value>>,
    /// Per routine: what a measurement produces instead of generated data.
    canned: BTreeMap<String, Value>,
}

/// A refusal: code and message.
type Refusal = (i64, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (codes::INVALID_PARAMETERS, message.into())
}

fn wrong_state(message: impl Into<String>) -> Refusal {
    (codes::INVALID_STATE, message.into())
}

/// The reply most set-style commands give, as the vendor's examples show it.
fn state_ok() -> Value {
    json!({"state": "OK"})
}

impl Device {
    /// A device with the given durations, no active routine, two temperature controllers
    /// ([`TMPCTL_CONTROLLERS`]), a 4-relay MUX, two LED boards.
    pub fn new(durations: Durations) -> Self {
        Self {
            durations,
            routine: None,
            measurements: 0,
            info: json!({"user_name": "", "device_name": "", "device_area": 1.0}),
            controllers: TMPCTL_CONTROLLERS
                .iter()
                .map(|&(address, channel, name)| Controller {
                    address,
                    channel,
                    name: name.to_owned(),
                    enabled: false,
                    setpoint: 25.0,
                    temperature: AMBIENT,
                })
                .collect(),
            selected: 0,
            temperature_updated: Duration::ZERO,
            mux_connected: false,
            relays: vec![false; MUX_RELAYS],
            leds: vec![
                LedBoard {
                    address: 1,
                    values: [0.0; LED_CHANNELS],
                },
                LedBoard {
                    address: 2,
                    values: [0.0; LED_CHANNELS],
                },
            ],
            requests: 0,
            available: ROUTINES.iter().map(|r| (*r).to_owned()).collect(),
            settings: BTreeMap::new(),
            canned: BTreeMap::new(),
        }
    }

    /// A device as `scenario` describes it, at simulated time `now`.
    pub fn from_scenario(
        durations: Durations,
        scenario: &crate::scenario::ArkeoScenario,
        now: Duration,
    ) -> Self {
        let mut device = Self::new(scenario.timings.apply(durations));
        device.temperature_updated = now;
        if let Some(routines) = &scenario.routines {
            device.available = routines.iter().map(|r| r.as_str().to_owned()).collect();
        }
        device.settings = scenario
            .settings
            .iter()
            .map(|(name, settings)| (name.as_str().to_owned(), settings.clone()))
            .collect();
        device.canned = scenario
            .data
            .iter()
            .map(|(name, data)| (name.as_str().to_owned(), data.clone()))
            .collect();
        if let Some(info) = &scenario.info {
            device.info = json!({
                "user_name": info.user_name,
                "device_name": info.device_name,
                "device_area": info.device_area,
            });
        }
        if !scenario.tmpctl.is_empty() {
            device.controllers = scenario
                .tmpctl
                .iter()
                .map(|c| Controller {
                    address: c.address,
                    channel: c.channel,
                    name: c.name.clone(),
                    enabled: c.enabled,
                    setpoint: c.setpoint,
                    temperature: c.temperature.unwrap_or(AMBIENT),
                })
                .collect();
        }
        if let Some(mux) = &scenario.mux {
            device.mux_connected = mux.connected;
            device.relays = mux.relays.to_vec();
        }
        if !scenario.led.is_empty() {
            device.leds = scenario
                .led
                .iter()
                .map(|b| LedBoard {
                    address: b.address,
                    values: b.values.map(|v| v.clamp(0.0, 1.0)),
                })
                .collect();
        }
        if let Some(active) = &scenario.active_routine {
            let mut routine = Routine::new(active.name.as_str(), now);
            if let Some(settings) = device.settings.get(active.name.as_str()) {
                routine.settings.extend(settings.clone());
            }
            routine.data = active.data.clone();
            match &active.error {
                Some(message) => {
                    routine.error = Some(message.clone());
                    routine.enter(RoutineState::Error, now);
                }
                None => routine.enter(RoutineState::Ready, now),
            }
            device.routine = Some(routine);
        }
        device
    }

    /// Routines `GetAvailableRoutines` lists and `StartRoutine` accepts.
    pub fn available_routines(&self) -> &[String] {
        &self.available
    }

    /// The device's state as JSON, for the control channel's `GET /state`.
    pub fn state_json(&self) -> Value {
        json!({
            "available_routines": self.available,
            "active_routine": self.routine.as_ref().map(|r| json!({
                "name": r.name,
                "state": r.state.as_str(),
                "start_pending": r.start_pending,
                "error": r.error,
                "settings": r.settings,
                "has_data": r.data.is_some(),
            })),
            "measurements": self.measurements,
            "requests_handled": self.requests,
            "info": self.info,
            "tmpctl": self.controllers.iter().map(|c| json!({
                "address": c.address,
                "channel": c.channel,
                "name": c.name,
                "enabled": c.enabled,
                "setpoint": c.setpoint,
                "temperature": (c.temperature * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
            "mux": {"connected": self.mux_connected, "relays": self.relays},
            "led": self.leds.iter().map(|b| json!({"address": b.address, "values": b.values}))
                .collect::<Vec<_>>(),
        })
    }

    /// The durations in use.
    pub fn durations(&self) -> Durations {
        self.durations
    }

    /// Replaces the durations; phases under way keep their start and use the new lengths.
    pub fn set_durations(&mut self, durations: Durations) {
        self.durations = durations;
    }

    /// Sets [`Durations::start_lag`]: how long the routine still reports Ready after an
    /// accepted `StartMeasurement`.
    pub fn set_start_lag(&mut self, lag: Duration) {
        self.durations.start_lag = lag;
    }

    /// The active routine, as of the last [`Device::advance`].
    pub fn routine(&self) -> Option<&Routine> {
        self.routine.as_ref()
    }

    /// Requests handled so far.
    pub fn requests_handled(&self) -> u64 {
        self.requests
    }

    /// Measurements completed so far.
    pub fn measurements_completed(&self) -> u64 {
        self.measurements
    }

    /// The MUX relay states.
    pub fn relays(&self) -> &[bool] {
        &self.relays
    }

    /// The channel values of the LED board at `address`.
    pub fn led_values(&self, address: i64) -> Option<[f64; LED_CHANNELS]> {
        self.leds
            .iter()
            .find(|b| b.address == address)
            .map(|b| b.values)
    }

    /// The temperature (°C) of the controller at `address`/`channel`, as of the last
    /// [`Device::advance`].
    pub fn temperature(&self, address: i64, channel: i64) -> Option<f64> {
        self.controllers
            .iter()
            .find(|c| c.address == address && c.channel == channel)
            .map(|c| c.temperature)
    }

    /// Puts the active routine into the Error state with `message` (as a hardware fault
    /// would). Returns whether a routine was active.
    pub fn fail_routine(&mut self, message: impl Into<String>, now: Duration) -> bool {
        self.advance(now);
        match self.routine.as_mut() {
            Some(routine) => {
                routine.error = Some(message.into());
                routine.enter(RoutineState::Error, now);
                true
            }
            None => false,
        }
    }

    /// Brings every timed transition up to `now`: Initializing → Ready, the start lag →
    /// Starting → Running → Ready (with new data), and the temperatures towards their
    /// setpoints.
    pub fn advance(&mut self, now: Duration) {
        self.advance_temperature(now);
        let durations = self.durations;
        let Some(routine) = self.routine.as_mut() else {
            return;
        };
        loop {
            let elapsed = now.saturating_sub(routine.since);
            match routine.state {
                RoutineState::Initializing if elapsed >= durations.initializing => {
                    let at = routine.since + durations.initializing;
                    routine.enter(RoutineState::Ready, at);
                }
                RoutineState::Ready if routine.start_pending && elapsed >= durations.start_lag => {
                    let at = routine.since + durations.start_lag;
                    routine.enter(RoutineState::Starting, at);
                }
                RoutineState::Starting if elapsed >= durations.starting => {
                    let at = routine.since + durations.starting;
                    routine.enter(RoutineState::Running, at);
                }
                RoutineState::Running if elapsed >= durations.running => {
                    let at = routine.since + durations.running;
                    self.measurements += 1;
                    routine.data = Some(match self.canned.get(&routine.name) {
                        Some(canned) => canned.clone(),
                        None => measure(routine, self.measurements, &self.info),
                    });
                    routine.enter(RoutineState::Ready, at);
                }
                _ => break,
            }
        }
    }

    fn advance_temperature(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.temperature_updated).as_secs_f64();
        self.temperature_updated = self.temperature_updated.max(now);
        for c in &mut self.controllers {
            let target = if c.enabled { c.setpoint } else { AMBIENT };
            // First-order approach with a 5 s time constant.
            c.temperature = target + (c.temperature - target) * (-dt / 5.0).exp();
        }
    }

    /// Handles one request at simulated time `now`.
    pub fn handle(&mut self, request: &Request, now: Duration) -> Response {
        self.handle_timed(request, now).0
    }

    /// Handles one request at simulated time `now`, and says how long the hardware works
    /// before the answer goes out: zero except for the blocking custom commands (a spectrum
    /// acquisition lasts the integration time times the averages, capped at
    /// [`MAX_ACQUISITION`]; `AutoExposure` [`Durations::auto_exposure`]; `StartCalibration`
    /// [`Durations::calibration`]). The state change happens at `now`.
    pub fn handle_timed(&mut self, request: &Request, now: Duration) -> (Response, Duration) {
        self.requests += 1;
        self.advance(now);
        let p = &request.parameter;
        let result = match &request.target {
            Target::Main => self.main(&request.command, p, now),
            Target::Routine => self.routine_command(&request.command, p, now),
            Target::Tmpctl => self.tmpctl(&request.command, p, now),
            Target::Mux => self.mux(&request.command, p),
            Target::Led => self.led(&request.command, p),
            other => Err((codes::UNKNOWN_TARGET, format!("Unknown target: {other}"))),
        };
        match result {
            Ok(data) => {
                let busy = match &request.target {
                    Target::Routine => self.busy_for(&request.command),
                    _ => Duration::ZERO,
                };
                (Response::ok(data, request.request_id), busy)
            }
            Err((code, message)) => (
                Response::error(code, message, request.request_id),
                Duration::ZERO,
            ),
        }
    }

    /// How long an accepted `ROUTINE` command blocks.
    fn busy_for(&self, command: &str) -> Duration {
        let Some(routine) = &self.routine else {
            return Duration::ZERO;
        };
        match (routine.name.as_str(), command) {
            ("Luminescence", "AcquireDark" | "AcquireReference" | "AcquireSingle") => {
                let setting = |key: &str| {
                    routine
                        .settings
                        .get(key)
                        .and_then(arkeo_proto::json::lenient_f64)
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .unwrap_or(1.0)
                };
                let ms = setting("integration_time") * setting("averages");
                Duration::try_from_secs_f64(ms / 1000.0)
                    .unwrap_or(MAX_ACQUISITION)
                    .min(MAX_ACQUISITION)
            }
            ("Luminescence", "AutoExposure") => self.durations.auto_exposure,
            ("IPCE", "StartCalibration") => self.durations.calibration,
            _ => Duration::ZERO,
        }
    }

    fn main(
        &mut self,
        command: &str,
        p: &Map<String, Value>,
        now: Duration,
    ) -> Result<Value, Refusal> {
        match command {
            "StartRoutine" => {
                let name = str_param(p, "routine")?;
                let Some(known) = self
                    .available
                    .iter()
                    .find(|r| r.eq_ignore_ascii_case(name))
                    .cloned()
                else {
                    return Err((codes::UNKNOWN_ROUTINE, format!("Unknown routine: {name}")));
                };
                if let Some(active) = &self.routine {
                    return Err(wrong_state(format!(
                        "Routine {} is active; close it before starting another",
                        active.name
                    )));
                }
                let mut routine = Routine::new(&known, now);
                if let Some(settings) = self.settings.get(&known) {
                    routine.settings.extend(settings.clone());
                }
                self.routine = Some(routine);
                Ok(json!({"status": "OK"}))
            }
            "GetActiveRoutine" => Ok(json!({
                "routine": self.routine.as_ref().map_or("", |r| r.name.as_str())
            })),
            "GetAvailableRoutines" => Ok(json!({ "routines": self.available })),
            other => Err(unknown_command(&Target::Main, other)),
        }
    }

    fn routine_command(
        &mut self,
        command: &str,
        p: &Map<String, Value>,
        now: Duration,
    ) -> Result<Value, Refusal> {
        let info = self.info.clone();
        let measurements = self.measurements;
        let start_lag = self.durations.start_lag;
        let Some(routine) = self.routine.as_mut() else {
            return Err((codes::NO_ACTIVE_ROUTINE, "No active routine".to_owned()));
        };
        let state = routine.state.clone();
        match command {
            "GetTestStatus" | "GetStatus" => Ok(status_json(routine, now, self.durations)),
            "StartMeasurement" => {
                if routine.start_pending {
                    return Err(wrong_state("A measurement is already starting"));
                }
                if state != RoutineState::Ready {
                    return Err(wrong_state(format!(
                        "Cannot start a measurement while {state}"
                    )));
                }
                if start_lag.is_zero() {
                    routine.enter(RoutineState::Starting, now);
                } else {
                    // Accepted, but the status keeps saying Ready for the start lag.
                    routine.since = now;
                    routine.start_pending = true;
                }
                Ok(json!({"routine_status": "Starting", "started": true, "progress": 0}))
            }
            "StopMeasurement" => {
                // Only a measurement that is on its way can be stopped (the project's protocol
                // reference: Starting or Running; a start still in its lag counts, as the
                // application has accepted it); anything else is the wrong-state error, like
                // StartMeasurement outside Ready.
                if !routine.measuring() {
                    return Err(wrong_state(format!(
                        "No measurement to stop: the routine is {state}"
                    )));
                }
                routine.enter(RoutineState::Ready, now);
                Ok(json!({"routine_status": routine.state.as_str(), "stopped": true}))
            }
            "CloseRoutine" => {
                self.routine = None;
                Ok(json!({"closed": true}))
            }
            "ApplySettings" => {
                if routine.measuring() {
                    return Err(wrong_state("Cannot change settings during a measurement"));
                }
                validate_settings(&routine.name, p)?;
                let mut merged = routine.settings.clone();
                for (k, v) in p {
                    merged.insert(k.clone(), v.clone());
                }
                if json_len(&merged) > MAX_SETTINGS_LEN {
                    return Err(invalid(format!(
                        "Invalid parameters: the settings would exceed {MAX_SETTINGS_LEN} bytes"
                    )));
                }
                routine.settings = merged;
                Ok(json!({"applied": true}))
            }
            "GetSettings" | "LoadSettings" => Ok(json!({ "settings": routine.settings })),
            "GetTestData" => routine
                .data
                .clone()
                .ok_or_else(|| wrong_state("No measurement data yet")),
            "SetInfo" => {
                let user = str_param(p, "user_name")?;
                let device = str_param(p, "device_name")?;
                let area = num_param(p, "device_area")?;
                if area <= 0.0 {
                    return Err(invalid("device_area must be positive"));
                }
                self.info = json!({"user_name": user, "device_name": device, "device_area": area});
                Ok(state_ok())
            }
            "ClearErrors" => {
                if state == RoutineState::Error {
                    routine.error = None;
                    routine.enter(RoutineState::Ready, now);
                }
                Ok(json!({"routine_status": routine.state.as_str()}))
            }
            "GetCustomCommands" => Ok(json!({ "CustomCommands": custom_commands(&routine.name) })),
            custom if custom_commands(&routine.name).contains(&custom) => {
                if matches!(state, RoutineState::Initializing | RoutineState::Error) {
                    return Err(wrong_state(format!("Cannot run {custom} while {state}")));
                }
                custom_command(routine, custom, p, measurements, &info)
            }
            other => Err(unknown_command(&Target::Routine, other)),
        }
    }

    fn tmpctl(
        &mut self,
        command: &str,
        p: &Map<String, Value>,
        now: Duration,
    ) -> Result<Value, Refusal> {
        match command {
            "SetController" => {
                let address = int_param(p, "address")?;
                let channel = int_param(p, "channel")?;
                self.selected = self
                    .controllers
                    .iter()
                    .position(|c| c.address == address && c.channel == channel)
                    .ok_or_else(|| {
                        invalid(format!(
                            "No temperature controller at address {address}, channel {channel}"
                        ))
                    })?;
                Ok(state_ok())
            }
            "GetStatus" => Ok(Value::Array(
                self.controllers
                    .iter()
                    .map(|c| controller_json(c, now))
                    .collect(),
            )),
            "SetTemperature" => {
                let temperature = num_param(p, "temperature")?;
                if !(-40.0..=150.0).contains(&temperature) {
                    return Err(invalid("temperature must be within -40..150 °C"));
                }
                if let Some(c) = self.controllers.get_mut(self.selected) {
                    c.setpoint = temperature;
                }
                Ok(state_ok())
            }
            "SetEnable" => {
                let enable = bool_param(p, "enable")?;
                if let Some(c) = self.controllers.get_mut(self.selected) {
                    c.enabled = enable;
                }
                Ok(state_ok())
            }
            other => Err(unknown_command(&Target::Tmpctl, other)),
        }
    }

    fn mux(&mut self, command: &str, p: &Map<String, Value>) -> Result<Value, Refusal> {
        match command {
            "Connect" => {
                self.mux_connected = true;
                Ok(state_ok())
            }
            "Disconnect" => {
                self.mux_connected = false;
                Ok(state_ok())
            }
            "GetStatus" => Ok(json!({
                "connected": self.mux_connected,
                "firmware": MUX_FIRMWARE,
                "nrRelays": MUX_RELAYS,
                "status": self.relays,
            })),
            "SetStatus" => {
                if !self.mux_connected {
                    return Err(wrong_state("MUX is not connected"));
                }
                // The vendor's prose names the list `channels`, its example `state`.
                let key = if p.contains_key("state") {
                    "state"
                } else {
                    "channels"
                };
                let states = array_param(p, key)?;
                if states.len() != MUX_RELAYS {
                    return Err((
                        codes::INVALID_ARRAY_SIZE,
                        format!(
                            "Invalid array size: {}. Must match number of relays: {MUX_RELAYS}",
                            states.len()
                        ),
                    ));
                }
                let states: Option<Vec<bool>> = states.iter().map(Value::as_bool).collect();
                self.relays =
                    states.ok_or_else(|| invalid(format!("{key} must be an array of booleans")))?;
                Ok(state_ok())
            }
            other => Err(unknown_command(&Target::Mux, other)),
        }
    }

    fn led(&mut self, command: &str, p: &Map<String, Value>) -> Result<Value, Refusal> {
        match command {
            "GetStatus" => Ok(json!({
                "connected": true,
                "driver": LED_DRIVER,
                "boards": self.leds.iter().map(|b| json!({
                    "address": b.address,
                    "connected": true,
                    "values": b.values,
                })).collect::<Vec<_>>(),
            })),
            "SetValues" => {
                // Without an address (the vendor's older single-board example), the first
                // board.
                let address = match p.get("address") {
                    None | Some(Value::Null) => self.leds.first().map_or(0, |b| b.address),
                    Some(_) => int_param(p, "address")?,
                };
                let values = array_param(p, "values")?;
                if values.len() != LED_CHANNELS {
                    return Err((
                        codes::INVALID_ARRAY_SIZE,
                        format!(
                            "Invalid array size: {}. Must match number of channels: {LED_CHANNELS}",
                            values.len()
                        ),
                    ));
                }
                let mut parsed = [0.0; LED_CHANNELS];
                for (slot, v) in parsed.iter_mut().zip(values) {
                    // Out of range is coerced into 0..1, as the vendor documents.
                    *slot = v
                        .as_f64()
                        .ok_or_else(|| invalid("values must be numbers"))?
                        .clamp(0.0, 1.0);
                }
                let board = self
                    .leds
                    .iter_mut()
                    .find(|b| b.address == address)
                    .ok_or_else(|| invalid(format!("No LED board at address {address}")))?;
                board.values = parsed;
                Ok(state_ok())
            }
            other => Err(unknown_command(&Target::Led, other)),
        }
    }
}

fn unknown_command(target: &Target, command: &str) -> Refusal {
    (
        codes::UNKNOWN_COMMAND,
        format!("Unknown command for {target}: {command}"),
    )
}

fn status_json(routine: &Routine, now: Duration, durations: Durations) -> Value {
    let progress = if routine.state == RoutineState::Running {
        let pct = if durations.running.is_zero() {
            100.0
        } else {
            (now.saturating_sub(routine.since).as_secs_f64() / durations.running.as_secs_f64()
                * 100.0)
                .min(100.0)
        };
        let pct = (pct * 100.0).round() / 100.0;
        if routine.name.contains("JV") {
            // The JV routines report an object (the vendor spells the percentage `progres_pct`).
            json!({"progres_pct": pct, "direction": "Forward", "sweep_index": 0, "total_scans": 1})
        } else {
            json!(pct)
        }
    } else {
        Value::Null
    };
    json!({
        "routine_status": routine.state.as_str(),
        "routine_name": routine.name,
        "progress": progress,
        "error": routine.error,
    })
}

/// One controller as `TMPCTL GetStatus` reports it, with the vendor's keys.
fn controller_json(c: &Controller, now: Duration) -> Value {
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let error = c.setpoint - c.temperature;
    let (state, stable) = if !c.enabled {
        ("Ready", "Not Active")
    } else if error.abs() <= 0.1 {
        ("Running", "Stable")
    } else {
        ("Running", "Not Stable")
    };
    let current = if c.enabled {
        (error * 0.4).clamp(-4.0, 4.0)
    } else {
        0.0
    };
    let sink = AMBIENT + 0.3 * current.abs();
    json!({
        "address": c.address,
        "channel": c.channel,
        "name": c.name,
        "DeviceStatus": {
            "State": state,
            "Error Number": 0,
            "Error Instance": 0,
            "Error Parameter": 0,
        },
        "LatestMeasurement": {
            "Time Stamp": data::timestamp(now),
            "Temp. Measurement": {
                "Object Temperature": round(c.temperature),
                "Sink Temperature": round(sink),
                "Stable": stable,
            },
            "Temp. Control": {
                "Target Object Temperature": c.setpoint,
                "(Ramp) Nominal Object Temperature": c.setpoint,
                "Thermal Power Model Current": 0,
            },
            "Output Stage Monitoring": {
                "Output Current": round(current),
                "Output Voltage": round(current * 2.5),
            },
            "Sink Temp. General": {
                "Temperature Selection": "External",
                "Fixed Temperature": 25,
            },
            "Fan Controller": {
                "Relative Cooling Power": round(current.abs() * 25.0),
                "Nominal FAN Speed": 0,
                "Actual FAN Speed": 0,
                "FAN PWM Level": 0,
                "Enabled": 0,
                "Target Temperature": 0,
                "0% Speed": 0,
                "100% Speed": 0,
            },
        },
    })
}

fn measure(routine: &Routine, measurement: u64, info: &Value) -> Value {
    let settings = Value::Object(routine.settings.clone());
    match routine.name.as_str() {
        "JV" => data::jv(measurement, false, &settings, info),
        "Dark JV" => data::jv(measurement, true, &settings, info),
        "Luminescence" => data::spectrum(measurement, 3, routine.laser_on),
        "TCSPC" => data::tcspc(measurement, routine.laser_on),
        "IPCE" => data::ipce(measurement, &settings, info),
        "Resistivity" => data::resistivity(measurement, routine.current, routine.dimensions),
        "Connection Test" => data::connection_test(routine.output),
        other => data::generic(other, measurement),
    }
}

fn validate_settings(routine: &str, p: &Map<String, Value>) -> Result<(), Refusal> {
    if routine == "Luminescence" {
        for key in ["integration_time", "averages"] {
            if let Some(v) = p.get(key)
                && !v.as_f64().is_some_and(|x| x > 0.0)
            {
                return Err(invalid(format!("{key} must be a positive number")));
            }
        }
    }
    Ok(())
}

/// TCSPC rates (counts/s): the laser's sync, and the photons detected (dark counts with the
/// laser off).
const SYNC_RATE: f64 = 10_000_370.0;
const INPUT_RATE_LASER: f64 = 193_650.0;
const INPUT_RATE_DARK: f64 = 150.0;

fn custom_command(
    routine: &mut Routine,
    command: &str,
    p: &Map<String, Value>,
    measurements: u64,
    _info: &Value,
) -> Result<Value, Refusal> {
    let seed = measurements + 1;
    match (routine.name.as_str(), command) {
        ("Luminescence", "AcquireDark" | "AcquireReference") => Ok(data::spectrum(seed, 2, false)),
        ("Luminescence", "AcquireSingle") => Ok(data::spectrum(seed, 3, routine.laser_on)),
        ("Luminescence", "AutoExposure") => {
            let integration = if routine.laser_on { 50 } else { 1000 };
            routine
                .settings
                .insert("integration_time".into(), json!(integration));
            routine.settings.insert("averages".into(), json!(5));
            Ok(json!({"integration_time": integration, "averages": 5}))
        }
        ("Luminescence", "SetLaser") => {
            let channel = int_param(p, "channel")?;
            if channel < 0 {
                return Err(invalid("channel must be >= 0"));
            }
            let duty = num_param(p, "duty_cycle")?;
            if !(0.0..=100.0).contains(&duty) {
                return Err(invalid("duty_cycle must be within 0..100"));
            }
            if let Some(f) = p.get("frequency")
                && !f.as_f64().is_some_and(|f| f > 0.0)
            {
                return Err(invalid("frequency must be a positive number"));
            }
            routine.laser_on = duty > 0.0;
            Ok(state_ok())
        }
        ("TCSPC", "GetRates") => {
            let input = if routine.laser_on {
                INPUT_RATE_LASER
            } else {
                INPUT_RATE_DARK
            };
            Ok(json!({"sync_rate": SYNC_RATE, "input_rate": input, "ratio": input / SYNC_RATE}))
        }
        ("TCSPC", "SetLaser") => {
            // `port_id` as the project's reference lists it; the vendor's own TCSPC example
            // leaves it out, so it is optional.
            if p.get("port_id").is_some_and(|v| !v.is_null()) {
                int_param(p, "port_id")?;
            }
            routine.laser_on = bool_param(p, "laser")?;
            Ok(state_ok())
        }
        ("IPCE", "SetShutter") => {
            routine.shutter_open = bool_param(p, "shutter_status")?;
            Ok(state_ok())
        }
        ("IPCE", "SetWavelength") => {
            let nm = num_param(p, "wavelength")?;
            if !(250.0..=2000.0).contains(&nm) {
                return Err(invalid("wavelength must be within 250..2000 nm"));
            }
            routine.wavelength = nm;
            Ok(state_ok())
        }
        ("IPCE", "StartCalibration") => {
            // The path names a file on the ARKEO PC; the simulator only keeps the text.
            routine.calibration = Some(str_param(p, "path")?.to_owned());
            Ok(state_ok())
        }
        ("IPCE", "GetChopperFrequency") => Ok(json!({"frequency": 13.35})),
        ("IPCE", "GetMonochromatorStatus") => {
            // The vendor says not to call it during a measurement; the simulator refuses it
            // then, so that tests notice.
            if routine.measuring() {
                return Err(wrong_state(
                    "GetMonochromatorStatus is not available during a measurement",
                ));
            }
            Ok(monochromator_json(routine))
        }
        ("Resistivity", "ApplyCurrent") => {
            let current = num_param(p, "current")?;
            if !current.is_finite() || current.abs() > 1.0 {
                return Err(invalid("current must be within -1..1 A"));
            }
            routine.current = current;
            Ok(state_ok())
        }
        ("Resistivity", "SetDeviceDimensions") => {
            let mut dimensions = [0.0; 3];
            for (slot, key) in dimensions.iter_mut().zip(["thickness", "length", "width"]) {
                *slot = num_param(p, key)?;
                if !(slot.is_finite() && *slot > 0.0) {
                    return Err(invalid(format!("{key} must be a positive number")));
                }
            }
            routine.dimensions = dimensions;
            Ok(state_ok())
        }
        ("Connection Test", "SetOutput") => {
            let output = num_param(p, "output")?;
            // Effective only while Running, as the vendor documents; accepted either way.
            if routine.state == RoutineState::Running {
                routine.output = output;
            }
            Ok(state_ok())
        }
        _ => Err(unknown_command(&Target::Routine, command)),
    }
}

/// `GetMonochromatorStatus` in the vendor's shape (the filter table ends with a bare
/// `Infinity`).
fn monochromator_json(routine: &Routine) -> Value {
    let nm = routine.wavelength;
    let edges = [100.0, 355.0, 625.0, 1115.0, 1580.0];
    let filter = 1 + edges.iter().filter(|edge| nm >= **edge).count();
    json!({
        "type": "Serial Monochromator",
        "connected": true,
        "wavelength": nm,
        "shutter": if routine.shutter_open { "Open" } else { "Closed" },
        "filter": filter,
        "grating": if nm < 1000.0 { 1 } else { 2 },
        "config": {
            "gratwave": [0, 1000],
            "gratpos": [1, 2],
            "fltrwave": [100, 355, 625, 1115, 1580, arkeo_proto::json::f64_value(f64::INFINITY)],
            "fltrpos": [1, 2, 3, 4, 5, 6],
            "autofilter": true,
            "autograting": true,
        },
    })
}

/// The length of `map` serialized as JSON, without building the text.
fn json_len(map: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Map` into a counter cannot fail; were it to, the map counts as too large.
    match serde_json::to_writer(&mut count, map) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

fn str_param<'a>(p: &'a Map<String, Value>, key: &str) -> Result<&'a str, Refusal> {
    p.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("Invalid parameters: `{key}` must be a string")))
}

fn num_param(p: &Map<String, Value>, key: &str) -> Result<f64, Refusal> {
    p.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid(format!("Invalid parameters: `{key}` must be a number")))
}

fn int_param(p: &Map<String, Value>, key: &str) -> Result<i64, Refusal> {
    p.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid(format!("Invalid parameters: `{key}` must be an integer")))
}

fn bool_param(p: &Map<String, Value>, key: &str) -> Result<bool, Refusal> {
    p.get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid(format!("Invalid parameters: `{key}` must be true or false")))
}

fn array_param<'a>(p: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>, Refusal> {
    p.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("Invalid parameters: `{key}` must be an array")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arkeo_proto::Status;

    fn fill(x: impl Into<Value> + Clone, n: usize) -> Value {
        Value::Array(vec![x.into(); n])
    }

    const MS: Duration = Duration::from_millis(1);

    fn req(target: Target, command: &str, parameter: Value) -> Request {
        Request::new(target, command)
            .with_parameter(parameter)
            .with_request_id(1)
    }

    fn ok(device: &mut Device, target: Target, command: &str, p: Value, now: Duration) -> Value {
        let response = device.handle(&req(target, command, p), now);
        assert_eq!(response.status, Some(Status::Ok), "{command}: {response:?}");
        response.data.unwrap()
    }

    fn code(device: &mut Device, target: Target, command: &str, p: Value, now: Duration) -> i64 {
        let response = device.handle(&req(target, command, p), now);
        assert!(response.is_error(), "{command} should fail: {response:?}");
        response.error.unwrap().code.unwrap()
    }

    fn status(device: &mut Device, now: Duration) -> Value {
        ok(device, Target::Routine, "GetTestStatus", json!({}), now)
    }

    /// `Main.StartRoutine` for `routine` at `now`, asserting it succeeds.
    fn start_routine(device: &mut Device, routine: &str, now: Duration) -> Value {
        ok(
            device,
            Target::Main,
            "StartRoutine",
            json!({ "routine": routine }),
            now,
        )
    }

    /// A device with default durations on which `routine` was started at time zero.
    fn device_running(routine: &str) -> Device {
        let mut device = Device::new(Durations::default());
        start_routine(&mut device, routine, Duration::ZERO);
        device
    }

    /// The routine's `GetCustomCommands` list at `now`.
    fn custom_commands(device: &mut Device, now: Duration) -> Value {
        ok(device, Target::Routine, "GetCustomCommands", json!({}), now)["CustomCommands"].take()
    }

    #[test]
    fn routine_goes_initializing_ready_starting_running_ready_with_data() {
        let d = Durations::default();
        let mut dev = Device::new(d);
        let t0 = Duration::ZERO;
        start_routine(&mut dev, "JV", t0);
        assert_eq!(status(&mut dev, t0)["routine_status"], "Initializing");
        let t1 = d.initializing;
        assert_eq!(status(&mut dev, t1)["routine_status"], "Ready");
        assert_eq!(
            code(&mut dev, Target::Routine, "GetTestData", json!({}), t1),
            codes::INVALID_STATE
        );
        ok(&mut dev, Target::Routine, "StartMeasurement", json!({}), t1);
        // The start lag: accepted, but still Ready (as the real application may say).
        assert_eq!(status(&mut dev, t1)["routine_status"], "Ready");
        assert!(dev.routine().unwrap().start_pending());
        assert_eq!(
            status(&mut dev, t1 + d.start_lag)["routine_status"],
            "Starting"
        );
        let t1 = t1 + d.start_lag;
        let half = t1 + d.starting + d.running / 2;
        let s = status(&mut dev, half);
        assert_eq!(s["routine_status"], "Running");
        assert_eq!(s["progress"]["progres_pct"], json!(50.0));
        let done = t1 + d.starting + d.running;
        let s = status(&mut dev, done);
        assert_eq!(s["routine_status"], "Ready");
        assert_eq!(s["progress"], Value::Null);
        let data = ok(&mut dev, Target::Routine, "GetTestData", json!({}), done);
        assert_eq!(data["scans"][0]["name"], "forward");
        assert_eq!(dev.measurements_completed(), 1);
    }

    #[test]
    fn during_the_start_lag_the_routine_reports_ready_without_new_data() {
        let d = Durations {
            start_lag: Duration::from_secs(1),
            ..Durations::default()
        };
        let mut dev = Device::new(d);
        start_routine(&mut dev, "TPR", Duration::ZERO);
        let t = d.initializing;
        ok(&mut dev, Target::Routine, "StartMeasurement", json!({}), t);
        let late = t + d.start_lag - MS;
        let s = status(&mut dev, late);
        assert_eq!(s["routine_status"], "Ready");
        assert_eq!(s["progress"], Value::Null);
        // A second start, and settings, are refused: the first start is on its way.
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "StartMeasurement",
                json!({}),
                late
            ),
            codes::INVALID_STATE
        );
        assert_eq!(
            code(&mut dev, Target::Routine, "ApplySettings", json!({}), late),
            codes::INVALID_STATE
        );
        assert_eq!(
            code(&mut dev, Target::Routine, "GetTestData", json!({}), late),
            codes::INVALID_STATE
        );
        assert_eq!(
            status(&mut dev, t + d.start_lag)["routine_status"],
            "Starting"
        );
        // A start in its lag can be stopped; with no lag the reply's state is the status.
        let mut dev = Device::new(d);
        start_routine(&mut dev, "TPR", Duration::ZERO);
        ok(&mut dev, Target::Routine, "StartMeasurement", json!({}), t);
        ok(
            &mut dev,
            Target::Routine,
            "StopMeasurement",
            json!({}),
            t + MS,
        );
        assert!(!dev.routine().unwrap().start_pending());
        assert_eq!(
            status(&mut dev, t + d.start_lag * 2)["routine_status"],
            "Ready"
        );
        dev.set_start_lag(Duration::ZERO);
        ok(
            &mut dev,
            Target::Routine,
            "StartMeasurement",
            json!({}),
            t + MS,
        );
        assert_eq!(status(&mut dev, t + MS)["routine_status"], "Starting");
    }

    #[test]
    fn blocking_commands_say_how_long_the_hardware_works() {
        let mut dev = device_running("Luminescence");
        let ready = Duration::from_secs(1);
        let timed = |dev: &mut Device, command: &str, p: Value| {
            let (response, busy) = dev.handle_timed(&req(Target::Routine, command, p), ready);
            assert!(!response.is_error(), "{command}: {response:?}");
            busy
        };
        ok(
            &mut dev,
            Target::Routine,
            "ApplySettings",
            json!({"integration_time": 2000, "averages": 4}),
            ready,
        );
        assert_eq!(
            timed(&mut dev, "AcquireSingle", json!({})),
            Duration::from_secs(8)
        );
        assert_eq!(
            timed(&mut dev, "AcquireDark", json!({})),
            Duration::from_secs(8)
        );
        assert_eq!(
            timed(&mut dev, "AutoExposure", json!({})),
            Durations::default().auto_exposure
        );
        assert_eq!(
            timed(&mut dev, "SetLaser", json!({"channel": 0, "duty_cycle": 0})),
            Duration::ZERO
        );
        ok(
            &mut dev,
            Target::Routine,
            "ApplySettings",
            json!({"integration_time": 1e300}),
            ready,
        );
        assert_eq!(timed(&mut dev, "AcquireSingle", json!({})), MAX_ACQUISITION);
        let (_, busy) =
            dev.handle_timed(&req(Target::Main, "GetAvailableRoutines", json!({})), ready);
        assert_eq!(busy, Duration::ZERO);
    }

    #[test]
    fn a_late_poll_catches_up_through_every_phase() {
        let mut dev = device_running("TPR");
        let s = status(&mut dev, Duration::from_secs(60));
        assert_eq!(s["routine_status"], "Ready");
    }

    #[test]
    fn routine_commands_without_an_active_routine_fail_with_4006() {
        let mut dev = Device::new(Durations::default());
        for command in [
            "GetTestStatus",
            "StartMeasurement",
            "CloseRoutine",
            "GetTestData",
        ] {
            assert_eq!(
                code(&mut dev, Target::Routine, command, json!({}), MS),
                4006
            );
        }
    }

    #[test]
    fn start_measurement_needs_ready_and_stop_needs_a_measurement() {
        let mut dev = device_running("MPPT");
        assert_eq!(
            code(&mut dev, Target::Routine, "StartMeasurement", json!({}), MS),
            codes::INVALID_STATE
        );
        assert_eq!(
            code(&mut dev, Target::Routine, "StopMeasurement", json!({}), MS),
            codes::INVALID_STATE
        );
        let ready = Durations::default().initializing;
        ok(
            &mut dev,
            Target::Routine,
            "StartMeasurement",
            json!({}),
            ready,
        );
        assert!(dev.routine().unwrap().start_pending());
        let s = ok(
            &mut dev,
            Target::Routine,
            "StopMeasurement",
            json!({}),
            ready + MS,
        );
        assert_eq!(s["stopped"], true);
        assert_eq!(status(&mut dev, ready + MS)["routine_status"], "Ready");
    }

    #[test]
    fn only_one_routine_at_a_time_and_unknown_routines_are_refused() {
        let mut dev = Device::new(Durations::default());
        assert_eq!(
            code(
                &mut dev,
                Target::Main,
                "StartRoutine",
                json!({"routine": "Nope"}),
                MS
            ),
            codes::UNKNOWN_ROUTINE
        );
        assert_eq!(
            code(&mut dev, Target::Main, "StartRoutine", json!({}), MS),
            101
        );
        start_routine(&mut dev, "luminescence", MS);
        let active = ok(&mut dev, Target::Main, "GetActiveRoutine", json!({}), MS);
        assert_eq!(active["routine"], "Luminescence");
        assert_eq!(
            code(
                &mut dev,
                Target::Main,
                "StartRoutine",
                json!({"routine": "JV"}),
                MS
            ),
            codes::INVALID_STATE
        );
        ok(&mut dev, Target::Routine, "CloseRoutine", json!({}), MS);
        assert_eq!(
            ok(&mut dev, Target::Main, "GetActiveRoutine", json!({}), MS)["routine"],
            ""
        );
    }

    #[test]
    fn error_state_reports_its_message_until_cleared() {
        let mut dev = device_running("JV");
        assert!(dev.fail_routine("SMU compliance", Duration::from_secs(1)));
        let s = status(&mut dev, Duration::from_secs(2));
        assert_eq!(s["routine_status"], "Error");
        assert_eq!(s["error"], "SMU compliance");
        ok(
            &mut dev,
            Target::Routine,
            "ClearErrors",
            json!({}),
            Duration::from_secs(2),
        );
        let s = status(&mut dev, Duration::from_secs(2));
        assert_eq!(s["routine_status"], "Ready");
        assert_eq!(s["error"], Value::Null);
    }

    #[test]
    fn led_values_must_have_twelve_channels_and_are_coerced_into_zero_to_one() {
        let mut dev = Device::new(Durations::default());
        let e = dev.handle(
            &req(
                Target::Led,
                "SetValues",
                json!({"address": 1, "values": fill(0.5, 3)}),
            ),
            MS,
        );
        let error = e.error.unwrap();
        assert_eq!(error.code, Some(1001));
        assert_eq!(
            error.message,
            "Invalid array size: 3. Must match number of channels: 12"
        );
        // Out of range is coerced, not refused (the vendor documents it).
        let mut values = vec![json!(2.0); 12];
        values[0] = json!(-0.5);
        values[1] = json!(0.3);
        let reply = ok(
            &mut dev,
            Target::Led,
            "SetValues",
            json!({"address": 1, "values": values}),
            MS,
        );
        assert_eq!(reply, json!({"state": "OK"}));
        let mut expected = [1.0; 12];
        expected[0] = 0.0;
        expected[1] = 0.3;
        assert_eq!(dev.led_values(1), Some(expected));
        assert_eq!(
            code(
                &mut dev,
                Target::Led,
                "SetValues",
                json!({"address": 1, "values": fill("bright", 12)}),
                MS
            ),
            101
        );
        // Without an address: the first board (the vendor's older single-board example).
        ok(
            &mut dev,
            Target::Led,
            "SetValues",
            json!({"values": fill(0.1, 12)}),
            MS,
        );
        assert_eq!(dev.led_values(1), Some([0.1; 12]));
        assert_eq!(
            code(
                &mut dev,
                Target::Led,
                "SetValues",
                json!({"address": 9, "values": fill(0.0, 12)}),
                MS
            ),
            101
        );
        ok(
            &mut dev,
            Target::Led,
            "SetValues",
            json!({"address": 2, "values": fill(0.25, 12)}),
            MS,
        );
        assert_eq!(dev.led_values(2), Some([0.25; 12]));
        let s = ok(&mut dev, Target::Led, "GetStatus", json!({}), MS);
        assert_eq!(s["connected"], true);
        assert_eq!(s["driver"], "LVVISA");
        assert_eq!(s["boards"][1]["address"], 2);
        assert_eq!(s["boards"][1]["connected"], true);
        assert_eq!(s["boards"][1]["values"][11], 0.25);
    }

    #[test]
    fn mux_relays_need_a_connection_and_the_right_count() {
        let mut dev = Device::new(Durations::default());
        let all_on = json!({"state": fill(true, MUX_RELAYS)});
        assert_eq!(
            code(&mut dev, Target::Mux, "SetStatus", all_on.clone(), MS),
            codes::INVALID_STATE
        );
        ok(&mut dev, Target::Mux, "Connect", json!({}), MS);
        assert_eq!(
            code(
                &mut dev,
                Target::Mux,
                "SetStatus",
                json!({"state": [true]}),
                MS
            ),
            1001
        );
        assert_eq!(
            ok(&mut dev, Target::Mux, "SetStatus", all_on, MS),
            json!({"state": "OK"})
        );
        let s = ok(&mut dev, Target::Mux, "GetStatus", json!({}), MS);
        assert_eq!(s["nrRelays"], 4);
        assert_eq!(s["firmware"], "Multiplexer_v1.1");
        assert_eq!(s["status"], json!([true, true, true, true]));
        assert!(dev.relays().iter().all(|r| *r));
        // The prose's `channels` works as well as the example's `state`.
        ok(
            &mut dev,
            Target::Mux,
            "SetStatus",
            json!({"channels": [false, false, false, true]}),
            MS,
        );
        assert_eq!(dev.relays(), [false, false, false, true]);
        assert_eq!(
            code(
                &mut dev,
                Target::Mux,
                "SetStatus",
                json!({"channels": [1, 0, 0, 0]}),
                MS
            ),
            101
        );
    }

    #[test]
    fn temperature_follows_the_setpoint_when_enabled() {
        let mut dev = Device::new(Durations::default());
        ok(
            &mut dev,
            Target::Tmpctl,
            "SetTemperature",
            json!({"temperature": 60.0}),
            Duration::ZERO,
        );
        ok(
            &mut dev,
            Target::Tmpctl,
            "SetEnable",
            json!({"enable": true}),
            Duration::ZERO,
        );
        let s = ok(
            &mut dev,
            Target::Tmpctl,
            "GetStatus",
            json!({}),
            Duration::from_secs(60),
        );
        // An array of controllers with the vendor's keys (spaces and dots).
        let first = &s[0];
        assert_eq!(s.as_array().unwrap().len(), TMPCTL_CONTROLLERS.len());
        assert_eq!(first["DeviceStatus"]["State"], "Running");
        assert_eq!(first["DeviceStatus"]["Error Number"], 0);
        let measured = &first["LatestMeasurement"];
        assert_eq!(measured["Time Stamp"], "2025-01-01T00:01:00.000Z");
        let t = measured["Temp. Measurement"]["Object Temperature"]
            .as_f64()
            .unwrap();
        assert!((t - 60.0).abs() < 0.1, "{t}");
        assert_eq!(measured["Temp. Measurement"]["Stable"], "Stable");
        assert_eq!(measured["Temp. Control"]["Target Object Temperature"], 60.0);
        for key in [
            "Output Stage Monitoring",
            "Sink Temp. General",
            "Fan Controller",
        ] {
            assert!(measured[key].is_object(), "{key}");
        }
        // The other controller was not selected: still at ambient, not active.
        assert_eq!(s[1]["DeviceStatus"]["State"], "Ready");
        assert_eq!(
            s[1]["LatestMeasurement"]["Temp. Measurement"]["Stable"],
            "Not Active"
        );
        ok(
            &mut dev,
            Target::Tmpctl,
            "SetController",
            json!({"address": 1, "channel": 2}),
            MS,
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Tmpctl,
                "SetController",
                json!({"address": 7, "channel": 1}),
                MS
            ),
            101
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Tmpctl,
                "SetTemperature",
                json!({"temperature": 900}),
                MS
            ),
            101
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Tmpctl,
                "SetEnable",
                json!({"enable": "yes"}),
                MS
            ),
            101
        );
    }

    #[test]
    fn luminescence_custom_commands_and_settings_validation() {
        let mut dev = device_running("Luminescence");
        let ready = Duration::from_secs(1);
        let cmds = custom_commands(&mut dev, ready);
        assert!(cmds.as_array().unwrap().contains(&json!("AcquireSingle")));
        ok(
            &mut dev,
            Target::Routine,
            "SetLaser",
            json!({"channel": 0, "frequency": 10000, "duty_cycle": 50}),
            ready,
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "SetLaser",
                json!({"channel": 0, "duty_cycle": 150}),
                ready
            ),
            101
        );
        let s = ok(&mut dev, Target::Routine, "AcquireSingle", json!({}), ready);
        assert_eq!(s["spectrum"].as_array().unwrap().len(), 3);
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "ApplySettings",
                json!({"integration_time": -1}),
                ready
            ),
            101
        );
        ok(
            &mut dev,
            Target::Routine,
            "ApplySettings",
            json!({"integration_time": 250}),
            ready,
        );
        let s = ok(&mut dev, Target::Routine, "LoadSettings", json!({}), ready);
        assert_eq!(s["settings"]["integration_time"], 250);
        assert_eq!(
            code(&mut dev, Target::Routine, "GetRates", json!({}), ready),
            codes::UNKNOWN_COMMAND
        );
    }

    #[test]
    fn tcspc_custom_commands() {
        let mut dev = device_running("TCSPC");
        assert_eq!(
            code(&mut dev, Target::Routine, "GetRates", json!({}), MS),
            codes::INVALID_STATE,
            "custom commands wait for the routine to be ready"
        );
        let ready = Duration::from_secs(1);
        let cmds = custom_commands(&mut dev, ready);
        assert_eq!(cmds, json!(["GetRates", "SetLaser"]));
        let dark = ok(&mut dev, Target::Routine, "GetRates", json!({}), ready);
        ok(
            &mut dev,
            Target::Routine,
            "SetLaser",
            json!({"port_id": 1, "laser": true}),
            ready,
        );
        let rates = ok(&mut dev, Target::Routine, "GetRates", json!({}), ready);
        // In any order: serde_json keeps insertion order when another crate of the build turns
        // on its `preserve_order` feature.
        let mut keys: Vec<&String> = rates.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["input_rate", "ratio", "sync_rate"]);
        let (sync, input) = (
            rates["sync_rate"].as_f64().unwrap(),
            rates["input_rate"].as_f64().unwrap(),
        );
        assert_eq!(rates["ratio"].as_f64().unwrap(), input / sync);
        assert!(input > dark["input_rate"].as_f64().unwrap());
        // The vendor's own example has no port_id.
        ok(
            &mut dev,
            Target::Routine,
            "SetLaser",
            json!({"laser": false}),
            ready,
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "SetLaser",
                json!({"port_id": 1, "laser": "on"}),
                ready
            ),
            101
        );
        assert_eq!(
            code(&mut dev, Target::Routine, "SetWavelength", json!({}), ready),
            codes::UNKNOWN_COMMAND
        );
    }

    #[test]
    fn ipce_custom_commands() {
        let mut dev = device_running("IPCE");
        let ready = Duration::from_secs(1);
        let cmds = custom_commands(&mut dev, ready);
        assert_eq!(
            cmds,
            json!([
                "SetShutter",
                "SetWavelength",
                "StartCalibration",
                "GetChopperFrequency",
                "GetMonochromatorStatus"
            ])
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "SetShutter",
                json!({"open": true}),
                ready
            ),
            101,
            "the vendor's parameter is shutter_status"
        );
        let reply = ok(
            &mut dev,
            Target::Routine,
            "SetShutter",
            json!({"shutter_status": true}),
            ready,
        );
        assert_eq!(reply, json!({"state": "OK"}));
        ok(
            &mut dev,
            Target::Routine,
            "SetWavelength",
            json!({"wavelength": 633.0}),
            ready,
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "SetWavelength",
                json!({"wavelength": 5.0}),
                ready
            ),
            101
        );
        let mono = ok(
            &mut dev,
            Target::Routine,
            "GetMonochromatorStatus",
            json!({}),
            ready,
        );
        assert_eq!(mono["wavelength"], 633.0);
        assert_eq!(mono["shutter"], "Open");
        assert_eq!(mono["type"], "Serial Monochromator");
        assert_eq!(mono["config"]["fltrwave"][5], "Infinity");
        let chopper = ok(
            &mut dev,
            Target::Routine,
            "GetChopperFrequency",
            json!({}),
            ready,
        );
        assert!(chopper["frequency"].as_f64().unwrap() > 0.0);
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "StartCalibration",
                json!({}),
                ready
            ),
            101
        );
        ok(
            &mut dev,
            Target::Routine,
            "StartCalibration",
            json!({"path": "C:\\Arkeo\\calibration\\photodiode.txt"}),
            ready,
        );
        ok(
            &mut dev,
            Target::Routine,
            "StartMeasurement",
            json!({}),
            ready,
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "GetMonochromatorStatus",
                json!({}),
                ready
            ),
            codes::INVALID_STATE,
            "not during a measurement"
        );
        assert_eq!(
            code(&mut dev, Target::Routine, "AcquireSingle", json!({}), ready),
            codes::UNKNOWN_COMMAND
        );
    }

    #[test]
    fn resistivity_applies_a_current_and_returns_only_the_latest_point() {
        let mut dev = device_running("Resistivity");
        let ready = Duration::from_secs(1);
        assert_eq!(
            custom_commands(&mut dev, ready),
            json!(["ApplyCurrent", "SetDeviceDimensions"])
        );
        let reply = ok(
            &mut dev,
            Target::Routine,
            "ApplyCurrent",
            json!({"current": 0.03}),
            ready,
        );
        assert_eq!(reply, json!({"state": "OK"}));
        ok(
            &mut dev,
            Target::Routine,
            "SetDeviceDimensions",
            json!({"thickness": 100, "length": 25, "width": 20}),
            ready,
        );
        assert_eq!(
            code(
                &mut dev,
                Target::Routine,
                "SetDeviceDimensions",
                json!({"thickness": 100, "length": 25}),
                ready
            ),
            101
        );
        ok(
            &mut dev,
            Target::Routine,
            "StartMeasurement",
            json!({}),
            ready,
        );
        let data = ok(
            &mut dev,
            Target::Routine,
            "GetTestData",
            json!({}),
            Duration::from_secs(10),
        );
        assert_eq!(data["Current (A)"], 0.03);
        for key in [
            "Voltage (V)",
            "2D Sheet resistance (Ohm/Sq)",
            "Corrected 2D Sheet Resistance (Ohm/Sq)",
        ] {
            assert!(data[key].as_f64().is_some(), "{key}: {data}");
        }
    }

    #[test]
    fn connection_test_output_changes_only_while_running() {
        let d = Durations::default();
        let mut dev = device_running("Connection Test");
        let ready = Duration::from_secs(1);
        assert_eq!(custom_commands(&mut dev, ready), json!(["SetOutput"]));
        ok(
            &mut dev,
            Target::Routine,
            "SetOutput",
            json!({"output": 5.0}),
            ready,
        );
        ok(
            &mut dev,
            Target::Routine,
            "StartMeasurement",
            json!({}),
            ready,
        );
        let running = ready + d.start_lag + d.starting;
        ok(
            &mut dev,
            Target::Routine,
            "SetOutput",
            json!({"output": 0.5}),
            running,
        );
        let data = ok(
            &mut dev,
            Target::Routine,
            "GetTestData",
            json!({}),
            running + d.running,
        );
        assert_eq!(data, json!({"Voltage (V)": 0.5, "Current (A)": 0.0005}));
    }

    #[test]
    fn settings_sent_by_clients_cannot_grow_the_device_without_bound() {
        let mut dev = device_running("JV");
        let ready = Duration::from_secs(1);
        let chunk = "x".repeat(64 * 1024);
        let mut refused = false;
        // Each request is small enough; together they would keep growing the stored settings.
        for i in 0..64 {
            let settings = json!({ format!("key{i}"): chunk });
            let response = dev.handle(&req(Target::Routine, "ApplySettings", settings), ready);
            if response.is_error() {
                assert_eq!(response.error.unwrap().code, Some(101));
                refused = true;
                break;
            }
        }
        assert!(refused, "64 x 64 KiB of settings were all stored");
        let stored = ok(&mut dev, Target::Routine, "GetSettings", json!({}), ready);
        assert!(serde_json::to_vec(&stored).unwrap().len() <= MAX_SETTINGS_LEN + 64);
        // Replacing a value does not count twice.
        ok(
            &mut dev,
            Target::Routine,
            "ApplySettings",
            json!({"key0": "small"}),
            ready,
        );
        ok(
            &mut dev,
            Target::Routine,
            "ApplySettings",
            json!({"key0": chunk}),
            ready,
        );
    }

    #[test]
    fn unknown_targets_and_commands_have_their_own_codes() {
        let mut dev = Device::new(Durations::default());
        assert_eq!(
            code(
                &mut dev,
                Target::Other("SPECTRO".into()),
                "X",
                json!({}),
                MS
            ),
            codes::UNKNOWN_TARGET
        );
        assert_eq!(
            code(&mut dev, Target::Main, "Reboot", json!({}), MS),
            codes::UNKNOWN_COMMAND
        );
        assert_eq!(dev.requests_handled(), 2);
    }

    #[test]
    fn responses_echo_the_request_id() {
        let mut dev = Device::new(Durations::default());
        let r = dev.handle(
            &Request::new(Target::Main, "GetAvailableRoutines").with_request_id(77),
            MS,
        );
        assert_eq!(r.request_id, Some(77));
        assert!(r.data.unwrap()["routines"].as_array().unwrap().len() >= 9);
    }
}
