//! A tiny, total interpreter of the shell idioms LA4 commands use. It never runs anything on the
//! host: it only parses the text and acts on the simulated device.
//!
//! Supported, with the semantics of `sh` (dash, the device's `/bin/sh`):
//! - words with `"double"` quotes (backslash escapes only `$`, `` ` ``, `"`, `\` and newline
//!   inside them), `'single'` quotes and unquoted backslash escapes; NUL bytes are dropped, as
//!   dash drops them;
//! - simple commands joined by `&&` (run the next only if the previous succeeded) and `;` or a
//!   newline (run the next anyway); a trailing `;`, blank lines and a newline after `&&` are
//!   allowed;
//! - output redirection `> FILE` on any command;
//! - programs: `echo` (dash's builtin, which turns `\n` into a newline, with `-n`), `cat`,
//!   `boardiocli`;
//! - the builtins `eval` (its arguments, joined by spaces, read and run as a command line of
//!   this same subset) and `exec` (runs `echo` — then `/bin/echo`, which leaves backslashes
//!   alone unless `-e` —, `cat` or `boardiocli` in place of the shell: nothing after it runs;
//!   `exec > FILE` alone sends the output of what follows to `FILE`).
//!
//! Like sh, the interpreter reads one line (a list ended by a newline not after `&&`) at a
//! time and runs it before reading the next, and its messages carry the line they are about
//! (`sh: 2: nope: not found`; inside `eval`, the line of its text and `eval: `). Any other
//! program answers `sh: N: NAME: not found` (status 127). Constructs outside the subset (`|`,
//! `||`, `&`, `<`, `>>`, `(`, `)`, `$…`, backquotes, `#` comments, here-documents) are reported
//! as a syntax error where they stand, like a real one: the lines before them have run, theirs
//! and the rest do not (status 2), since interpreting them half-way could only mislead. Nested
//! `eval`s stop at [`MAX_EVAL_DEPTH`].
//!
//! Memory stays bounded whatever the input: each sequence file holds at most [`MAX_FILE_LEN`]
//! bytes (a write past it fails like a full disk, `No space left on device`), and stdout and
//! stderr keep at most [`MAX_OUTPUT_LEN`] bytes each (the rest is dropped). Work is linear in
//! the length of the line (times the `eval` depth) plus the bytes kept.

use std::borrow::Cow;

use pycom_proto::sequence::{SEQUENCE_FILE, STANDALONE_SEQUENCE_FILE};

mod parse;

/// Most bytes a sequence file holds (the default pycom message size limit: any sequence a
/// request can carry fits).
pub const MAX_FILE_LEN: usize = pycom_proto::wire::DEFAULT_MAX_MESSAGE_LEN;

/// Most bytes of stdout, and of stderr, one command line produces; more is dropped. An `output`
/// event larger than this could not be sent under the default message size limit anyway.
pub const MAX_OUTPUT_LEN: usize = pycom_proto::wire::DEFAULT_MAX_MESSAGE_LEN;

/// Most `eval`s nested in one another; a deeper one fails with
/// `sh: N: eval: nested too deeply` (status 2) and stops the command line (dash has no such
/// limit; the simulator keeps its work bounded).
pub const MAX_EVAL_DEPTH: usize = 32;

/// How a command is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// The first command, or after `;`: always runs.
    Always,
    /// After `&&`: runs only if the previous status was 0.
    IfSuccess,
}

/// One simple command: its words and an optional `> FILE` redirection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleCommand {
    /// The program and its arguments, quotes removed.
    pub words: Vec<String>,
    /// Target of `> FILE`, if any.
    pub redirect: Option<String>,
    /// The line it starts on (from 1), which sh's messages about it carry.
    pub line: usize,
}

/// A parsed command line: simple commands with their connectors, in order.
pub type Script = Vec<(Connector, SimpleCommand)>;

/// What `sh` would print for a syntax error, e.g. `Syntax error: "|" unexpected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Syntax error: {0}")]
pub struct SyntaxError(pub String);

/// `text` without its NUL bytes, which dash drops as it reads.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

