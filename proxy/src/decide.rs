//! The decision step of the pipeline: the policy's answer, plus the proxy's
//! own checks (private upstreams, ECH, report mode). Synchronous, no I/O,
//! no allocation.

use std::net::SocketAddr;

use policy_matcher::{Compiled, Decision, Query, Rule};

use crate::config::{Config, Mode};
use crate::detect::Malformed;
use crate::upstream;

/// The final verdict, after report mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Relayed.
    Allow,
    /// Refused.
    Deny,
    /// Would be refused; relayed because `mode = "report"`.
    WouldDeny,
}

/// Why; a closed set (`as_str` is a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The policy decided.
    Policy(policy_matcher::Reason),
    /// The first bytes were malformed or ambiguous.
    Malformed(Malformed),
    /// No complete hello or request head before the detection timeout.
    DetectTimeout,
    /// The client closed before sending a complete hello or head.
    ClientClosed,
    /// Encrypted Client Hello with `detect.ech = "deny"`.
    EchDenied,
    /// A name-allowed connection to a private, loopback, link-local or
    /// metadata address that no CIDR rule allows.
    PrivateUpstream,
    /// The original destination is one of the proxy's own listeners.
    Loop,
    /// The original destination could not be read.
    NoOriginalDst,
    /// The name inside a CONNECT tunnel differs from its authority.
    NameMismatch,
    /// Too many connections (or connections in detection).
    Overloaded,
}

/// A decision as the pipeline acts on it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'c> {
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The policy's decision, when it was asked.
    pub policy: Option<Decision<'c>>,
}

/// Asks the policy about `query`, then applies `deny_private` and report mode.
pub fn by_policy<'c>(state: &'c Compiled, config: &Config, query: &Query<'_>) -> Outcome<'c> {
    let decision = state.decide(query);
    checked(state, config, decision, query.dest)
}

/// Completes a decision the policy made (at accept, or by name).
pub fn checked<'c>(
    state: &'c Compiled,
    config: &Config,
    decision: Decision<'c>,
    dest: SocketAddr,
) -> Outcome<'c> {
    let mut reason = Reason::Policy(decision.reason);
    let mut allowed = decision.verdict == policy_matcher::Verdict::Allow;
    if allowed && private_blocked(state, config, &decision, dest) {
        allowed = false;
        reason = Reason::PrivateUpstream;
    }
    let verdict = match (allowed, config.mode) {
        (true, _) => Verdict::Allow,
        (false, Mode::Enforce) => Verdict::Deny,
        (false, Mode::Report) => Verdict::WouldDeny,
    };
    Outcome {
        verdict,
        reason,
        policy: Some(decision),
    }
}

/// Whether `deny_private` refuses a name-allowed connection to `dest`.
pub fn private_blocked(
    state: &Compiled,
    config: &Config,
    decision: &Decision<'_>,
    dest: SocketAddr,
) -> bool {
    config.upstream.deny_private
        && decision.reason.is_name_based()
        && upstream::is_restricted(dest.ip())
        && !state.cidr_allows(decision, dest)
}

/// A deny before (or instead of) the policy: failures are never relayed,
/// whatever the mode (the proxy never fails open).
pub fn refused<'c>(reason: Reason, policy: Option<Decision<'c>>) -> Outcome<'c> {
    Outcome {
        verdict: Verdict::Deny,
        reason,
        policy,
    }
}

// === impl Verdict ===

impl Verdict {
    /// `allow`, `deny` or `would_deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::WouldDeny => "would_deny",
        }
    }
}

// === impl Reason ===

impl Reason {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policy(r) => r.as_str(),
            Self::Malformed(_) => "malformed",
            Self::DetectTimeout => "detect_timeout",
            Self::ClientClosed => "client_closed",
            Self::EchDenied => "ech_denied",
            Self::PrivateUpstream => "private_upstream",
            Self::Loop => "loop",
            Self::NoOriginalDst => "no_original_dst",
            Self::NameMismatch => "name_mismatch",
            Self::Overloaded => "overloaded",
        }
    }

    /// A finer label for the log (the malformation), or the same label.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Malformed(m) => m.as_str(),
            other => other.as_str(),
        }
    }
}

// === impl Outcome ===

impl Outcome<'_> {
    /// Whether the connection is relayed.
    pub fn relays(&self) -> bool {
        self.verdict != Verdict::Deny
    }

    /// The policy id, or `-`.
    pub fn policy_id(&self) -> &str {
        self.policy.and_then(|d| d.policy_id).unwrap_or("-")
    }

    /// The devbox id, or `-`.
    pub fn devbox(&self) -> &str {
        self.policy.and_then(|d| d.devbox).unwrap_or("-")
    }

    /// The rule that matched.
    pub fn rule(&self) -> Rule<'_> {
        self.policy.map_or(Rule::None, |d| d.rule)
    }
}
