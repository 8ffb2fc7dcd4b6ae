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

#[cfg(test)]
mod tests {
    use super::*;

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
