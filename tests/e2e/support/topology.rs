//! The private network every e2e test runs in: three namespaces in a line.
//!
//! ```text
//!  client ns (devbox)          gateway ns (proxy, iptables)          server ns
//!  eth0 10.77.1.2/24  <-veth->  gw-c 10.77.1.1   gw-s 10.77.2.1  <-veth->  eth0 10.77.2.2/24
//!       fd77:1::2/64                 fd77:1::1        fd77:2::1              fd77:2::2/64
//! ```
//!
//! Client and server route everything via the gateway, which forwards IPv4 and
//! IPv6 and has no other link: nothing reaches the host or beyond. The veth
//! pairs are created directly inside the namespaces, so their names are the same
//! in every test and never touch the host's namespace. Namespace names are
//! `ep{pid}x{n}{c,g,s}`, unique per test process and test; a test process that
//! died without cleaning up has its namespaces removed by the next run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

use super::netns::{Netns, run_ok};
use super::{WAIT, wait_until};

/// Addresses and interface names of the topology (the same in every test).
pub(crate) mod addr {
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(crate) const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
    pub(crate) const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 1, 0, 0, 0, 0, 0, 2);
    /// The gateway on the client link: the client's default route.
    pub(crate) const GW_CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
    pub(crate) const GW_CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 1, 0, 0, 0, 0, 0, 1);
    /// The gateway on the server link: the server's default route.
    pub(crate) const GW_SERVER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
    pub(crate) const GW_SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 1);
    pub(crate) const SERVER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
    pub(crate) const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 2);

    /// The gateway's interface towards the client (where interception rules match).
    pub(crate) const GW_CLIENT_IF: &str = "gw-c";
    /// The gateway's interface towards the server.
    pub(crate) const GW_SERVER_IF: &str = "gw-s";
    /// The only non-loopback interface in the client and server namespaces.
    pub(crate) const END_IF: &str = "eth0";
}

/// Three namespaces wired client <-> gateway <-> server; removed on drop.
#[derive(Debug)]
pub(crate) struct Topology {
    /// The devbox: curl, openssl and test clients run here.
    pub(crate) client: Netns,
    /// Where the proxy and the iptables rules live.
    pub(crate) gateway: Netns,
    /// Upstream servers.
    pub(crate) server: Netns,
}

const PREFIX: &str = "ep";

// === impl Topology ===

impl Topology {
    /// Builds a fresh topology with unique namespace names.
    pub(crate) fn new() -> anyhow::Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        netns_usable().clone().map_err(anyhow::Error::msg)?;
        let base = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let topo = Topology {
            client: fresh_ns(format!("{base}c"))?,
            gateway: fresh_ns(format!("{base}g"))?,
            server: fresh_ns(format!("{base}s"))?,
        };
        topo.wire().context("wiring the e2e topology")?;
        Ok(topo)
    }

    /// The server's address in the given family, with `port`.
    pub(crate) fn server_addr(v6: bool, port: u16) -> SocketAddr {
        SocketAddr::new(Self::server_ip(v6), port)
    }

    /// The server's IP in the given family.
    pub(crate) fn server_ip(v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(addr::SERVER_V6)
        } else {
            IpAddr::V4(addr::SERVER_V4)
        }
    }

    /// The client's (devbox's) IP in the given family.
    pub(crate) fn client_ip(v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(addr::CLIENT_V6)
        } else {
            IpAddr::V4(addr::CLIENT_V4)
        }
    }

    fn wire(&self) -> anyhow::Result<()> {
        let gw = &self.gateway;
        gw.sysctl("net/ipv4/ip_forward", "1")?;
        gw.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        link(gw, addr::GW_CLIENT_IF, &self.client)?;
        link(gw, addr::GW_SERVER_IF, &self.server)?;
        address(
            gw,
            addr::GW_CLIENT_IF,
            addr::GW_CLIENT_V4,
            addr::GW_CLIENT_V6,
        )?;
        address(
            gw,
            addr::GW_SERVER_IF,
            addr::GW_SERVER_V4,
            addr::GW_SERVER_V6,
        )?;
        address(&self.client, addr::END_IF, addr::CLIENT_V4, addr::CLIENT_V6)?;
        address(&self.server, addr::END_IF, addr::SERVER_V4, addr::SERVER_V6)?;
        for ifname in [addr::GW_CLIENT_IF, addr::GW_SERVER_IF] {
            gw.ip(&["link", "set", ifname, "up"])?;
        }
        default_route(&self.client, addr::GW_CLIENT_V4, addr::GW_CLIENT_V6)?;
        default_route(&self.server, addr::GW_SERVER_V4, addr::GW_SERVER_V6)?;
        self.wait_links_up()
    }

    /// Waits until the kernel reports every veth end operationally up. Until
    /// then (the link watcher may lag by up to a second) the device drops what
    /// it is given, and a test's first SYN would wait for a retransmission.
    fn wait_links_up(&self) -> anyhow::Result<()> {
        let ends = [
            (&self.client, addr::END_IF),
            (&self.gateway, addr::GW_CLIENT_IF),
            (&self.gateway, addr::GW_SERVER_IF),
            (&self.server, addr::END_IF),
        ];
        for (ns, ifname) in ends {
            let up = || {
                ns.ip_output(&["-o", "link", "show", "dev", ifname])
                    .is_ok_and(|line| line.contains(" state UP "))
            };
            if !wait_until(WAIT, up) {
                bail!("{ifname} in netns {} is not up after {WAIT:?}", ns.name());
            }
        }
        Ok(())
    }
}

