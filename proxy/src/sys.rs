//! The Linux socket calls the data path needs, wrapped safely through
//! socket2 and nix: the original destination of a REDIRECTed connection,
//! IP_TRANSPARENT listeners, SO_MARK, linger-0 resets and splice(2) pipes.
//! No `unsafe` here or anywhere else in the crate.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{OFlag, SpliceFFlags};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The original destination of a connection redirected by iptables
/// `REDIRECT` (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). `peer` (from
/// accept) gives the socket's family, saving a `getsockname`.
pub fn original_dst(stream: &TcpStream, peer: SocketAddr) -> io::Result<SocketAddr> {
    let sock = SockRef::from(stream);
    let addr = match peer {
        SocketAddr::V4(_) => sock.original_dst_v4()?,
        SocketAddr::V6(_) => sock.original_dst_v6()?,
    };
    addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "original destination is not an IP address",
        )
    })
}

/// A listener bound to `addr`; `transparent` sets IP_TRANSPARENT so that
/// iptables `TPROXY` can deliver connections for any destination to it.
/// TCP_NODELAY is set here once: Linux copies it to every accepted socket.
pub fn listener(addr: SocketAddr, transparent: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if transparent {
        match addr {
            SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
            SocketAddr::V6(_) => socket.set_ip_transparent_v6(true)?,
        }
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// An unconnected upstream socket for `dest`, carrying `mark` (SO_MARK) so
/// that the host's rules can exempt the proxy's own traffic.
pub fn upstream_socket(dest: SocketAddr, mark: Option<u32>) -> io::Result<TcpSocket> {
    let socket = match dest {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(mark) = mark {
        SockRef::from(&socket).set_mark(mark)?;
    }
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Makes the next close of `stream` send a TCP reset (SO_LINGER 0).
pub fn set_reset_on_close(stream: &TcpStream) -> io::Result<()> {
    SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO))
}

/// Bytes a relay pipe holds: bulk streams move in 1 MiB splices (fewer
/// system calls per GB); pipes are pooled and held only while a chunk is in
/// flight, so the size costs idle connections nothing.
pub const PIPE_SIZE: usize = 1 << 20;

/// A non-blocking pipe for splice(2): (read end, write end), enlarged to
/// [`PIPE_SIZE`] where the system allows (else the default 64 KiB).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let size = i32::try_from(PIPE_SIZE).unwrap_or(i32::MAX);
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
    Ok((r, w))
}

/// Moves up to `len` bytes from `from` to `to` inside the kernel,
/// without blocking; one of the two must be a pipe.
pub fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    nix::fcntl::splice(
        from,
        None,
        to,
        None,
        len,
        SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
    )
    .map_err(io::Error::from)
}

/// One non-blocking `recv(2)` into `buf`.
pub fn recv(from: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    nix::sys::socket::recv(from.as_raw_fd(), buf, nix::sys::socket::MsgFlags::empty())
        .map_err(io::Error::from)
}

/// One `write(2)` of `buf` to `to` (a pipe).
pub fn write(to: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    nix::unistd::write(to, buf).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relay relies on accepted sockets inheriting TCP_NODELAY.
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = listener("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
