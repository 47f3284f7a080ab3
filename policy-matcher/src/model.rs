//! The `NetworkPolicy` object exactly as Runloop's schema has it, extended
//! with `allowed_cidrs` and `allow_runloop_mirrors`, and its validation into
//! normalised [`Rules`].
//!
//! Unknown fields are refused: a typo such as `allowed_hostname` must never
//! silently allow nothing or everything.

use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::Issue;
use crate::pattern::Pattern;

/// A network policy as stored, served by the API and written in policy files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// The unique identifier.
    pub id: String,
    /// Human-readable name, unique per account; a policy file may omit it
    /// and then the id is used.
    #[serde(default)]
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// The egress rules.
    pub egress: EgressRules,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub create_time_ms: i64,
    /// Last update time, Unix milliseconds.
    #[serde(default)]
    pub update_time_ms: i64,
}

/// Egress rules; every field may be omitted in a file (false / empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRules {
    /// Allows everything; the other fields are then ignored.
    #[serde(default)]
    pub allow_all: bool,
    /// Hostname patterns (`github.com`, `*.npmjs.org`).
    #[serde(default)]
    pub allowed_hostnames: Vec<String>,
    /// CIDR rules with optional ports.
    #[serde(default)]
    pub allowed_cidrs: Vec<CidrSpec>,
    /// Tunnels to the same account's devboxes.
    #[serde(default)]
    pub allow_devbox_to_devbox: bool,
    /// The platform's agent gateway hosts.
    #[serde(default)]
    pub allow_agent_gateway: bool,
    /// The platform's MCP hub hosts.
    #[serde(default)]
    pub allow_mcp_gateway: bool,
    /// The platform's package mirrors.
    #[serde(default)]
    pub allow_runloop_mirrors: bool,
}

/// One `allowed_cidrs` entry as the SDK sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrSpec {
    /// An IPv4 or IPv6 network in canonical form (host bits zero).
    pub cidr: String,
    /// Port rules; absent, null or empty means every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortSpec>>,
}

/// One port rule: a port or an inclusive range, for TCP, UDP or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The first port, 1-65535.
    pub port: i64,
    /// The last port of a range (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    /// `TCP` or `UDP`; absent means both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A transport protocol a port rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP and UDP.
    Any,
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
}

/// A validated port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port, inclusive.
    pub start: u16,
    /// Last port, inclusive.
    pub end: u16,
    /// The protocol it applies to.
    pub protocol: Protocol,
}

/// A validated CIDR rule; no ports means every port of every protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CidrRule {
    /// The network.
    pub net: IpNet,
    /// The port rules.
    pub ports: Vec<PortRange>,
}

/// A policy's egress rules, normalised: patterns and CIDR rules sorted and
/// without duplicates, so that identical policies compare equal and are
/// compiled once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rules {
    /// Allows everything (the other fields are then empty).
    pub allow_all: bool,
    /// Hostname patterns.
    pub patterns: Vec<Pattern>,
    /// CIDR rules.
    pub cidrs: Vec<CidrRule>,
    /// `allow_devbox_to_devbox`.
    pub devbox_to_devbox: bool,
    /// `allow_agent_gateway`.
    pub agent_gateway: bool,
    /// `allow_mcp_gateway`.
    pub mcp_gateway: bool,
    /// `allow_runloop_mirrors`.
    pub mirrors: bool,
}

/// A policy that passed validation, ready to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPolicy {
    /// The policy id.
    pub id: Box<str>,
    /// The owning account; `None` for file policies, usable by every account.
    pub account: Option<Box<str>>,
    /// The normalised rules.
    pub rules: Rules,
    /// Where it came from (a file name, or `api`), for issues.
    pub origin: String,
}

// === impl NetworkPolicy ===

impl NetworkPolicy {
    /// Validates this policy; `path` prefixes every issue's path (e.g. `[2]`).
    pub fn validate(&self, path: &str) -> Result<ValidPolicy, Vec<Issue>> {
        let mut issues = Vec::new();
        if self.id.trim().is_empty() {
            issues.push(Issue::error(join(path, "id"), &self.id, "empty policy id"));
        }
        let rules = self.egress.validate(&join(path, "egress"), &mut issues);
        if issues.iter().any(Issue::is_error) {
            return Err(issues);
        }
        Ok(ValidPolicy {
            id: self.id.as_str().into(),
            account: None,
            rules,
            origin: String::new(),
        })
    }
}

