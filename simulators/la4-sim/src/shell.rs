//! A tiny, total interpreter of the shell idioms LA4 commands use. It never runs anything on the
//! host: it only parses the text and acts on the simulated device.
//!
//! Supported, with the semantics of `sh` (dash):
//! - words with `"double"` quotes (backslash escapes only `$`, `` ` ``, `"`, `\` and newline
//!   inside them), `'single'` quotes and unquoted backslash escapes;
//! - simple commands joined by `&&` (run the next only if the previous succeeded) and `;` or a
//!   newline (run the next anyway); a trailing `;`, blank lines and a newline after `&&` are
//!   allowed;
//! - output redirection `> FILE` on any command;
//! - programs: `echo` (dash's, which turns `\n` into a newline), `cat`, `boardiocli`.
//!
//! Any other program answers `sh: 1: NAME: not found` (status 127). Constructs outside the
//! subset (`|`, `||`, `&`, `<`, `>>`, `(`, `)`, `$…`, backquotes, `#` comments, here-documents)
//! are rejected as a syntax error before anything runs, since interpreting them half-way could
//! only mislead.
//!
//! Memory stays bounded whatever the input: each sequence file holds at most [`MAX_FILE_LEN`]
//! bytes (a write past it fails like a full disk, `No space left on device`), and stdout and
//! stderr keep at most [`MAX_OUTPUT_LEN`] bytes each (the rest is dropped). Work is linear in
//! the length of the line plus the bytes kept.

use pycom_proto::sequence::{SEQUENCE_FILE, STANDALONE_SEQUENCE_FILE};

/// Most bytes a sequence file holds (the default pycom message size limit: any sequence a
/// request can carry fits).
pub const MAX_FILE_LEN: usize = pycom_proto::wire::DEFAULT_MAX_MESSAGE_LEN;

/// Most bytes of stdout, and of stderr, one command line produces; more is dropped. An `output`
/// event larger than this could not be sent under the default message size limit anyway.
pub const MAX_OUTPUT_LEN: usize = pycom_proto::wire::DEFAULT_MAX_MESSAGE_LEN;

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
}

/// A parsed command line: simple commands with their connectors, in order.
pub type Script = Vec<(Connector, SimpleCommand)>;

/// What `sh` would print for a syntax error, e.g. `Syntax error: "|" unexpected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Syntax error: {0}")]
pub struct SyntaxError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    And,
    Semi,
    Newline,
    Redirect,
}

/// Splits a command line into tokens, or says which construct is unsupported.
fn tokenize(line: &str) -> Result<Vec<Token>, SyntaxError> {
    let unexpected = |what: &str| SyntaxError(format!("\"{what}\" unexpected"));
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    // The word being built; `None` between words (so that `""` still makes an empty word).
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    tokens.push(Token::Word(w));
                }
            }
            '\n' => {
                if let Some(w) = word.take() {
                    tokens.push(Token::Word(w));
                }
                tokens.push(Token::Newline);
            }
            ';' | '&' | '>' => {
                if let Some(w) = word.take() {
                    tokens.push(Token::Word(w));
                }
                match c {
                    ';' if chars.peek() == Some(&';') => return Err(unexpected(";;")),
                    ';' => tokens.push(Token::Semi),
                    '&' if chars.peek() == Some(&'&') => {
                        chars.next();
                        tokens.push(Token::And);
                    }
                    '&' => return Err(unexpected("&")),
                    _ if matches!(chars.peek(), Some('>' | '&' | '|')) => {
                        return Err(unexpected(">>"));
                    }
                    _ => tokens.push(Token::Redirect),
                }
            }
            '|' | '<' | '(' | ')' | '`' | '$' => return Err(unexpected(&c.to_string())),
            '#' if word.is_none() => return Err(unexpected("#")),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => w.push(ch),
                        None => return Err(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some('\n') => {}
                            Some(e @ ('$' | '`')) => return Err(unexpected(&format!("\\{e}"))),
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => {
                                return Err(SyntaxError("Unterminated quoted string".into()));
                            }
                        },
                        Some(e @ ('$' | '`')) => return Err(unexpected(&e.to_string())),
                        Some(ch) => w.push(ch),
                        None => return Err(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                match chars.next() {
                    Some('\n') => {}
                    Some(escaped) => w.push(escaped),
                    None => w.push('\\'),
                }
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    if let Some(w) = word {
        tokens.push(Token::Word(w));
    }
    Ok(tokens)
}

