//! Reading a command line as `sh` (dash) does: split into tokens, each with the line it starts
//! on, then into complete commands — a list ended by an unquoted newline, which sh parses and
//! runs before it reads the next — up to the first syntax error.

use super::{Connector, SimpleCommand, SyntaxError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    And,
    Semi,
    Newline,
    Redirect,
}

/// A syntax error and the line it is on.
pub(super) type LineError = (usize, SyntaxError);

/// One complete command (a list of simple commands, run as a whole), or the syntax error at
/// which sh stops reading.
pub(super) type Chunk = Result<Vec<(Connector, SimpleCommand)>, LineError>;

fn unexpected(what: &str) -> SyntaxError {
    SyntaxError(format!("\"{what}\" unexpected"))
}

/// The tokens of `text` with the line each starts on (from 1), up to the first construct
/// outside the subset or malformed quoting; that error and its line, if any.
fn tokenize(text: &str) -> (Vec<(Token, usize)>, Option<LineError>) {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    // The word being built and its first line; `None` between words (so that `""` still makes
    // an empty word).
    let mut word: Option<(String, usize)> = None;
    macro_rules! end_word {
        () => {
            if let Some((w, at)) = word.take() {
                tokens.push((Token::Word(w), at));
            }
        };
    }
    macro_rules! fail {
        ($error:expr) => {
            return (tokens, Some((line, $error)))
        };
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word!(),
            '\n' => {
                end_word!();
                tokens.push((Token::Newline, line));
                line += 1;
            }
            ';' | '&' | '>' => {
                end_word!();
                match c {
                    ';' if chars.peek() == Some(&';') => fail!(unexpected(";;")),
                    ';' => tokens.push((Token::Semi, line)),
                    '&' if chars.peek() == Some(&'&') => {
                        chars.next();
                        tokens.push((Token::And, line));
                    }
                    '&' => fail!(unexpected("&")),
                    _ if matches!(chars.peek(), Some('>' | '&' | '|')) => fail!(unexpected(">>")),
                    _ => tokens.push((Token::Redirect, line)),
                }
            }
            '|' | '<' | '(' | ')' | '`' | '$' => fail!(unexpected(&c.to_string())),
            '#' if word.is_none() => fail!(unexpected("#")),
            '\'' => {
                let (w, _) = word.get_or_insert_with(|| (String::new(), line));
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => {
                            line += usize::from(ch == '\n');
                            w.push(ch);
                        }
                        None => fail!(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '"' => {
                let (w, _) = word.get_or_insert_with(|| (String::new(), line));
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some('\n') => line += 1,
                            Some(e @ ('$' | '`')) => fail!(unexpected(&format!("\\{e}"))),
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => fail!(SyntaxError("Unterminated quoted string".into())),
                        },
                        Some(e @ ('$' | '`')) => fail!(unexpected(&e.to_string())),
                        Some(ch) => {
                            line += usize::from(ch == '\n');
                            w.push(ch);
                        }
                        None => fail!(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '\\' => match chars.next() {
                // A line continuation: nothing, not even a word break.
                Some('\n') => line += 1,
                Some(escaped) => word
                    .get_or_insert_with(|| (String::new(), line))
                    .0
                    .push(escaped),
                None => word
                    .get_or_insert_with(|| (String::new(), line))
                    .0
                    .push('\\'),
            },
            other => word
                .get_or_insert_with(|| (String::new(), line))
                .0
                .push(other),
        }
    }
    end_word!();
    (tokens, None)
}

/// Reads `text` (NUL bytes already dropped) into complete commands, in order; the last is the
/// syntax error that stops sh there, if any.
pub(super) fn chunks(text: &str) -> Vec<Chunk> {
    let (tokens, token_error) = tokenize(text);
    let eof_line = 1 + text.matches('\n').count();
    let mut chunks = Vec::new();
    let mut list = Vec::new();
    let mut current = SimpleCommand::default();
    let mut connector = Connector::Always;
    let mut tokens = tokens.into_iter().peekable();
    let end = |line: usize, what: &str| Err((line, unexpected(what)));
    while let Some((token, line)) = tokens.next() {
        if current.words.is_empty() && current.redirect.is_none() {
            current.line = line;
        }
        match token {
            Token::Word(w) => current.words.push(w),
            Token::Redirect => match tokens.next() {
                Some((Token::Word(file), _)) => current.redirect = Some(file),
                Some((Token::And, at)) => return push(chunks, end(at, "&&")),
                Some((Token::Semi, at)) => return push(chunks, end(at, ";")),
                Some((Token::Redirect, at)) => return push(chunks, end(at, ">")),
                Some((Token::Newline, at)) => {
                    return push(chunks, Err((at, SyntaxError("newline unexpected".into()))));
                }
                None => {
                    // Cut short by a tokenizer error, that one; at the end, this one.
                    let error =
                        token_error.unwrap_or((eof_line, SyntaxError("newline unexpected".into())));
                    return push(chunks, Err(error));
                }
            },
            // A newline after `&&` continues the list; blank lines are nothing.
            Token::Newline if current.words.is_empty() && current.redirect.is_none() => {
                if connector == Connector::Always && !list.is_empty() {
                    // After `;`: the list is complete.
                    chunks.push(Ok(std::mem::take(&mut list)));
                }
            }
            Token::Newline => {
                if current.words.is_empty() {
                    let error = SyntaxError("redirection without a command".into());
                    return push(chunks, Err((line, error)));
                }
                list.push((connector, std::mem::take(&mut current)));
                connector = Connector::Always;
                chunks.push(Ok(std::mem::take(&mut list)));
            }
            Token::And | Token::Semi => {
                if current.words.is_empty() {
                    // A redirection alone is a valid (empty) command in sh; keep it simple and
                    // reject it like an empty command.
                    return push(
                        chunks,
                        end(line, if token == Token::And { "&&" } else { ";" }),
                    );
                }
                list.push((connector, std::mem::take(&mut current)));
                connector = if token == Token::And {
                    Connector::IfSuccess
                } else {
                    Connector::Always
                };
            }
        }
    }
    if let Some(error) = token_error {
        // The list the error is in is never run.
        return push(chunks, Err(error));
    }
    if !current.words.is_empty() {
        list.push((connector, current));
    } else if current.redirect.is_some() {
        let error = SyntaxError("redirection without a command".into());
        return push(chunks, Err((eof_line, error)));
    } else if connector == Connector::IfSuccess {
        // `&&` with no command after it.
        let error = SyntaxError("end of file unexpected".into());
        return push(chunks, Err((eof_line, error)));
    }
    if !list.is_empty() {
        chunks.push(Ok(list));
    }
    chunks
}

fn push(mut chunks: Vec<Chunk>, last: Chunk) -> Vec<Chunk> {
    chunks.push(last);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk as its commands' words and lines, or the error's line and text.
    type Outline = Result<Vec<(String, usize)>, (usize, String)>;

    /// Each chunk of `text` outlined.
    fn outline(text: &str) -> Vec<Outline> {
        chunks(text)
            .into_iter()
            .map(|chunk| match chunk {
                Ok(list) => Ok(list
                    .into_iter()
                    .map(|(_, c)| (c.words.join(" "), c.line))
                    .collect()),
                Err((line, error)) => Err((line, error.to_string())),
            })
            .collect()
    }

    fn ok(commands: &[(&str, usize)]) -> Outline {
        Ok(commands
            .iter()
            .map(|(w, l)| ((*w).to_owned(), *l))
            .collect())
    }

    #[test]
    fn each_line_is_a_complete_command_and_a_list_spans_lines_only_after_and() {
        assert_eq!(
            outline("echo a; echo b\n\nnope &&\n  echo c\necho d;\necho e"),
            [
                ok(&[("echo a", 1), ("echo b", 1)]),
                ok(&[("nope", 3), ("echo c", 4)]),
                ok(&[("echo d", 5)]),
                ok(&[("echo e", 6)]),
            ]
        );
    }

    #[test]
    fn a_command_starts_on_the_line_of_its_first_word_whatever_its_quotes_span() {
        assert_eq!(
            outline("echo 'a\nb' \"c\nd\"\nnope \\\n x\nlast"),
            [
                ok(&[("echo a\nb c\nd", 1)]),
                ok(&[("nope x", 4)]),
                ok(&[("last", 6)]),
            ]
        );
    }

    #[test]
    fn a_syntax_error_comes_after_the_lines_before_it_with_its_own_line() {
        // As dash: `sh: 3: Syntax error: "|" unexpected`, after lines 1 and 2 ran.
        assert_eq!(
            outline("echo 1\n\necho |"),
            [
                ok(&[("echo 1", 1)]),
                Err((3, "Syntax error: \"|\" unexpected".into()))
            ]
        );
        // The list the error is in does not run, even the part before it.
        assert_eq!(
            outline("echo 1\necho 2 &&\necho $x"),
            [
                ok(&[("echo 1", 1)]),
                Err((3, "Syntax error: \"$\" unexpected".into()))
            ]
        );
        assert_eq!(
            outline("echo a &&\n"),
            [Err((2, "Syntax error: end of file unexpected".into()))]
        );
        assert_eq!(
            outline("echo \"a\nb\nc\" |"),
            [Err((3, "Syntax error: \"|\" unexpected".into()))]
        );
        assert_eq!(
            outline("echo a\n; echo b"),
            [
                ok(&[("echo a", 1)]),
                Err((2, "Syntax error: \";\" unexpected".into()))
            ]
        );
    }
}
