//! Sequence file parsing: arbitrary text either fails with a typed error or yields rows that
//! render back to text parsing to the same sequence, and to a command of the safe alphabet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pycom_proto::sequence::{Row, Sequence, Slot};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(row) = line.parse::<Row>() {
            assert_eq!(row.to_string().parse::<Row>(), Ok(row));
        }
    }
    if let Ok(sequence) = Sequence::parse_csv(text) {
        assert_eq!(
            Sequence::parse_csv(&sequence.to_csv()),
            Ok(sequence.clone())
        );
        let argument = sequence.echo_argument();
        assert!(
            argument
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"_,\\n".contains(&b))
        );
        let command = sequence.command(Slot::Normal);
        assert_eq!(command.matches('"').count(), 2);
    }
});
