//! Durations as people write them: `250ms`, `1.5s`, `2min`.
//!
//! Flags (`cli::duration`, feature `cli`) also take a bare number of seconds; scenario
//! files and the control channel always want the unit (`delay: 200ms`), so that `delay: 200`
//! cannot be misread as 200 seconds.

use std::time::Duration;

/// Parses `text`: a decimal number followed by `ms`, `s` or `min`. A bare number is seconds
/// when `bare_seconds` is true and refused otherwise. Negative, non-finite and absurdly large
/// values are refused.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse(text: &str, bare_seconds: bool) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(min) = text.strip_suffix("min") {
        (min, 60.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else if bare_seconds {
        (text, 1.0)
    } else {
        return Err(format!(
            "{text:?} is not a duration with a unit (e.g. 250ms, 1.5s or 2min)"
        ));
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        if bare_seconds {
            format!("{text:?} is not a duration (e.g. 1.5, 1.5s or 250ms)")
        } else {
            format!("{text:?} is not a duration (e.g. 250ms, 1.5s or 2min)")
        }
    })?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("{text:?} is not a duration of zero or more seconds"))
}

/// Writes `duration` the way [`parse`] reads it: whole milliseconds as `250ms`, anything finer
/// as seconds (`0.0001s`).
pub fn format(duration: Duration) -> String {
    if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// A [`Duration`] that (de)serializes as a string with its unit (`"200ms"`, `"1.5s"`), for
/// scenario files and control requests (feature `serde`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Humane(pub Duration);

impl From<Humane> for Duration {
    fn from(value: Humane) -> Self {
        value.0
    }
}

impl From<Duration> for Humane {
    fn from(value: Duration) -> Self {
        Self(value)
    }
}

#[cfg(feature = "serde")]
mod with_serde {
    use super::Humane;
    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt;

    impl Serialize for Humane {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(&super::format(self.0))
        }
    }

    struct HumaneVisitor;

    impl Visitor<'_> for HumaneVisitor {
        type Value = Humane;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with its unit, e.g. \"250ms\", \"1.5s\" or \"2min\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Humane, E> {
            super::parse(text, false).map(Humane).map_err(E::custom)
        }
    }

    impl<'de> Deserialize<'de> for Humane {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(HumaneVisitor)
        }
    }
}

/// `#[serde(with = "labwire_simkit::duration::humane")]` for a plain [`Duration`] field: the
/// same text as [`Humane`] (feature `serde`).
#[cfg(feature = "serde")]
pub mod humane {
    use super::Humane;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    /// Writes `duration` as `"250ms"` / `"1.5s"`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        Humane(*duration).serialize(serializer)
    }

    /// Reads `"250ms"`, `"1.5s"` or `"2min"`.
    ///
    /// # Errors
    /// When the text is not a duration with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Humane::deserialize(deserializer).map(|h| h.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_required_unless_bare_seconds_are_allowed() {
        assert_eq!(parse("200ms", false), Ok(Duration::from_millis(200)));
        assert_eq!(parse("1.5s", false), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2min", false), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1.5", true), Ok(Duration::from_millis(1500)));
        let error = parse("200", false).unwrap_err();
        assert!(error.contains("with a unit"), "{error}");
        for bad in ["-1s", "soonms", "NaNs", "1e300s"] {
            assert!(parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_reads_back() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_secs(60),
            Duration::from_micros(1500),
        ] {
            assert_eq!(parse(&format(d), false), Ok(d), "{}", format(d));
        }
    }
}
