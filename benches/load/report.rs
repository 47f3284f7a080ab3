//! From per-round samples to what a reader sees: the figures table (median
//! [min-max] over rounds, per path, with ratios to the direct path and to
//! HAProxy), the targets with a verdict each, and the same as JSON.

use serde_json::{Value, json};

use crate::bed::PathKind;
use crate::stats::{PathRuns, Spread, ratio};

/// One figure for every path.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) key: &'static str,
    /// Direct, egress-proxy, HAProxy.
    pub(crate) cells: [Option<Spread>; 3],
    decimals: usize,
}

/// One of the targets and where this run stands.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: &'static str,
    /// A label for the chart.
    pub(crate) short: &'static str,
    pub(crate) key: &'static str,
    pub(crate) measured: Option<f64>,
    pub(crate) goal: f64,
    /// The goal is a maximum (else a minimum).
    pub(crate) at_most: bool,
    pub(crate) unit: &'static str,
}

/// The figures and targets of one run.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) rows: Vec<Row>,
    pub(crate) targets: Vec<Target>,
    /// egress-proxy's kernel (system) CPU per connection over HAProxy's whole
    /// CPU per connection: where egress-proxy would stand on the CPU target
    /// if its own code cost nothing.
    pub(crate) kernel_floor: Option<f64>,
    /// (egress-proxy's added p50 − its user CPU per connection, from the
    /// rate phase) over HAProxy's added p50: where egress-proxy would stand
    /// on the p50 latency target if its own code took no time at all.
    pub(crate) latency_floor: Option<f64>,
}

const KINDS: [PathKind; 3] = [PathKind::Direct, PathKind::Egress, PathKind::Haproxy];

// === impl Summary ===

impl Summary {
    pub(crate) fn new(runs: &[PathRuns]) -> Self {
        let rows = rows(runs);
        let median = |key: &str, col: usize| {
            rows.iter()
                .find(|r| r.key == key)
                .and_then(|r| r.cells[col])
                .map(|s| s.median)
        };
        let vs = |key: &str, col: usize| {
            median(key, 1)
                .zip(median(key, col))
                .and_then(|(a, b)| ratio(a, b))
        };
        let target = |name, short, key, measured, goal, at_most, unit| Target {
            name,
            short,
            key,
            measured,
            goal,
            at_most,
            unit,
        };
        let targets = vec![
            target(
                "CPU per new conn vs HAProxy",
                "CPU/conn",
                "cpu_per_conn_vs_haproxy",
                vs("cpu_us_per_conn", 2),
                0.6,
                true,
                "x",
            ),
            target(
                "new conns/s vs HAProxy",
                "conns/s",
                "conns_per_s_vs_haproxy",
                vs("conns_per_s", 2),
                1.0,
                false,
                "x",
            ),
            target(
                "added latency p50 vs HAProxy",
                "added p50",
                "added_p50_vs_haproxy",
                vs("added_p50_us", 2),
                0.5,
                true,
                "x",
            ),
            target(
                "added latency p99 vs HAProxy",
                "added p99",
                "added_p99_vs_haproxy",
                vs("added_p99_us", 2),
                0.5,
                true,
                "x",
            ),
            target(
                "bulk throughput vs direct",
                "bulk",
                "bulk_vs_direct",
                vs("bulk_gbit_per_s", 0),
                0.6,
                false,
                "x",
            ),
            target(
                "bulk CPU per GB",
                "CPU/GB",
                "bulk_cpu_s_per_gb",
                median("bulk_cpu_s_per_gb", 1),
                0.3,
                true,
                " s/GB",
            ),
            target(
                "resident per idle conn",
                "RSS/conn",
                "rss_per_idle_conn",
                median("rss_bytes_per_idle_conn", 1),
                2048.0,
                true,
                " B",
            ),
        ];
        let kernel_floor = median("sys_us_per_conn", 1)
            .zip(median("cpu_us_per_conn", 2))
            .and_then(|(a, b)| ratio(a, b));
        let user_us = median("cpu_us_per_conn", 1)
            .zip(median("sys_us_per_conn", 1))
            .map(|(all, sys)| all - sys);
        let latency_floor = median("added_p50_us", 1)
            .zip(user_us)
            .zip(median("added_p50_us", 2))
            .and_then(|((added, user), theirs)| ratio(added - user, theirs));
        Summary {
            rows,
            targets,
            kernel_floor,
            latency_floor,
        }
    }

    /// The figures table and the targets, as text.
    pub(crate) fn table(&self, smoke: bool) -> String {
        let mut out = String::new();
        let header = [
            "figure",
            "direct",
            "egress-proxy",
            "haproxy",
            "egress/direct",
            "egress/haproxy",
        ];
        out += &format!(
            "{:<30} {:>24} {:>24} {:>24} {:>13} {:>14}\n",
            header[0], header[1], header[2], header[3], header[4], header[5]
        );
        for row in &self.rows {
            let cell =
                |i: usize| row.cells[i].map_or("-".to_owned(), |s| spread_text(s, row.decimals));
            let r = |i: usize| {
                row.cells[1]
                    .zip(row.cells[i])
                    .and_then(|(a, b)| ratio(a.median, b.median))
                    .map_or("-".to_owned(), |x| format!("{x:.2}x"))
            };
            out += &format!(
                "{:<30} {:>24} {:>24} {:>24} {:>13} {:>14}\n",
                row.name,
                cell(0),
                cell(1),
                cell(2),
                r(0),
                r(2)
            );
        }
        out += "\ntargets (egress-proxy)\n";
        for t in &self.targets {
            let verdict = if smoke {
                "n/a (smoke run)".to_owned()
            } else {
                t.verdict()
            };
            let goal = format!(
                "{} {}{}",
                if t.at_most { "<=" } else { ">=" },
                t.goal,
                t.unit
            );
            let measured = t.measured.map_or("-".to_owned(), |m| t.text(m));
            out += &format!(
                "  {:<30} {:>14} {:>12}   {verdict}\n",
                t.name, measured, goal
            );
        }
        if let Some(floor) = self.kernel_floor {
            out += &format!(
                "\nkernel floor: egress-proxy's system time alone is {floor:.2}x HAProxy's whole CPU per \
                 connection\n(where it would stand on the CPU target if its own code cost nothing)\n"
            );
        }
        if let Some(floor) = self.latency_floor {
            out += &format!(
                "latency floor: egress-proxy's added p50 less its whole user CPU per connection is \
                 {floor:.2}x HAProxy's added p50\n(where it would stand on the p50 target if its own \
                 code took no time)\n"
            );
        }
        out
    }

