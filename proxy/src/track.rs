//! Per-connection bookkeeping shared by every listener: the active-connection
//! gauge, the decision's log line and counter, and the audit record whose
//! decision part is serialized at the decision and written at close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::act::relay::{RelayEnd, Relayed};
use crate::audit::{Closed, Decided, Pending};
use crate::config::Mode;
use crate::decide::Outcome;
use crate::detect::Detected;
use crate::pipeline::ListenerKind;
use crate::shared::Shared;

/// One connection's bookkeeping; the active gauge drops with it.
#[derive(Debug)]
pub struct Tracker {
    shared: Arc<Shared>,
    listener: ListenerKind,
    peer: SocketAddr,
    started: Instant,
    time_ms: u64,
}

// === impl Tracker ===

impl Tracker {
    /// Starts tracking a connection accepted now.
    pub fn new(shared: Arc<Shared>, listener: ListenerKind, peer: SocketAddr) -> Self {
        shared
            .metrics
            .active
            .with_label_values(&[listener.as_str()])
            .inc();
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            shared,
            listener,
            peer,
            started: Instant::now(),
            time_ms,
        }
    }

    /// Time since accept.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Logs and counts a decision; returns the audit record to complete.
    pub fn decided(
        &self,
        dest: Option<SocketAddr>,
        protocol: &'static str,
        name: Option<&str>,
        outcome: &Outcome<'_>,
    ) -> Pending {
        let listener = self.listener.as_str();
        let verdict = outcome.verdict.as_str();
        let reason = outcome.reason.as_str();
        self.shared
            .metrics
            .connections
            .with_label_values(&[listener, protocol, verdict, reason])
            .inc();
        tracing::info!(
            listener,
            source = %self.peer,
            dest = dest.map(|d| d.to_string()).as_deref().unwrap_or("-"),
            name = name.unwrap_or("-"),
            devbox = outcome.devbox(),
            policy = outcome.policy_id(),
            verdict,
            reason = outcome.reason.detail(),
            rule = %outcome.rule(),
            "decision"
        );
        let decision = outcome.policy;
        // Serialized now, once: a relay keeps it until close, and what a
        // relay keeps is what an idle connection costs.
        Pending::new(&Decided {
            time_ms: self.time_ms,
            source: self.peer,
            devbox: decision.and_then(|d| d.devbox),
            account: decision.and_then(|d| d.account),
            dest,
            name,
            protocol,
            listener,
            verdict,
            reason,
            detail: outcome.reason.detail(),
            policy: decision.and_then(|d| d.policy_id),
            rule: outcome.rule(),
            mode: match self.shared.config.mode {
                Mode::Enforce => "enforce",
                Mode::Report => "report",
            },
        })
    }

    /// Completes the audit record at close and queues it for writing.
    pub fn closed(&self, pending: Pending, moved: Relayed, end: Option<RelayEnd>) {
        let bytes = &self.shared.metrics.bytes;
        bytes.with_label_values(&["up"]).inc_by(moved.up);
        bytes.with_label_values(&["down"]).inc_by(moved.down);
        self.shared.audit.record(Closed {
            pending,
            bytes_up: moved.up,
            bytes_down: moved.down,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            end: end.map(RelayEnd::as_str),
        });
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.shared
            .metrics
            .active
            .with_label_values(&[self.listener.as_str()])
            .dec();
    }
}

/// The protocol label for what was detected (`none`: decided at accept).
pub fn protocol_of(detected: Option<&Detected>) -> &'static str {
    match detected {
        Some(Detected::Tls { .. }) => "tls",
        Some(Detected::Http { .. }) => "http",
        Some(Detected::Unknown) => "unknown",
        None => "none",
    }
}
