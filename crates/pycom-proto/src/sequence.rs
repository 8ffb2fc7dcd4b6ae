//! Light sequences: typed rows with validated ranges, and the shell command that loads them.
//!
//! A sequence is a CSV file on the node, one `REGISTER,params…` row per line. The documented way
//! to load it is a shell command that writes the file with `echo` and tells the boardio daemon
//! to load (and run) it:
//!
//! ```text
//! echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq
//! ```
//!
//! The `\n` is a literal backslash-n that `sh`'s `echo` turns into a newline. [`Sequence`] builds
//! this command from [`Row`]s, so nobody writes shell quoting by hand. Every row renders to
//! upper-case register names, digits and commas only, joined by `\n`: nothing inside the double
//! quotes is special to `sh` (no `"`, `$`, `` ` ``, or other backslash escape), so no value can
//! end the quoted word or inject a command.

use std::fmt;
use std::str::FromStr;

/// Path of the sequence file that `boardiocli uSeq` loads.
pub const SEQUENCE_FILE: &str = "/home/rigsters/la4_sequence.csv";
/// Path of the boot-time (standalone) sequence file that `boardiocli uSeqStandalone` loads.
pub const STANDALONE_SEQUENCE_FILE: &str = "/home/rigsters/la4_sequence_standalone.csv";

/// The `message` a node sends when boardio accepted (and ran) a sequence.
pub const BOARDIO_READY: &str = "BOARDIO_READY";
/// How the `message` a node sends when boardio refused a sequence begins.
pub const BOARDIO_ERROR: &str = "BOARDIO_ERROR";

/// What boardio reported about a sequence, as a `message` event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `BOARDIO_READY`.
    Ready,
    /// `BOARDIO_ERROR…`, with the whole message.
    Error(String),
}

impl Verdict {
    /// The verdict a `message` event carries, if it is one.
    pub fn from_message(message: &str) -> Option<Self> {
        if message == BOARDIO_READY {
            Some(Self::Ready)
        } else if message.starts_with(BOARDIO_ERROR) {
            Some(Self::Error(message.to_owned()))
        } else {
            None
        }
    }
}

/// Highest power, in percent.
pub const MAX_POWER: u8 = 100;
/// Highest `ALL_4_CANON` shutter time, in milliseconds.
pub const MAX_SHUTTER_MS: u8 = 109;

/// Camera drive mode for the `OLAT_4_*` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drive {
    /// `0`: one frame per trigger.
    SingleFrame,
    /// `1`: continuous shooting.
    Continuous,
}

impl Drive {
    fn code(self) -> u8 {
        match self {
            Drive::SingleFrame => 0,
            Drive::Continuous => 1,
        }
    }
}

/// One sequence row. Build it directly and let [`Sequence::new`] (or [`Row::validate`]) check the
/// ranges, or parse it from its CSV text with [`str::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Row {
    /// `MODEL_LIGHT,<power>`: the model light, 0–100 % (0 = off).
    ModelLight {
        /// 0–100 %.
        power: u8,
    },
    /// `ALL_4_NIKON,<power>`: all four lights, Nikon trigger.
    All4Nikon {
        /// 0–100 %.
        power: u8,
    },
    /// `ALL_4_CANON,<power>,<shutter_ms>`: all four lights, Canon trigger.
    All4Canon {
        /// 0–100 %.
        power: u8,
        /// 0–109 ms.
        shutter_ms: u8,
    },
    /// `OLAT_4_NIKON,<power>,<drive>`: one light at a time, Nikon trigger.
    Olat4Nikon {
        /// 0–100 %.
        power: u8,
        /// Single frame or continuous.
        drive: Drive,
    },
    /// `OLAT_4_CANON,<power>,<drive>`: one light at a time, Canon trigger.
    Olat4Canon {
        /// 0–100 %.
        power: u8,
        /// Single frame or continuous.
        drive: Drive,
    },
    /// `LED_FAN,<0|1>`: the fans (off at boot).
    LedFan {
        /// Fans on.
        on: bool,
    },
    /// `DIGITAL_POLARIZER,<0|1>`: the polariser.
    DigitalPolarizer {
        /// Polariser on.
        on: bool,
    },
}

/// Why a row is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// The register name is not one of the documented ones.
    #[error("unknown register {register:?}")]
    UnknownRegister {
        /// The name found (possibly empty).
        register: String,
    },
    /// The row has the wrong number of parameters.
    #[error("{register} takes {expected} parameter(s), found {found}")]
    WrongArity {
        /// The register.
        register: &'static str,
        /// Parameters it takes.
        expected: usize,
        /// Parameters found.
        found: usize,
    },
    /// A parameter is not a decimal number.
    #[error("{register} {parameter} must be a decimal number, found {value:?}")]
    NotANumber {
        /// The register.
        register: &'static str,
        /// The parameter's name.
        parameter: &'static str,
        /// The text found.
        value: String,
    },
    /// A parameter is outside its documented range.
    #[error("{register} {parameter} must be {min}..={max}, found {value}")]
    OutOfRange {
        /// The register.
        register: &'static str,
        /// The parameter's name.
        parameter: &'static str,
        /// The value found, as written.
        value: String,
        /// Smallest valid value.
        min: u8,
        /// Largest valid value.
        max: u8,
    },
}

