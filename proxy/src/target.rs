//! An explicit proxy's target (a CONNECT or absolute-form authority):
//! parsing it, deciding it before any DNS lookup, resolving an allowed name,
//! applying `deny_private` to every address, and dialling the rest in order.
//!
//! A denied name is never resolved (a lookup is itself a way to leak data).
//! A named target is allowed by name rules (hostnames, platform hosts,
//! tunnels) or by `allow_all` / no policy; CIDR rules allow IP-literal targets
//! and let a name-allowed target reach a private address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use policy_matcher::name::{NameBuf, Observed, observe};
use policy_matcher::{Compiled, Query};
use tokio::net::TcpStream;

use crate::decide::{self, Outcome, Reason};
use crate::shared::Shared;
use crate::upstream::{self, DialError};

/// Where an explicit proxy request wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A normalised host name and port.
    Name(String, u16),
    /// An IP literal and port (no name).
    Addr(SocketAddr),
}

/// Why a target could not be opened.
#[derive(Debug)]
pub enum OpenError<'c> {
    /// The policy (or `deny_private`) refused it.
    Denied(Outcome<'c>),
    /// The name did not resolve.
    Resolve,
    /// No address could be reached.
    Dial(DialError),
}

/// Why an authority is not a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadAuthority {
    /// `user@host`.
    #[error("userinfo is not allowed in the authority")]
    Userinfo,
    /// No host.
    #[error("empty host")]
    EmptyHost,
    /// No port, or not 1-65535.
    #[error("a port of 1-65535 is required")]
    Port,
    /// Not a valid host name.
    #[error("invalid host name")]
    InvalidName,
}

// === impl Target ===

impl Target {
    /// Parses `host` (IPv6 in brackets or not) and `port`.
    pub fn parse(authority: &str, host: &str, port: Option<u16>) -> Result<Self, BadAuthority> {
        if authority.contains('@') {
            return Err(BadAuthority::Userinfo);
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(BadAuthority::EmptyHost);
        }
        let port = port.filter(|p| *p != 0).ok_or(BadAuthority::Port)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Self::Addr(SocketAddr::new(ip, port)));
        }
        let mut buf = NameBuf::new();
        match observe(host, &mut buf) {
            Observed::Name(n) => Ok(Self::Name(n.to_owned(), port)),
            Observed::IpLiteral | Observed::Invalid => Err(BadAuthority::InvalidName),
        }
    }

    /// The host, for logs and deny bodies.
    pub fn host(&self) -> String {
        match self {
            Self::Name(n, _) => n.clone(),
            Self::Addr(a) => a.ip().to_string(),
        }
    }

    /// Whether an observed name (inner SNI or Host) names this target.
    pub fn is_named_by(&self, observed: &str) -> bool {
        let mut buf = NameBuf::new();
        match (observe(observed, &mut buf), self) {
            (Observed::Name(n), Self::Name(t, _)) => n == t,
            (Observed::IpLiteral, Self::Addr(a)) => {
                let raw = observed
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(observed);
                raw.parse::<IpAddr>().is_ok_and(|ip| ip == a.ip())
            }
            _ => false,
        }
    }
}

/// Decides `target` for `source` and, when allowed, dials it.
pub async fn open<'c>(
    shared: &Shared,
    state: &'c Compiled,
    source: IpAddr,
    target: &Target,
) -> Result<(Outcome<'c>, TcpStream, SocketAddr), OpenError<'c>> {
    let cfg = &shared.config;
    let candidates: Vec<(Outcome<'c>, SocketAddr)> = match target {
        Target::Addr(dest) => {
            let outcome = decide::by_policy(
                state,
                cfg,
                &Query {
                    source,
                    dest: *dest,
                    name: None,
                },
            );
            vec![(outcome, *dest)]
        }
        Target::Name(name, port) => {
            let decision = state.decide_name(source, name);
            if decision.verdict == policy_matcher::Verdict::Deny {
                // `checked` applies report mode; no address is involved.
                let unspecified = SocketAddr::new(IpAddr::from([0u8; 4]), *port);
                let outcome = decide::checked(state, cfg, decision, unspecified);
                if !outcome.relays() {
                    return Err(OpenError::Denied(outcome));
                }
            }
            let addrs = resolve(name, *port, cfg.upstream.connect_timeout).await?;
            addrs
                .into_iter()
                .map(|a| (decide::checked(state, cfg, decision, a), a))
                .collect()
        }
    };
    let mut last = Err(OpenError::Resolve);
    for (outcome, dest) in candidates {
        if !outcome.relays() {
            if last.is_err() {
                last = Err(OpenError::Denied(outcome));
            }
            continue;
        }
        match upstream::dial(dest, cfg.upstream.mark, cfg.upstream.connect_timeout).await {
            Ok(stream) => return Ok((outcome, stream, dest)),
            Err(e) => last = Err(OpenError::Dial(e)),
        }
    }
    last
}

async fn resolve<'c>(
    name: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, OpenError<'c>> {
    match tokio::time::timeout(timeout, tokio::net::lookup_host((name, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(OpenError::Resolve)
            } else {
                Ok(addrs)
            }
        }
        _ => Err(OpenError::Resolve),
    }
}

/// A deny outcome for an inner name that differs from the tunnel's target.
pub fn mismatch<'c>(outcome: &Outcome<'c>) -> Outcome<'c> {
    decide::refused(Reason::NameMismatch, outcome.policy)
}

/// The decision a relayed explicit-proxy connection rests on, taken again.
pub fn decide_again<'c>(
    state: &'c Compiled,
    shared: &Shared,
    recheck: &crate::recheck::Recheck,
) -> Outcome<'c> {
    recheck.outcome(state, shared)
}