/// Parses a command line of the supported subset, all of it (the top level: what `eval` will
/// run is read when it runs).
///
/// # Errors
/// The first [`SyntaxError`]: anything outside the subset or malformed (`&&` with nothing after
/// it, a leading `;`, `>` without a file, unterminated quotes). [`run`] runs the lines before it.
pub fn parse(line: &str) -> Result<Script, SyntaxError> {
    let mut script = Script::new();
    for chunk in parse::chunks(&without_nul(line)) {
        script.extend(chunk.map_err(|(_, error)| error)?);
    }
    Ok(script)
}

/// The two files the simulated node keeps; everything else does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    /// Contents of [`SEQUENCE_FILE`].
    pub sequence: Option<String>,
    /// Contents of [`STANDALONE_SEQUENCE_FILE`].
    pub standalone: Option<String>,
}

impl Files {
    fn slot(&mut self, path: &str) -> Option<&mut Option<String>> {
        match path {
            SEQUENCE_FILE => Some(&mut self.sequence),
            STANDALONE_SEQUENCE_FILE => Some(&mut self.standalone),
            _ => None,
        }
    }

    /// The contents of `path`, if it is one of the two files and has been written.
    pub fn read(&self, path: &str) -> Option<&str> {
        match path {
            SEQUENCE_FILE => self.sequence.as_deref(),
            STANDALONE_SEQUENCE_FILE => self.standalone.as_deref(),
            _ => None,
        }
    }
}

/// A `boardiocli` sub-command: what goes into the boardio daemon's FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardioCommand {
    /// Load the normal sequence file.
    USeq,
    /// Load the standalone sequence file.
    USeqStandalone,
    /// Run the loaded sequence.
    RunSeq,
}

impl BoardioCommand {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "uSeq" => Some(Self::USeq),
            "uSeqStandalone" => Some(Self::USeqStandalone),
            "runSeq" => Some(Self::RunSeq),
            _ => None,
        }
    }

    /// The word as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::USeq => "uSeq",
            Self::USeqStandalone => "uSeqStandalone",
            Self::RunSeq => "runSeq",
        }
    }
}

/// What running a command line did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Everything written to stdout (at most [`MAX_OUTPUT_LEN`] bytes).
    pub stdout: String,
    /// Everything written to stderr (at most [`MAX_OUTPUT_LEN`] bytes).
    pub stderr: String,
    /// Exit status of the last command run (0 = success).
    pub status: i32,
    /// `boardiocli` sub-commands sent to the daemon, in order.
    pub boardio: Vec<BoardioCommand>,
}

impl Outcome {
    fn error(&mut self, message: &str) {
        append_bounded(&mut self.stderr, message, MAX_OUTPUT_LEN);
    }

    /// What a node reports in its `output` event: stdout on success, stderr on failure.
    pub fn output(&self) -> &str {
        if self.status == 0 {
            &self.stdout
        } else {
            &self.stderr
        }
    }
}

/// Runs `line` against `files`. `boardio_running` says whether `boardiocli` can reach the
/// daemon (it cannot before boot finishes). Never touches the host.
pub fn run(line: &str, files: &mut Files, boardio_running: bool) -> Outcome {
    let mut shell = Shell {
        files,
        boardio_running,
        outcome: Outcome::default(),
        stdout_file: None,
    };
    let _ = shell.script(&without_nul(line), 0);
    shell.outcome
}

/// Whether the shell goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The shell is done: `exec` replaced it, or a syntax error (or a failed redirection of a
    /// special builtin) ended it.
    Exit,
}

/// One run of a command line.
struct Shell<'a> {
    files: &'a mut Files,
    boardio_running: bool,
    outcome: Outcome,
    /// Where stdout goes since `exec > FILE` (or within `eval … > FILE`).
    stdout_file: Option<String>,
}