/// A namespace whose interfaces, created later, skip IPv6 duplicate address
/// detection, so addresses are usable at once.
fn fresh_ns(name: String) -> anyhow::Result<Netns> {
    let ns = Netns::create(name)?;
    ns.sysctl("net/ipv6/conf/default/accept_dad", "0")?;
    ns.sysctl("net/ipv6/conf/all/accept_dad", "0")?;
    Ok(ns)
}

/// A veth pair: `gw_if` in the gateway, `eth0` in `end`, both created in place.
fn link(gw: &Netns, gw_if: &str, end: &Netns) -> anyhow::Result<()> {
    gw.ip(&[
        "link",
        "add",
        gw_if,
        "type",
        "veth",
        "peer",
        "name",
        addr::END_IF,
        "netns",
        end.name(),
    ])?;
    end.ip(&["link", "set", addr::END_IF, "up"])
}

fn address(ns: &Netns, ifname: &str, v4: Ipv4Addr, v6: Ipv6Addr) -> anyhow::Result<()> {
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{v6}/64"),
        "dev",
        ifname,
        "nodad",
    ])
}

fn default_route(ns: &Netns, v4: Ipv4Addr, v6: Ipv6Addr) -> anyhow::Result<()> {
    ns.ip(&["route", "add", "default", "via", &v4.to_string()])?;
    ns.ip(&["-6", "route", "add", "default", "via", &v6.to_string()])
}

/// Whether this process can create and use a namespace (root, `ip netns`),
/// probed once. The first probe also removes namespaces left by dead test
/// processes, and sets up `/run/netns` before tests race to create namespaces
/// (concurrent first `ip netns add` calls can stack two mounts there).
pub(super) fn netns_usable() -> &'static Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        let probed = probe();
        remove_stale_namespaces();
        probed
    })
}

fn probe() -> Result<(), String> {
    let name = format!("{PREFIX}{}probe", std::process::id());
    let probe = Netns::create(name).map_err(|e| format!("{e:#}"))?;
    probe
        .sysctl("net/ipv4/ip_forward", "1")
        .map_err(|e| format!("{e:#}"))
}

/// Deletes `ep{pid}...` namespaces whose test process no longer exists (left by
/// a run that was killed before its drops ran).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run_ok(std::process::Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// `ep1234x5c` -> 1234; `None` for names this module did not make.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let (digits, tail) = rest.split_at(end);
    let ours = tail.starts_with('x') || tail == "probe";
    if ours { digits.parse().ok() } else { None }
}