/// Why a list of rows is not a valid sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// A sequence needs at least one row.
    #[error("a sequence needs at least one row")]
    Empty,
    /// Row `index` (0-based) is invalid.
    #[error("row {index}: {source}")]
    Row {
        /// The row's position, counting from 0.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: RowError,
    },
}

impl Row {
    /// The register name written first in the row.
    pub fn register(&self) -> &'static str {
        match self {
            Row::ModelLight { .. } => "MODEL_LIGHT",
            Row::All4Nikon { .. } => "ALL_4_NIKON",
            Row::All4Canon { .. } => "ALL_4_CANON",
            Row::Olat4Nikon { .. } => "OLAT_4_NIKON",
            Row::Olat4Canon { .. } => "OLAT_4_CANON",
            Row::LedFan { .. } => "LED_FAN",
            Row::DigitalPolarizer { .. } => "DIGITAL_POLARIZER",
        }
    }

    /// Checks the documented ranges (power 0–100, shutter 0–109 ms).
    ///
    /// # Errors
    /// [`RowError::OutOfRange`] for the first parameter outside its range.
    pub fn validate(&self) -> Result<(), RowError> {
        let register = self.register();
        let check = |parameter, value: u8, max| {
            if value > max {
                Err(RowError::OutOfRange {
                    register,
                    parameter,
                    value: value.to_string(),
                    min: 0,
                    max,
                })
            } else {
                Ok(())
            }
        };
        match *self {
            Row::ModelLight { power }
            | Row::All4Nikon { power }
            | Row::Olat4Nikon { power, .. }
            | Row::Olat4Canon { power, .. } => check("power", power, MAX_POWER),
            Row::All4Canon { power, shutter_ms } => {
                check("power", power, MAX_POWER)?;
                check("shutter_ms", shutter_ms, MAX_SHUTTER_MS)
            }
            Row::LedFan { .. } | Row::DigitalPolarizer { .. } => Ok(()),
        }
    }
}

impl fmt::Display for Row {
    /// The CSV text of the row, e.g. `ALL_4_CANON,80,40`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let register = self.register();
        match *self {
            Row::ModelLight { power } | Row::All4Nikon { power } => write!(f, "{register},{power}"),
            Row::All4Canon { power, shutter_ms } => write!(f, "{register},{power},{shutter_ms}"),
            Row::Olat4Nikon { power, drive } | Row::Olat4Canon { power, drive } => {
                write!(f, "{register},{power},{}", drive.code())
            }
            Row::LedFan { on } | Row::DigitalPolarizer { on } => {
                write!(f, "{register},{}", u8::from(on))
            }
        }
    }
}

impl FromStr for Row {
    type Err = RowError;

    /// Parses one CSV row strictly: a documented register, exactly its parameters, each plain
    /// decimal digits within range. No spaces, signs or empty fields.
    fn from_str(text: &str) -> Result<Self, RowError> {
        let mut fields = text.split(',');
        let name = fields.next().unwrap_or_default();
        let params: Vec<&str> = fields.collect();
        let (register, arity) = match name {
            "MODEL_LIGHT" => ("MODEL_LIGHT", 1),
            "ALL_4_NIKON" => ("ALL_4_NIKON", 1),
            "ALL_4_CANON" => ("ALL_4_CANON", 2),
            "OLAT_4_NIKON" => ("OLAT_4_NIKON", 2),
            "OLAT_4_CANON" => ("OLAT_4_CANON", 2),
            "LED_FAN" => ("LED_FAN", 1),
            "DIGITAL_POLARIZER" => ("DIGITAL_POLARIZER", 1),
            other => {
                return Err(RowError::UnknownRegister {
                    register: other.to_owned(),
                });
            }
        };
        if params.len() != arity {
            return Err(RowError::WrongArity {
                register,
                expected: arity,
                found: params.len(),
            });
        }
        let number = |index: usize, parameter: &'static str, max: u8| -> Result<u8, RowError> {
            let value = params.get(index).copied().unwrap_or_default();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RowError::NotANumber {
                    register,
                    parameter,
                    value: value.to_owned(),
                });
            }
            match value.parse::<u8>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(RowError::OutOfRange {
                    register,
                    parameter,
                    value: value.to_owned(),
                    min: 0,
                    max,
                }),
            }
        };
        let row = match register {
            "MODEL_LIGHT" => Row::ModelLight {
                power: number(0, "power", MAX_POWER)?,
            },
            "ALL_4_NIKON" => Row::All4Nikon {
                power: number(0, "power", MAX_POWER)?,
            },
            "ALL_4_CANON" => Row::All4Canon {
                power: number(0, "power", MAX_POWER)?,
                shutter_ms: number(1, "shutter_ms", MAX_SHUTTER_MS)?,
            },
            "OLAT_4_NIKON" => Row::Olat4Nikon {
                power: number(0, "power", MAX_POWER)?,
                drive: drive(number(1, "drive", 1)?),
            },
            "OLAT_4_CANON" => Row::Olat4Canon {
                power: number(0, "power", MAX_POWER)?,
                drive: drive(number(1, "drive", 1)?),
            },
            "LED_FAN" => Row::LedFan {
                on: number(0, "on", 1)? == 1,
            },
            _ => Row::DigitalPolarizer {
                on: number(0, "on", 1)? == 1,
            },
        };
        Ok(row)
    }
}

