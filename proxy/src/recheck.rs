//! Open connections follow policy changes: when the compiled state changes,
//! each relay asks the new state again and, if it would now deny, is closed
//! (`on_policy_change = "close"`, the default) or kept (`"keep"`); either way
//! it is logged and counted.

use std::net::{IpAddr, SocketAddr};

use policy_matcher::Query;

use crate::config::OnPolicyChange;
use crate::decide::{self, Outcome};
use crate::shared::Shared;

/// What a relayed connection was decided on.
#[derive(Debug, Clone)]
pub struct Recheck {
    /// The client's address.
    pub source: IpAddr,
    /// The upstream address.
    pub dest: SocketAddr,
    /// The observed (or requested) name.
    pub name: Option<String>,
    /// Decided by name before resolution (explicit proxy), so CIDR rules
    /// apply only to the address.
    pub by_name: bool,
}

// === impl Recheck ===

impl Recheck {
    /// The decision for this connection under `state`.
    pub fn outcome<'c>(&self, state: &'c policy_matcher::Compiled, shared: &Shared) -> Outcome<'c> {
        let cfg = &shared.config;
        match (&self.name, self.by_name) {
            (Some(name), true) => {
                decide::checked(state, cfg, state.decide_name(self.source, name), self.dest)
            }
            (name, _) => {
                let query = Query {
                    source: self.source,
                    dest: self.dest,
                    name: name.as_deref(),
                };
                decide::by_policy(state, cfg, &query)
            }
        }
    }

    /// Resolves when a policy change denies this connection and it is to be
    /// closed; never resolves otherwise.
    pub async fn until_denied(&self, shared: &Shared) {
        let mut changes = shared.generation.subscribe();
        let mut kept = false;
        loop {
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
            let state = shared.state.load_full();
            let outcome = self.outcome(&state, shared);
            if outcome.relays() {
                continue;
            }
            let action = match shared.config.on_policy_change {
                OnPolicyChange::Close => "closed",
                OnPolicyChange::Keep => "kept",
            };
            tracing::info!(
                source = %self.source,
                dest = %self.dest,
                name = self.name.as_deref().unwrap_or("-"),
                policy = outcome.policy_id(),
                reason = outcome.reason.as_str(),
                action,
                "policy change denies an open connection"
            );
            if shared.config.on_policy_change == OnPolicyChange::Close {
                shared
                    .metrics
                    .policy_change
                    .with_label_values(&[action])
                    .inc();
                return;
            }
            if !kept {
                shared
                    .metrics
                    .policy_change
                    .with_label_values(&[action])
                    .inc();
                kept = true;
            }
        }
    }
}
