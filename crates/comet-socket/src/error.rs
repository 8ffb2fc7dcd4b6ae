//! Errors of the sans-IO layers: decoding and encoding frames and messages.

/// What was wrong with received bytes.
///
/// COMET handles one frame per connection, so every decode error ends the connection: a COMET
/// server closes without answering, and so does ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The 2-byte prefix announces a header longer than the configured limit.
    #[error("header of {len} bytes exceeds the limit of {max}")]
    HeaderTooLong {
        /// Announced header length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The header is not valid UTF-8 JSON.
    #[error("header is not valid JSON: {reason}")]
    InvalidHeaderJson {
        /// The parser's explanation.
        reason: String,
    },
    /// The header is JSON but not an object.
    #[error("header is not a JSON object")]
    HeaderNotObject,
    /// A required header key is missing.
    #[error("header has no {0:?} key")]
    MissingHeaderField(&'static str),
    /// A header key has a value of the wrong type.
    #[error("header key {field:?} is invalid: {reason}")]
    InvalidHeaderField {
        /// The header key.
        field: &'static str,
        /// What was expected.
        reason: &'static str,
    },
    /// The header announces more content than the configured limit.
    #[error("content of {len} bytes exceeds the limit of {max}")]
    ContentTooLong {
        /// Announced content length.
        len: u64,
        /// Configured limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({received} bytes received)")]
    Truncated {
        /// Bytes of the incomplete frame that did arrive.
        received: usize,
    },
    /// JSON content declares an encoding other than UTF-8.
    #[error("unsupported content encoding {0:?} (only UTF-8 is supported)")]
    UnsupportedEncoding(String),
    /// A message was expected but the frame carries binary content.
    #[error("expected text/json content, got content type {0:?}")]
    NotJson(String),
    /// The content is not valid JSON (non-finite literals are accepted).
    #[error("content is not valid JSON: {reason}")]
    InvalidJson {
        /// The parser's explanation.
        reason: String,
    },
    /// The content is JSON but not an object.
    #[error("content is not a JSON object")]
    ContentNotObject,
    /// An answer has no `result` key.
    #[error("answer has no \"result\" key")]
    MissingResult,
    /// The answer's `result` is not of the type asked for ([`Response::result_as`]).
    ///
    /// [`Response::result_as`]: crate::Response::result_as
    #[error("the result is not of the expected type: {reason}")]
    UnexpectedResult {
        /// What serde found wrong.
        reason: String,
    },
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The JSON header would be longer than the configured limit or than the 2-byte prefix
    /// can announce.
    #[error("header of {len} bytes exceeds the limit of {max}")]
    HeaderTooLong {
        /// Header length.
        len: usize,
        /// Effective limit.
        max: usize,
    },
    /// The content is longer than the configured limit.
    #[error("content of {len} bytes exceeds the limit of {max}")]
    ContentTooLong {
        /// Content length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// A value could not be serialized to JSON.
    #[error("cannot serialize to JSON: {0}")]
    Json(String),
}

/// An error and its chain of causes on one line, `outer: cause: root cause`, for logs and
/// command-line messages (the `Display` of this crate's errors leaves the causes to
/// [`std::error::Error::source`]).
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] DecodeError);

    #[test]
    fn report_joins_the_causes() {
        let error = Outer(DecodeError::MissingResult);
        assert_eq!(report(&error), "outer: answer has no \"result\" key");
    }
}
