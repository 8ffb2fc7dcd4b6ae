//! Binding a listener with an explicit backlog.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Listen backlog used when none is configured.
///
/// tokio's `TcpListener::bind` asks for 128, which overflows when many short-lived clients
/// connect at once (one connection per message is the norm for PEKAT, COMET and LA4). The kernel
/// caps the value at `net.core.somaxconn` (4096 on current Linux).
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Binds a TCP listener on `addr` with the given listen `backlog`.
///
/// `SO_REUSEADDR` is set (on Unix) so a restarted simulator can rebind its port while old
/// connections sit in `TIME_WAIT`. Must be called from within a tokio runtime.
///
/// # Errors
/// Any error from creating, binding or listening on the socket.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_port_zero_on_loopback_and_reports_the_real_port() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), DEFAULT_BACKLOG).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
    }

    #[tokio::test]
    async fn binding_a_taken_port_fails() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let taken = first.local_addr().unwrap();
        // SO_REUSEADDR does not allow two listeners on one port.
        assert!(bind(taken, 16).is_err());
    }
}
