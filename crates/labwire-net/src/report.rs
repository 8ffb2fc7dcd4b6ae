//! Errors as people read them: one line, each cause once.

use std::error::Error;
use std::fmt::Write;

/// `error` and its chain of sources on one line, joined by `": "`.
///
/// labwire errors never repeat their source in their own message, so each cause appears once:
/// `cannot connect to 127.0.0.1:9: Connection refused (os error 111)`.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(line, ": {cause}");
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to {peer}")]
    struct Connect {
        peer: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once_on_one_line() {
        let error = Connect {
            peer: "127.0.0.1:9",
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        assert_eq!(
            error_chain(&error),
            "cannot connect to 127.0.0.1:9: refused"
        );
    }
}
