//! What one run collects, and the arithmetic on it: per-round samples for
//! each path, percentiles of sorted latency vectors, and the median with
//! min and max over rounds that every figure reports.

use serde_json::{Value, json};

use crate::bed::PathKind;

/// One connection-rate run of one path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateSample {
    pub(crate) conns_per_s: f64,
    /// The proxy's CPU time per completed connection (`None`: direct path).
    pub(crate) cpu_us_per_conn: Option<f64>,
    /// The kernel's share of it (system time: system calls, the TCP/IP work
    /// they trigger, softirqs run in the proxy's context).
    pub(crate) sys_us_per_conn: Option<f64>,
    pub(crate) completed: usize,
    pub(crate) errors: usize,
}

/// One bulk stream of one path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BulkSample {
    pub(crate) gbit_per_s: f64,
    /// The proxy's CPU seconds per 10^9 bytes relayed.
    pub(crate) cpu_s_per_gb: Option<f64>,
    pub(crate) bytes: u64,
}

/// One memory round of one proxy.
#[derive(Debug, Clone)]
pub(crate) struct MemSample {
    /// Connections the client opened.
    pub(crate) opened: usize,
    /// Connections the server saw open while RSS was read (held through).
    pub(crate) held: usize,
    /// (RSS with them open - RSS before) / held.
    pub(crate) bytes_per_conn: f64,
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
    /// Descriptors the proxy had open per held connection.
    pub(crate) fds_per_conn: f64,
    /// Why fewer than `--idle-conns` were opened, if so.
    pub(crate) stopped: Option<String>,
}

/// Everything measured on one path, one entry per round.
#[derive(Debug, Clone)]
pub(crate) struct PathRuns {
    pub(crate) kind: PathKind,
    pub(crate) rate: Vec<RateSample>,
    /// Sorted exchange times in microseconds, one vector per round.
    pub(crate) latency: Vec<Vec<f64>>,
    pub(crate) bulk: Vec<BulkSample>,
    pub(crate) memory: Vec<MemSample>,
}

/// Median, min and max of one figure over rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

// === impl PathRuns ===

impl PathRuns {
    pub(crate) fn new(kind: PathKind) -> Self {
        PathRuns {
            kind,
            rate: Vec::new(),
            latency: Vec::new(),
            bulk: Vec::new(),
            memory: Vec::new(),
        }
    }

    /// Latency percentile `p` (0..=100) of each round.
    pub(crate) fn latency_percentile(&self, p: f64) -> Vec<f64> {
        self.latency.iter().map(|s| percentile(s, p)).collect()
    }

    /// Every latency sample of every round, sorted.
    pub(crate) fn pooled_latency(&self) -> Vec<f64> {
        let mut all: Vec<f64> = self.latency.iter().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        all
    }

    /// The raw samples as JSON.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "path": self.kind.as_str(),
            "rate": self.rate.iter().map(|r| json!({
                "conns_per_s": r.conns_per_s,
                "cpu_us_per_conn": r.cpu_us_per_conn,
                "sys_us_per_conn": r.sys_us_per_conn,
                "completed": r.completed,
                "errors": r.errors,
            })).collect::<Vec<_>>(),
            "latency_us": self.latency.iter().map(|s| json!({
                "count": s.len(),
                "p50": percentile(s, 50.0),
                "p90": percentile(s, 90.0),
                "p99": percentile(s, 99.0),
                "max": s.last(),
            })).collect::<Vec<_>>(),
            "bulk": self.bulk.iter().map(|b| json!({
                "gbit_per_s": b.gbit_per_s,
                "cpu_s_per_gb": b.cpu_s_per_gb,
                "bytes": b.bytes,
            })).collect::<Vec<_>>(),
            "memory": self.memory.iter().map(|m| json!({
                "opened": m.opened,
                "held": m.held,
                "bytes_per_conn": m.bytes_per_conn,
                "rss_before": m.rss_before,
                "rss_after": m.rss_after,
                "fds_per_conn": m.fds_per_conn,
                "stopped": m.stopped,
            })).collect::<Vec<_>>(),
        })
    }
}

// === impl Spread ===

impl Spread {
    /// Over `values`; `None` when there are none (or any is not finite).
    pub(crate) fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            median: percentile(&sorted, 50.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }

    pub(crate) fn to_json(self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

/// Percentile `p` (0..=100) of sorted `values`, interpolated between ranks;
/// NaN when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            let frac = rank - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// `a / b` when both are finite and `b` is positive.
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}