fn drive(code: u8) -> Drive {
    if code == 0 {
        Drive::SingleFrame
    } else {
        Drive::Continuous
    }
}

/// Which sequence file a command writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Slot {
    /// The normal sequence: written, loaded with `boardiocli uSeq`, run with `boardiocli runSeq`.
    #[default]
    Normal,
    /// The boot-time sequence: written, loaded with `boardiocli uSeqStandalone` and run at once
    /// with `boardiocli runSeq`, as the vendor's idiom does; the node also runs it whenever it
    /// boots. ([`Sequence::store_standalone_command`] stores it without running it now.)
    Standalone,
}

impl Slot {
    /// The file this slot's command writes.
    pub fn file(self) -> &'static str {
        match self {
            Slot::Normal => SEQUENCE_FILE,
            Slot::Standalone => STANDALONE_SEQUENCE_FILE,
        }
    }
}

/// A validated, non-empty list of rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sequence {
    rows: Vec<Row>,
}

impl Sequence {
    /// Validates every row.
    ///
    /// # Errors
    /// [`SequenceError::Empty`] for no rows, [`SequenceError::Row`] for the first invalid row.
    pub fn new(rows: impl Into<Vec<Row>>) -> Result<Self, SequenceError> {
        let rows = rows.into();
        if rows.is_empty() {
            return Err(SequenceError::Empty);
        }
        for (index, row) in rows.iter().enumerate() {
            row.validate()
                .map_err(|source| SequenceError::Row { index, source })?;
        }
        Ok(Self { rows })
    }

    /// Parses the contents of a sequence file: one row per line; a final newline (which `echo`
    /// writes) and `\r\n` line ends are accepted, blank lines elsewhere are not.
    ///
    /// # Errors
    /// As [`Sequence::new`]; a blank line is an [`RowError::UnknownRegister`] with an empty name.
    pub fn parse_csv(text: &str) -> Result<Self, SequenceError> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        if body.is_empty() {
            return Err(SequenceError::Empty);
        }
        let rows = body
            .split('\n')
            .enumerate()
            .map(|(index, line)| {
                let line = line.strip_suffix('\r').unwrap_or(line);
                line.parse()
                    .map_err(|source| SequenceError::Row { index, source })
            })
            .collect::<Result<Vec<Row>, _>>()?;
        Self::new(rows)
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The file contents, one row per line, each ended by a newline (as `echo` writes it).
    pub fn to_csv(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(self.rows.len() * 24);
        for row in &self.rows {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{row}");
        }
        out
    }

    /// The argument of the `echo`, without its quotes: rows joined by a literal `\n`.
    pub fn echo_argument(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(self.rows.len() * 24);
        for (index, row) in self.rows.iter().enumerate() {
            if index > 0 {
                out.push_str("\\n");
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{row}");
        }
        out
    }

    /// The vendor's shell idiom that writes this sequence into `slot`, loads it and runs it:
    /// for [`Slot::Normal`]
    /// `echo "…" > la4_sequence.csv && boardiocli uSeq && boardiocli runSeq`, for
    /// [`Slot::Standalone`]
    /// `echo "…" > la4_sequence_standalone.csv && boardiocli uSeqStandalone && boardiocli runSeq`.
    pub fn command(&self, slot: Slot) -> String {
        let echo = format!("echo \"{}\" > {}", self.echo_argument(), slot.file());
        match slot {
            Slot::Normal => format!("{echo} && boardiocli uSeq && boardiocli runSeq"),
            Slot::Standalone => format!("{echo} && boardiocli uSeqStandalone && boardiocli runSeq"),
        }
    }

    /// Stores this sequence as the boot-time sequence without running it now:
    /// `echo "…" > la4_sequence_standalone.csv && boardiocli uSeqStandalone`. The node runs it
    /// at its next boot.
    pub fn store_standalone_command(&self) -> String {
        format!(
            "echo \"{}\" > {} && boardiocli uSeqStandalone",
            self.echo_argument(),
            Slot::Standalone.file()
        )
    }
}

impl TryFrom<Vec<Row>> for Sequence {
    type Error = SequenceError;

