//! Per-connection bookkeeping shared by every listener: the active-connection
//! gauge, the decision's log line and counter, and the audit record that is
//! built at the decision and written at close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::act::relay::{RelayEnd, Relayed};
use crate::audit::Record;
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
    ) -> Box<Record> {
        let listener = self.listener.as_str();
        let verdict = outcome.verdict.as_str();
        let reason = outcome.reason.as_str();
        self.shared
            .metrics
            .connections
            .with_label_values(&[listener, protocol, verdict, reason])
            .inc();
        let dest = dest.map(|d| d.to_string());
        let rule = outcome.rule().to_string();
        tracing::info!(
            listener,
            source = %self.peer,
            dest = dest.as_deref().unwrap_or("-"),
            name = name.unwrap_or("-"),
            devbox = outcome.devbox(),
            policy = outcome.policy_id(),
            verdict,
            reason = outcome.reason.detail(),
            rule = %rule,
            "decision"
        );
        let decision = outcome.policy;
        // Boxed: a relay keeps it until close, and a small task is what an
        // idle connection costs.
        Box::new(Record {
            time_ms: self.time_ms,
            source: self.peer.to_string(),
            devbox: decision.and_then(|d| d.devbox).map(str::to_owned),
            account: decision.and_then(|d| d.account).map(str::to_owned),
            dest,
            name: name.map(str::to_owned),
            protocol: protocol.to_owned(),
            listener: listener.to_owned(),
            verdict: verdict.to_owned(),
            reason: reason.to_owned(),
            detail: outcome.reason.detail().to_owned(),
            policy: decision.and_then(|d| d.policy_id).map(str::to_owned),
            rule,
            mode: match self.shared.config.mode {
                Mode::Enforce => "enforce".to_owned(),
                Mode::Report => "report".to_owned(),
            },
            ..Record::default()
        })
    }

    /// Completes and writes the audit record at close.
    pub fn closed(&self, mut record: Box<Record>, moved: Relayed, end: Option<RelayEnd>) {
        let bytes = &self.shared.metrics.bytes;
        bytes.with_label_values(&["up"]).inc_by(moved.up);
        bytes.with_label_values(&["down"]).inc_by(moved.down);
        record.bytes_up = moved.up;
        record.bytes_down = moved.down;
        record.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        record.end = end.map(|e| e.as_str().to_owned());
        self.shared.audit.record(*record);
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
