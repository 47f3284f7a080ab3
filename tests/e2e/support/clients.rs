//! Clients a devbox would run, pointed at explicit addresses (tests never use
//! DNS): curl ([`Curl`]), `openssl s_client` ([`SClient`]), both as processes in a
//! namespace with a bounded run time, and an in-process rustls client
//! ([`rustls_get`], to run with `Netns::run`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::WAIT;
use super::netns::{CmdOutput, Netns, run_bounded};

/// Proxy variables of the test's own environment that must not reach clients.
const PROXY_ENV: [&str; 8] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// A curl invocation: `curl -q -sS --max-time T [--resolve ...] [args] URL`.
#[derive(Debug, Clone)]
pub(crate) struct Curl {
    url: String,
    args: Vec<String>,
    max_time: Duration,
}

/// An `openssl s_client` invocation that verifies the server against a CA file,
/// sends `stdin`, and waits for the server to close (`-ign_eof`).
#[derive(Debug, Clone)]
pub(crate) struct SClient {
    args: Vec<String>,
    stdin: Vec<u8>,
    timeout: Duration,
}

// === impl Curl ===

impl Curl {
    /// curl for `url`, 5 s max time, no `.curlrc`, no proxy from the environment.
    pub(crate) fn new(url: &str) -> Self {
        Curl {
            url: url.to_owned(),
            args: Vec::new(),
            max_time: WAIT,
        }
    }

    /// `--resolve host:port:ip`: the URL's host goes to `ip` without DNS.
    pub(crate) fn resolve(self, host: &str, port: u16, ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        self.arg("--resolve").arg(format!("{host}:{port}:{ip}"))
    }

    /// `--cacert PATH`.
    pub(crate) fn cacert(self, path: &Path) -> Self {
        self.arg("--cacert").arg(path.display().to_string())
    }

    /// `--proxy URL`, e.g. `http://10.77.1.1:3128`.
    pub(crate) fn proxy(self, url: &str) -> Self {
        self.arg("--proxy").arg(url)
    }

    /// `--max-time`; the process is killed 2 s after it.
    pub(crate) fn max_time(mut self, max_time: Duration) -> Self {
        self.max_time = max_time;
        self
    }

    /// Any other argument, e.g. `-i`, `-H`, `--http1.1`.
    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs it in `ns`; a failing curl is an `Ok` with its exit code.
    pub(crate) fn run(&self, ns: &Netns) -> anyhow::Result<CmdOutput> {
        let mut cmd = ns.command("curl");
        for var in PROXY_ENV {
            cmd.env_remove(var);
        }
        cmd.args(["-q", "-sS", "--max-time"])
            .arg(format!("{:.3}", self.max_time.as_secs_f64()))
            .args(&self.args)
            .arg(&self.url);
        run_bounded(cmd, None, self.max_time + Duration::from_secs(2))
    }
}

// === impl SClient ===

impl SClient {
    /// `openssl s_client -connect ADDR -CAfile CA -verify_return_error -ign_eof`,
    /// sending no SNI unless [`SClient::servername`] is called.
    pub(crate) fn new(connect: SocketAddr, ca_file: &Path) -> Self {
        let args = [
            "s_client",
            "-connect",
            &connect.to_string(),
            "-CAfile",
            &ca_file.display().to_string(),
            "-verify_return_error",
            "-ign_eof",
        ];
        SClient {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stdin: Vec::new(),
            timeout: WAIT,
        }
    }

    /// `-servername NAME` (SNI).
    pub(crate) fn servername(self, name: &str) -> Self {
        self.arg("-servername").arg(name)
    }

    /// Sends an HTTP/1.1 `GET /` for `host` with `Connection: close`.
    pub(crate) fn http_get(mut self, host: &str) -> Self {
        self.stdin = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into();
        self
    }

    /// Bytes to send after the handshake (then EOF on stdin).
    pub(crate) fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = bytes.to_vec();
        self
    }

    /// Any other argument, e.g. `-tls1_2`, `-noservername`.
    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Kills the process after `timeout` (default 5 s).
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs it in `ns`; a failing handshake is an `Ok` with its exit code.
    pub(crate) fn run(&self, ns: &Netns) -> anyhow::Result<CmdOutput> {
        let mut cmd = ns.command("openssl");
        cmd.args(&self.args);
        run_bounded(cmd, Some(&self.stdin), self.timeout)
    }
}

/// Connects to `addr` with SNI `name`, sends `GET /` with `Host: name`, and
/// returns the whole response as text. Bounded by 5 s; run it inside the client
/// namespace: `topo.client.run(rustls_get(config, addr, "allowed.test"))`.
pub(crate) async fn rustls_get(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> anyhow::Result<String> {
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let server_name = ServerName::try_from(name.to_owned())?;
        let mut tls = TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {addr} as {name}"))?;
        let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .with_context(|| format!("rustls GET {name} at {addr}: no answer within {WAIT:?}"))?
}
