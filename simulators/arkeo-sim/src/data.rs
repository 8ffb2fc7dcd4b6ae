//! Plausible measurement data, deterministic for a given measurement number.
//!
//! Non-finite values are built with [`f64_value`] (the strings `"NaN"`, `"Infinity"`), and the
//! server writes them as bare tokens, as the ARKEO application does.

use arkeo_proto::json::f64_value;
use serde_json::{Value, json};

/// A tiny deterministic noise source (64-bit LCG): the same measurement number gives the
/// same data, which keeps tests reproducible without a random-number dependency.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        unit.mul_add(2.0, -1.0)
    }
}

/// Current density (mA/cm²) of a simple diode model at `v` volts, light or dark.
fn diode(v: f64, jsc: f64) -> f64 {
    const J0: f64 = 1e-9;
    const VT: f64 = 0.0257 * 1.6;
    J0 * ((v / VT).exp() - 1.0) - jsc
}

/// A forward and a reverse JV scan with the derived parameters. Dark scans have no open-circuit
/// voltage or short-circuit current: those parameters are NaN, and the shunt resistance of an
/// ideal dark diode is infinite — the vendor writes both as bare tokens.
pub(crate) fn jv(measurement: u64, dark: bool, settings: &Value, user: &Value) -> Value {
    let scan = settings
        .pointer("/scan_settings/scan")
        .cloned()
        .unwrap_or(Value::Null);
    let num = |key: &str, default: f64| scan.get(key).and_then(Value::as_f64).unwrap_or(default);
    let start = num("Start (V)", -0.2);
    let end = num("End (V)", 1.2);
    let step = num("Step (V)", 0.02).abs().max(0.001);
    let jsc = if dark { 0.0 } else { 21.5 };
    let mut noise = Noise::new(measurement);
    // The epsilon keeps 1.2 / 0.05 = 23.999... from losing the last point.
    let points = (((end - start) / step).abs() + 1e-9).floor().min(5_000.0) as usize + 1;
    let voltages: Vec<f64> = (0..points)
        .map(|i| start + (end - start).signum() * step * i as f64)
        .collect();
    let sample = |v: f64, noise: &mut Noise| {
        let j = diode(v, jsc);
        // An overflowing exponential is what a real instrument reports as an infinite value
        // past compliance; keep it rather than clamp it.
        if j.is_finite() {
            j * (1.0 + 0.002 * noise.next())
        } else {
            j
        }
    };
    let forward: Vec<Value> = voltages
        .iter()
        .map(|&v| json!([v, f64_value(sample(v, &mut noise))]))
        .collect();
    let reverse: Vec<Value> = voltages
        .iter()
        .rev()
        .map(|&v| json!([v, f64_value(sample(v, &mut noise))]))
        .collect();
    let parameters =
        if dark {
            json!({
                "voc": {"value": f64_value(f64::NAN), "unit": "V"},
                "jsc": {"value": f64_value(f64::NAN), "unit": "mA/cm^2"},
                "fill factor": {"value": f64_value(f64::NAN), "unit": "%"},
                "efficiency": {"value": f64_value(f64::NAN), "unit": "%"},
                "r_shunt": {"value": f64_value(f64::INFINITY), "unit": "Ohm"},
            })
        } else {
            let voc = 0.0257 * 1.6 * (jsc / 1e-9 + 1.0).ln();
            let (v_mpp, p_mpp) = voltages.iter().map(|&v| (v, -v * diode(v, jsc))).fold(
                (0.0, f64::MIN),
                |best, x| if x.1 > best.1 { x } else { best },
            );
            json!({
                "voc": {"value": voc, "unit": "V"},
                "jsc": {"value": jsc, "unit": "mA/cm^2"},
                "v_mpp": {"value": v_mpp, "unit": "V"},
                "p_mpp": {"value": p_mpp, "unit": "mW/cm^2"},
                "fill factor": {"value": 100.0 * p_mpp / (voc * jsc), "unit": "%"},
                "efficiency": {"value": p_mpp, "unit": "%"},
                "r_shunt": {"value": f64_value(f64::INFINITY), "unit": "Ohm"},
            })
        };
    let schema = json!([{"name": "Voltage", "unit": "V"}, {"name": "Current", "unit": "mA/cm^2"}]);
    json!({
        "user": user.get("user_name").cloned().unwrap_or(Value::Null),
        "device": user.get("device_name").cloned().unwrap_or(Value::Null),
        "area_cm2": user.get("device_area").cloned().unwrap_or(json!(1)),
        "temperature": 23.8,
        "measurement": measurement,
        "scans": [
            {"name": "forward", "sweep_indices": [-1], "data_schema": schema, "data": forward, "parameters": parameters},
            {"name": "reverse", "sweep_indices": [-1], "data_schema": schema, "data": reverse, "parameters": parameters},
        ],
    })
}

