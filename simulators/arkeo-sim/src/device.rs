//! The simulated ARKEO application: a sans-IO state machine.
//!
//! [`Device::handle`] takes one request and the current simulated time and returns the
//! response. It never touches a socket or reads a clock, so every behaviour can be tested by
//! passing times in.

use std::time::Duration;

use arkeo_proto::{Request, Response, RoutineState, Target, codes};
use serde_json::{Map, Value, json};

use crate::data;

/// Number of channels on every LED board.
pub const LED_CHANNELS: usize = 12;
/// Number of relays on the MUX.
pub const MUX_RELAYS: usize = 16;
/// Largest a routine's settings may grow, serialized as JSON: 1 MiB. `ApplySettings` merges
/// what clients send into the stored settings; beyond this it is refused with 101, so clients
/// cannot grow the simulator's memory without bound.
pub const MAX_SETTINGS_LEN: usize = 1024 * 1024;

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
];

/// How long each routine phase lasts, in simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durations {
    /// Initializing → Ready after `StartRoutine` (default 0.5 s).
    pub initializing: Duration,
    /// Starting → Running after `StartMeasurement` (default 0.3 s).
    pub starting: Duration,
    /// Running → Ready (default 2 s).
    pub running: Duration,
}

impl Default for Durations {
    fn default() -> Self {
        Self {
            initializing: Duration::from_millis(500),
            starting: Duration::from_millis(300),
            running: Duration::from_secs(2),
        }
    }
}

/// The active routine.
#[derive(Debug, Clone)]
pub struct Routine {
    name: String,
    state: RoutineState,
    since: Duration,
    settings: Map<String, Value>,
    data: Option<Value>,
    error: Option<String>,
    laser_on: bool,
    shutter_open: bool,
    wavelength: f64,
}

impl Routine {
    fn new(name: &str, now: Duration) -> Self {
        Self {
            name: name.to_owned(),
            state: RoutineState::Initializing,
            since: now,
            settings: default_settings(name),
            data: None,
            error: None,
            laser_on: false,
            shutter_open: false,
            wavelength: 550.0,
        }
    }

    /// The routine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state at the last [`Device::advance`].
    pub fn state(&self) -> &RoutineState {
        &self.state
    }

    /// The current settings.
    pub fn settings(&self) -> &Map<String, Value> {
        &self.settings
    }

    /// The latest measurement data.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    fn enter(&mut self, state: RoutineState, at: Duration) {
        self.state = state;
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
        "IPCE" => json!({"start_nm": 300, "end_nm": 1100, "step_nm": 10}),
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
        _ => &[],
    }
}

/// The temperature controller.
#[derive(Debug, Clone)]
struct Tmpctl {
    address: i64,
    channel: i64,
    enabled: bool,
    setpoint: f64,
    temperature: f64,
    updated: Duration,
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
    tmpctl: Tmpctl,
    mux_connected: bool,
    relays: Vec<bool>,
    leds: Vec<LedBoard>,
    requests: u64,
}

/// A refusal: code and message.
type Refusal = (i64, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (codes::INVALID_PARAMETERS, message.into())
}

fn wrong_state(message: impl Into<String>) -> Refusal {
    (codes::INVALID_STATE, message.into())
}

