//! Typed `data` of the replies whose shape the vendor documents: the TCSPC rates, spectra,
//! exposure, monochromator status, the temperature controllers, and the LED boards.
//!
//! Every type reads the vendor's spelling (keys with spaces and dots, `nrRelays`, ...) and is
//! lenient where the vendor is: numbers may arrive as the non-finite strings [`crate::json`]
//! makes of bare `NaN`/`Infinity`, integers may arrive as whole floats, and fields the vendor
//! does not name are kept in an `extra` map rather than refused. Build one from a reply's
//! `data` with [`serde_json::from_value`]; the client's typed helpers do that for you.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::json::lenient_f64;

/// The `data` of TCSPC `GetRates`: `{sync_rate, input_rate, ratio}`, in counts per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rates {
    /// `sync_rate`: the laser's sync pulses per second.
    #[serde(deserialize_with = "de_f64")]
    pub sync_rate: f64,
    /// `input_rate`: detected photons per second.
    #[serde(deserialize_with = "de_f64")]
    pub input_rate: f64,
    /// `ratio`: `input_rate / sync_rate` (the vendor advises 1–5 % before measuring; NaN
    /// when the sync rate is zero).
    #[serde(deserialize_with = "de_f64")]
    pub ratio: f64,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `data` of Luminescence `AcquireDark`, `AcquireReference` and `AcquireSingle`:
/// `{spectrum: [[wavelength nm...], [raw counts...], ([irradiance µW/cm²...])]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Spectrum {
    /// `spectrum`: the rows (2 for dark and reference, 3 for a single acquisition).
    #[serde(deserialize_with = "de_rows")]
    pub spectrum: Vec<Vec<f64>>,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Spectrum {
    /// Row 0: the wavelengths in nm.
    pub fn wavelengths(&self) -> Option<&[f64]> {
        self.spectrum.first().map(Vec::as_slice)
    }

    /// Row 1: the raw spectrum (counts, without dark subtraction).
    pub fn raw(&self) -> Option<&[f64]> {
        self.spectrum.get(1).map(Vec::as_slice)
    }

    /// Row 2: the irradiance in µW/cm² (`AcquireSingle` only; valid once a dark spectrum was
    /// acquired).
    pub fn irradiance(&self) -> Option<&[f64]> {
        self.spectrum.get(2).map(Vec::as_slice)
    }
}

/// The `data` of Luminescence `AutoExposure`: `{integration_time, averages}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exposure {
    /// `integration_time`, in ms.
    #[serde(deserialize_with = "de_f64")]
    pub integration_time: f64,
    /// `averages`, when sent.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub averages: Option<u64>,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `data` of IPCE `GetMonochromatorStatus` (the vendor's example: `type`, `connected`,
/// `wavelength`, `shutter` as `"Open"`/`"Closed"`, `filter`, `grating`, `config`). Every field
/// is optional: the project's protocol reference does not pin this shape down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MonochromatorStatus {
    /// `type`, e.g. `"Serial Monochromator"`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `connected`.
    #[serde(default)]
    pub connected: Option<bool>,
    /// `wavelength`, in nm.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub wavelength: Option<f64>,
    /// `shutter`: `"Open"` or `"Closed"`; see [`MonochromatorStatus::shutter_open`].
    #[serde(default)]
    pub shutter: Option<String>,
    /// `filter` position.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub filter: Option<u64>,
    /// `grating` position.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub grating: Option<u64>,
    /// `config` (grating and filter tables), as received.
    #[serde(default)]
    pub config: Option<Value>,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MonochromatorStatus {
    /// Whether the shutter is open, when `shutter` says `Open` or `Closed`
    /// (case-insensitively).
    pub fn shutter_open(&self) -> Option<bool> {
        match self.shutter.as_deref()?.to_ascii_lowercase().as_str() {
            "open" => Some(true),
            "closed" | "close" => Some(false),
            _ => None,
        }
    }
}

/// One temperature controller in the `data` array of `TMPCTL GetStatus`.
///
/// The vendor's keys have spaces and dots (`"DeviceStatus"`, `"Error Number"`,
/// `"Temp. Measurement"`, `"Object Temperature"`); this type maps them to Rust names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TmpctlController {
    /// `address` of the controller (what `SetController` selects), when sent.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub address: Option<i64>,
    /// `channel`, when sent.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub channel: Option<i64>,
    /// `name`, when sent.
    #[serde(default)]
    pub name: Option<String>,
    /// `DeviceStatus`.
    #[serde(rename = "DeviceStatus")]
    pub device_status: TmpctlDeviceStatus,
    /// `LatestMeasurement`.
    #[serde(rename = "LatestMeasurement")]
    pub latest_measurement: TmpctlMeasurement,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TmpctlController {
    /// The measured object temperature (°C).
    pub fn object_temperature(&self) -> f64 {
        self.latest_measurement.temp_measurement.object_temperature
    }

    /// The setpoint (`"Temp. Control"` → `"Target Object Temperature"`, °C), when sent.
    pub fn target_temperature(&self) -> Option<f64> {
        self.latest_measurement
            .temp_control
            .get("Target Object Temperature")
            .and_then(lenient_f64)
    }
}

