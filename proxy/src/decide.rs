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
    /// How many verdicts there are ([`Verdict::index`] is below).
    pub const COUNT: usize = 3;

    /// A dense index, for tables by verdict (metric handles).
    pub fn index(self) -> usize {
        match self {
            Self::Allow => 0,
            Self::Deny => 1,
            Self::WouldDeny => 2,
        }
    }

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
    /// How many labels there are ([`Reason::index`] is below).
    pub const COUNT: usize = 21;

    /// A dense index of the label (the same for the same label), for tables
    /// by reason (metric handles).
    pub fn index(self) -> usize {
        use policy_matcher::Reason as P;
        match self {
            Self::Policy(r) => match r {
                P::UnknownSourceAllowed => 0,
                P::UnknownSourceDenied => 1,
                P::NoPolicy => 2,
                P::PolicyNotFound => 3,
                P::AllowAll => 4,
                P::Hostname => 5,
                P::Cidr => 6,
                P::AgentGateway => 7,
                P::McpGateway => 8,
                P::Mirror => 9,
                P::DevboxTunnel => 10,
                P::NoMatch => 11,
            },
            Self::Malformed(_) => 12,
            Self::DetectTimeout => 13,
            Self::ClientClosed => 14,
            Self::EchDenied => 15,
            Self::PrivateUpstream => 16,
            Self::Loop => 17,
            Self::NoOriginalDst => 18,
            Self::NameMismatch => 19,
            Self::Overloaded => 20,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The indices are dense and follow the labels exactly.
    #[test]
    fn indices_match_labels() {
        use policy_matcher::Reason as P;
        let mut reasons: Vec<Reason> = [
            P::UnknownSourceAllowed,
            P::UnknownSourceDenied,
            P::NoPolicy,
            P::PolicyNotFound,
            P::AllowAll,
            P::Hostname,
            P::Cidr,
            P::AgentGateway,
            P::McpGateway,
            P::Mirror,
            P::DevboxTunnel,
            P::NoMatch,
        ]
        .into_iter()
        .map(Reason::Policy)
        .collect();
        reasons.extend([
            Reason::Malformed(Malformed::TooLarge),
            Reason::Malformed(Malformed::TlsRecordType),
            Reason::DetectTimeout,
            Reason::ClientClosed,
            Reason::EchDenied,
            Reason::PrivateUpstream,
            Reason::Loop,
            Reason::NoOriginalDst,
            Reason::NameMismatch,
            Reason::Overloaded,
        ]);
        let mut seen = vec![None; Reason::COUNT];
        for r in reasons {
            let slot = &mut seen[r.index()];
            assert!(slot.is_none_or(|label| label == r.as_str()), "{r:?}");
            *slot = Some(r.as_str());
        }
        assert!(seen.iter().all(Option::is_some), "{seen:?}");
        let verdicts = [Verdict::Allow, Verdict::Deny, Verdict::WouldDeny];
        let mut indices: Vec<usize> = verdicts.iter().map(|v| v.index()).collect();
        indices.sort_unstable();
        assert_eq!(indices, (0..Verdict::COUNT).collect::<Vec<_>>());
    }
}
