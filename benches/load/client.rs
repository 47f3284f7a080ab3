//! The devbox side: in-process clients that run in the client namespace.
//!
//! - [`rate`]: many TLS clients in parallel on one current-thread runtime,
//!   each doing connect, a full TLS 1.3 handshake (resumption off), `GET /`
//!   and reading the response to EOF, again and again until a deadline or a
//!   count is reached.
//! - [`latency`]: the same exchange, one connection at a time, timed from
//!   `connect` to the response's EOF.
//! - [`bulk`]: one connection to the bulk source, read to EOF, timed.
//! - [`hold`]: opens idle connections and keeps them (blocking sockets).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A single exchange never takes longer than this; past it, it is an error.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(5);

/// The outcome of one connection-rate run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    /// Exchanges completed.
    pub(crate) completed: usize,
    /// Exchanges that failed.
    pub(crate) errors: usize,
    /// Wall time of the run.
    pub(crate) elapsed: Duration,
}

/// The client side of the TLS exchange: SNI `name`, trusting the test CA,
/// without session resumption (every handshake is a full one).
#[derive(Clone)]
pub(crate) struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
    request: Arc<[u8]>,
}

// === impl TlsClient ===

impl TlsClient {
    /// From the test CA's client config.
    pub(crate) fn new(config: &ClientConfig, name: &str) -> anyhow::Result<Self> {
        let mut config = config.clone();
        config.resumption = Resumption::disabled();
        let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\n\r\n");
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_owned())?,
            request: request.into_bytes().into(),
        })
    }

    /// One exchange with `addr`; the response must be a 200.
    pub(crate) async fn exchange(&self, addr: SocketAddr) -> anyhow::Result<()> {
        let once = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let mut tls = self.connector.connect(self.name.clone(), tcp).await?;
            tls.write_all(&self.request).await?;
            let mut response = Vec::with_capacity(128);
            tls.read_to_end(&mut response).await?;
            if !response.starts_with(b"HTTP/1.1 200 ") {
                bail!(
                    "unexpected response: {:?}",
                    String::from_utf8_lossy(&response)
                );
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(EXCHANGE_LIMIT, once)
            .await
            .context("exchange timed out")?
    }
}

/// Runs `parallel` clients until `time` has passed or `max` exchanges were
/// started. Run it on a runtime inside the client namespace.
pub(crate) async fn rate(
    client: &TlsClient,
    addr: SocketAddr,
    parallel: usize,
    time: Duration,
    max: usize,
) -> Rate {
    let started = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + time;
    let begin = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (client, started) = (client.clone(), Arc::clone(&started));
        workers.spawn(async move {
            let (mut done, mut errors) = (0, 0);
            while Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < max {
                match client.exchange(addr).await {
                    Ok(()) => done += 1,
                    Err(_) => errors += 1,
                }
            }
            (done, errors)
        });
    }
    let (mut completed, mut errors) = (0, 0);
    while let Some(joined) = workers.join_next().await {
        let (done, failed) = joined.unwrap_or((0, 1));
        completed += done;
        errors += failed;
    }
    Rate {
        completed,
        errors,
        elapsed: begin.elapsed(),
    }
}

/// Times `count` sequential exchanges (after `warmup` untimed ones); returns
/// each duration in microseconds. Any failed exchange is an error.
pub(crate) async fn latency(
    client: &TlsClient,
    addr: SocketAddr,
    warmup: usize,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let start = Instant::now();
        client
            .exchange(addr)
            .await
            .with_context(|| format!("latency exchange {i} with {addr}"))?;
        if i >= warmup {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(samples)
}

/// Connects to the bulk source at `addr` and reads to EOF; returns the bytes
/// read and the time from `connect` to EOF. Blocking: run it inside the
/// client namespace with `Netns::enter`.
pub(crate) fn bulk(addr: SocketAddr, timeout: Duration) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to the bulk source {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the bulk stream"),
        }
    }
    Ok((total, start.elapsed()))
}

/// Opens up to `count` connections to `addr` one after another and keeps
/// them; stops at the first failure (its error is returned beside what was
/// opened). Blocking: run it inside the client namespace.
pub(crate) fn hold(addr: SocketAddr, count: usize) -> (Vec<TcpStream>, Option<std::io::Error>) {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => held.push(stream),
            Err(e) => return (held, Some(e)),
        }
    }
    (held, None)
}
