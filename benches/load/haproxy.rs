//! HAProxy, the reference: installed with apt when missing, configured for the
//! same policy as egress-proxy, run in a gateway namespace behind the same
//! iptables `REDIRECT`.
//!
//! Original destination: with `REDIRECT` the accepted socket's local address
//! is the gateway's own. HAProxy (built with `USE_LINUX_TPROXY`, as Debian's
//! is) asks `SO_ORIGINAL_DST` for an IPv4 listener's destination, so `dst` is
//! the address the client dialled, and `server upstream 0.0.0.0:0` connects to
//! that address and port. (The alternative is TPROXY with the `transparent`
//! bind option; REDIRECT keeps both proxies behind the same rule.)
//!
//! Policy: `tcp-request content` rules after `tcp-request inspect-delay`: the
//! CIDR rule (`dst` and `dst_port`) first, so that the server-first bulk and
//! idle connections are accepted at once, then `req.ssl_sni` against the
//! allow-list, then reject. Like egress-proxy it logs one line per connection
//! (`option tcplog` to stdout) and relays with splice(2): `option
//! splice-request` and `splice-response` (always; `splice-auto` did not
//! splice the bulk stream here and left HAProxy at 0.3x of direct, copying).
//! Its `maxconn` is left to HAProxy, which derives it from the descriptor
//! limit (an explicit one above what the limit allows makes it refuse to
//! start).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::servers::{BULK_PORT, HOLD_PORT};
use crate::support::netns::run_bounded;
use crate::support::{Netns, addr, wait_until};

/// A running HAProxy; stopped on drop.
#[derive(Debug)]
pub(crate) struct Haproxy {
    child: Child,
    dir: TempDir,
}

/// The HAProxy binary, installed with `apt-get` if missing; `Err` says why
/// it cannot be had.
pub(crate) fn binary() -> Result<PathBuf, String> {
    if let Some(found) = find() {
        return Ok(found);
    }
    eprintln!("haproxy is not installed: installing it with apt-get");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_bounded(cmd, None, Duration::from_secs(300)).map_err(|e| format!("{e:#}"))
    };
    let install = ["install", "-y", "-qq", "--no-install-recommends", "haproxy"];
    let mut out = apt(&install)?;
    if !out.success() {
        // A fresh machine has no package lists yet.
        apt(&["update", "-qq"])?;
        out = apt(&install)?;
    }
    find().ok_or_else(|| format!("apt-get install haproxy failed: {out}"))
}

/// `haproxy -v`, first line.
pub(crate) fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn find() -> Option<PathBuf> {
    let ok = |p: &Path| {
        Command::new(p)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| ok(p))
}

/// The configuration: transparent listener on `port`, `sni` allowed by name,
/// the bulk and hold ports of the server allowed by address.
pub(crate) fn config(port: u16, sni: &str) -> String {
    let server = addr::SERVER_V4;
    format!(
        "global
    log stdout format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    option splice-request
    option splice-response
    timeout connect 5s
    timeout client 10m
    timeout server 10m

frontend egress
    bind 0.0.0.0:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ dst {server}/32 }} {{ dst_port {BULK_PORT}:{HOLD_PORT} }}
    tcp-request content accept if {{ req.ssl_hello_type 1 }} {{ req.ssl_sni -i {sni} }}
    tcp-request content reject
    default_backend original_dst

backend original_dst
    server upstream 0.0.0.0:0
"
    )
}

// === impl Haproxy ===

impl Haproxy {
    /// Writes [`config`] and runs `haproxy -db -f` in `ns`; waits until it
    /// listens on `port`.
    pub(crate) fn start(ns: &Netns, bin: &Path, port: u16, sni: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("load-haproxy-").tempdir()?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(port, sni))?;
        let check = ns.output(
            &bin.display().to_string(),
            &["-c", "-q", "-f", &cfg.display().to_string()],
            None,
            Duration::from_secs(10),
        )?;
        if !check.success() {
            bail!("haproxy -c rejected the config: {check}");
        }
        let child = ns
            .command(&bin.display().to_string())
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout"))?)
            .stderr(File::create(dir.path().join("stderr"))?)
            .spawn()
            .context("spawning haproxy")?;
        let mut proxy = Haproxy { child, dir };
        let pid = proxy.pid();
        let listening = wait_until(Duration::from_secs(10), || listens(pid, port));
        if let Ok(Some(status)) = proxy.child.try_wait() {
            bail!("haproxy exited at start ({status}): {}", proxy.logs());
        }
        if !listening {
            bail!(
                "haproxy not listening on {port} after 10 s: {}",
                proxy.logs()
            );
        }
        Ok(proxy)
    }

    /// Its process id (`ip netns exec` execs it in place).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr (warnings, alerts).
    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let stopped = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Whether `pid` (in its own network namespace) has a TCP socket listening on
/// `port`: `/proc/PID/net/tcp` shows that namespace's sockets.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    let local = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let addr = fields.nth(1).unwrap_or_default();
        let state = fields.nth(1).unwrap_or_default();
        addr.ends_with(&local) && state == "0A"
    })
}
