//! The test bed: one e2e [`Topology`] per path (client, gateway and server
//! namespaces), so that the paths share nothing but the machine.
//!
//! - direct: the gateway only routes; no iptables rule, no proxy.
//! - egress-proxy: the real binary (`ProxyProc`, built in the bench's own
//!   profile: release under `cargo bench`) on `0.0.0.0:15001`, iptables
//!   `REDIRECT` of every client TCP connection to it. Policy: the bench SNI
//!   by hostname, the server's bulk and hold ports by a CIDR rule.
//! - haproxy: the same rule to HAProxy (see `haproxy.rs`), same policy.
//!
//! Each server namespace runs the same [`Servers`]. Every namespace gets a
//! wide ephemeral port range, `tcp_tw_reuse` and deep listen queues, so that
//! hundreds of thousands of short connections do not run out of ports and
//! the hold listener can queue every idle connection. Dropping the bed stops the proxies, then the servers, then deletes
//! the namespaces.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;

use crate::cli::Options;
use crate::client::TlsClient;
use crate::haproxy::{self, Haproxy};
use crate::procstat;
use crate::servers::{BULK_PORT, HOLD_PORT, Servers};
use crate::support::{Netns, ProxyProc, TestCa, Topology, addr, wait_until};

/// The name the TLS clients send (and the policies allow).
pub(crate) const SNI: &str = "bench.test";
/// The proxies' transparent listener in their gateway namespace.
pub(crate) const PROXY_PORT: u16 = 15001;
/// Descriptors a proxy may hold beyond its idle count and still be settled.
const FD_SLACK: usize = 8;
/// Longest wait for a proxy to settle.
const SETTLE: Duration = Duration::from_secs(10);

/// Which way the client's connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathKind {
    Direct,
    Egress,
    Haproxy,
}

/// One path: its namespaces, servers and proxy (fields drop in this order).
pub(crate) struct PathBed {
    pub(crate) kind: PathKind,
    proxy: Option<Proxy>,
    /// The proxy's descriptors when it has no connection.
    idle_fds: usize,
    pub(crate) servers: Servers,
    pub(crate) topo: Topology,
}

enum Proxy {
    Egress { proc: ProxyProc, pid: u32 },
    Haproxy { proc: Haproxy, bin: PathBuf },
}

/// Every path of the run, and the client shared by all.
pub(crate) struct Bed {
    pub(crate) paths: Vec<PathBed>,
    pub(crate) tls: TlsClient,
    /// `haproxy -v`, when HAProxy is measured.
    pub(crate) haproxy_version: Option<String>,
    /// Why HAProxy is not measured, when it is not.
    pub(crate) haproxy_skipped: Option<String>,
    _ca: TestCa,
}

// === impl PathKind ===

impl PathKind {
    /// The column name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Egress => "egress-proxy",
            Self::Haproxy => "haproxy",
        }
    }
}

// === impl PathBed ===

impl PathBed {
    /// The proxy's process id (`None` on the direct path).
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.proxy {
            None => None,
            Some(Proxy::Egress { pid, .. }) => Some(*pid),
            Some(Proxy::Haproxy { proc, .. }) => Some(proc.pid()),
        }
    }

    /// Stops the proxy and starts a fresh process with the same config (the
    /// memory phase measures a process whose allocator holds no freed memory
    /// from earlier phases). The direct path has nothing to restart.
    pub(crate) fn restart_proxy(&mut self) -> anyhow::Result<()> {
        let gateway = &self.topo.gateway;
        self.proxy = match self.proxy.take() {
            None => None,
            Some(Proxy::Egress { proc, .. }) => {
                let (_status, dir) = proc.stop()?;
                let proc = ProxyProc::start_in(gateway, dir)?;
                Some(egress(proc)?)
            }
            Some(Proxy::Haproxy { proc, bin }) => {
                drop(proc);
                let proc = Haproxy::start(gateway, &bin, PROXY_PORT, SNI)?;
                Some(Proxy::Haproxy { proc, bin })
            }
        };
        self.idle_fds = self.fds()?;
        Ok(())
    }

    /// Waits (up to 10 s) until the proxy has closed what an earlier
    /// measurement left open, so that it does not pay for it in the next.
    pub(crate) fn settle(&self) {
        let idle = || self.fds().is_ok_and(|n| n <= self.idle_fds + FD_SLACK);
        if !wait_until(SETTLE, idle) {
            eprintln!(
                "warning: {}: {} descriptors open, {} when idle",
                self.kind.as_str(),
                self.fds().unwrap_or(0),
                self.idle_fds
            );
        }
    }

    fn fds(&self) -> anyhow::Result<usize> {
        self.pid().map_or(Ok(0), procstat::fd_count)
    }

    fn build(
        kind: PathKind,
        tls: &Arc<ServerConfig>,
        opts: &Options,
        haproxy_bin: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let topo = Topology::new()?;
        for ns in [&topo.client, &topo.gateway, &topo.server] {
            tune(ns)?;
        }
        let servers = Servers::start(&topo.server, Arc::clone(tls), opts.bulk_bytes)?;
        let proxy = match (kind, haproxy_bin) {
            (PathKind::Direct, _) => None,
            (PathKind::Egress, _) => {
                let proc = ProxyProc::start(
                    &topo.gateway,
                    &egress_config(),
                    &[("bench.json", &egress_policy())],
                )?;
                topo.redirect(PROXY_PORT)?;
                Some(egress(proc)?)
            }
            (PathKind::Haproxy, Some(bin)) => {
                let proc = Haproxy::start(&topo.gateway, bin, PROXY_PORT, SNI)?;
                topo.redirect(PROXY_PORT)?;
                Some(Proxy::Haproxy {
                    proc,
                    bin: bin.to_path_buf(),
                })
            }
            (PathKind::Haproxy, None) => anyhow::bail!("no haproxy binary"),
        };
        let mut path = PathBed {
            kind,
            proxy,
            idle_fds: 0,
            servers,
            topo,
        };
        path.idle_fds = path.fds()?;
        Ok(path)
    }
}