impl Shell<'_> {
    /// `sh: LINE: ` (and `eval: ` inside an eval) then `message`, on stderr.
    fn complain(&mut self, line: usize, depth: usize, message: &str) {
        let within = if depth > 0 { "eval: " } else { "" };
        self.outcome
            .error(&format!("sh: {line}: {within}{message}\n"));
    }

    /// Runs `text` line by line: the top level (`depth` 0) or an `eval`'s text.
    fn script(&mut self, text: &str, depth: usize) -> Flow {
        for chunk in parse::chunks(text) {
            let list = match chunk {
                Ok(list) => list,
                Err((line, error)) => {
                    self.complain(line, depth, &error.to_string());
                    self.outcome.status = 2;
                    return Flow::Exit;
                }
            };
            for (connector, command) in &list {
                if *connector == Connector::IfSuccess && self.outcome.status != 0 {
                    continue;
                }
                if self.simple(command, depth) == Flow::Exit {
                    return Flow::Exit;
                }
            }
        }
        Flow::Continue
    }

    fn simple(&mut self, command: &SimpleCommand, depth: usize) -> Flow {
        let line = command.line;
        let words: Vec<&str> = command.words.iter().map(String::as_str).collect();
        // Redirection errors end the shell for its special builtins.
        let special = matches!(words.first(), Some(&("exec" | "eval")));
        // sh opens (creates or truncates) the redirection target before running the program.
        if let Some(target) = &command.redirect {
            match self.files.slot(target) {
                Some(slot) => *slot = Some(String::new()),
                None => {
                    self.complain(
                        line,
                        depth,
                        &format!("cannot create {target}: Permission denied"),
                    );
                    self.outcome.status = 2;
                    return if special { Flow::Exit } else { Flow::Continue };
                }
            }
        }
        match words.as_slice() {
            ["eval", args @ ..] => self.eval(command, args, depth),
            ["exec"] => {
                // `exec > FILE`: the rest of the shell's output goes there.
                if let Some(target) = &command.redirect {
                    self.stdout_file = Some(target.clone());
                }
                self.outcome.status = 0;
                Flow::Continue
            }
            ["exec", program, args @ ..] => {
                let status = match *program {
                    "echo" | "cat" | "boardiocli" => {
                        self.program(program, args, command.redirect.as_deref(), true)
                    }
                    other => {
                        self.outcome
                            .error(&format!("sh: {line}: exec: {other}: not found\n"));
                        127
                    }
                };
                self.outcome.status = status;
                Flow::Exit
            }
            [program, args @ ..] => {
                self.outcome.status = match *program {
                    "echo" | "cat" | "boardiocli" => {
                        self.program(program, args, command.redirect.as_deref(), false)
                    }
                    other => {
                        self.complain(line, depth, &format!("{other}: not found"));
                        127
                    }
                };
                Flow::Continue
            }
            [] => {
                self.outcome.status = 0;
                Flow::Continue
            }
        }
    }

    /// `eval ARGS`: the arguments joined by spaces, run as a command line of their own (its
    /// output redirected with the `eval`'s, if any).
    fn eval(&mut self, command: &SimpleCommand, args: &[&str], depth: usize) -> Flow {
        if depth >= MAX_EVAL_DEPTH {
            self.complain(command.line, depth, "nested too deeply");
            self.outcome.status = 2;
            return Flow::Exit;
        }
        let text = args.join(" ");
        let outer = match &command.redirect {
            Some(target) => self.stdout_file.replace(target.clone()),
            None => self.stdout_file.clone(),
        };
        self.outcome.status = 0;
        let flow = self.script(&text, depth + 1);
        self.stdout_file = outer;
        flow
    }

    /// Runs one of the three programs, its stdout to `redirect`, to the file of `exec > FILE`,
    /// or to the command line's stdout; returns its status. `external`: `/bin/echo` rather
    /// than the builtin (after `exec`).
    fn program(
        &mut self,
        program: &str,
        args: &[&str],
        redirect: Option<&str>,
        external: bool,
    ) -> i32 {
        let target = redirect
            .map(str::to_owned)
            .or_else(|| self.stdout_file.clone());
        // Where the program's stdout goes: what is left of its file (a fresh one when
        // redirected: sh truncated it on opening), or of the command line's stdout.
        let room = match &target {
            Some(path) => MAX_FILE_LEN.saturating_sub(self.files.read(path).map_or(0, str::len)),
            None => MAX_OUTPUT_LEN.saturating_sub(self.outcome.stdout.len()),
        };
        let mut stdout = Bounded::new(room);
        let status = match program {
            "echo" if external => {
                stdout.push(&bin_echo(args));
                0
            }
            "echo" => {
                stdout.push(&echo(args));
                0
            }
            "cat" => {
                let mut status = 0;
                for path in args {
                    match self.files.read(path) {
                        Some(text) => stdout.push(text),
                        None => {
                            self.outcome
                                .error(&format!("cat: {path}: No such file or directory\n"));
                            status = 1;
                        }
                    }
                }
                status
            }
            _ => boardiocli(args, self.boardio_running, &mut stdout, &mut self.outcome),
        };
        match target.as_deref().and_then(|t| self.files.slot(t)) {
            Some(slot) => {
                slot.get_or_insert_with(String::new).push_str(&stdout.text);
                if stdout.overflowed {
                    // The simulated disk is full: what fitted stays, the program fails.
                    self.outcome.error(&format!(
                        "{program}: write error: No space left on device\n"
                    ));
                    return 1;
                }
            }
            // Output past MAX_OUTPUT_LEN is dropped; the program does not notice.
            None => self.outcome.stdout.push_str(&stdout.text),
        }
        status
    }
}

