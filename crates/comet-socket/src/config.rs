//! COMET's YAML connection settings (feature `config`).
//!
//! COMET's main configuration file holds a `Socket_connection` section: the `Host` the server
//! listens on and named `Client`s messages can be sent to.
//!
//! ```yaml
//! Socket_connection:
//!   Host:
//!     IP: 127.0.0.2
//!     Port: 65432
//!   Client:
//!     Telegram:
//!       IP: 127.0.0.4
//!       Port: 65432
//! ```
//!
//! ```
//! use comet_socket::config::SocketConnection;
//!
//! let yaml = "Socket_connection:\n  Host: {IP: 127.0.0.2, Port: 65432}\n  \
//!             Client:\n    Telegram: {IP: 127.0.0.4, Port: 65433}\n";
//! let settings = SocketConnection::from_yaml_str(yaml)?;
//! assert_eq!(settings.host.unwrap().addr(), "127.0.0.2:65432");
//! assert_eq!(settings.clients["Telegram"].addr(), "127.0.0.4:65433");
//! # Ok::<(), comet_socket::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// COMET's default host address.
pub const DEFAULT_IP: &str = "127.0.0.1";
/// COMET's default port.
pub const DEFAULT_PORT: u16 = 65432;
/// Largest configuration file read by [`SocketConnection::from_path`].
const MAX_FILE_LEN: u64 = 4 * 1024 * 1024;

/// An `{IP, Port}` pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP address.
    pub ip: String,
    /// TCP port.
    pub port: u16,
}

impl Default for Endpoint {
    /// COMET's defaults: `127.0.0.1:65432`.
    fn default() -> Self {
        Self {
            ip: DEFAULT_IP.to_owned(),
            port: DEFAULT_PORT,
        }
    }
}

impl Endpoint {
    /// `ip:port`, with brackets around an IPv6 address, ready for a client or a bind.
    pub fn addr(&self) -> String {
        if self.ip.contains(':') && !self.ip.starts_with('[') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }
}

/// The `Socket_connection` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SocketConnection {
    /// Where COMET's server listens (`Host`), if configured.
    pub host: Option<Endpoint>,
    /// Named clients (`Client: {<name>: {IP, Port}}`), by name.
    pub clients: BTreeMap<String, Endpoint>,
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is too large to be a configuration file.
    #[error("{path} is {len} bytes, more than a configuration file should be")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The text is not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// There is no `Socket_connection` section.
    #[error("no Socket_connection section")]
    MissingSection,
    /// `Client` holds `IP`/`Port` directly instead of named clients.
    #[error(
        "Socket_connection.Client must map client names to {{IP, Port}}, but it holds IP/Port \
         directly; name the client, e.g. `Client: {{Telegram: {{IP: ..., Port: ...}}}}`"
    )]
    NamelessClient,
    /// A value has the wrong shape or type.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where, as `Socket_connection.Client.Telegram.Port`.
        path: String,
        /// What was expected.
        reason: String,
    },
}

impl SocketConnection {
    /// Reads the `Socket_connection` section of a COMET configuration file.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let io_error = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io_error)?.len();
        if len > MAX_FILE_LEN {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io_error)?;
        Self::from_yaml_str(&text)
    }

    /// Reads the `Socket_connection` section from the text of a COMET configuration file.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        let root: Value =
            serde_norway::from_str(yaml).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let section = root
            .as_mapping()
            .and_then(|m| m.get("Socket_connection"))
            .ok_or(ConfigError::MissingSection)?;
        Self::from_section(section)
    }

    /// Reads the settings from the already parsed `Socket_connection` value.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn from_section(section: &Value) -> Result<Self, ConfigError> {
        const SECTION: &str = "Socket_connection";
        let Some(section) = mapping_or_empty(section, SECTION)? else {
            return Ok(Self::default());
        };
        let host = match section.get("Host") {
            None | Some(Value::Null) => None,
            Some(host) => Some(endpoint(host, &format!("{SECTION}.Host"))?),
        };
        let mut clients = BTreeMap::new();
        if let Some(client) = section.get("Client")
            && let Some(client) = mapping_or_empty(client, &format!("{SECTION}.Client"))?
        {
            let nameless = ["IP", "Port"]
                .iter()
                .any(|key| client.get(*key).is_some_and(|v| !v.is_mapping()));
            if nameless {
                return Err(ConfigError::NamelessClient);
            }
            for (name, value) in client {
                let name = scalar_text(name).ok_or_else(|| ConfigError::Invalid {
                    path: format!("{SECTION}.Client"),
                    reason: "client names must be strings".to_owned(),
                })?;
                let settings = endpoint(value, &format!("{SECTION}.Client.{name}"))?;
                clients.insert(name, settings);
            }
        }
        Ok(Self { host, clients })
    }

    /// The named client's endpoint.
    pub fn client(&self, name: &str) -> Option<&Endpoint> {
        self.clients.get(name)
    }
}