    fn try_from(rows: Vec<Row>) -> Result<Self, SequenceError> {
        Self::new(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_command() {
        let sequence =
            Sequence::new([Row::ModelLight { power: 100 }, Row::LedFan { on: true }]).unwrap();
        assert_eq!(
            sequence.command(Slot::Normal),
            r#"echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"#
        );
        assert_eq!(
            sequence.command(Slot::Standalone),
            r#"echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence_standalone.csv && boardiocli uSeqStandalone && boardiocli runSeq"#
        );
        assert_eq!(
            sequence.store_standalone_command(),
            r#"echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence_standalone.csv && boardiocli uSeqStandalone"#
        );
    }

    #[test]
    fn every_row_renders_and_parses_back() {
        let rows = [
            Row::ModelLight { power: 0 },
            Row::All4Nikon { power: 55 },
            Row::All4Canon {
                power: 100,
                shutter_ms: 109,
            },
            Row::Olat4Nikon {
                power: 1,
                drive: Drive::SingleFrame,
            },
            Row::Olat4Canon {
                power: 2,
                drive: Drive::Continuous,
            },
            Row::LedFan { on: false },
            Row::DigitalPolarizer { on: true },
        ];
        for row in rows {
            assert_eq!(row.to_string().parse::<Row>(), Ok(row), "{row}");
        }
        let sequence = Sequence::new(rows).unwrap();
        assert_eq!(Sequence::parse_csv(&sequence.to_csv()), Ok(sequence));
    }

    #[test]
    fn out_of_range_values_are_rejected_when_building() {
        assert_eq!(
            Sequence::new([Row::LedFan { on: true }, Row::ModelLight { power: 101 }]),
            Err(SequenceError::Row {
                index: 1,
                source: RowError::OutOfRange {
                    register: "MODEL_LIGHT",
                    parameter: "power",
                    value: "101".into(),
                    min: 0,
                    max: 100
                }
            })
        );
        assert!(matches!(
            Row::All4Canon {
                power: 10,
                shutter_ms: 110
            }
            .validate(),
            Err(RowError::OutOfRange {
                parameter: "shutter_ms",
                ..
            })
        ));
        assert_eq!(Sequence::new(Vec::new()), Err(SequenceError::Empty));
    }

    #[test]
    fn verdicts_are_read_from_boardio_messages() {
        assert_eq!(Verdict::from_message("BOARDIO_READY"), Some(Verdict::Ready));
        assert_eq!(
            Verdict::from_message("BOARDIO_ERROR: bad row"),
            Some(Verdict::Error("BOARDIO_ERROR: bad row".into()))
        );
        assert_eq!(Verdict::from_message("Sequence complete"), None);
        assert_eq!(Verdict::from_message("BOARDIO_READY now"), None);
    }

    #[test]
    fn parsing_is_strict() {
        let bad = [
            ("", "UnknownRegister"),
            ("model_light,1", "UnknownRegister"),
            ("MODEL_LIGHT", "WrongArity"),
            ("MODEL_LIGHT,1,2", "WrongArity"),
            ("MODEL_LIGHT, 1", "NotANumber"),
            ("MODEL_LIGHT,-1", "NotANumber"),
            ("MODEL_LIGHT,", "NotANumber"),
            ("MODEL_LIGHT,+1", "NotANumber"),
            ("MODEL_LIGHT,101", "OutOfRange"),
            ("MODEL_LIGHT,99999999999999999999999", "OutOfRange"),
            ("ALL_4_CANON,1,110", "OutOfRange"),
            ("OLAT_4_NIKON,1,2", "OutOfRange"),
            ("LED_FAN,2", "OutOfRange"),
        ];
        for (text, kind) in bad {
            let err = text.parse::<Row>().unwrap_err();
            assert!(
                format!("{err:?}").starts_with(kind),
                "{text:?} gave {err:?}"
            );
        }
        assert_eq!("MODEL_LIGHT,007".parse(), Ok(Row::ModelLight { power: 7 }));
    }

    #[test]
    fn csv_accepts_a_final_newline_and_crlf_but_not_blank_lines() {
        assert!(Sequence::parse_csv("LED_FAN,1\r\nMODEL_LIGHT,5\n").is_ok());
        assert_eq!(Sequence::parse_csv("\n"), Err(SequenceError::Empty));
        assert!(matches!(
            Sequence::parse_csv("LED_FAN,1\n\nLED_FAN,0"),
            Err(SequenceError::Row { index: 1, .. })
        ));
    }
}