/// A spectrum: wavelengths (nm) and rows of values. `rows` = 2 (wavelength, raw) or
/// 3 (plus irradiance). A photoluminescence peak sits at 780 nm.
pub(crate) fn spectrum(measurement: u64, rows: usize, laser_on: bool) -> Value {
    let mut noise = Noise::new(measurement);
    let wavelengths: Vec<f64> = (0..256).map(|i| 400.0 + 2.5 * f64::from(i)).collect();
    let raw: Vec<f64> = wavelengths
        .iter()
        .map(|&w| {
            let peak = if laser_on {
                4000.0 * (-((w - 780.0) / 25.0).powi(2)).exp()
            } else {
                0.0
            };
            90.0 + peak + 3.0 * noise.next()
        })
        .collect();
    let mut out = vec![json!(wavelengths), json!(raw)];
    if rows >= 3 {
        let irradiance: Vec<f64> = raw.iter().map(|r| (r - 90.0).max(0.0) * 6e-5).collect();
        out.push(json!(irradiance));
    }
    json!({ "spectrum": out })
}

/// Generic two-column data for routines without a documented data layout.
pub(crate) fn generic(routine: &str, measurement: u64) -> Value {
    let mut noise = Noise::new(measurement);
    let data: Vec<Value> = (0..100)
        .map(|i| {
            let t = f64::from(i) * 0.01;
            json!([t, (-t * 5.0).exp() + 0.01 * noise.next()])
        })
        .collect();
    json!({
        "routine": routine,
        "measurement": measurement,
        "columns": ["Time (s)", "Signal (a.u.)"],
        "data": data,
    })
}

/// TCSPC data in the vendor's shape: `{Offset, Resolution, Histogram}` (ns, ns, counts per
/// bin): an instrument response followed by an exponential decay, dark counts without the
/// laser.
pub(crate) fn tcspc(measurement: u64, laser_on: bool) -> Value {
    let mut noise = Noise::new(measurement);
    const RESOLUTION_NS: f64 = 0.025;
    let histogram: Vec<Value> = (0..1024)
        .map(|bin| {
            let t = f64::from(bin) * RESOLUTION_NS - 2.0;
            let signal = if laser_on && t >= 0.0 {
                5000.0 * (-t / 4.2).exp() * (1.0 - (-t / 0.08).exp())
            } else {
                0.0
            };
            let counts = (signal + 6.0 + 3.0 * noise.next()).max(0.0).round();
            json!(counts)
        })
        .collect();
    json!({"Offset": 0, "Resolution": RESOLUTION_NS, "Histogram": histogram})
}

/// IPCE data in the vendor's shape: `scan.columns` and `scan.data` rows of wavelength (nm),
/// EQE (%), J_DUT and the integrated J (A/cm²); the first integrated value is NaN, as in the
/// vendor's example.
pub(crate) fn ipce(measurement: u64, settings: &Value, user: &Value) -> Value {
    let num = |key: &str, default: f64| {
        settings
            .pointer(&format!("/wavelength/{key}"))
            .and_then(Value::as_f64)
            .unwrap_or(default)
    };
    let (start, step, end) = (
        num("Start", 300.0),
        num("Step", 10.0).abs().max(0.1),
        num("End", 900.0),
    );
    let points = (((end - start) / step).abs() + 1e-9).floor().min(5_000.0) as usize + 1;
    let mut noise = Noise::new(measurement);
    let mut integrated = 0.0;
    let data: Vec<Value> = (0..points)
        .map(|i| {
            let nm = start + (end - start).signum() * step * i as f64;
            // A cell that responds from 350 to 800 nm.
            let eqe =
                85.0 / (1.0 + (-(nm - 380.0) / 12.0).exp()) / (1.0 + ((nm - 790.0) / 15.0).exp());
            let eqe = (eqe + 0.2 * noise.next()).max(0.0);
            let j_dut = eqe / 100.0 * 1e-9 * nm / 300.0;
            let j_int = if i == 0 {
                f64_value(f64::NAN)
            } else {
                integrated += j_dut * step * 1e3;
                json!(integrated)
            };
            json!([nm, eqe, j_dut, j_int])
        })
        .collect();
    json!({
        "user": user.get("user_name").cloned().unwrap_or(Value::Null),
        "device": user.get("device_name").cloned().unwrap_or(Value::Null),
        "temperature": 23.8,
        "test": "IPCE",
        "measurement": measurement,
        "file": "",
        "scan": {
            "name": "IPCE",
            "columns": ["Wavelength (nm)", "EQE (%)", "J_DUT (A/cm2)", "J_int (A/cm2)"],
            "data": data,
        },
    })
}

