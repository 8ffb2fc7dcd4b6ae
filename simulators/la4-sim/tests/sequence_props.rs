//! Every command the sequence builder makes is understood by the simulator's shell parser
//! exactly as a real `sh` would run it, and nothing generated escapes its quotes.

use la4_sim::BOARDIO_READY;
use la4_sim::shell::{self, Connector, Files};
use la4_sim::state::Device;
use proptest::prelude::*;
use pycom_proto::sequence::{Row, Sequence, Slot};

/// Mostly in range, sometimes any value: out-of-range ones must be refused before any command
/// exists.
fn value(max: u8) -> impl Strategy<Value = u8> + Clone {
    prop_oneof![40 => 0..=max, 1 => any::<u8>()]
}

fn row() -> impl Strategy<Value = Row> {
    pycom_proto::strategy::row_from(value(100), value(109))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_valid_sequence_round_trips_through_the_simulators_parser(
        rows in prop::collection::vec(row(), 1..16),
    ) {
        let Ok(sequence) = Sequence::new(rows.clone()) else {
            // Refused: some value is out of range.
            prop_assert!(rows.iter().any(|r| r.validate().is_err()));
            return Ok(());
        };
        for slot in [Slot::Normal, Slot::Standalone] {
            let command = sequence.command(slot);
            let script = shell::parse(&command).unwrap();
            // Exactly the documented simple commands: the echo argument stayed one word.
            let mut expected = vec![
                vec!["echo".to_owned(), sequence.echo_argument()],
            ];
            match slot {
                Slot::Normal => {
                    expected.push(vec!["boardiocli".into(), "uSeq".into()]);
                    expected.push(vec!["boardiocli".into(), "runSeq".into()]);
                }
                Slot::Standalone => {
                    expected.push(vec!["boardiocli".into(), "uSeqStandalone".into()]);
                    // The vendor's full idiom also runs it at once; storing alone is valid too.
                    if script.len() == 3 {
                        expected.push(vec!["boardiocli".into(), "runSeq".into()]);
                    }
                }
            }
            let runs = expected.last().is_some_and(|w| w[1] == "runSeq");
            // One verdict per daemon command that reports one: uSeq is silent on success.
            let verdicts = if slot == Slot::Normal { 1 } else { expected.len() - 1 };
            let words: Vec<Vec<String>> = script.iter().map(|(_, c)| c.words.clone()).collect();
            prop_assert_eq!(words, expected);
            prop_assert_eq!(script[0].0, Connector::Always);
            prop_assert!(script[1..].iter().all(|(c, cmd)| *c == Connector::IfSuccess && cmd.redirect.is_none()));
            prop_assert_eq!(script[0].1.redirect.as_deref(), Some(slot.file()));

            // Run it: the file holds the rows, boardio accepts them.
            let mut device = Device::default();
            let result = device.run(&command, true);
            prop_assert_eq!(result.messages, vec![BOARDIO_READY.to_owned(); verdicts]);
            let written = match slot {
                Slot::Normal => device.files.sequence.clone(),
                Slot::Standalone => device.files.standalone.clone(),
            };
            prop_assert_eq!(written, Some(sequence.to_csv()));
            if slot == Slot::Standalone {
                prop_assert_eq!(device.lights.standalone.as_ref(), Some(&sequence));
            }
            let last_run = runs.then_some(&sequence);
            prop_assert_eq!(device.lights.last_run.as_ref(), last_run);
        }
    }

    #[test]
    fn arbitrary_command_lines_never_panic_and_syntax_errors_run_nothing(
        line in "[a-z\"'\\;&|$`><()# /.]{0,60}",
    ) {
        let mut files = Files::default();
        let outcome = shell::run(&line, &mut files, true);
        if shell::parse(&line).is_err() {
            prop_assert_eq!(outcome.status, 2);
            prop_assert!(outcome.stdout.is_empty());
            prop_assert!(outcome.stderr.starts_with("sh: 1: Syntax error"));
            prop_assert_eq!(files, Files::default());
        }
    }

    #[test]
    fn shell_metacharacters_in_echo_arguments_are_words_not_commands(text in "[a-z;&|$`><() ]{0,20}") {
        // Single-quoted, any of these is one literal word to sh; the simulator agrees.
        let line = format!("echo '{text}'");
        let outcome = shell::run(&line, &mut Files::default(), true);
        prop_assert_eq!(outcome.status, 0);
        prop_assert_eq!(outcome.stdout, format!("{text}\n"));
    }
}

/// The system `sh`, if it is dash (the device's `/bin/sh`); bash's `echo` would not expand `\n`.
fn dash() -> Option<&'static str> {
    let target = std::fs::read_link("/bin/sh").ok()?;
    target
        .to_string_lossy()
        .contains("dash")
        .then_some("/bin/sh")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Only the `echo` of the generated command goes to the real `sh` (no redirection, nothing
    /// else): its stdout must be what the simulator writes into the sequence file.
    #[test]
    fn a_real_dash_echoes_what_the_simulator_writes(rows in prop::collection::vec(row(), 1..8)) {
        let Some(sh) = dash() else { return Ok(()) };
        let Ok(sequence) = Sequence::new(rows) else { return Ok(()) };
        let echo = format!("echo \"{}\"", sequence.echo_argument());
        let real = std::process::Command::new(sh).arg("-c").arg(&echo).output().unwrap();
        prop_assert!(real.status.success());
        let simulated = shell::run(&echo, &mut Files::default(), true);
        prop_assert_eq!(String::from_utf8(real.stdout).unwrap(), simulated.stdout.clone());
        prop_assert_eq!(simulated.stdout, sequence.to_csv());
    }
}