// === impl Bed ===

impl Bed {
    /// Builds every path (HAProxy's only when `opts.haproxy` and it can be
    /// installed).
    pub(crate) fn new(opts: &Options) -> anyhow::Result<Self> {
        let ca = TestCa::new()?;
        let server_tls = ca.server_config(&[SNI])?;
        let tls = TlsClient::new(&*ca.client_config()?, SNI)?;
        let (bin, skipped) = if opts.haproxy {
            match haproxy::binary() {
                Ok(bin) => (Some(bin), None),
                Err(why) => (None, Some(why)),
            }
        } else {
            (None, Some("--no-haproxy".to_owned()))
        };
        let mut paths = Vec::new();
        for kind in [PathKind::Direct, PathKind::Egress, PathKind::Haproxy] {
            if kind == PathKind::Haproxy && bin.is_none() {
                continue;
            }
            let path = PathBed::build(kind, &server_tls, opts, bin.as_deref())
                .with_context(|| format!("setting up the {} path", kind.as_str()))?;
            paths.push(path);
        }
        Ok(Bed {
            paths,
            tls,
            haproxy_version: bin.as_deref().map(haproxy::version),
            haproxy_skipped: skipped,
            _ca: ca,
        })
    }

    /// The kinds of path set up, in order.
    pub(crate) fn kinds(&self) -> Vec<PathKind> {
        self.paths.iter().map(|p| p.kind).collect()
    }

    /// The path of `kind`, if it was set up.
    pub(crate) fn path(&self, kind: PathKind) -> Option<&PathBed> {
        self.paths.iter().find(|p| p.kind == kind)
    }

    /// The path of `kind`, to restart its proxy.
    pub(crate) fn path_mut(&mut self, kind: PathKind) -> Option<&mut PathBed> {
        self.paths.iter_mut().find(|p| p.kind == kind)
    }
}

/// A started egress-proxy and its pid (found by its unique config path).
fn egress(proc: ProxyProc) -> anyhow::Result<Proxy> {
    let config = proc.dir().config_path().display().to_string();
    let pid = procstat::pid_with_arg(&config)?;
    Ok(Proxy::Egress { proc, pid })
}

/// Ports, TIME_WAIT reuse and listen queues for many short connections.
fn tune(ns: &Netns) -> anyhow::Result<()> {
    ns.sysctl("net/ipv4/ip_local_port_range", "1024 65000")?;
    ns.sysctl("net/ipv4/tcp_tw_reuse", "1")?;
    ns.sysctl("net/core/somaxconn", "65535")?;
    ns.sysctl("net/ipv4/tcp_max_syn_backlog", "8192")
}

/// egress-proxy's config: the transparent listener, the client bound to the
/// bench policy, private upstreams allowed (the server is on 10.77.2.2).
fn egress_config() -> String {
    let client = addr::CLIENT_V4;
    format!(
        r#"unknown_source = "deny"
policy_files = ["policies/*.json"]

[listen]
transparent = ["0.0.0.0:{PROXY_PORT}"]

[upstream]
deny_private = false

[limits]
max_connections = 50000

[[devboxes]]
id = "bench"
addresses = ["{client}"]
network_policy_id = "np_bench"
"#
    )
}

/// The bench policy: [`SNI`] by name; the bulk and hold ports by CIDR.
fn egress_policy() -> String {
    serde_json::json!({
        "id": "np_bench",
        "name": "bench",
        "egress": {
            "allowed_hostnames": [SNI],
            "allowed_cidrs": [{
                "cidr": format!("{}/32", addr::SERVER_V4),
                "ports": [{"port": BULK_PORT, "end_port": HOLD_PORT, "protocol": "TCP"}],
            }],
        },
    })
    .to_string()
}
