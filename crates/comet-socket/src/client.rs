//! The async client (feature `client`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tracing::Instrument as _;

use crate::error::{DecodeError, EncodeError};
use crate::io::{ReadError, read_frame, write_bytes};
use crate::json::{self, is_truthy};
use crate::message::{Refusal, Response, check_request, request_content};
use crate::wire::{self, Frame, Limits};

/// Connect timeout when none is configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for the answer (writing the request included) when none is configured.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Refused before connecting: a COMET server would not dispatch it, or would hang on it.
    #[error("refused to send the request")]
    Refused(#[from] Refusal),
    /// Connecting failed or timed out ([`io::ErrorKind::TimedOut`]).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The connect error.
        source: io::Error,
    },
    /// No complete answer within the answer timeout.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// The address dialled.
        addr: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The server closed the connection without a complete answer (a COMET server does that
    /// with content it cannot parse).
    #[error("{addr} closed the connection without answering ({received} bytes received)")]
    NoAnswer {
        /// The address dialled.
        addr: String,
        /// Bytes received before the close.
        received: usize,
    },
    /// Writing the request or reading the answer failed.
    #[error("i/o error talking to {addr}")]
    Io {
        /// The address dialled.
        addr: String,
        /// The error.
        source: io::Error,
    },
    /// The request could not be encoded (too large for the limits).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The answer is not a valid frame or message.
    #[error("invalid answer from {addr}")]
    Decode {
        /// The address dialled.
        addr: String,
        /// What was wrong.
        source: DecodeError,
    },
    /// The answer carries binary content where JSON was expected.
    #[error("answer from {addr} has binary content type {content_type:?}")]
    BinaryAnswer {
        /// The address dialled.
        addr: String,
        /// The answer's content type.
        content_type: String,
        /// The answer's content.
        content: Bytes,
    },
}

impl Error {
    /// Whether a deadline passed (connect or answer).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the client refused the request before connecting.
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

/// A COMET client: one fresh connection per message, as COMET's own client does, with
/// deadlines COMET's client lacks.
///
/// Cheap to clone and `Send + Sync`; clones share nothing but configuration, so calls from
/// many tasks run in parallel.
///
/// ```no_run
/// # async fn run() -> Result<(), comet_socket::client::Error> {
/// use comet_socket::Client;
/// use serde_json::json;
///
/// let client = Client::new("127.0.0.1:65432");
/// let result = client.send("ECHO", &json!({"hello": "world"})).await?;
/// assert_eq!(result, json!({"hello": "world"}));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    addr: Arc<str>,
    connect_timeout: Duration,
    answer_timeout: Duration,
    limits: Limits,
}

/// Configures a [`Client`]; start from [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    client: Client,
}

impl ClientBuilder {
    /// Connect timeout ([`DEFAULT_CONNECT_TIMEOUT`] by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.client.connect_timeout = timeout;
        self
    }

    /// Answer timeout for every call ([`DEFAULT_ANSWER_TIMEOUT`] by default).
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.client.answer_timeout = timeout;
        self
    }

    /// Frame size limits, for requests and answers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.client.limits = limits;
        self
    }

    /// The configured client. Nothing is connected until the first call.
    pub fn build(self) -> Client {
        self.client
    }
}

impl Client {
    /// A client for `addr` (`host:port`; resolved on every call) with default timeouts.
    pub fn new(addr: impl Into<String>) -> Self {
        Self::builder(addr).build()
    }

