//! Plain blocking sockets for tests that play a part by hand: a listener
//! standing in for the proxy, or a client sending crafted bytes. Make them
//! inside a namespace (`ns.enter(|| sockets::bind(addr))`); they stay there.
//!
//! - [`bind`], [`bind_dual_stack`], [`bind_transparent`]: listeners (IPv6 ones
//!   are v6-only unless dual-stack is asked for, so v4 and v6 can share a port).
//! - [`accept_within`]: accept with a deadline.
//! - [`original_dst`]: `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST` of a
//!   REDIRECTed connection.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::socket::{getsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use super::wait_until;

/// A listener on `addr`; IPv6 listeners are v6-only.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    listener(addr, |socket| {
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        Ok(())
    })
}

/// A `[::]:port` listener that also accepts IPv4 (as `::ffff:a.b.c.d`).
pub(crate) fn bind_dual_stack(port: u16) -> io::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    listener(addr, |socket| socket.set_only_v6(false))
}

/// An `IP_TRANSPARENT` listener on `addr` for iptables TPROXY: it accepts
/// connections addressed to any IP, and each accepted socket's local address is
/// the client's original destination. Needs CAP_NET_ADMIN.
pub(crate) fn bind_transparent(addr: SocketAddr) -> io::Result<TcpListener> {
    listener(addr, |socket| {
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
            socket.set_ip_transparent_v6(true)
        } else {
            socket.set_ip_transparent_v4(true)
        }
    })
}

/// Accepts one connection, or fails once `timeout` has passed. Leaves the
/// listener non-blocking; the accepted stream is blocking.
pub(crate) fn accept_within(
    listener: &TcpListener,
    timeout: Duration,
) -> anyhow::Result<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true)?;
    let mut accepted = None;
    let mut failure = None;
    wait_until(timeout, || match listener.accept() {
        Ok(conn) => {
            accepted = Some(conn);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => {
            failure = Some(e);
            true
        }
    });
    if let Some(e) = failure {
        return Err(e).context("accept");
    }
    let Some((stream, peer)) = accepted else {
        bail!(
            "no connection on {:?} within {timeout:?}",
            listener.local_addr()
        );
    };
    stream.set_nonblocking(false)?;
    Ok((stream, peer))
}

/// The destination the client asked for before iptables REDIRECT changed it.
pub(crate) fn original_dst(stream: &TcpStream) -> anyhow::Result<SocketAddr> {
    let addr = if stream.local_addr()?.is_ipv6() {
        let raw = getsockopt(stream, sockopt::Ip6tOriginalDst).context("IP6T_SO_ORIGINAL_DST")?;
        SocketAddr::from(nix::sys::socket::SockaddrIn6::from(raw))
    } else {
        let raw = getsockopt(stream, sockopt::OriginalDst).context("SO_ORIGINAL_DST")?;
        SocketAddr::from(nix::sys::socket::SockaddrIn::from(raw))
    };
    Ok(addr)
}

/// A blocking TCP connection to `addr` with connect, read and write timeouts.
pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn listener(
    addr: SocketAddr,
    configure: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    configure(&socket)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
