//! `proptest` strategies for this crate's types (feature `proptest`), shared by every test that
//! generates sequences: this crate's own, and the simulator's.

use proptest::prelude::*;

use crate::sequence::{Drive, MAX_POWER, MAX_SHUTTER_MS, Row};

/// Any row, with powers drawn from `power` and `ALL_4_CANON` shutter times from `shutter` (give
/// strategies that sometimes leave the documented range to test validation).
pub fn row_from<P, S>(power: P, shutter: S) -> impl Strategy<Value = Row>
where
    P: Strategy<Value = u8> + Clone + 'static,
    S: Strategy<Value = u8> + 'static,
{
    let drive = prop_oneof![Just(Drive::SingleFrame), Just(Drive::Continuous)];
    prop_oneof![
        power.clone().prop_map(|power| Row::ModelLight { power }),
        power.clone().prop_map(|power| Row::All4Nikon { power }),
        (power.clone(), shutter)
            .prop_map(|(power, shutter_ms)| Row::All4Canon { power, shutter_ms }),
        (power.clone(), drive.clone()).prop_map(|(power, drive)| Row::Olat4Nikon { power, drive }),
        (power, drive).prop_map(|(power, drive)| Row::Olat4Canon { power, drive }),
        any::<bool>().prop_map(|on| Row::LedFan { on }),
        any::<bool>().prop_map(|on| Row::DigitalPolarizer { on }),
    ]
}

/// Any valid row: every value within its documented range.
pub fn row() -> impl Strategy<Value = Row> {
    row_from(0..=MAX_POWER, 0..=MAX_SHUTTER_MS)
}