    /// A builder for a client of `addr`.
    pub fn builder(addr: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            client: Self {
                addr: Arc::from(addr.into()),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                answer_timeout: DEFAULT_ANSWER_TIMEOUT,
                limits: Limits::default(),
            },
        }
    }

    /// The address this client dials.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `value` for `action` and returns the answer's `result` (`null` when no handler on
    /// the server answered).
    ///
    /// Refuses, before connecting, an empty action or a falsy `value` (`null`, `false`, `0`,
    /// `""`, `[]`, `{}`): a COMET server never hands those to a handler.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_timeout`] tells deadlines apart.
    ///
    /// # Cancel safety
    /// Cancel safe: each call owns its connection, which is dropped with the future.
    pub async fn send(&self, action: &str, value: &Value) -> Result<Value, Error> {
        self.send_with_timeout(action, value, self.answer_timeout)
            .await
    }

    /// [`Client::send`] with this call's own answer timeout.
    ///
    /// # Errors
    /// As [`Client::send`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::send`].
    pub async fn send_with_timeout(
        &self,
        action: &str,
        value: &Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        check_request(action, value)?;
        tracing::debug!(addr = %self.addr, action, %value, "sending request");
        let bytes = wire::encode_json_to_bytes(&request_content(action, value)?, &self.limits)?;
        let answer = self.send_bytes(&bytes, timeout).await?;
        let response = self.response(answer)?;
        tracing::debug!(addr = %self.addr, result = %response.result, "answer received");
        Ok(response.result)
    }

    /// Sends `content` as it is (any JSON object, not only `{"action", "value"}`) and returns
    /// the decoded answer.
    ///
    /// # Errors
    /// [`Refusal::FalsyContent`] for falsy content, which hangs a real COMET server; otherwise
    /// as [`Client::send`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::send`].
    pub async fn send_content(&self, content: &Value) -> Result<Response, Error> {
        if !is_truthy(content) {
            return Err(Refusal::FalsyContent.into());
        }
        let content = json::to_vec(content).map_err(|e| EncodeError::Json(e.to_string()))?;
        let bytes = wire::encode_json_to_bytes(&content, &self.limits)?;
        let answer = self.send_bytes(&bytes, self.answer_timeout).await?;
        self.response(answer)
    }

    /// Sends one frame as it is and returns the answering frame, binary or JSON: the way to
    /// send binary content, or JSON that is not a request.
    ///
    /// # Errors
    /// [`Refusal::FalsyContent`], before connecting, for falsy content whatever its content
    /// type ([`Frame::has_falsy_content`]): JSON that is empty or falsy, or binary content of no
    /// bytes — it hangs a real COMET server. Otherwise as [`Client::send`], except that binary
    /// answers are returned.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::send`].
    pub async fn exchange(&self, frame: &Frame) -> Result<Frame, Error> {
        if frame.has_falsy_content() {
            return Err(Refusal::FalsyContent.into());
        }
        let answer = self
            .exchange_with_timeout(frame, self.answer_timeout)
            .await?;
        Ok(answer)
    }

    async fn exchange_with_timeout(
        &self,
        frame: &Frame,
        timeout: Duration,
    ) -> Result<Frame, Error> {
        // Encode before connecting: a request over the limits must not reach the server at all.
        let bytes = wire::encode_to_bytes(frame, &self.limits)?;
        self.send_bytes(&bytes, timeout).await
    }

    /// Sends an encoded frame over a fresh connection and reads the answering frame.
    async fn send_bytes(&self, bytes: &[u8], timeout: Duration) -> Result<Frame, Error> {
        let span = tracing::debug_span!("comet_call", addr = %self.addr);
        async {
            let mut stream = labwire_net::connect(&*self.addr, self.connect_timeout)
                .await
                .map_err(|source| Error::Connect {
                    addr: self.addr.to_string(),
                    source,
                })?;
            let exchange = async {
                write_bytes(&mut stream, bytes)
                    .await
                    .map_err(|source| self.io_error(source))?;
                let answer = read_frame(&mut stream, &self.limits)
                    .await
                    .map_err(|e| match e {
                        ReadError::Closed { received } => Error::NoAnswer {
                            addr: self.addr.to_string(),
                            received,
                        },
                        ReadError::Decode(source) => self.decode_error(source),
                        ReadError::Io(source) => self.io_error(source),
                    })?;
                Ok(answer)
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout {
                    addr: self.addr.to_string(),
                    after: timeout,
                }),
            }
        }
        .instrument(span)
        .await
    }

    fn response(&self, answer: Frame) -> Result<Response, Error> {
        if !answer.is_json() {
            return Err(Error::BinaryAnswer {
                addr: self.addr.to_string(),
                content_type: answer.content_type,
                content: answer.content,
            });
        }
        Response::from_frame(&answer).map_err(|source| self.decode_error(source))
    }

    fn io_error(&self, source: io::Error) -> Error {
        Error::Io {
            addr: self.addr.to_string(),
            source,
        }
    }

    fn decode_error(&self, source: DecodeError) -> Error {
        Error::Decode {
            addr: self.addr.to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn oversized_requests_fail_before_connecting() {
        // Port 9 on loopback has no listener: reaching the connect would give a Connect error.
        let client = Client::builder("127.0.0.1:9")
            .limits(Limits {
                max_content_length: 16,
                ..Limits::default()
            })
            .build();
        let err = client
            .send("ECHO", &json!("x".repeat(100)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Encode(EncodeError::ContentTooLong { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refusals_happen_before_any_connection() {
        // Nothing listens on port 9 here, and the refusal must come before trying.
        let client = Client::new("127.0.0.1:9");
        for value in [
            json!(null),
            json!(false),
            json!(0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            let err = client.send("ECHO", &value).await.unwrap_err();
            assert!(err.is_refused(), "{value}: {err}");
        }
        let err = client.send("", &json!("x")).await.unwrap_err();
        assert!(matches!(err, Error::Refused(Refusal::EmptyAction)));
        let err = client.send_content(&json!({})).await.unwrap_err();
        assert!(matches!(err, Error::Refused(Refusal::FalsyContent)));
        for falsy in [
            Frame::json(Bytes::new()),
            Frame::json(&b"[]"[..]),
            Frame::binary(wire::CONTENT_TYPE_CLIENT_BINARY, Bytes::new()),
        ] {
            let err = client.exchange(&falsy).await.unwrap_err();
            assert!(
                matches!(err, Error::Refused(Refusal::FalsyContent)),
                "{falsy:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn bare_non_finite_content_is_truthy_and_not_refused() {
        // Python reads it as a truthy float: COMET closes the connection (it is not an object)
        // rather than hang, so it may go out. Nothing listens on port 9: a Connect error shows
        // the client tried.
        let client = Client::new("127.0.0.1:9");
        let err = client
            .exchange(&Frame::json(&b"NaN"[..]))
            .await
            .unwrap_err();
        assert!(!err.is_refused(), "{err}");
    }
}
