//! Many simulated nodes in one process, for testing a coordinator at scale.

use std::io;
use std::net::SocketAddr;

use crate::SimClock;
use crate::sim::{La4Sim, La4SimBuilder, SimConfig};

/// A group of simulated nodes started from one configuration, on one shared [`SimClock`].
#[derive(Debug)]
pub struct Fleet {
    nodes: Vec<La4Sim>,
    clock: SimClock,
}

impl Fleet {
    /// Starts `count` nodes from `base`: a [`La4SimBuilder`] (e.g. `La4Sim::builder()...`) or a
    /// [`SimConfig`]. With one node, that node is `base` exactly; otherwise node `i` listens on
    /// the base port + `i` (or on a port of its own choosing when the base port is 0), has the
    /// id `base.id` + `i` (as 8 hex digits when the base id is hex, otherwise with `-i`
    /// appended), the name `base.name-i`, and a MAC address of its own. Every node runs on the
    /// same clock: the builder's, or a new one at the configured time scale. Each node has
    /// faults of its own ([`La4Sim`]'s `faults()`).
    ///
    /// # Errors
    /// When a node cannot bind its address (already started nodes are shut down) or the ports
    /// run past 65535.
    pub async fn start(base: impl Into<La4SimBuilder>, count: usize) -> io::Result<Self> {
        let mut base = base.into().config();
        let clock = base.host.clock();
        base.host.clock = Some(clock.clone());
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            // A fleet of one is just the node as configured.
            let config = if count == 1 {
                Ok(base.clone())
            } else {
                member(&base, index)
            };
            let config = match config {
                Ok(config) => config,
                Err(error) => return Err(abort(nodes, error).await),
            };
            match La4Sim::start(config).await {
                Ok(node) => nodes.push(node),
                Err(error) => return Err(abort(nodes, error).await),
            }
        }
        Ok(Self { nodes, clock })
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[La4Sim] {
        &self.nodes
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the fleet has no node at all (started with a count of 0).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's address, in start order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|node| node.local_addr()).collect()
    }

    /// The clock every node runs on.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// Shuts every node down and waits for all of them.
    pub async fn shutdown(&self) {
        // Every node starts stopping at once; then each is waited for.
        for node in &self.nodes {
            node.shutdown_token().cancel();
        }
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}

async fn abort(nodes: Vec<La4Sim>, error: io::Error) -> io::Error {
    for node in &nodes {
        node.shutdown_token().cancel();
    }
    for node in &nodes {
        node.shutdown().await;
    }
    error
}

fn member(base: &SimConfig, index: usize) -> io::Result<SimConfig> {
    let mut config = base.clone();
    if base.host.listen.port() != 0 {
        let port = u16::try_from(index)
            .ok()
            .and_then(|i| base.host.listen.port().checked_add(i))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "fleet ports run past 65535")
            })?;
        config.host.listen.set_port(port);
    }
    let offset = u32::try_from(index).unwrap_or(u32::MAX);
    config.id = match u32::from_str_radix(&base.id, 16) {
        Ok(id) if base.id.len() == 8 => format!("{:08x}", id.wrapping_add(offset)),
        _ => format!("{}-{index}", base.id),
    };
    config.name = format!("{}-{index}", base.name);
    let [a, b, c, d] = offset.to_be_bytes();
    config.unit_info.mac_address = format!("02:1a:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_their_own_port_id_name_and_mac() {
        let mut base = SimConfig {
            host: crate::HostConfig::new("127.0.0.1:6000".parse().unwrap()),
            id: "000000ff".into(),
            ..SimConfig::default()
        };
        let third = member(&base, 2).unwrap();
        assert_eq!(third.host.listen.port(), 6002);
        assert_eq!(third.id, "00000101");
        assert_eq!(third.name, "rigsters-controller-2");
        assert_eq!(third.unit_info.mac_address, "02:1a:00:00:00:02");
        base.id = "node".into();
        assert_eq!(member(&base, 1).unwrap().id, "node-1");
        base.host.listen.set_port(65535);
        assert!(member(&base, 1).is_err());
    }
}