/// A program's stdout, kept up to a number of bytes.
struct Bounded {
    text: String,
    room: usize,
    overflowed: bool,
}

impl Bounded {
    fn new(room: usize) -> Self {
        Self {
            text: String::new(),
            room,
            overflowed: false,
        }
    }

    fn push(&mut self, text: &str) {
        if !append_bounded(&mut self.text, text, self.room) {
            self.overflowed = true;
        }
    }
}

/// Appends as much of `text` to `out` as fits within `cap` bytes in all (cut at a character
/// boundary); returns whether all of it fitted.
fn append_bounded(out: &mut String, text: &str, cap: usize) -> bool {
    let room = cap.saturating_sub(out.len());
    if text.len() <= room {
        out.push_str(text);
        return true;
    }
    let end = (0..=room)
        .rev()
        .find(|&end| text.is_char_boundary(end))
        .unwrap_or(0);
    out.push_str(text.get(..end).unwrap_or_default());
    false
}

fn boardiocli(args: &[&str], running: bool, stdout: &mut Bounded, outcome: &mut Outcome) -> i32 {
    let command = match args {
        [word] => BoardioCommand::parse(word),
        _ => None,
    };
    let Some(command) = command else {
        outcome.error("BOARDIO_CLI: usage: boardiocli uSeq|uSeqStandalone|runSeq\n");
        return 1;
    };
    if !running {
        outcome.error("BOARDIO_CLI: boardio is not running\n");
        return 1;
    }
    stdout.push(&format!(
        "BOARDIO_CLI: Sent: \"{}\" to FIFO file\n",
        command.as_str()
    ));
    outcome.boardio.push(command);
    0
}

/// dash's builtin `echo`: arguments joined by spaces, backslash escapes interpreted, a final
/// newline unless the first argument is `-n` or `\c` stops the output.
fn echo(args: &[&str]) -> String {
    let (newline, args) = match args.split_first() {
        Some((&"-n", rest)) => (false, rest),
        _ => (true, args),
    };
    let mut out = String::new();
    if escaped(args, &mut out) && newline {
        out.push('\n');
    }
    out
}

