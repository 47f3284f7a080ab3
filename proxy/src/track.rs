//! Per-connection bookkeeping shared by every listener: the active-connection
//! gauge, the decision's counter and log line (info for denials, debug for
//! allowed connections), and the audit record whose decision part is
//! serialized at the decision and written at close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::act::relay::{RelayEnd, Relayed};
use crate::audit::{Closed, Decided, Pending};
use crate::config::Mode;
use crate::decide::{Outcome, Verdict};
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
}

// === impl Tracker ===

impl Tracker {
    /// Starts tracking a connection accepted now.
    pub fn new(shared: Arc<Shared>, listener: ListenerKind, peer: SocketAddr) -> Self {
        shared.metrics.active(listener).inc();
        Self {
            shared,
            listener,
            peer,
            started: Instant::now(),
        }
    }

    /// When the connection was accepted, in Unix milliseconds (from the
    /// monotonic start, so a tracker needs no second clock field).
    fn accepted_ms(&self) -> u64 {
        let accepted = SystemTime::now()
            .checked_sub(self.started.elapsed())
            .unwrap_or(UNIX_EPOCH);
        accepted
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
            .connection(self.listener, protocol, outcome.verdict, outcome.reason);
        // Every connection is in the audit log; the log line is for denials
        // (and would-be denials), allowed ones only at debug.
        macro_rules! decision {
            ($level:expr) => {
                tracing::event!(
                    $level,
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
                )
            };
        }
        if outcome.verdict == Verdict::Allow {
            decision!(tracing::Level::DEBUG);
        } else {
            decision!(tracing::Level::INFO);
        }
        let decision = outcome.policy;
        // Serialized now, once: a relay keeps it until close, and what a
        // relay keeps is what an idle connection costs.
        Pending::new(&Decided {
            time_ms: self.accepted_ms(),
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
        self.shared.metrics.relayed(moved.up, moved.down);
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
        self.shared.metrics.active(self.listener).dec();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::{AuditLog, Record};

    const CONFIG: &str = r#"
[[policies]]
id = "np_31Hx3kzV0aB7cD9eF2gH4"
name = "p"
egress = { allowed_hostnames = ["*.npmjs.org"] }

[[devboxes]]
id = "dbx_31Hx3kzV0aB7cD9eF2gH4"
account = "acct_31Hx3kzV0aB7cD9eF2gH4"
addresses = ["10.77.1.2"]
network_policy_id = "np_31Hx3kzV0aB7cD9eF2gH4"
"#;

    fn shared(audit_path: &std::path::Path) -> Arc<Shared> {
        let loaded = crate::config::load_str(CONFIG, "t", std::path::Path::new(".")).unwrap();
        let metrics = crate::metrics::Metrics::new().unwrap();
        let audit = AuditLog::start(
            Some(audit_path.to_owned()),
            16,
            metrics.audit_dropped.clone(),
        )
        .unwrap();
        Arc::new(Shared::new(
            loaded.config,
            loaded.state,
            vec![],
            metrics,
            audit,
        ))
    }

    /// A TLS connection for `name` from a bound devbox, decided.
    fn decided(shared: &Arc<Shared>, name: &str) -> (Tracker, Pending) {
        let peer: SocketAddr = "10.77.1.2:51234".parse().unwrap();
        let dest: SocketAddr = "104.16.2.35:443".parse().unwrap();
        let state = shared.state.load_full();
        let query = policy_matcher::Query {
            source: peer.ip(),
            dest,
            name: Some(name),
        };
        let outcome = crate::decide::by_policy(&state, &shared.config, &query);
        let tracker = Tracker::new(shared.clone(), ListenerKind::Transparent, peer);
        let pending = tracker.decided(Some(dest), "tls", Some(name), &outcome);
        (tracker, pending)
    }

    /// What a relayed connection keeps between decision and close, and the
    /// line written at close.
    #[test]
    fn a_decided_connection_keeps_one_string_and_writes_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let shared = shared(&path);
        let name = "registry.npmjs.org";
        let (tracker, pending) = decided(&shared, name);
        eprintln!(
            "kept: {} bytes inline + one {}-byte string",
            std::mem::size_of_val(&pending),
            pending.as_str().len()
        );
        assert_eq!(std::mem::size_of_val(&pending), 16);
        let moved = Relayed {
            up: 517,
            down: 4096,
        };
        tracker.closed(pending, moved, Some(RelayEnd::Idle));
        assert!(shared.audit.finish(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&path).unwrap();
        let record: Record = serde_json::from_str(text.trim_end()).unwrap();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            record.time_ms <= now_ms && now_ms - record.time_ms < 60_000,
            "time_ms {} is the accept time",
            record.time_ms
        );
        let expected = Record {
            time_ms: record.time_ms,
            source: "10.77.1.2:51234".into(),
            devbox: Some("dbx_31Hx3kzV0aB7cD9eF2gH4".into()),
            account: Some("acct_31Hx3kzV0aB7cD9eF2gH4".into()),
            dest: Some("104.16.2.35:443".into()),
            name: Some(name.into()),
            protocol: "tls".into(),
            listener: "transparent".into(),
            verdict: "allow".into(),
            reason: "hostname".into(),
            detail: "hostname".into(),
            policy: Some("np_31Hx3kzV0aB7cD9eF2gH4".into()),
            rule: "hostname:*.npmjs.org".into(),
            mode: "enforce".into(),
            bytes_up: 517,
            bytes_down: 4096,
            duration_ms: record.duration_ms,
            end: Some("idle".into()),
        };
        assert_eq!(record, expected);
        assert_eq!(text.lines().count(), 1);
    }

    /// A log writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// At info, the decision line is logged for denials only.
    #[test]
    fn the_decision_line_is_info_for_denials_and_debug_for_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(&dir.path().join("audit.log"));
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for name in ["registry.npmjs.org", "denied.test"] {
                let (tracker, pending) = decided(&shared, name);
                tracker.closed(pending, Relayed::default(), None);
            }
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(logs.contains(" INFO "), "{logs}");
        assert!(logs.contains("decision"), "{logs}");
        assert!(logs.contains("name=\"denied.test\""), "{logs}");
        assert!(logs.contains("dest=\"104.16.2.35:443\""), "{logs}");
        assert!(logs.contains("rule=-"), "{logs}");
        assert!(!logs.contains("registry.npmjs.org"), "{logs}");
    }
}