/// `DeviceStatus` of a temperature controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TmpctlDeviceStatus {
    /// `State`, e.g. `"Initializing"`, `"Ready"`, `"Running"`, `"Error"`.
    #[serde(rename = "State")]
    pub state: String,
    /// `Error Number` (0: no error).
    #[serde(rename = "Error Number", default, deserialize_with = "de_i64")]
    pub error_number: i64,
    /// Any other fields (`Error Instance`, `Error Parameter`), as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `LatestMeasurement` of a temperature controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TmpctlMeasurement {
    /// `Time Stamp`, as sent (an ISO 8601 text).
    #[serde(rename = "Time Stamp", default)]
    pub time_stamp: Option<String>,
    /// `Temp. Measurement`.
    #[serde(rename = "Temp. Measurement")]
    pub temp_measurement: TempMeasurement,
    /// `Temp. Control` (setpoint, ramp), as received.
    #[serde(rename = "Temp. Control", default)]
    pub temp_control: Map<String, Value>,
    /// `Output Stage Monitoring` (output current and voltage), as received.
    #[serde(rename = "Output Stage Monitoring", default)]
    pub output_stage_monitoring: Map<String, Value>,
    /// `Sink Temp. General`, as received.
    #[serde(rename = "Sink Temp. General", default)]
    pub sink_temp_general: Map<String, Value>,
    /// `Fan Controller`, as received.
    #[serde(rename = "Fan Controller", default)]
    pub fan_controller: Map<String, Value>,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Temp. Measurement` of a temperature controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TempMeasurement {
    /// `Object Temperature` (°C): the sample stage.
    #[serde(rename = "Object Temperature", deserialize_with = "de_f64")]
    pub object_temperature: f64,
    /// `Sink Temperature` (°C): the heat sink.
    #[serde(rename = "Sink Temperature", deserialize_with = "de_f64")]
    pub sink_temperature: f64,
    /// `Stable`, as sent (the vendor's example: `"Not Active"`).
    #[serde(rename = "Stable", default)]
    pub stable: Value,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `data` of `LED GetStatus`: `{connected, driver, boards: [{address, connected,
/// values}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedStatus {
    /// `connected`.
    pub connected: bool,
    /// `driver`, e.g. `"LVVISA"`.
    #[serde(default)]
    pub driver: Option<String>,
    /// `boards` (empty when the device sent none).
    #[serde(default)]
    pub boards: Vec<LedBoard>,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One LED board in [`LedStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedBoard {
    /// `address`: what `SetValues` takes.
    #[serde(deserialize_with = "de_i64")]
    pub address: i64,
    /// `connected` (`true` when the board did not say).
    #[serde(default = "yes")]
    pub connected: bool,
    /// `values`: one per channel, 0 (off) to 1 (full).
    #[serde(deserialize_with = "de_f64_list")]
    pub values: Vec<f64>,
    /// Any other fields, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

fn number<E: serde::de::Error>(value: &Value) -> Result<f64, E> {
    lenient_f64(value).ok_or_else(|| E::custom(format!("expected a number, found {value}")))
}

fn integer<E: serde::de::Error>(value: &Value) -> Result<i64, E> {
    if let Some(i) = value.as_i64() {
        return Ok(i);
    }
    let x = match value {
        Value::String(s) => s.trim().parse::<f64>().ok(),
        other => other.as_f64(),
    };
    match x {
        // A whole number well inside i64's range converts exactly.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked: a whole number within ±2^53"
        )]
        Some(x) if x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0 => Ok(x as i64),
        _ => Err(E::custom(format!("expected an integer, found {value}"))),
    }
}

fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(&Value::deserialize(d)?)
}

fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => number(&value).map(Some),
    }
}

fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    integer(&Value::deserialize(d)?)
}

fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => integer(&value).map(Some),
    }
}

fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => {
            let i = integer::<D::Error>(&value)?;
            u64::try_from(i)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("expected a count, found {i}")))
        }
    }
}

fn de_f64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Array(items) => items.iter().map(number).collect(),
        other => Err(serde::de::Error::custom(format!(
            "expected a list of numbers, found {other}"
        ))),
    }
}

fn de_rows<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
    let bad = |v: &Value| serde::de::Error::custom(format!("expected rows of numbers, found {v}"));
    match Value::deserialize(d)? {
        Value::Array(rows) => rows
            .iter()
            .map(|row| match row {
                Value::Array(items) => items.iter().map(number).collect(),
                other => Err(bad(other)),
            })
            .collect(),
        other => Err(bad(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_read_the_vendor_example_and_a_nan_ratio() {
        let r: Rates = serde_json::from_value(
            json!({"sync_rate":10000370,"input_rate":193650,"ratio":0.0193642835215097}),
        )
        .unwrap();
        assert_eq!(r.sync_rate, 10_000_370.0);
        assert_eq!(r.input_rate, 193_650.0);
        let r: Rates =
            serde_json::from_value(json!({"sync_rate":0,"input_rate":0,"ratio":"NaN"})).unwrap();
        assert!(r.ratio.is_nan());
        assert!(serde_json::from_value::<Rates>(json!({"sync_rate":1,"count_rate":2})).is_err());
    }

    #[test]
    fn a_controller_reads_the_vendors_keys_with_spaces_and_dots() {
        let c: TmpctlController = serde_json::from_value(json!({
            "address": 0, "channel": 0, "name": "",
            "DeviceStatus": {"State": "Initializing", "Error Number": 0, "Error Instance": 0, "Error Parameter": 0},
            "LatestMeasurement": {
                "Time Stamp": "1904-01-01T00:00:00.000Z",
                "Temp. Measurement": {"Object Temperature": 25.5, "Sink Temperature": 24, "Stable": "Not Active"},
                "Temp. Control": {"Target Object Temperature": 30, "(Ramp) Nominal Object Temperature": 0, "Thermal Power Model Current": 0},
                "Output Stage Monitoring": {"Output Current": 0, "Output Voltage": 0},
                "Sink Temp. General": {"Temperature Selection": "External", "Fixed Temperature": 0},
                "Fan Controller": {"Relative Cooling Power": 0, "Enabled": 0}
            }
        }))
        .unwrap();
        assert_eq!(c.address, Some(0));
        assert_eq!(c.device_status.state, "Initializing");
        assert_eq!(c.device_status.extra["Error Instance"], 0);
        assert_eq!(c.object_temperature(), 25.5);
        assert_eq!(c.latest_measurement.temp_measurement.sink_temperature, 24.0);
        assert_eq!(c.target_temperature(), Some(30.0));
        assert_eq!(c.latest_measurement.temp_measurement.stable, "Not Active");
        assert_eq!(
            c.latest_measurement.output_stage_monitoring["Output Voltage"],
            0
        );
        // The flat shape some code assumed is not the vendor's.
        assert!(serde_json::from_value::<TmpctlController>(json!({"temperature": 25.0})).is_err());
    }

    #[test]
    fn led_status_reads_boards_and_keeps_an_older_flat_shape_visible() {
        let s: LedStatus = serde_json::from_value(json!({
            "connected": true, "driver": "LVVISA",
            "boards": [{"address": 1, "connected": true, "values": [0, 0.5, 1.0]}]
        }))
        .unwrap();
        assert_eq!(s.driver.as_deref(), Some("LVVISA"));
        assert_eq!(s.boards[0].address, 1);
        assert_eq!(s.boards[0].values, [0.0, 0.5, 1.0]);
        let old: LedStatus = serde_json::from_value(
            json!({"connected": true, "driver": "LVVISA", "values": [0, 0]}),
        )
        .unwrap();
        assert!(old.boards.is_empty());
        assert_eq!(old.extra["values"], json!([0, 0]));
    }

    #[test]
    fn spectrum_exposure_and_monochromator() {
        let s: Spectrum =
            serde_json::from_value(json!({"spectrum": [[400.0, 402.5], [80, 93], [0.1, "NaN"]]}))
                .unwrap();
        assert_eq!(s.wavelengths(), Some(&[400.0, 402.5][..]));
        assert_eq!(s.raw(), Some(&[80.0, 93.0][..]));
        assert!(s.irradiance().unwrap()[1].is_nan());
        let e: Exposure =
            serde_json::from_value(json!({"integration_time": 50, "averages": 5.0})).unwrap();
        assert_eq!((e.integration_time, e.averages), (50.0, Some(5)));
        let m: MonochromatorStatus = serde_json::from_value(json!({
            "type": "Serial Monochromator", "connected": true, "wavelength": 550.1,
            "shutter": "Open", "filter": 2, "grating": 1,
            "config": {"fltrwave": [100, "Infinity"]}
        }))
        .unwrap();
        assert_eq!(m.shutter_open(), Some(true));
        assert_eq!(m.wavelength, Some(550.1));
        assert_eq!(m.kind.as_deref(), Some("Serial Monochromator"));
    }
}
