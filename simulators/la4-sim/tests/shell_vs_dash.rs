//! The simulator's shell answers like the device's `/bin/sh` (dash): command lines built from
//! harmless pieces (builtin and `/bin/echo`, `eval`, `exec`, programs that do not exist; no
//! redirection, nothing that reads or writes a file) run in both, with the same stdout, stderr
//! and status. Skipped where `/bin/sh` is not dash.
#![cfg(unix)]

use std::os::unix::process::CommandExt as _;

use la4_sim::shell::{self, Files};
use proptest::prelude::*;

/// The system `sh`, if it is dash.
fn dash() -> Option<&'static str> {
    let target = std::fs::read_link("/bin/sh").ok()?;
    target
        .to_string_lossy()
        .contains("dash")
        .then_some("/bin/sh")
}

/// Simple commands that touch nothing on the host. The missing programs are checked missing.
const PIECES: &[&str] = &[
    "echo a",
    "echo 'b  c'",
    "echo -n d",
    r"echo 'x\ny'",
    "labwire_missing_1",
    "labwire_missing_2 arg",
    "eval echo e",
    "eval 'echo f; labwire_missing_3'",
    "eval \"echo g\nlabwire_missing_4\"",
    "eval",
    "exec echo h",
    r"exec echo -e 'i\tj'",
    "exec",
    "exec labwire_missing_5",
];

/// How pieces are joined.
const JOINS: &[&str] = &["; ", " && ", "\n", "\n\n", " &&\n", ";\n"];

fn line() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(PIECES);
    let join = prop::sample::select(JOINS);
    (piece.clone(), prop::collection::vec((join, piece), 0..5)).prop_map(|(first, rest)| {
        let mut line = first.to_owned();
        for (join, piece) in rest {
            line.push_str(join);
            line.push_str(piece);
        }
        line
    })
}

fn missing(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_none_or(|path| std::env::split_paths(&path).all(|dir| !dir.join(program).exists()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_simulator_answers_like_dash(line in line()) {
        let Some(sh) = dash() else { return Ok(()) };
        for n in 1..=5 {
            let program = format!("labwire_missing_{}", n);
            prop_assert!(missing(&program), "{} exists", program);
        }
        // Named `sh` as the device's messages show it (`sh: 1: …`).
        let real = std::process::Command::new(sh).arg0("sh").arg("-c").arg(&line).output().unwrap();
        let simulated = shell::run(&line, &mut Files::default(), true);
        prop_assert_eq!(String::from_utf8_lossy(&real.stdout), simulated.stdout.as_str(), "{:?}", line);
        prop_assert_eq!(String::from_utf8_lossy(&real.stderr), simulated.stderr.as_str(), "{:?}", line);
        prop_assert_eq!(real.status.code(), Some(simulated.status), "{:?}", line);
    }
}
