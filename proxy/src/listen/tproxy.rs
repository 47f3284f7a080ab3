//! The TPROXY listener: an IP_TRANSPARENT socket to which iptables `TPROXY`
//! delivers connections for any destination; the original destination is
//! the accepted socket's own local address.

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// Where a TPROXYed connection was going.
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    stream.local_addr().ok()
}