// === impl EgressRules ===

impl EgressRules {
    /// Validates and normalises these rules, pushing every issue found.
    pub fn validate(&self, path: &str, issues: &mut Vec<Issue>) -> Rules {
        let mut patterns = Vec::with_capacity(self.allowed_hostnames.len());
        for (i, raw) in self.allowed_hostnames.iter().enumerate() {
            match Pattern::parse(raw) {
                Ok(p) => patterns.push(p),
                Err(e) => issues.push(Issue::error(
                    format!("{path}.allowed_hostnames[{i}]"),
                    raw,
                    e.to_string(),
                )),
            }
        }
        let mut cidrs = Vec::with_capacity(self.allowed_cidrs.len());
        for (i, spec) in self.allowed_cidrs.iter().enumerate() {
            if let Some(rule) = spec.validate(&format!("{path}.allowed_cidrs[{i}]"), issues) {
                cidrs.push(rule);
            }
        }
        if self.allow_all {
            return Rules {
                allow_all: true,
                ..Rules::default()
            };
        }
        patterns.sort_unstable();
        patterns.dedup();
        cidrs.sort_unstable();
        cidrs.dedup();
        Rules {
            allow_all: false,
            patterns,
            cidrs,
            devbox_to_devbox: self.allow_devbox_to_devbox,
            agent_gateway: self.allow_agent_gateway,
            mcp_gateway: self.allow_mcp_gateway,
            mirrors: self.allow_runloop_mirrors,
        }
    }
}

// === impl CidrSpec ===

impl CidrSpec {
    fn validate(&self, path: &str, issues: &mut Vec<Issue>) -> Option<CidrRule> {
        let net = match parse_network(&self.cidr) {
            Ok(net) => Some(net),
            Err(reason) => {
                issues.push(Issue::error(format!("{path}.cidr"), &self.cidr, reason));
                None
            }
        };
        let mut ports = Vec::new();
        for (i, spec) in self.ports.iter().flatten().enumerate() {
            match spec.validate() {
                Ok(range) => ports.push(range),
                Err((field, value, reason)) => issues.push(Issue::error(
                    format!("{path}.ports[{i}].{field}"),
                    value,
                    reason,
                )),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        Some(CidrRule { net: net?, ports })
    }
}

// === impl PortSpec ===

impl PortSpec {
    fn validate(&self) -> Result<PortRange, (&'static str, String, String)> {
        let port = |field: &'static str, v: i64| {
            u16::try_from(v)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| (field, v.to_string(), "port outside 1-65535".to_owned()))
        };
        let start = port("port", self.port)?;
        let end = match self.end_port {
            Some(end) => port("end_port", end)?,
            None => start,
        };
        if end < start {
            return Err((
                "end_port",
                end.to_string(),
                format!("end_port is below port {start}"),
            ));
        }
        let protocol = match self.protocol.as_deref() {
            None => Protocol::Any,
            Some(p) if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
            Some(p) if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
            Some(p) => {
                return Err((
                    "protocol",
                    p.to_owned(),
                    "unknown protocol (expected TCP or UDP)".to_owned(),
                ));
            }
        };
        Ok(PortRange {
            start,
            end,
            protocol,
        })
    }
}

// === impl PortRange ===

impl PortRange {
    /// Whether this rule allows a TCP connection to `port`.
    pub fn allows_tcp(&self, port: u16) -> bool {
        self.protocol != Protocol::Udp && (self.start..=self.end).contains(&port)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)?;
        } else {
            write!(f, "{}-{}", self.start, self.end)?;
        }
        match self.protocol {
            Protocol::Any => Ok(()),
            Protocol::Tcp => f.write_str("/tcp"),
            Protocol::Udp => f.write_str("/udp"),
        }
    }
}

/// Parses an address binding or CIDR: an IP (a one-address network) or a
/// network in canonical form (host bits zero).
pub fn parse_network(raw: &str) -> Result<IpNet, String> {
    if let Ok(ip) = std::net::IpAddr::from_str(raw) {
        return Ok(IpNet::from(ip));
    }
    let net = IpNet::from_str(raw).map_err(|_| "not an IP address or CIDR".to_owned())?;
    if net.trunc() != net {
        return Err(format!(
            "host bits set: not in canonical form (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}