impl Device {
    /// A device with the given phase durations, no active routine, two LED boards.
    pub fn new(durations: Durations) -> Self {
        Self {
            durations,
            routine: None,
            measurements: 0,
            info: json!({"user_name": "", "device_name": "", "device_area": 1.0}),
            tmpctl: Tmpctl {
                address: 1,
                channel: 1,
                enabled: false,
                setpoint: 25.0,
                temperature: 23.5,
                updated: Duration::ZERO,
            },
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
        }
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

    /// Brings every timed transition up to `now`: Initializing → Ready, Starting → Running →
    /// Ready (with new data), and the temperature towards its setpoint.
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
                RoutineState::Starting if elapsed >= durations.starting => {
                    let at = routine.since + durations.starting;
                    routine.enter(RoutineState::Running, at);
                }
                RoutineState::Running if elapsed >= durations.running => {
                    let at = routine.since + durations.running;
                    self.measurements += 1;
                    routine.data = Some(measure(routine, self.measurements, &self.info));
                    routine.enter(RoutineState::Ready, at);
                }
                _ => break,
            }
        }
    }

    fn advance_temperature(&mut self, now: Duration) {
        let t = &mut self.tmpctl;
        let dt = now.saturating_sub(t.updated).as_secs_f64();
        t.updated = now;
        let target = if t.enabled { t.setpoint } else { 23.5 };
        // First-order approach with a 5 s time constant.
        t.temperature = target + (t.temperature - target) * (-dt / 5.0).exp();
    }

    /// Handles one request at simulated time `now`.
    pub fn handle(&mut self, request: &Request, now: Duration) -> Response {
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
            Ok(data) => Response::ok(data, request.request_id),
            Err((code, message)) => Response::error(code, message, request.request_id),
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
                let Some(known) = ROUTINES.iter().find(|r| r.eq_ignore_ascii_case(name)) else {
                    return Err((codes::UNKNOWN_ROUTINE, format!("Unknown routine: {name}")));
                };
                if let Some(active) = &self.routine {
                    return Err(wrong_state(format!(
                        "Routine {} is active; close it before starting another",
                        active.name
                    )));
                }
                self.routine = Some(Routine::new(known, now));
                Ok(json!({"status": "OK"}))
            }
            "GetActiveRoutine" => Ok(json!({
                "routine": self.routine.as_ref().map_or("", |r| r.name.as_str())
            })),
            "GetAvailableRoutines" => Ok(json!({ "routines": ROUTINES })),
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
        let Some(routine) = self.routine.as_mut() else {
            return Err((codes::NO_ACTIVE_ROUTINE, "No active routine".to_owned()));
        };
        let state = routine.state.clone();
        match command {
            "GetTestStatus" | "GetStatus" => Ok(status_json(routine, now, self.durations)),
            "StartMeasurement" => {
                if state != RoutineState::Ready {
                    return Err(wrong_state(format!(
                        "Cannot start a measurement while {state}"
                    )));
                }
                routine.enter(RoutineState::Starting, now);
                Ok(json!({"routine_status": "Starting", "started": true, "progress": 0}))
            }
            "StopMeasurement" => {
                // Only a measurement that is starting or running can be stopped (the project's
                // protocol reference); anything else is the wrong-state error, like
                // StartMeasurement outside Ready.
                if !matches!(state, RoutineState::Starting | RoutineState::Running) {
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
                if matches!(state, RoutineState::Starting | RoutineState::Running) {
                    return Err(wrong_state(format!("Cannot change settings while {state}")));
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
                Ok(json!({"state": "OK"}))
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
        let t = &mut self.tmpctl;
        match command {
            "SetController" => {
                t.address = int_param(p, "address")?;
                t.channel = int_param(p, "channel")?;
                Ok(json!({"state": "OK"}))
            }
            "GetStatus" => Ok(json!({
                "address": t.address,
                "channel": t.channel,
                "enabled": t.enabled,
                "setpoint": t.setpoint,
                "temperature": (t.temperature * 100.0).round() / 100.0,
            })),
            "SetTemperature" => {
                let temperature = num_param(p, "temperature")?;
                if !(-40.0..=150.0).contains(&temperature) {
                    return Err(invalid("temperature must be within -40..150 °C"));
                }
                t.setpoint = temperature;
                t.updated = now;
                Ok(json!({"state": "OK"}))
            }
            "SetEnable" => {
                t.enabled = bool_param(p, "enable")?;
                Ok(json!({"state": "OK"}))
            }
            other => Err(unknown_command(&Target::Tmpctl, other)),
        }
    }

    fn mux(&mut self, command: &str, p: &Map<String, Value>) -> Result<Value, Refusal> {
        match command {
            "Connect" => {
                self.mux_connected = true;
                Ok(json!({"connected": true}))
            }
            "Disconnect" => {
                self.mux_connected = false;
                Ok(json!({"connected": false}))
            }
            "GetStatus" => Ok(json!({
                "connected": self.mux_connected,
                "firmware": "labwire-sim 1.0",
                "nrRelays": MUX_RELAYS,
                "status": self.relays,
            })),
            "SetStatus" => {
                if !self.mux_connected {
                    return Err(wrong_state("MUX is not connected"));
                }
                let states = array_param(p, "state")?;
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
                    states.ok_or_else(|| invalid("state must be an array of booleans"))?;
                Ok(json!({"status": self.relays}))
            }
            other => Err(unknown_command(&Target::Mux, other)),
        }
    }

    fn led(&mut self, command: &str, p: &Map<String, Value>) -> Result<Value, Refusal> {
        match command {
            "GetStatus" => Ok(json!({
                "boards": self.leds.iter().map(|b| json!({"address": b.address, "values": b.values})).collect::<Vec<_>>(),
            })),
            "SetValues" => {
                let address = int_param(p, "address")?;
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
                    *slot = v
                        .as_f64()
                        .filter(|x| (0.0..=1.0).contains(x))
                        .ok_or_else(|| invalid("values must be numbers within 0..1"))?;
                }
                let board = self
                    .leds
                    .iter_mut()
                    .find(|b| b.address == address)
                    .ok_or_else(|| invalid(format!("No LED board at address {address}")))?;
                board.values = parsed;
                Ok(json!({"address": address, "values": parsed}))
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

fn measure(routine: &Routine, measurement: u64, info: &Value) -> Value {
    let settings = Value::Object(routine.settings.clone());
    match routine.name.as_str() {
        "JV" => data::jv(measurement, false, &settings, info),
        "Dark JV" => data::jv(measurement, true, &settings, info),
        "Luminescence" => data::spectrum(measurement, 3, routine.laser_on),
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
            Ok(json!({"state": "OK"}))
        }
        ("TCSPC", "GetRates") => Ok(json!({"sync_rate": 40_000_000, "count_rate": 125_000})),
        ("TCSPC", "SetLaser") => {
            int_param(p, "port_id")?;
            routine.laser_on = bool_param(p, "laser")?;
            Ok(json!({"state": "OK"}))
        }
        ("IPCE", "SetShutter") => {
            routine.shutter_open = bool_param(p, "open")?;
            Ok(json!({"open": routine.shutter_open}))
        }
        ("IPCE", "SetWavelength") => {
            let nm = num_param(p, "wavelength")?;
            if !(250.0..=2000.0).contains(&nm) {
                return Err(invalid("wavelength must be within 250..2000 nm"));
            }
            routine.wavelength = nm;
            Ok(json!({"wavelength": nm}))
        }
        ("IPCE", "StartCalibration") => Ok(json!({"calibrating": true})),
        ("IPCE", "GetChopperFrequency") => Ok(json!({"frequency": 133.0})),
        ("IPCE", "GetMonochromatorStatus") => Ok(json!({
            "wavelength": routine.wavelength,
            "shutter_open": routine.shutter_open,
            "busy": false,
        })),
        _ => Err(unknown_command(&Target::Routine, command)),
    }
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
        assert_eq!(status(&mut dev, t1)["routine_status"], "Starting");
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
    fn led_values_must_have_twelve_channels_within_zero_and_one() {
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
        assert_eq!(
            code(
                &mut dev,
                Target::Led,
                "SetValues",
                json!({"address": 1, "values": fill(2.0, 12)}),
                MS
            ),
            101
        );
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
        ok(&mut dev, Target::Mux, "SetStatus", all_on, MS);
        let s = ok(&mut dev, Target::Mux, "GetStatus", json!({}), MS);
        assert_eq!(s["nrRelays"], MUX_RELAYS);
        assert!(dev.relays().iter().all(|r| *r));
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
        let t = s["temperature"].as_f64().unwrap();
        assert!((t - 60.0).abs() < 0.1, "{t}");
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
        let rates = ok(&mut dev, Target::Routine, "GetRates", json!({}), ready);
        assert!(rates["sync_rate"].as_f64().unwrap() > rates["count_rate"].as_f64().unwrap());
        ok(
            &mut dev,
            Target::Routine,
            "SetLaser",
            json!({"port_id": 1, "laser": true}),
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
        ok(
            &mut dev,
            Target::Routine,
            "SetShutter",
            json!({"open": true}),
            ready,
        );
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
        assert_eq!(mono["shutter_open"], true);
        let chopper = ok(
            &mut dev,
            Target::Routine,
            "GetChopperFrequency",
            json!({}),
            ready,
        );
        assert!(chopper["frequency"].as_f64().unwrap() > 0.0);
        ok(
            &mut dev,
            Target::Routine,
            "StartCalibration",
            json!({}),
            ready,
        );
        assert_eq!(
            code(&mut dev, Target::Routine, "AcquireSingle", json!({}), ready),
            codes::UNKNOWN_COMMAND
        );
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
