//! Interception rules in the gateway namespace, for IPv4 and IPv6 at once.
//!
//! Rules match only TCP arriving on the client-side interface (`gw-c`), so the
//! proxy's own upstream connections (which leave through `gw-s` and come back on
//! it) are never intercepted, and no SO_MARK exemption is needed in this
//! topology; [`Topology::iptables`] adds any other rule a test wants.
//!
//! - [`Topology::redirect`]: `nat PREROUTING -j REDIRECT` to the proxy's
//!   `transparent` listener (the proxy reads `SO_ORIGINAL_DST`).
//! - [`Topology::tproxy`]: `mangle PREROUTING -j TPROXY` to the `tproxy` listener,
//!   plus the policy route that delivers marked packets locally (the proxy's
//!   `IP_TRANSPARENT` socket sees the original destination as its local address).

use super::topology::{Topology, addr};

/// Routing table used for TPROXY's local delivery.
const TPROXY_TABLE: &str = "100";

// === impl Topology ===

impl Topology {
    /// Redirects every TCP connection from the client to `port` on the gateway.
    pub(crate) fn redirect(&self, port: u16) -> anyhow::Result<()> {
        let port = port.to_string();
        let rule = [
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-i",
            addr::GW_CLIENT_IF,
            "-p",
            "tcp",
            "-j",
            "REDIRECT",
            "--to-ports",
            &port,
        ];
        self.iptables(&rule)?;
        self.ip6tables(&rule)
    }

    /// Hands every TCP connection from the client to the `IP_TRANSPARENT`
    /// listener on `port`, marking packets with `mark` (a single bit, e.g. 1) and
    /// routing that mark to local delivery.
    pub(crate) fn tproxy(&self, port: u16, mark: u32) -> anyhow::Result<()> {
        let port = port.to_string();
        let mark_mask = format!("{mark:#x}/{mark:#x}");
        let rule = [
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-i",
            addr::GW_CLIENT_IF,
            "-p",
            "tcp",
            "-j",
            "TPROXY",
            "--on-port",
            &port,
            "--tproxy-mark",
            &mark_mask,
        ];
        self.iptables(&rule)?;
        self.ip6tables(&rule)?;
        let mark = mark.to_string();
        let gw = &self.gateway;
        for (family, any) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
            gw.ip(&[
                family,
                "rule",
                "add",
                "fwmark",
                &mark,
                "lookup",
                TPROXY_TABLE,
            ])?;
            gw.ip(&[
                family,
                "route",
                "add",
                "local",
                any,
                "dev",
                "lo",
                "table",
                TPROXY_TABLE,
            ])?;
        }
        Ok(())
    }

    /// Runs `iptables ARGS...` in the gateway namespace.
    pub(crate) fn iptables(&self, args: &[&str]) -> anyhow::Result<()> {
        self.gateway.exec_ok("iptables", &with_wait(args))
    }

    /// Runs `ip6tables ARGS...` in the gateway namespace.
    pub(crate) fn ip6tables(&self, args: &[&str]) -> anyhow::Result<()> {
        self.gateway.exec_ok("ip6tables", &with_wait(args))
    }
}

/// Adds `-w` so that parallel tests wait for the xtables lock instead of failing.
fn with_wait<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["-w", "5"];
    all.extend_from_slice(args);
    all
}
