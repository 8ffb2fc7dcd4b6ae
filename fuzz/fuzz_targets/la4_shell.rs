//! The LA4 simulator's shell-subset interpreter: any command line (bytes taken as lossy UTF-8)
//! is parsed and run without panicking, deterministically, in bounded time and memory, and with
//! no effect outside the documented subset: only the two sequence files can change, and only
//! when the line redirects to them (directly, or through `eval`/`exec`); a syntax error stops
//! the shell with status 2 where it stands (on one line nothing runs); messages about a
//! one-line command name line 1; NUL bytes are dropped as dash drops them; `boardiocli` reaches
//! the daemon only when it is running and only for its three sub-commands; files and output
//! stay within their bounds.
#![no_main]

use la4_sim::shell::{self, BoardioCommand, Files, MAX_FILE_LEN, MAX_OUTPUT_LEN};
use la4_sim::state::Device;
use libfuzzer_sys::fuzz_target;
use pycom_proto::sequence::{SEQUENCE_FILE, STANDALONE_SEQUENCE_FILE};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the starting files, so that `cat` and `boardiocli` see contents.
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    let line = String::from_utf8_lossy(rest);
    let start = match first % 3 {
        0 => Files::default(),
        1 => Files {
            sequence: Some("MODEL_LIGHT,100\nLED_FAN,1\n".into()),
            standalone: None,
        },
        _ => Files {
            sequence: Some("BAD,ROW\n".into()),
            standalone: Some("DIGITAL_POLARIZER,1\n".into()),
        },
    };
    let booted = first & 0x80 != 0;

    let mut files = start.clone();
    let outcome = shell::run(&line, &mut files, booted);

    // Deterministic: the same line on the same files does the same.
    let mut again = start.clone();
    assert_eq!(shell::run(&line, &mut again, booted), outcome);
    assert_eq!(again, files);

    // Memory stays bounded whatever the line multiplies.
    assert!(outcome.stdout.len() <= MAX_OUTPUT_LEN);
    assert!(outcome.stderr.len() <= MAX_OUTPUT_LEN);
    for file in [&files.sequence, &files.standalone].into_iter().flatten() {
        assert!(file.len() <= MAX_FILE_LEN);
    }
    // Output grows at most linearly with the line, unless `cat` copies a file: nothing can
    // spell `cat` without a `c` (echo's escapes reach only its output, which nothing runs).
    let bound = 64 * (line.len() + 1);
    if !line.contains('c') {
        assert!(outcome.stdout.len() <= bound);
    }
    assert!(outcome.stderr.len() <= bound);
    // Nothing writes a file without a `>` in the line.
    if !line.contains('>') {
        assert_eq!(files, start);
    }
    // Every `boardiocli` call is spelt somewhere in the line, even through `eval`.
    assert!(outcome.boardio.len() <= line.len() / "boardiocli".len());
    // boardiocli reaches the daemon only when running, and only with its three sub-commands.
    if !booted {
        assert!(outcome.boardio.is_empty());
    }
    for command in &outcome.boardio {
        assert!(matches!(
            command,
            BoardioCommand::USeq | BoardioCommand::USeqStandalone | BoardioCommand::RunSeq
        ));
    }
    // NUL bytes are dropped as dash drops them: the line without them does the same.
    if line.contains('\0') {
        let mut same = start.clone();
        assert_eq!(
            shell::run(&line.replace('\0', ""), &mut same, booted),
            outcome
        );
        assert_eq!(same, files);
    }
    // On one line (sh reads and runs a line at a time), every message is about line 1.
    let one_line = !line.contains('\n');
    if one_line {
        for message in outcome.stderr.lines().filter(|m| m.starts_with("sh: ")) {
            assert!(message.starts_with("sh: 1: "), "{message:?}");
        }
    }

    match shell::parse(&line) {
        Err(_) => {
            // A syntax error stops the shell where it stands, with status 2: on one line
            // nothing has run. On several lines an earlier one may end the shell first
            // (`exec`), and the line with the error is never read.
            if one_line {
                assert_eq!(outcome.status, 2);
                assert!(outcome.stdout.is_empty());
                assert!(outcome.stderr.starts_with("sh: 1: Syntax error"));
                assert!(outcome.boardio.is_empty());
                assert_eq!(files, start);
            }
        }
        Ok(script) => {
            let programs = |name: &str| {
                script
                    .iter()
                    .filter(|(_, c)| c.words.first().is_some_and(|w| w == name))
                    .count()
            };
            // Without `eval` or `exec`, what runs is what the script says.
            if programs("eval") + programs("exec") == 0 {
                let redirects = |path: &str| {
                    script
                        .iter()
                        .any(|(_, c)| c.redirect.as_deref() == Some(path))
                };
                if !redirects(SEQUENCE_FILE) {
                    assert_eq!(files.sequence, start.sequence);
                }
                if !redirects(STANDALONE_SEQUENCE_FILE) {
                    assert_eq!(files.standalone, start.standalone);
                }
                assert!(outcome.boardio.len() <= programs("boardiocli"));
            }
            // Anything else is "not found", with status 127.
            if outcome.status == 127 {
                assert!(outcome.stderr.contains(": not found\n"));
            }
        }
    }

    // The device on top: the daemon's messages follow the commands it got, and the lights
    // change only through `runSeq`.
    let mut device = Device::default();
    device.files = start;
    let result = device.run(&line, booted);
    assert!(result.messages.len() <= outcome.boardio.len());
    assert_eq!(result.output, outcome.output());
    if !outcome.boardio.contains(&BoardioCommand::RunSeq) {
        assert_eq!(device.lights.runs, 0);
        assert_eq!(device.lights.last_run, None);
    }
});
