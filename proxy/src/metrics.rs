//! Every Prometheus metric family, registered once at startup.
//!
//! All names are prefixed `egress_proxy_`; counters end in `_total`. Labels
//! come only from closed sets (listener, protocol, verdict, reason, kind,
//! direction, result): never a host name, an address or a devbox id.
//!
//! The series every connection touches (active, connections, bytes,
//! detection time) are
//! reached through handles kept by label index, so a connection hashes no
//! label values; each is created on its first use, as `with_label_values`
//! would, so what is exposed is unchanged.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decide::{Reason, Verdict};
use crate::pipeline::ListenerKind;

/// The `protocol` labels of `connections_total` with kept handles:
/// [`crate::track::protocol_of`]'s and the explicit proxy's `connect`
/// (another label still counts, through `with_label_values`).
const PROTOCOLS: [&str; 5] = ["tls", "http", "unknown", "none", "connect"];

/// Handles in `connections_total`'s table: listener × protocol × verdict × reason.
const CONNECTION_HANDLES: usize =
    ListenerKind::COUNT * PROTOCOLS.len() * Verdict::COUNT * Reason::COUNT;

/// The metric families.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Connections by listener, protocol, verdict and reason.
    pub connections: IntCounterVec,
    /// Connections open now, by listener.
    pub active: IntGaugeVec,
    /// Connections still in detection.
    pub detecting: IntGauge,
    /// Bytes relayed, by direction (`up`: client to upstream; `down`).
    pub bytes: IntCounterVec,
    /// Time to decide once the name is known.
    pub decision_seconds: Histogram,
    /// Time from accept to a complete hello or head.
    pub detection_seconds: HistogramVec,
    /// Upstream connect failures by kind.
    pub upstream_errors: IntCounterVec,
    /// Config and policy reloads by result (`ok`, `error`).
    pub reloads: IntCounterVec,
    /// Unix time of the last successful reload (or load).
    pub last_reload: IntGauge,
    /// Policies loaded.
    pub policies: IntGauge,
    /// Devboxes and blueprint builds bound.
    pub bindings: IntGauge,
    /// Audit records dropped because the queue was full.
    pub audit_dropped: IntCounter,
    /// Open connections a policy change would deny, by action (`closed`, `kept`).
    pub policy_change: IntCounterVec,
    handles: Handles,
}

/// Handles of the per-connection series, each set on first use.
#[derive(Debug, Clone)]
struct Handles {
    /// `connections_active`, by [`ListenerKind::index`].
    active: [OnceLock<IntGauge>; ListenerKind::COUNT],
    /// `relayed_bytes_total{direction="up"}`.
    bytes_up: OnceLock<IntCounter>,
    /// `relayed_bytes_total{direction="down"}`.
    bytes_down: OnceLock<IntCounter>,
    /// `connections_total`, by [`connection_index`].
    connections: Box<[OnceLock<IntCounter>]>,
    /// `detection_duration_seconds`, by protocol (as in [`PROTOCOLS`]).
    detection: [OnceLock<Histogram>; PROTOCOLS.len()],
}

/// A metric failed to register (a programming error caught at startup).
#[derive(Debug, thiserror::Error)]
#[error("metrics registration failed: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

// === impl Metrics ===

