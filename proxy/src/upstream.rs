//! Upstream addresses: which ones a name-allowed connection may not reach
//! (`deny_private`), and dialling with a mark and a timeout.
//!
//! Restricted: unspecified, loopback, RFC 1918 private, CGNAT (100.64/10),
//! link-local (which holds the 169.254.169.254 metadata service), multicast
//! and reserved IPv4; IPv6 loopback, unique-local (fd00:ec2::254 is there),
//! link-local, multicast; and every IPv6 form that embeds an IPv4 address
//! (mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo) when the
//! embedded address is restricted.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::sys;

/// Why dialling failed; `as_str` is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialError {
    /// No answer within the connect timeout.
    Timeout,
    /// Connection refused.
    Refused,
    /// No route, network or host unreachable.
    Unreachable,
    /// Anything else.
    Other,
}

// === impl DialError ===

impl DialError {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Other => "other",
        }
    }

    fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Self::Unreachable,
            io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Other,
        }
    }
}

/// Connects to `dest` with SO_MARK `mark` within `timeout`.
pub async fn dial(
    dest: SocketAddr,
    mark: Option<u32>,
    timeout: Duration,
) -> Result<TcpStream, DialError> {
    let socket = sys::upstream_socket(dest, mark).map_err(|e| DialError::from_io(&e))?;
    match tokio::time::timeout(timeout, socket.connect(dest)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(DialError::from_io(&e)),
        Err(_) => Err(DialError::Timeout),
    }
}

/// Whether `ip` is in a range a hostname-allowed connection may not reach.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn restricted_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return true;
    }
    if (seg[0] & 0xfe00) == 0xfc00 || (seg[0] & 0xffc0) == 0xfe80 || (seg[0] & 0xffc0) == 0xfec0 {
        return true; // unique-local, link-local, site-local
    }
    embedded_v4(ip).is_some_and(restricted_v4)
}

/// The IPv4 address an IPv6 address carries, for the forms that carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    if seg[..6] == [0; 6] {
        return Some(low); // IPv4-compatible ::a.b.c.d
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1)
    {
        return Some(low); // NAT64, well-known and local-use prefixes
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 6to4
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        let [a, b, c, d] = [o[12], o[13], o[14], o[15]];
        return Some(Ipv4Addr::new(!a, !b, !c, !d)); // Teredo client
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> bool {
        is_restricted(s.parse().unwrap())
    }

    #[test]
    fn private_and_metadata_ranges_are_restricted() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "2002:0a00:0001::1",
            "::10.0.0.1",
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        ] {
            assert!(r(ip), "{ip} should be restricted");
        }
    }

    #[test]
    fn public_addresses_are_not() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            "100.128.0.1",
        ] {
            assert!(!r(ip), "{ip} should not be restricted");
        }
    }
}