    /// The figures, ratios and targets as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let rows: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = serde_json::Map::new();
                for (i, kind) in KINDS.iter().enumerate() {
                    if let Some(s) = r.cells[i] {
                        cells.insert(kind.as_str().to_owned(), s.to_json());
                    }
                }
                (r.key.to_owned(), Value::Object(cells))
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                json!({
                    "key": t.key, "name": t.name, "measured": t.measured, "goal": t.goal,
                    "at_most": t.at_most, "unit": t.unit, "met": t.met(),
                })
            })
            .collect();
        json!({ "figures": rows, "targets": targets, "kernel_floor_vs_haproxy": self.kernel_floor,
            "latency_floor_vs_haproxy": self.latency_floor })
    }
}

// === impl Target ===

impl Target {
    /// Whether the goal is met (`None`: not measured).
    pub(crate) fn met(&self) -> Option<bool> {
        let m = self.measured?;
        Some(if self.at_most {
            m <= self.goal
        } else {
            m >= self.goal
        })
    }

    /// `m` in this target's unit.
    pub(crate) fn text(&self, m: f64) -> String {
        let decimals = if self.unit == " B" { 0 } else { 2 };
        format!("{m:.decimals$}{}", self.unit)
    }

    /// "met" or "MISSED by N%" (how far past the goal the measurement is).
    pub(crate) fn verdict(&self) -> String {
        match (self.met(), self.measured) {
            (Some(true), _) => "met".to_owned(),
            (Some(false), Some(m)) => {
                let off = if self.at_most {
                    m / self.goal - 1.0
                } else {
                    1.0 - m / self.goal
                };
                format!("MISSED by {:.0}%", off * 100.0)
            }
            _ => "no figure (a side is missing, or the divisor is not positive)".to_owned(),
        }
    }
}

fn spread_text(s: Spread, decimals: usize) -> String {
    format!(
        "{:.d$} [{:.d$}-{:.d$}]",
        s.median,
        s.min,
        s.max,
        d = decimals
    )
}

fn rows(runs: &[PathRuns]) -> Vec<Row> {
    let of = |kind: PathKind| runs.iter().find(|r| r.kind == kind);
    let direct = of(PathKind::Direct);
    let row = |name, key, decimals, f: &dyn Fn(&PathRuns) -> Vec<f64>| Row {
        name,
        key,
        cells: KINDS.map(|k| of(k).and_then(|r| Spread::of(&f(r)))),
        decimals,
    };
    // Per-round difference to the direct path's same percentile, same round.
    let added = |p: f64| {
        move |r: &PathRuns| -> Vec<f64> {
            if r.kind == PathKind::Direct {
                return Vec::new();
            }
            let base = direct.map(|d| d.latency_percentile(p)).unwrap_or_default();
            let mine = r.latency_percentile(p);
            mine.iter().zip(&base).map(|(m, b)| m - b).collect()
        }
    };
    vec![
        row("new TLS conns/s", "conns_per_s", 0, &|r| {
            r.rate.iter().map(|s| s.conns_per_s).collect()
        }),
        row("proxy CPU per conn (us)", "cpu_us_per_conn", 1, &|r| {
            r.rate.iter().filter_map(|s| s.cpu_us_per_conn).collect()
        }),
        row("  of which kernel (us)", "sys_us_per_conn", 1, &|r| {
            r.rate.iter().filter_map(|s| s.sys_us_per_conn).collect()
        }),
        row("latency p50 (us)", "latency_p50_us", 0, &|r| {
            r.latency_percentile(50.0)
        }),
        row("latency p99 (us)", "latency_p99_us", 0, &|r| {
            r.latency_percentile(99.0)
        }),
        row("added p50 vs direct (us)", "added_p50_us", 0, &added(50.0)),
        row("added p99 vs direct (us)", "added_p99_us", 0, &added(99.0)),
        row("bulk (Gbit/s)", "bulk_gbit_per_s", 2, &|r| {
            r.bulk.iter().map(|b| b.gbit_per_s).collect()
        }),
        row("proxy CPU per GB (s)", "bulk_cpu_s_per_gb", 3, &|r| {
            r.bulk.iter().filter_map(|b| b.cpu_s_per_gb).collect()
        }),
        row(
            "RSS per idle conn (B)",
            "rss_bytes_per_idle_conn",
            0,
            &|r| r.memory.iter().map(|m| m.bytes_per_conn).collect(),
        ),
        row("idle conns held", "idle_conns_held", 0, &|r| {
            r.memory.iter().map(|m| m.held as f64).collect()
        }),
        row("fds per idle conn", "fds_per_idle_conn", 1, &|r| {
            r.memory.iter().map(|m| m.fds_per_conn).collect()
        }),
    ]
}
