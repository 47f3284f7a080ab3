//! Every Prometheus metric family, registered once at startup.
//!
//! All names are prefixed `egress_proxy_`; counters end in `_total`. Labels
//! come only from closed sets (listener, protocol, verdict, reason, kind,
//! direction, result): never a host name, an address or a devbox id.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

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
        })
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
}
