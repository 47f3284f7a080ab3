//! The REDIRECT listener: the original destination is read with
//! SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6).

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::sys;

/// Where a redirected connection was going (`None`: no NAT entry).
pub fn original_dst(stream: &TcpStream, peer: SocketAddr) -> Option<SocketAddr> {
    sys::original_dst(stream, peer).ok()
}
