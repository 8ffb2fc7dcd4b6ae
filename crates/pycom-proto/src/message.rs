//! The typed messages: one [`Message`] is what travels on one TCP connection.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Key of the field that says what a message is (absent on a heartbeat).
pub const TYPE_KEY: &str = "type_";

/// The base fields every message carries, naming its sender.
///
/// All six are required on the wire. `port` is the port the sender **listens on**: a node sends
/// its events to the IP it observed on the request connection and this port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub struct Identity {
    /// The sender's unique id (8 hex digits in the vendor's examples).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The sender's IP address as it believes it to be; informational only.
    pub ip: String,
    /// The port the sender listens on.
    pub port: u16,
    /// The sender's software version; required, otherwise ignored.
    pub version: String,
    /// `true` for a coordinator (a PC application managing nodes), `false` for a node.
    pub coordinator: bool,
}

impl Identity {
    /// An identity with every field given.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        ip: impl Into<String>,
        port: u16,
        version: impl Into<String>,
        coordinator: bool,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            ip: ip.into(),
            port,
            version: version.into(),
            coordinator,
        }
    }
}

/// The hardware description a node sends once to each coordinator (`type_: "unit_info"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub struct UnitInfo {
    /// WiringPi library version installed on the unit.
    pub wiringpi_version: String,
    /// boardio library version.
    pub boardio_version: String,
    /// Firmware version running on the MCU.
    pub firmware_version: String,
    /// Role of the unit, e.g. `light_array` or `human_scanning`.
    pub unit_type: String,
    /// MCU model, e.g. `RP2040`.
    pub mcu_type: String,
    /// MAC address of the unit's network interface.
    pub mac_address: String,
}

impl UnitInfo {
    /// The wire names of the fields, in the order they are written.
    pub const FIELDS: [&'static str; 6] = [
        "wiringpi_version",
        "boardio_version",
        "firmware_version",
        "unit_type",
        "mcu_type",
        "mac_address",
    ];

    pub(crate) fn values(&self) -> [&str; 6] {
        [
            &self.wiringpi_version,
            &self.boardio_version,
            &self.firmware_version,
            &self.unit_type,
            &self.mcu_type,
            &self.mac_address,
        ]
    }
}

/// What a message says besides its sender's [`Identity`].
///
/// Requests (coordinator → node) are [`Body::Heartbeat`] and [`Body::Cmd`]; events (node →
/// coordinator) are [`Body::Output`], [`Body::Message`] and [`Body::UnitInfo`]. A `type_` this
/// crate does not know is kept in [`Body::Unknown`] with its fields, so that a newer node never
/// makes an older coordinator drop its events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// The base fields alone, no `type_`: "I am alive". Also what a node sends when it probes
    /// for a coordinator (with `coordinator: false`).
    Heartbeat,
    /// `type_: "cmd"`: run `command` in the node's shell.
    Cmd {
        /// The shell command line.
        command: String,
    },
    /// `type_: "output"`: a command's stdout, or its stderr when it failed.
    Output {
        /// The captured text.
        output: String,
    },
    /// `type_: "message"`: a text from the node, e.g. `BOARDIO_READY`.
    Message {
        /// The text.
        message: String,
    },
    /// `type_: "unit_info"`: the node's hardware description.
    UnitInfo(UnitInfo),
    /// Any other `type_`, with every field besides the base fields and `type_`.
    Unknown {
        /// The `type_` value.
        type_: String,
        /// The remaining fields, as received.
        fields: Map<String, Value>,
    },
}

impl Body {
    /// The `type_` value written for this body, `None` for a heartbeat.
    pub fn type_name(&self) -> Option<&str> {
        match self {
            Body::Heartbeat => None,
            Body::Cmd { .. } => Some("cmd"),
            Body::Output { .. } => Some("output"),
            Body::Message { .. } => Some("message"),
            Body::UnitInfo(_) => Some("unit_info"),
            Body::Unknown { type_, .. } => Some(type_),
        }
    }
}

/// One message: the sender's identity and what it says. Exactly one travels per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it.
    pub identity: Identity,
    /// What it says.
    pub body: Body,
}

impl Message {
    /// A message from `identity`.
    pub fn new(identity: Identity, body: Body) -> Self {
        Self { identity, body }
    }

    /// A heartbeat: the base fields alone.
    pub fn heartbeat(identity: Identity) -> Self {
        Self::new(identity, Body::Heartbeat)
    }

    /// A command request.
    pub fn cmd(identity: Identity, command: impl Into<String>) -> Self {
        Self::new(
            identity,
            Body::Cmd {
                command: command.into(),
            },
        )
    }

    /// An `output` event.
    pub fn output(identity: Identity, output: impl Into<String>) -> Self {
        Self::new(
            identity,
            Body::Output {
                output: output.into(),
            },
        )
    }

    /// A `message` event.
    pub fn text(identity: Identity, message: impl Into<String>) -> Self {
        Self::new(
            identity,
            Body::Message {
                message: message.into(),
            },
        )
    }

    /// A `unit_info` event.
    pub fn unit_info(identity: Identity, info: UnitInfo) -> Self {
        Self::new(identity, Body::UnitInfo(info))
    }
}

/// Keys a message's own fields use; an [`Body::Unknown`] field with one of these names is not
/// written, so that the output never holds a key twice.
pub(crate) const RESERVED_KEYS: [&str; 7] = [
    "id",
    "name",
    "ip",
    "port",
    "version",
    "coordinator",
    TYPE_KEY,
];

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let id = &self.identity;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &id.id)?;
        map.serialize_entry("name", &id.name)?;
        map.serialize_entry("ip", &id.ip)?;
        map.serialize_entry("port", &id.port)?;
        map.serialize_entry("version", &id.version)?;
        map.serialize_entry("coordinator", &id.coordinator)?;
        if let Some(type_) = self.body.type_name() {
            map.serialize_entry(TYPE_KEY, type_)?;
        }
        match &self.body {
            Body::Heartbeat => {}
            Body::Cmd { command } => map.serialize_entry("command", command)?,
            Body::Output { output } => map.serialize_entry("output", output)?,
            Body::Message { message } => map.serialize_entry("message", message)?,
            Body::UnitInfo(info) => {
                for (key, value) in UnitInfo::FIELDS.iter().zip(info.values()) {
                    map.serialize_entry(key, value)?;
                }
            }
            Body::Unknown { fields, .. } => {
                for (key, value) in fields {
                    if !RESERVED_KEYS.contains(&key.as_str()) {
                        map.serialize_entry(key, value)?;
                    }
                }
            }
        }
        map.end()
    }
}