/// Sheet resistance of the simulated sample (Ω/sq).
const SHEET_RESISTANCE: f64 = 142.0;

/// Resistivity data in the vendor's shape: only the latest point.
pub(crate) fn resistivity(
    measurement: u64,
    current: f64,
    [thickness_um, length_mm, width_mm]: [f64; 3],
) -> Value {
    let mut noise = Noise::new(measurement);
    let sheet = SHEET_RESISTANCE * (1.0 + 0.001 * noise.next());
    // A four-point probe reads V = I · R_s · ln 2 / π.
    let voltage = current * sheet * std::f64::consts::LN_2 / std::f64::consts::PI;
    // A finite-size correction: small samples read high.
    let size = length_mm.min(width_mm);
    let correction =
        (1.0 - 0.5 * (-size / 5.0).exp()) * (1.0 - 0.01 * (thickness_um / 1000.0).min(1.0));
    json!({
        "Voltage (V)": voltage,
        "Current (A)": current,
        "2D Sheet resistance (Ohm/Sq)": sheet,
        "Corrected 2D Sheet Resistance (Ohm/Sq)": sheet * correction,
    })
}

/// Resistance of the simulated load in the Connection Test (Ω).
const LOAD_OHMS: f64 = 1000.0;

/// Connection Test data in the vendor's shape: the latest voltage and current (constant
/// voltage mode).
pub(crate) fn connection_test(output: f64) -> Value {
    json!({"Voltage (V)": output, "Current (A)": output / LOAD_OHMS})
}

/// Simulated time as the ISO 8601 time stamp the temperature controllers report, counted from
/// 2025-01-01T00:00:00Z.
pub(crate) fn timestamp(since_start: std::time::Duration) -> String {
    // Days from 1970-01-01 to 2025-01-01.
    const EPOCH_DAYS: u64 = 20_089;
    let secs = since_start.as_secs();
    let days = EPOCH_DAYS.saturating_add(secs / 86_400);
    let (year, month, day) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_start.subsec_millis()
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_count_from_2025_and_cross_days_months_and_years() {
        use std::time::Duration;
        assert_eq!(timestamp(Duration::ZERO), "2025-01-01T00:00:00.000Z");
        assert_eq!(
            timestamp(Duration::from_millis(90_061_250)),
            "2025-01-02T01:01:01.250Z"
        );
        assert_eq!(
            timestamp(Duration::from_secs(59 * 86_400)),
            "2025-03-01T00:00:00.000Z"
        );
        assert_eq!(
            timestamp(Duration::from_secs(365 * 86_400)),
            "2026-01-01T00:00:00.000Z"
        );
        // Absurd times do not overflow.
        let _ = timestamp(Duration::MAX);
    }

    #[test]
    fn vendor_shaped_data() {
        let t = tcspc(1, true);
        assert_eq!(t["Histogram"].as_array().unwrap().len(), 1024);
        assert_eq!(t["Resolution"], 0.025);
        let r = resistivity(1, 0.03, [100.0, 25.0, 20.0]);
        let sheet = r["2D Sheet resistance (Ohm/Sq)"].as_f64().unwrap();
        let corrected = r["Corrected 2D Sheet Resistance (Ohm/Sq)"]
            .as_f64()
            .unwrap();
        assert!((141.0..143.0).contains(&sheet) && corrected < sheet, "{r}");
        let i = ipce(1, &Value::Null, &Value::Null);
        assert_eq!(i["scan"]["data"].as_array().unwrap().len(), 61);
        assert_eq!(i["scan"]["data"][0][3], "NaN");
        assert_eq!(connection_test(0.5)["Current (A)"], 0.0005);
    }

    #[test]
    fn dark_jv_reports_nan_voc_and_infinite_shunt_resistance() {
        let data = jv(1, true, &Value::Null, &Value::Null);
        let params = &data["scans"][0]["parameters"];
        assert_eq!(params["voc"]["value"], json!("NaN"));
        assert_eq!(params["r_shunt"]["value"], json!("Infinity"));
    }

    #[test]
    fn light_jv_has_a_plausible_open_circuit_voltage() {
        let data = jv(1, false, &Value::Null, &Value::Null);
        let voc = data["scans"][0]["parameters"]["voc"]["value"]
            .as_f64()
            .unwrap();
        assert!((0.5..1.5).contains(&voc), "{voc}");
        assert_eq!(data["scans"][0]["data"].as_array().unwrap().len(), 71);
    }

    #[test]
    fn data_is_deterministic_per_measurement() {
        assert_eq!(spectrum(3, 3, true), spectrum(3, 3, true));
        assert_ne!(generic("TPR", 1), generic("TPR", 2));
    }
}
