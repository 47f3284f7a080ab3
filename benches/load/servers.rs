//! The upstream servers of one path, in its server namespace:
//!
//! - TLS on [`TLS_PORT`]: a full TLS 1.3 handshake, reads one request head,
//!   answers a 41-byte response and closes (the connection-rate and latency
//!   phases; its name is allowed by hostname).
//! - bulk on [`BULK_PORT`]: server-first, sends the configured number of
//!   bytes as fast as it can, then closes (allowed by a CIDR rule).
//! - hold on [`HOLD_PORT`]: a listener with a 65,535-deep queue that never
//!   accepts (the memory phase; same CIDR rule). The kernel completes each
//!   handshake and queues the connection, so it is established and idle for
//!   the proxy without costing this process a descriptor (the hard
//!   RLIMIT_NOFILE may be 20,000, below client plus server sockets); the
//!   queue length is the count held, and closing the listener resets them all.
//!
//! The TLS server and the bulk source run on their own threads and
//! current-thread runtimes, stopped when [`Servers`] is dropped. Unlike the
//! e2e `TestServer`, nothing is recorded per connection, so a server's own
//! cost stays flat over hundreds of thousands of connections.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::support::{Netns, NsTask, sockets};

/// The TLS server's port (its name is allowed by hostname).
pub(crate) const TLS_PORT: u16 = 443;
/// The bulk source's port (allowed by a CIDR rule).
pub(crate) const BULK_PORT: u16 = 5201;
/// The idle-connection holder's port (allowed by the same CIDR rule).
pub(crate) const HOLD_PORT: u16 = 5202;

/// What the TLS server answers.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
/// Bytes per write of the bulk source.
const BULK_CHUNK: usize = 256 * 1024;
/// No TLS exchange lasts longer (a stuck client must not pile up tasks).
const TLS_LIMIT: Duration = Duration::from_secs(10);
/// The hold listener's queue (the kernel caps it at `net.core.somaxconn`).
const HOLD_BACKLOG: i32 = 65_535;

/// The three servers of one path.
#[derive(Debug)]
pub(crate) struct Servers {
    hold: Mutex<Option<std::net::TcpListener>>,
    _tasks: Vec<NsTask<()>>,
}

// === impl Servers ===

impl Servers {
    /// Starts the three servers in `ns` on `0.0.0.0`.
    pub(crate) fn start(
        ns: &Netns,
        tls: Arc<ServerConfig>,
        bulk_bytes: u64,
    ) -> anyhow::Result<Self> {
        let tls_listener = listen(ns, TLS_PORT)?;
        let bulk_listener = listen(ns, BULK_PORT)?;
        let tasks = vec![
            ns.spawn(serve_tls(tls_listener, TlsAcceptor::from(tls))),
            ns.spawn(serve_bulk(bulk_listener, bulk_bytes)),
        ];
        let servers = Servers {
            hold: Mutex::new(None),
            _tasks: tasks,
        };
        servers.reset_hold(ns)?;
        Ok(servers)
    }

    /// Connections waiting in the hold listener's queue (`ns` is the
    /// namespace it was started in): the accept-queue length that
    /// `/proc/net/tcp` shows as a listener's `rx_queue`.
    pub(crate) fn held(&self, ns: &Netns) -> anyhow::Result<usize> {
        let table = ns.enter(|| std::fs::read_to_string("/proc/thread-self/net/tcp"))?;
        let local = format!("00000000:{HOLD_PORT:04X}");
        let queue = table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A");
            let (_, rx) = fields.get(4)?.split_once(':')?;
            listening.then(|| usize::from_str_radix(rx, 16).ok())?
        });
        queue.context("the hold listener is not in /proc/net/tcp")
    }

    /// Closes the hold listener (resetting every queued connection) and
    /// listens afresh.
    pub(crate) fn reset_hold(&self, ns: &Netns) -> anyhow::Result<()> {
        let mut hold = self
            .hold
            .lock()
            .map_err(|_| anyhow::anyhow!("hold lock poisoned"))?;
        drop(hold.take());
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, HOLD_PORT));
        let listener = ns
            .enter(|| -> std::io::Result<std::net::TcpListener> {
                let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                socket.set_reuse_address(true)?;
                socket.bind(&addr.into())?;
                socket.listen(HOLD_BACKLOG)?;
                Ok(socket.into())
            })
            .with_context(|| format!("binding the hold listener {addr} in netns {}", ns.name()))?;
        *hold = Some(listener);
        Ok(())
    }
}

fn listen(ns: &Netns, port: u16) -> anyhow::Result<std::net::TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = ns
        .enter(|| sockets::bind(addr))
        .with_context(|| format!("binding {addr} in netns {}", ns.name()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve_tls(listener: std::net::TcpListener, acceptor: TlsAcceptor) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TLS_LIMIT, respond_tls(acceptor, stream)).await;
        });
    }
}

async fn respond_tls(acceptor: TlsAcceptor, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut tls = acceptor.accept(stream).await?;
    let mut head = [0u8; 1024];
    let mut len = 0;
    while let Some(room) = head.get_mut(len..).filter(|r| !r.is_empty()) {
        let n = tls.read(room).await?;
        len += n;
        if n == 0 || head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    tls.write_all(RESPONSE).await?;
    tls.shutdown().await
}

async fn serve_bulk(listener: std::net::TcpListener, bytes: u64) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(send_bulk(stream, bytes));
    }
}

async fn send_bulk(mut stream: TcpStream, bytes: u64) -> std::io::Result<()> {
    let chunk = vec![0x5a_u8; BULK_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(BULK_CHUNK, |l| l.min(BULK_CHUNK));
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.shutdown().await
}