impl Metrics {
    /// Registers every family in a fresh registry.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
                let c =
                    IntCounterVec::new(Opts::new(format!("egress_proxy_{name}"), help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(format!("egress_proxy_{name}"), help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let connections = counter_vec(
            "connections_total",
            "Connections by listener, protocol, verdict and reason",
            &["listener", "protocol", "verdict", "reason"],
        )?;
        let active = IntGaugeVec::new(
            Opts::new("egress_proxy_connections_active", "Connections open now"),
            &["listener"],
        )?;
        registry.register(Box::new(active.clone()))?;
        let buckets = vec![
            1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25, 1.0, 5.0,
        ];
        let decision_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "egress_proxy_decision_duration_seconds",
                "Time to decide once the name is known",
            )
            .buckets(buckets.clone()),
        )?;
        registry.register(Box::new(decision_seconds.clone()))?;
        let detection_seconds = HistogramVec::new(
            HistogramOpts::new(
                "egress_proxy_detection_duration_seconds",
                "Time from accept to a complete first unit",
            )
            .buckets(buckets),
            &["protocol"],
        )?;
        registry.register(Box::new(detection_seconds.clone()))?;
        Ok(Self {
            connections,
            active,
            detecting: gauge("connections_detecting", "Connections still in detection")?,
            bytes: counter_vec(
                "relayed_bytes_total",
                "Bytes relayed by direction",
                &["direction"],
            )?,
            decision_seconds,
            detection_seconds,
            upstream_errors: counter_vec(
                "upstream_connect_errors_total",
                "Upstream connect failures by kind",
                &["kind"],
            )?,
            reloads: counter_vec(
                "config_reloads_total",
                "Config and policy reloads by result",
                &["result"],
            )?,
            last_reload: gauge(
                "config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful load",
            )?,
            policies: gauge("policies_loaded", "Policies loaded")?,
            bindings: gauge("devboxes_loaded", "Devboxes and blueprint builds bound")?,
            audit_dropped: IntCounter::with_opts(Opts::new(
                "egress_proxy_audit_records_dropped_total",
                "Audit records dropped because the queue was full",
            ))
            .and_then(|c| registry.register(Box::new(c.clone())).map(|()| c))?,
            policy_change: counter_vec(
                "policy_change_connections_total",
                "Open connections a policy change would deny, by action",
                &["action"],
            )?,
            registry,
            handles: Handles {
                active: Default::default(),
                bytes_up: OnceLock::new(),
                bytes_down: OnceLock::new(),
                connections: (0..CONNECTION_HANDLES).map(|_| OnceLock::new()).collect(),
                detection: Default::default(),
            },
        })
    }

    /// The open-connections gauge of `listener`.
    pub fn active(&self, listener: ListenerKind) -> &IntGauge {
        self.handles.active[listener.index()]
            .get_or_init(|| self.active.with_label_values(&[listener.as_str()]))
    }

    /// Counts a decided connection in `connections_total`.
    pub fn connection(
        &self,
        listener: ListenerKind,
        protocol: &str,
        verdict: Verdict,
        reason: Reason,
    ) {
        let labels = [
            listener.as_str(),
            protocol,
            verdict.as_str(),
            reason.as_str(),
        ];
        let handle = connection_index(listener, protocol, verdict, reason)
            .and_then(|i| self.handles.connections.get(i));
        match handle {
            Some(cell) => cell
                .get_or_init(|| self.connections.with_label_values(&labels))
                .inc(),
            None => self.connections.with_label_values(&labels).inc(),
        }
    }

    /// Records the time detection took, by the protocol detected.
    pub fn detected(&self, protocol: &str, seconds: f64) {
        let cell = PROTOCOLS
            .iter()
            .position(|p| *p == protocol)
            .and_then(|i| self.handles.detection.get(i));
        match cell {
            Some(cell) => cell
                .get_or_init(|| self.detection_seconds.with_label_values(&[protocol]))
                .observe(seconds),
            None => self
                .detection_seconds
                .with_label_values(&[protocol])
                .observe(seconds),
        }
    }

