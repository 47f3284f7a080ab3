//! Upstream servers for the server namespace, each on its own thread and
//! runtime, listening on `[::]:PORT` dual-stack (IPv4 and IPv6), stopped when
//! the [`TestServer`] is dropped.
//!
//! - [`TestServer::tls`]: rustls; answers one HTTP/1.1 request with
//!   `sni=NAME\n` (`sni=-` without SNI), so a test sees the name that arrived.
//! - [`TestServer::http`]: plain HTTP/1.1; answers `host=NAME\n` from Host.
//! - [`TestServer::echo`]: echoes bytes until EOF, then half-closes; keeps the
//!   bytes it received.
//! - [`TestServer::banner`]: server-first: writes `SSH-2.0-test\r\n` on accept,
//!   then echoes.
//!
//! Each counts accepted connections, so a test can assert that an upstream
//! never saw a connection, and records the names (SNI or Host) it was sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::netns::{Netns, NsTask};
use super::sockets::bind_dual_stack;

/// The banner [`TestServer::banner`] sends first.
pub(crate) const BANNER: &[u8] = b"SSH-2.0-test\r\n";

/// Longest request head the servers read; bytes kept per echo connection.
const HEAD_CAP: usize = 16 * 1024;
const RECORD_CAP: usize = 1024 * 1024;
/// No connection to a test server lives longer than this.
const CONN_LIMIT: Duration = Duration::from_secs(30);

/// A running server; stops (with all its connections) on drop.
#[derive(Debug)]
pub(crate) struct TestServer {
    port: u16,
    stats: Arc<Stats>,
    _task: NsTask<()>,
}

#[derive(Debug, Default)]
struct Stats {
    accepted: Arc<AtomicUsize>,
    names: Mutex<Vec<String>>,
    received: Mutex<Vec<Vec<u8>>>,
}

#[derive(Clone)]
enum Kind {
    Tls(TlsAcceptor),
    Http,
    Echo,
    Banner,
}

// === impl TestServer ===

impl TestServer {
    /// A TLS server on `port` (0: ephemeral) with `config` (see `TestCa::server_config`).
    pub(crate) fn tls(ns: &Netns, port: u16, config: Arc<ServerConfig>) -> anyhow::Result<Self> {
        Self::start(ns, port, Kind::Tls(TlsAcceptor::from(config)))
    }

    /// A plain HTTP/1.1 server on `port` answering `host=NAME\n`.
    pub(crate) fn http(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        Self::start(ns, port, Kind::Http)
    }

    /// A TCP echo server on `port`.
    pub(crate) fn echo(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        Self::start(ns, port, Kind::Echo)
    }

    /// A server-first server on `port`: [`BANNER`], then echo.
    pub(crate) fn banner(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        Self::start(ns, port, Kind::Banner)
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// The live accepted-connection counter.
    pub(crate) fn accepted_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.stats.accepted)
    }

    /// Names seen, one per request: SNI (`-` if absent) or Host (`-` if absent).
    pub(crate) fn names(&self) -> Vec<String> {
        self.stats
            .names
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Bytes each finished echo/banner connection sent (up to 1 MiB each).
    pub(crate) fn received(&self) -> Vec<Vec<u8>> {
        self.stats
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    fn start(ns: &Netns, port: u16, kind: Kind) -> anyhow::Result<Self> {
        let listener = ns
            .enter(|| bind_dual_stack(port))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .with_context(|| format!("binding [::]:{port} in netns {}", ns.name()))?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Stats::default());
        let task = ns.spawn(serve(listener, kind, Arc::clone(&stats)));
        Ok(TestServer {
            port,
            stats,
            _task: task,
        })
    }
}

async fn serve(listener: std::net::TcpListener, kind: Kind, stats: Arc<Stats>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return eprintln!("test server: registering listener: {e}"),
    };
    // Runs until the TestServer is dropped; an accept error ends it.
    while let Ok((stream, _peer)) = listener.accept().await {
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        let (kind, stats) = (kind.clone(), Arc::clone(&stats));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONN_LIMIT, handle(kind, stream, &stats)).await;
        });
    }
}

async fn handle(kind: Kind, stream: TcpStream, stats: &Stats) -> std::io::Result<()> {
    match kind {
        Kind::Tls(acceptor) => {
            let mut tls = acceptor.accept(stream).await?;
            let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
            read_head(&mut tls).await?;
            record_name(stats, &sni);
            respond(&mut tls, &format!("sni={sni}\n")).await
        }
        Kind::Http => {
            let mut stream = stream;
            let head = read_head(&mut stream).await?;
            let host = host_header(&head).unwrap_or("-").to_owned();
            record_name(stats, &host);
            respond(&mut stream, &format!("host={host}\n")).await
        }
        Kind::Echo => echo(stream, stats).await,
        Kind::Banner => {
            let mut stream = stream;
            stream.write_all(BANNER).await?;
            echo(stream, stats).await
        }
    }
}

/// Echoes until EOF, then half-closes; keeps what it read.
async fn echo(mut stream: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let mut seen = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    let result = loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break stream.shutdown().await,
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let chunk = &buf[..n];
        let room = RECORD_CAP.saturating_sub(seen.len());
        seen.extend_from_slice(&chunk[..n.min(room)]);
        if let Err(e) = stream.write_all(chunk).await {
            break Err(e);
        }
    };
    if let Ok(mut received) = stats.received.lock() {
        received.push(seen);
    }
    result
}

/// Reads until the end of an HTTP head (`\r\n\r\n`), EOF, or [`HEAD_CAP`].
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while head.len() < HEAD_CAP && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

fn host_header(head: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("host").then(|| value.trim())
    })
}

fn record_name(stats: &Stats, name: &str) {
    if let Ok(mut names) = stats.names.lock() {
        names.push(name.to_owned());
    }
}

async fn respond(stream: &mut (impl AsyncWrite + Unpin), body: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
