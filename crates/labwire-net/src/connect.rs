//! Outgoing connections under a deadline.

use std::io;
use std::time::Duration;

use tokio::net::{TcpStream, ToSocketAddrs};

/// Connects to `addr` within `timeout` and turns `TCP_NODELAY` on.
///
/// Every labwire client writes a whole frame at once and then waits for an answer; with Nagle's
/// algorithm on, a frame written in two parts can stall for ~40 ms on each round trip.
///
/// # Errors
/// [`io::ErrorKind::TimedOut`] when the deadline passes first, otherwise the connect error
/// (`ConnectionRefused`, ...).
///
/// # Cancel safety
/// Cancel safe: dropping the future abandons the attempt and nothing is left open.
pub async fn connect<A: ToSocketAddrs>(addr: A, timeout: Duration) -> io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect did not complete within {timeout:?}"),
            ));
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_sets_nodelay() {
        let listener = crate::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = connect(addr, Duration::from_secs(5)).await.unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn connect_to_a_closed_port_is_refused() {
        let listener = crate::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connect(addr, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