    /// Counts bytes relayed each way.
    pub fn relayed(&self, up: u64, down: u64) {
        let handles = &self.handles;
        handles
            .bytes_up
            .get_or_init(|| self.bytes.with_label_values(&["up"]))
            .inc_by(up);
        handles
            .bytes_down
            .get_or_init(|| self.bytes.with_label_values(&["down"]))
            .inc_by(down);
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Records a successful (re)load of `state`.
    pub fn loaded(&self, state: &policy_matcher::Compiled) {
        self.policies
            .set(i64::try_from(state.policy_count()).unwrap_or(i64::MAX));
        self.bindings
            .set(i64::try_from(state.binding_count()).unwrap_or(i64::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_reload.set(i64::try_from(now).unwrap_or(i64::MAX));
    }
}

/// Where a label combination's handle is kept (`None`: an unlisted protocol).
fn connection_index(
    listener: ListenerKind,
    protocol: &str,
    verdict: Verdict,
    reason: Reason,
) -> Option<usize> {
    let protocol = PROTOCOLS.iter().position(|p| *p == protocol)?;
    let row = listener.index() * PROTOCOLS.len() + protocol;
    Some((row * Verdict::COUNT + verdict.index()) * Reason::COUNT + reason.index())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_the_prefix() {
        let m = Metrics::new().unwrap();
        m.connections
            .with_label_values(&["transparent", "tls", "deny", "no_match"])
            .inc();
        m.active.with_label_values(&["transparent"]).set(0);
        m.bytes.with_label_values(&["up"]).inc_by(3);
        let text = m.render();
        assert!(text.contains("egress_proxy_connections_total{listener=\"transparent\",protocol=\"tls\",reason=\"no_match\",verdict=\"deny\"} 1"), "{text}");
        assert!(text.contains("egress_proxy_relayed_bytes_total{direction=\"up\"} 3"));
    }

    /// The kept handles expose exactly what `with_label_values` did: a
    /// series appears on first use, with the same labels and counts.
    #[test]
    fn handles_expose_what_label_lookups_did() {
        let cached = Metrics::new().unwrap();
        let looked_up = Metrics::new().unwrap();
        let before = cached.render();
        assert!(
            !before.contains("egress_proxy_connections_total{"),
            "{before}"
        );
        assert!(!before.contains("egress_proxy_connections_active{"));
        assert!(!before.contains("egress_proxy_relayed_bytes_total{"));
        let deny = Reason::Policy(policy_matcher::Reason::NoMatch);
        let allow = Reason::Policy(policy_matcher::Reason::Hostname);
        let cases = [
            (ListenerKind::Transparent, "tls", Verdict::Deny, deny),
            (ListenerKind::Transparent, "tls", Verdict::Deny, deny),
            (ListenerKind::Connect, "connect", Verdict::Allow, allow),
            (
                ListenerKind::Tproxy,
                "none",
                Verdict::WouldDeny,
                Reason::Loop,
            ),
            (
                ListenerKind::Connect,
                "other",
                Verdict::Deny,
                Reason::Overloaded,
            ),
        ];
        for (listener, protocol, verdict, reason) in cases {
            cached.connection(listener, protocol, verdict, reason);
            looked_up
                .connections
                .with_label_values(&[
                    listener.as_str(),
                    protocol,
                    verdict.as_str(),
                    reason.as_str(),
                ])
                .inc();
        }
        cached.active(ListenerKind::Tproxy).inc();
        cached.active(ListenerKind::Tproxy).inc();
        cached.active(ListenerKind::Tproxy).dec();
        looked_up.active.with_label_values(&["tproxy"]).set(1);
        cached.detected("tls", 0.5);
        cached.detected("tls", 0.25);
        cached.detected("other", 1.0);
        for (protocol, seconds) in [("tls", 0.5), ("tls", 0.25), ("other", 1.0)] {
            looked_up
                .detection_seconds
                .with_label_values(&[protocol])
                .observe(seconds);
        }
        cached.relayed(5, 0);
        cached.relayed(2, 7);
        looked_up.bytes.with_label_values(&["up"]).inc_by(7);
        looked_up.bytes.with_label_values(&["down"]).inc_by(7);
        let page = cached.render();
        assert_eq!(page, looked_up.render());
        assert!(page.contains("egress_proxy_connections_total{listener=\"transparent\",protocol=\"tls\",reason=\"no_match\",verdict=\"deny\"} 2"), "{page}");
        assert!(!page.contains("listener=\"transparent\"}"), "{page}");
    }

    #[test]
    fn every_label_combination_has_its_own_handle() {
        let mut seen = std::collections::HashSet::new();
        let listeners = [
            ListenerKind::Transparent,
            ListenerKind::Tproxy,
            ListenerKind::Connect,
        ];
        let verdicts = [Verdict::Allow, Verdict::Deny, Verdict::WouldDeny];
        let reasons = [
            Reason::Policy(policy_matcher::Reason::UnknownSourceAllowed),
            Reason::Policy(policy_matcher::Reason::NoMatch),
            Reason::Loop,
            Reason::Overloaded,
        ];
        for l in listeners {
            for p in PROTOCOLS {
                for v in verdicts {
                    for r in reasons {
                        let i = connection_index(l, p, v, r).unwrap();
                        assert!(i < CONNECTION_HANDLES);
                        assert!(seen.insert(i), "{l:?} {p} {v:?} {r:?}");
                    }
                }
            }
        }
    }
}