/// Parses a command line of the supported subset.
///
/// # Errors
/// [`SyntaxError`] for anything outside the subset or malformed (`&&` with nothing after it,
/// a leading `;`, `>` without a file, unterminated quotes).
pub fn parse(line: &str) -> Result<Script, SyntaxError> {
    let mut script = Script::new();
    let mut current = SimpleCommand::default();
    let mut connector = Connector::Always;
    let mut tokens = tokenize(line)?.into_iter().peekable();
    let end = |what: &str| SyntaxError(format!("\"{what}\" unexpected"));
    while let Some(token) = tokens.next() {
        match token {
            Token::Word(w) => current.words.push(w),
            Token::Redirect => match tokens.next() {
                Some(Token::Word(file)) => current.redirect = Some(file),
                Some(Token::And) => return Err(end("&&")),
                Some(Token::Semi) => return Err(end(";")),
                Some(Token::Redirect) => return Err(end(">")),
                Some(Token::Newline) | None => {
                    return Err(SyntaxError("newline unexpected".into()));
                }
            },
            // A newline ends a command like `;`; blank lines, and a newline after `&&` or `;`,
            // are nothing.
            Token::Newline if current.words.is_empty() && current.redirect.is_none() => {}
            Token::Newline => {
                if current.words.is_empty() {
                    return Err(SyntaxError("redirection without a command".into()));
                }
                script.push((connector, std::mem::take(&mut current)));
                connector = Connector::Always;
            }
            Token::And | Token::Semi => {
                if current.words.is_empty() {
                    // A redirection alone is a valid (empty) command in sh; keep it simple and
                    // reject it like an empty command.
                    return Err(end(if token == Token::And { "&&" } else { ";" }));
                }
                script.push((connector, std::mem::take(&mut current)));
                connector = if token == Token::And {
                    Connector::IfSuccess
                } else {
                    Connector::Always
                };
            }
        }
    }
    if !current.words.is_empty() {
        script.push((connector, current));
    } else if current.redirect.is_some() {
        return Err(SyntaxError("redirection without a command".into()));
    } else if connector == Connector::IfSuccess {
        // `&&` with no command after it.
        return Err(SyntaxError("end of file unexpected".into()));
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
    let mut outcome = Outcome::default();
    let script = match parse(line) {
        Ok(script) => script,
        Err(error) => {
            outcome.error(&format!("sh: 1: {error}\n"));
            outcome.status = 2;
            return outcome;
        }
    };
    for (connector, command) in &script {
        if *connector == Connector::IfSuccess && outcome.status != 0 {
            continue;
        }
        outcome.status = run_simple(command, files, boardio_running, &mut outcome);
    }
    outcome
}

fn run_simple(
    command: &SimpleCommand,
    files: &mut Files,
    boardio_running: bool,
    outcome: &mut Outcome,
) -> i32 {
    // sh opens (creates or truncates) the redirection target before running the program.
    if let Some(target) = &command.redirect {
        match files.slot(target) {
            Some(slot) => *slot = Some(String::new()),
            None => {
                outcome.error(&format!(
                    "sh: 1: cannot create {target}: Permission denied\n"
                ));
                return 2;
            }
        }
    }
    // Where the program's stdout goes: a fresh file (sh truncates it on opening), or what is
    // left of the command line's stdout.
    let room = if command.redirect.is_some() {
        MAX_FILE_LEN
    } else {
        MAX_OUTPUT_LEN.saturating_sub(outcome.stdout.len())
    };
    let mut stdout = Bounded::new(room);
    let (program, status) = match command.words.split_first() {
        None => ("sh", 0),
        Some((program, args)) => {
            let status = match program.as_str() {
                "echo" => {
                    stdout.push(&echo(args));
                    0
                }
                "cat" => {
                    let mut status = 0;
                    for path in args {
                        match files.read(path) {
                            Some(text) => stdout.push(text),
                            None => {
                                outcome.error(&format!("cat: {path}: No such file or directory\n"));
                                status = 1;
                            }
                        }
                    }
                    status
                }
                "boardiocli" => boardiocli(args, boardio_running, &mut stdout, outcome),
                other => {
                    outcome.error(&format!("sh: 1: {other}: not found\n"));
                    127
                }
            };
            (program.as_str(), status)
        }
    };
    match command.redirect.as_deref().and_then(|t| files.slot(t)) {
        Some(slot) => {
            *slot = Some(stdout.text);
            if stdout.overflowed {
                // The simulated disk is full: what fitted stays, the program fails.
                outcome.error(&format!(
                    "{program}: write error: No space left on device\n"
                ));
                return 1;
            }
        }
        // Output past MAX_OUTPUT_LEN is dropped; the program does not notice.
        None => outcome.stdout.push_str(&stdout.text),
    }
    status
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

fn boardiocli(args: &[String], running: bool, stdout: &mut Bounded, outcome: &mut Outcome) -> i32 {
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

/// dash's `echo`: arguments joined by spaces, backslash escapes interpreted, a final newline
/// unless `\c` stops the output.
fn echo(args: &[String]) -> String {
    let mut out = String::new();
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
                Some('c') => return out,
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
    }
    out.push('\n');
    out
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
        assert_eq!(echo(&["a\\nb".into(), "c\\cd".into()]), "a\nb c");
    }

    #[test]
    fn a_newline_ends_a_command_like_a_semicolon() {
        let mut files = Files::default();
        let outcome = run("echo a\n\nnope && echo skipped\necho b", &mut files, true);
        assert_eq!(outcome.stdout, "a\nb\n");
        assert_eq!(outcome.stderr, "sh: 1: nope: not found\n");
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
}