fn mapping_or_empty<'a>(value: &'a Value, path: &str) -> Result<Option<&'a Mapping>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Mapping(m) => Ok(Some(m)),
        _ => Err(ConfigError::Invalid {
            path: path.to_owned(),
            reason: "expected a mapping".to_owned(),
        }),
    }
}

fn endpoint(value: &Value, path: &str) -> Result<Endpoint, ConfigError> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        path: format!("{path}.{field}"),
        reason: reason.to_owned(),
    };
    let map = value.as_mapping().ok_or_else(|| ConfigError::Invalid {
        path: path.to_owned(),
        reason: "expected a mapping with IP and Port".to_owned(),
    })?;
    let ip = match map.get("IP") {
        None => return Err(invalid("IP", "missing")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(_) => return Err(invalid("IP", "expected a host name or IP address")),
    };
    let port = match map.get("Port") {
        None => return Err(invalid("Port", "missing")),
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| invalid("Port", "expected a port number from 0 to 65535"))?;
    Ok(Endpoint { ip, port })
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMET_EXAMPLE: &str = "
Socket_connection:

    Host:
      IP: 127.0.0.2
      Port: 65432

    Client:
      Telegram:
        IP: 127.0.0.4
        Port: 65432
";

    #[test]
    fn reads_comets_documented_example() {
        let settings = SocketConnection::from_yaml_str(COMET_EXAMPLE).unwrap();
        assert_eq!(
            settings.host,
            Some(Endpoint {
                ip: "127.0.0.2".into(),
                port: 65432
            })
        );
        assert_eq!(
            settings.client("Telegram").unwrap().addr(),
            "127.0.0.4:65432"
        );
        assert_eq!(settings.clients.len(), 1);
    }

    #[test]
    fn nameless_client_is_rejected_with_a_clear_error() {
        let yaml = "Socket_connection:\n  Client:\n    IP: 127.0.0.4\n    Port: 65432\n";
        let err = SocketConnection::from_yaml_str(yaml).unwrap_err();
        assert!(matches!(err, ConfigError::NamelessClient));
        assert!(err.to_string().contains("name the client"));
    }

    #[test]
    fn host_and_clients_are_optional() {
        let settings = SocketConnection::from_yaml_str("Socket_connection:\n").unwrap();
        assert_eq!(settings, SocketConnection::default());
        let settings =
            SocketConnection::from_yaml_str("Socket_connection:\n  Host: {IP: '::1', Port: 1}\n")
                .unwrap();
        assert_eq!(settings.host.unwrap().addr(), "[::1]:1");
    }

    #[test]
    fn missing_section_and_bad_values_are_reported_with_their_path() {
        assert!(matches!(
            SocketConnection::from_yaml_str("Other: 1\n").unwrap_err(),
            ConfigError::MissingSection
        ));
        let err = SocketConnection::from_yaml_str(
            "Socket_connection:\n  Client:\n    Bot: {IP: h, Port: 70000}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Socket_connection.Client.Bot.Port: expected a port number from 0 to 65535"
        );
        let err =
            SocketConnection::from_yaml_str("Socket_connection:\n  Host: {Port: 1}\n").unwrap_err();
        assert_eq!(err.to_string(), "Socket_connection.Host.IP: missing");
        assert!(matches!(
            SocketConnection::from_yaml_str("Socket_connection: [\n").unwrap_err(),
            ConfigError::Yaml(_)
        ));
    }

    #[test]
    fn default_endpoint_is_comets_default() {
        assert_eq!(Endpoint::default().addr(), "127.0.0.1:65432");
    }
}