/// `/bin/echo` (GNU coreutils, what `exec echo` runs): leading `-n`, `-e`, `-E` options (or
/// their combinations), backslash escapes only with `-e`.
fn bin_echo(args: &[&str]) -> String {
    let mut newline = true;
    let mut escapes = false;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        let Some(flags) = first.strip_prefix('-') else {
            break;
        };
        if flags.is_empty() || !flags.chars().all(|c| matches!(c, 'n' | 'e' | 'E')) {
            break;
        }
        for flag in flags.chars() {
            match flag {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        rest = tail;
    }
    let mut out = String::new();
    let finished = if escapes {
        escaped(rest, &mut out)
    } else {
        out.push_str(&rest.join(" "));
        true
    };
    if finished && newline {
        out.push('\n');
    }
    out
}

/// Writes `args` joined by spaces to `out`, backslash escapes interpreted; returns `false` when
/// `\c` stopped the output.
fn escaped(args: &[&str], out: &mut String) -> bool {
    for (index, arg) in args.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let mut chars = arg.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('c') => return false,
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &Script) -> Vec<Vec<&str>> {
        script
            .iter()
            .map(|(_, c)| c.words.iter().map(String::as_str).collect())
            .collect()
    }

    const VENDOR: &str = r#"echo "MODEL_LIGHT,100\nLED_FAN,1" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq"#;

    #[test]
    fn parses_the_vendor_idiom() {
        let script = parse(VENDOR).unwrap();
        assert_eq!(
            words(&script),
            [
                vec!["echo", r"MODEL_LIGHT,100\nLED_FAN,1"],
                vec!["boardiocli", "uSeq"],
                vec!["boardiocli", "runSeq"]
            ]
        );
        assert_eq!(script[0].1.redirect.as_deref(), Some(SEQUENCE_FILE));
        assert_eq!(script[1].0, Connector::IfSuccess);
    }

    #[test]
    fn runs_the_vendor_idiom_like_the_device() {
        let mut files = Files::default();
        let outcome = run(VENDOR, &mut files, true);
        assert_eq!(outcome.status, 0);
        assert_eq!(
            outcome.output(),
            "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\nBOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n"
        );
        assert_eq!(
            files.sequence.as_deref(),
            Some("MODEL_LIGHT,100\nLED_FAN,1\n")
        );
        assert_eq!(
            outcome.boardio,
            [BoardioCommand::USeq, BoardioCommand::RunSeq]
        );
    }

    #[test]
    fn echo_without_redirection_answers_a_resync_marker_on_stdout() {
        // Coordinators send such markers to re-synchronise after a lost output.
        let mut files = Files::default();
        let outcome = run("echo labwire-sync-0000002a", &mut files, false);
        assert_eq!(outcome.status, 0);
        assert_eq!(outcome.output(), "labwire-sync-0000002a\n");
        assert!(outcome.stderr.is_empty());
        assert!(outcome.boardio.is_empty());
        assert_eq!(files, Files::default());
    }

    #[test]
    fn unknown_programs_answer_like_sh() {
        let outcome = run("rm -rf /", &mut Files::default(), true);
        assert_eq!(outcome.status, 127);
        assert_eq!(outcome.output(), "sh: 1: rm: not found\n");
    }

    #[test]
    fn and_stops_at_the_first_failure_but_semicolon_goes_on() {
        let mut files = Files::default();
        let outcome = run("nope && echo skipped ; echo ran", &mut files, true);
        assert_eq!(outcome.stdout, "ran\n");
        assert_eq!(outcome.status, 0);
        let outcome = run("nope ; echo ran && nope2 && echo skipped", &mut files, true);
        assert_eq!(outcome.stdout, "ran\n");
        assert_eq!(
            outcome.stderr,
            "sh: 1: nope: not found\nsh: 1: nope2: not found\n"
        );
        assert_eq!(outcome.status, 127);
        assert_eq!(outcome.output(), outcome.stderr);
        let outcome = run("nope && nope2 && echo x ; echo y", &mut files, true);
        assert_eq!(outcome.stderr, "sh: 1: nope: not found\n");
        assert_eq!(outcome.stdout, "y\n");
    }

    #[test]
    fn only_the_two_sequence_files_can_be_written() {
        let mut files = Files::default();
        let outcome = run("echo x > /etc/passwd && echo after", &mut files, true);
        assert_eq!(outcome.status, 2);
        assert_eq!(
            outcome.stderr,
            "sh: 1: cannot create /etc/passwd: Permission denied\n"
        );
        assert_eq!(files, Files::default());
    }

    #[test]
    fn cat_reads_back_what_echo_wrote() {
        let mut files = Files::default();
        let line = format!(
            "echo 'LED_FAN,1' > {STANDALONE_SEQUENCE_FILE}; cat {STANDALONE_SEQUENCE_FILE}"
        );
        assert_eq!(run(&line, &mut files, true).stdout, "LED_FAN,1\n");
        let missing = run(&format!("cat {SEQUENCE_FILE}"), &mut files, true);
        assert_eq!(missing.status, 1);
        assert!(missing.stderr.contains("No such file"));
    }

    #[test]
    fn boardiocli_fails_before_boot_and_on_unknown_subcommands() {
        let before = run("boardiocli uSeq", &mut Files::default(), false);
        assert_eq!(before.status, 1);
        assert!(before.boardio.is_empty());
        let unknown = run("boardiocli reboot", &mut Files::default(), true);
        assert_eq!(unknown.status, 1);
        assert!(unknown.stderr.contains("usage"));
    }

    #[test]
    fn constructs_outside_the_subset_are_syntax_errors_and_run_nothing() {
        for line in [
            "echo a | sh",
            "echo a || echo b",
            "echo a &",
            "echo $(id)",
            "echo `id`",
            "echo \"$HOME\"",
            "echo a >> /home/rigsters/la4_sequence.csv",
            "cat < x",
            "(echo a)",
            "# comment",
            "; echo a",
            "echo a &&",
            "echo a && && echo b",
            "echo \"unterminated",
            "echo a >",
        ] {
            let mut files = Files::default();
            let outcome = run(line, &mut files, true);
            assert_eq!(outcome.status, 2, "{line}");
            assert!(outcome.stdout.is_empty(), "{line}");
            assert!(
                outcome.stderr.starts_with("sh: 1: Syntax error"),
                "{line}: {outcome:?}"
            );
        }
    }

    #[test]
    fn quoting_follows_sh() {
        let script = parse(r#"echo "a\"b" 'c\d' e\ f "g\nh" "" x#y"#).unwrap();
        assert_eq!(
            words(&script),
            [vec!["echo", "a\"b", r"c\d", "e f", r"g\nh", "", "x#y"]]
        );
        assert_eq!(echo(&["a\\nb", "c\\cd"]), "a\nb c");
    }

    #[test]
    fn a_newline_ends_a_command_like_a_semicolon() {
        let mut files = Files::default();
        let outcome = run("echo a\n\nnope && echo skipped\necho b", &mut files, true);
        assert_eq!(outcome.stdout, "a\nb\n");
        // As dash: the message names the line of the command.
        assert_eq!(outcome.stderr, "sh: 3: nope: not found\n");
        assert_eq!(
            run("echo a &&\n  echo b\n", &mut files, true).stdout,
            "a\nb\n"
        );
        assert_eq!(run("echo a;\necho b", &mut files, true).stdout, "a\nb\n");
        // Quoted, it is part of the word.
        assert_eq!(run("echo 'a\nb'", &mut files, true).stdout, "a\nb\n");
        for bad in ["echo a &&\n", "echo a >\n/x", "echo a\n;echo b"] {
            assert_eq!(run(bad, &mut files, true).status, 2, "{bad:?}");
        }
    }

    #[test]
    fn the_redirection_target_is_emptied_before_the_program_runs() {
        let mut files = Files {
            sequence: Some("LED_FAN,1\n".into()),
            standalone: None,
        };
        let outcome = run(
            &format!("cat {SEQUENCE_FILE} > {SEQUENCE_FILE}"),
            &mut files,
            true,
        );
        assert_eq!(outcome.status, 0);
        assert_eq!(files.sequence.as_deref(), Some(""));
    }

    #[test]
    fn files_and_output_stay_bounded_however_they_are_multiplied() {
        // Each round doubles a file's contents; forty rounds would be terabytes.
        let a = SEQUENCE_FILE;
        let b = STANDALONE_SEQUENCE_FILE;
        let mut line = format!("echo {} > {a}", "x".repeat(1000));
        for _ in 0..20 {
            line.push_str(&format!("; cat {a} {a} > {b}; cat {b} {b} > {a}"));
        }
        let mut files = Files::default();
        let outcome = run(&line, &mut files, true);
        assert!(files.sequence.as_ref().unwrap().len() <= MAX_FILE_LEN);
        assert!(files.standalone.as_ref().unwrap().len() <= MAX_FILE_LEN);
        assert!(
            outcome
                .stderr
                .contains("cat: write error: No space left on device\n")
        );
        assert_eq!(outcome.status, 1);
        // Reading the full file many times over: stdout is cut, not grown without end.
        let many = format!("cat{}", format!(" {a}").repeat(100));
        let outcome = run(&many, &mut files, true);
        assert_eq!(outcome.status, 0);
        assert_eq!(outcome.stdout.len(), MAX_OUTPUT_LEN);
        let missing = format!("cat{}", " /nope".repeat(100_000));
        assert!(run(&missing, &mut files, true).stderr.len() <= MAX_OUTPUT_LEN);
    }

    #[test]
    fn output_is_cut_at_a_character_boundary() {
        let mut out = String::from("ab");
        assert!(!append_bounded(&mut out, "cé", 4));
        assert_eq!(out, "abc");
        assert!(append_bounded(&mut out, "d", 4));
        assert_eq!(out, "abcd");
    }

    #[test]
    fn empty_and_trailing_semicolon_lines_are_fine() {
        assert_eq!(run("", &mut Files::default(), true).status, 0);
        assert_eq!(run("echo a;", &mut Files::default(), true).stdout, "a\n");
    }

    #[test]
    fn errors_name_the_line_they_are_on_as_dash_does() {
        let mut files = Files::default();
        let outcome = run("echo a\nnope", &mut files, true);
        assert_eq!(outcome.stdout, "a\n");
        assert_eq!(outcome.stderr, "sh: 2: nope: not found\n");
        let outcome = run("echo a\necho x > /etc/passwd", &mut files, true);
        assert_eq!(
            outcome.stderr,
            "sh: 2: cannot create /etc/passwd: Permission denied\n"
        );
        // A syntax error on line 2: line 1 has run, as in sh.
        let outcome = run("echo a\necho |\necho b", &mut files, true);
        assert_eq!(outcome.stdout, "a\n");
        assert_eq!(outcome.stderr, "sh: 2: Syntax error: \"|\" unexpected\n");
        assert_eq!(outcome.status, 2);
        let outcome = run("echo a &&\n", &mut files, true);
        assert_eq!(
            outcome.stderr,
            "sh: 2: Syntax error: end of file unexpected\n"
        );
        assert!(outcome.stdout.is_empty());
    }

    #[test]
    fn eval_runs_its_arguments_as_a_command_line_of_the_subset() {
        let mut files = Files::default();
        assert_eq!(
            run("eval \"echo a; echo b\"", &mut files, true).stdout,
            "a\nb\n"
        );
        let outcome = run("eval echo a \"&&\" nope; echo c", &mut files, true);
        assert_eq!(outcome.stdout, "a\nc\n");
        assert_eq!(outcome.stderr, "sh: 1: eval: nope: not found\n");
        assert_eq!(outcome.status, 0);
        // Its messages carry the line of its own text.
        let outcome = run("echo x\neval 'echo a\nnope'", &mut files, true);
        assert_eq!(outcome.stderr, "sh: 2: eval: nope: not found\n");
        assert_eq!(outcome.status, 127);
        // A syntax error in it ends the shell.
        let outcome = run("eval 'echo |'; echo after", &mut files, true);
        assert_eq!(
            outcome.stderr,
            "sh: 1: eval: Syntax error: \"|\" unexpected\n"
        );
        assert!(outcome.stdout.is_empty());
        assert_eq!(outcome.status, 2);
        assert_eq!(run("nope; eval", &mut files, true).status, 0);
        // It reaches the files and boardio like any command line.
        let line = format!("eval \"echo 'LED_FAN,1' > {SEQUENCE_FILE} && boardiocli uSeq\"");
        let outcome = run(&line, &mut files, true);
        assert_eq!(files.sequence.as_deref(), Some("LED_FAN,1\n"));
        assert_eq!(outcome.boardio, [BoardioCommand::USeq]);
        let outcome = run("eval 'echo x > /etc/passwd'", &mut files, true);
        assert_eq!(
            outcome.stderr,
            "sh: 1: eval: cannot create /etc/passwd: Permission denied\n"
        );
        // Its output redirected: what it runs writes there.
        run(
            &format!("eval 'echo a; echo b' > {SEQUENCE_FILE}"),
            &mut files,
            true,
        );
        assert_eq!(files.sequence.as_deref(), Some("a\nb\n"));
    }

    #[test]
    fn evals_nested_beyond_the_bound_stop_with_an_error() {
        let line = format!("{}echo deep", "eval ".repeat(MAX_EVAL_DEPTH));
        assert_eq!(run(&line, &mut Files::default(), true).stdout, "deep\n");
        let line = format!(
            "{}echo deep; echo after",
            "eval ".repeat(MAX_EVAL_DEPTH + 1)
        );
        let outcome = run(&line, &mut Files::default(), true);
        assert_eq!(outcome.status, 2);
        assert!(outcome.stdout.is_empty());
        assert!(
            outcome.stderr.ends_with("eval: nested too deeply\n"),
            "{outcome:?}"
        );
    }

    #[test]
    fn exec_runs_a_program_in_place_of_the_shell() {
        let mut files = Files::default();
        let outcome = run("exec echo hi; echo after", &mut files, true);
        assert_eq!((outcome.stdout.as_str(), outcome.status), ("hi\n", 0));
        assert_eq!(run("exec; echo after", &mut files, true).stdout, "after\n");
        let outcome = run("exec nope; echo after", &mut files, true);
        assert_eq!(outcome.stderr, "sh: 1: exec: nope: not found\n");
        assert_eq!(outcome.status, 127);
        assert!(outcome.stdout.is_empty());
        // Only programs: the builtins are not found.
        let outcome = run("exec eval echo hi", &mut files, true);
        assert_eq!(outcome.stderr, "sh: 1: exec: eval: not found\n");
        let outcome = run("eval exec echo hi; echo no", &mut files, true);
        assert_eq!(outcome.stdout, "hi\n");
        // `/bin/echo`, not dash's: backslashes stay unless -e.
        assert_eq!(run(r"exec echo 'a\nb'", &mut files, true).stdout, "a\\nb\n");
        assert_eq!(
            run(r"exec echo -ne 'a\nb'", &mut files, true).stdout,
            "a\nb"
        );
        let outcome = run("exec cat /nope; echo no", &mut files, true);
        assert_eq!(outcome.stderr, "cat: /nope: No such file or directory\n");
        assert_eq!(outcome.status, 1);
        // `exec > FILE`: what follows writes there; a failed one ends the shell.
        let line = format!("exec > {SEQUENCE_FILE}; echo LED_FAN,1; echo MODEL_LIGHT,2");
        let outcome = run(&line, &mut files, true);
        assert!(outcome.stdout.is_empty());
        assert_eq!(
            files.sequence.as_deref(),
            Some("LED_FAN,1\nMODEL_LIGHT,2\n")
        );
        let outcome = run("exec > /etc/passwd; echo after", &mut files, true);
        assert_eq!(outcome.status, 2);
        assert!(outcome.stdout.is_empty());
    }

    #[test]
    fn nul_bytes_are_dropped_as_dash_drops_them() {
        let outcome = run("echo a\0b", &mut Files::default(), true);
        assert_eq!(outcome.stdout, "ab\n");
        assert_eq!(run("ec\0ho x", &mut Files::default(), true).stdout, "x\n");
        assert_eq!(parse("ec\0ho x").unwrap()[0].1.words, ["echo", "x"]);
    }

    #[test]
    fn echo_takes_a_first_dash_n_only() {
        let outcome = run(
            "echo -n a; echo -e b; echo -n -n c",
            &mut Files::default(),
            true,
        );
        assert_eq!(outcome.stdout, "a-e b\n-n c");
    }
}
