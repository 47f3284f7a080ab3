//! The outcome of one decision: a verdict, a stable reason, the policy and
//! the rule that matched. Borrowed from the compiled state; never allocated.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::model::PortRange;

/// One connection to decide.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The client's source address.
    pub source: IpAddr,
    /// The original destination.
    pub dest: SocketAddr,
    /// The observed name (TLS SNI, HTTP Host, CONNECT authority), raw.
    pub name: Option<&'a str>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The connection may proceed.
    Allow,
    /// The connection is refused.
    Deny,
}

/// Why the verdict was reached; `as_str` is stable (metrics, audit, CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No binding for the source; `unknown_source = "allow"`.
    UnknownSourceAllowed,
    /// No binding for the source; `unknown_source = "deny"`.
    UnknownSourceDenied,
    /// The devbox has no policy: allow all (the documented default).
    NoPolicy,
    /// The devbox's policy id names no known policy: fail closed.
    PolicyNotFound,
    /// `allow_all`.
    AllowAll,
    /// The name matched `allowed_hostnames`.
    Hostname,
    /// D:P/TCP is inside an `allowed_cidrs` rule.
    Cidr,
    /// An agent-gateway host with `allow_agent_gateway`.
    AgentGateway,
    /// An MCP-hub host with `allow_mcp_gateway`.
    McpGateway,
    /// A mirror host with `allow_runloop_mirrors`.
    Mirror,
    /// A same-account tunnel host with `allow_devbox_to_devbox`.
    DevboxTunnel,
    /// Nothing allowed it.
    NoMatch,
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule<'c> {
    /// No rule (defaults, unknown sources, no match).
    None,
    /// `allow_all`.
    AllowAll,
    /// A hostname pattern (`wildcard`: `*.name`).
    Hostname {
        /// The pattern's name part.
        name: &'c str,
        /// Whether it was a wildcard.
        wildcard: bool,
    },
    /// A platform host pattern (agent gateway, MCP hub or mirror).
    Platform {
        /// The pattern's name part.
        name: &'c str,
        /// Whether it was a wildcard.
        wildcard: bool,
    },
    /// A CIDR rule, with the port rule that matched (none: every port).
    Cidr {
        /// The network.
        net: IpNet,
        /// The port rule.
        ports: Option<PortRange>,
    },
    /// A tunnel to this devbox.
    Tunnel {
        /// The devbox owning the tunnel key.
        devbox: &'c str,
    },
}

/// The decision for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'c> {
    /// Allow or deny.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The bound devbox (or blueprint build), if any.
    pub devbox: Option<&'c str>,
    /// Its account.
    pub account: Option<&'c str>,
    /// The effective policy id, if any.
    pub policy_id: Option<&'c str>,
    /// The rule that decided.
    pub rule: Rule<'c>,
    pub(crate) rules_index: Option<u32>,
}

// === impl Verdict ===

impl Verdict {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

// === impl Reason ===

impl Reason {
    /// A stable, lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownSourceAllowed => "unknown_source_allowed",
            Self::UnknownSourceDenied => "unknown_source_denied",
            Self::NoPolicy => "no_policy",
            Self::PolicyNotFound => "policy_not_found",
            Self::AllowAll => "allow_all",
            Self::Hostname => "hostname",
            Self::Cidr => "cidr",
            Self::AgentGateway => "agent_gateway",
            Self::McpGateway => "mcp_gateway",
            Self::Mirror => "mirror",
            Self::DevboxTunnel => "devbox_tunnel",
            Self::NoMatch => "no_match",
        }
    }

    /// Whether the reason rests on the observed name (so the upstream's
    /// address still has to pass the private-range check).
    pub fn is_name_based(self) -> bool {
        matches!(
            self,
            Self::Hostname
                | Self::AgentGateway
                | Self::McpGateway
                | Self::Mirror
                | Self::DevboxTunnel
        )
    }
}

impl fmt::Display for Rule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = |w: bool| if w { "*." } else { "" };
        match *self {
            Self::None => f.write_str("-"),
            Self::AllowAll => f.write_str("allow_all"),
            Self::Hostname { name, wildcard } => write!(f, "hostname:{}{name}", star(wildcard)),
            Self::Platform { name, wildcard } => write!(f, "platform:{}{name}", star(wildcard)),
            Self::Cidr { net, ports: None } => write!(f, "cidr:{net}"),
            Self::Cidr {
                net,
                ports: Some(p),
            } => write!(f, "cidr:{net}:{p}"),
            Self::Tunnel { devbox } => write!(f, "tunnel:{devbox}"),
        }
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} reason={} policy={} rule={}",
            self.verdict.as_str(),
            self.reason.as_str(),
            self.policy_id.unwrap_or("-"),
            self.rule
        )
    }
}
