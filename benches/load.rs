//! Load harness: egress-proxy against the direct path and HAProxy
//! (`cargo bench --bench load`; `cargo test --bench load` runs a smoke run).
//!
//! It builds one network topology per path (client, gateway, server
//! namespaces from the e2e support code), starts a TLS server, a bulk
//! source and an idle-connection holder in each server namespace, the real
//! `egress-proxy` and HAProxy behind iptables `REDIRECT` in their gateways,
//! and measures, round after round with the paths in rotating order so that
//! machine noise hits them alike:
//!
//! 1. new TLS connections per second (many clients in parallel, full TLS 1.3
//!    handshakes) and the proxy's CPU time per connection;
//! 2. latency of sequential new connections, p50 and p99, and what each proxy
//!    adds to the direct path;
//! 3. one bulk TCP stream allowed by a CIDR rule: throughput and the proxy's
//!    CPU seconds per GB;
//! 4. resident memory per idle relayed connection, with up to `--idle-conns`
//!    (10,000) held open through each proxy (fewer where the descriptor limit
//!    stops a proxy first; the count held is reported).
//!
//! It prints a table (median [min-max] over rounds, ratios to direct and to
//! HAProxy, the targets with verdicts), and writes `results.json` and
//! `load.svg` to `<target dir>/load/`. Without root it fails under `CI=true`
//! and in a full run; a smoke run elsewhere says why it skipped.
//!
//! - [`cli`]: flags, full and smoke mode.
//! - [`bed`]: the three paths (namespaces, servers, proxies, policy).
//! - [`haproxy`]: installing, configuring and running HAProxy.
//! - [`servers`], [`client`]: both ends of every exchange.
//! - [`phases`], [`memory`]: one measurement of one path.
//! - [`procstat`]: CPU time, RSS and descriptors from `/proc`.
//! - [`stats`], [`report`], [`chart`]: samples, table and JSON, SVG.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(
    dead_code,
    unused_imports,
    reason = "the e2e support API serves the e2e tests; the harness uses part of it"
)]
#[path = "../tests/e2e/support/mod.rs"]
mod support;

#[path = "load/bed.rs"]
mod bed;
#[path = "load/chart.rs"]
mod chart;
#[path = "load/cli.rs"]
mod cli;
#[path = "load/client.rs"]
mod client;
#[path = "load/haproxy.rs"]
mod haproxy;
#[path = "load/memory.rs"]
mod memory;
#[path = "load/phases.rs"]
mod phases;
#[path = "load/procstat.rs"]
mod procstat;
#[path = "load/report.rs"]
mod report;
#[path = "load/servers.rs"]
mod servers;
#[path = "load/stats.rs"]
mod stats;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use bed::{Bed, PathKind};
use cli::Options;
use report::Summary;
use stats::PathRuns;

/// File descriptors the harness (and the proxies it starts) may open.
const FD_LIMIT: u64 = 262_144;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("load harness failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let opts = Options::from_env()?;
    // Panics under CI=true when namespaces cannot be made.
    if !support::require_root() {
        if opts.smoke {
            eprintln!("load harness smoke run skipped: it needs root and `ip netns`");
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!("the load harness needs root and `ip netns`");
    }
    let fds = procstat::raise_fd_limit(FD_LIMIT)?;
    if fds < FD_LIMIT {
        eprintln!(
            "RLIMIT_NOFILE stays at {fds} (the hard limit; raising it needs CAP_SYS_RESOURCE): \
             a proxy holds at most that many descriptors, so the memory phase reports \
             how many idle connections each one actually held"
        );
    }
    let started = Instant::now();
    eprintln!(
        "load harness: {} run; setting up (egress-proxy is built in this profile)",
        if opts.smoke { "smoke" } else { "full" }
    );
    let mut bed = Bed::new(&opts)?;
    if let Some(why) = &bed.haproxy_skipped {
        eprintln!("HAProxy column skipped: {why}");
    }
    let runs = measure(&mut bed, &opts)?;
    let summary = Summary::new(&runs);
    println!("\n{}", summary.table(opts.smoke));
    write_outputs(&opts, &bed, &runs, &summary, fds, started)?;
    drop(bed);
    eprintln!("load harness: done in {:.0?}", started.elapsed());
    Ok(ExitCode::SUCCESS)
}

/// Every phase, every round, paths in rotating order.
fn measure(bed: &mut Bed, opts: &Options) -> anyhow::Result<Vec<PathRuns>> {
    let kinds = bed.kinds();
    let mut runs: Vec<PathRuns> = kinds.iter().map(|k| PathRuns::new(*k)).collect();
    let slot = |kind: PathKind| kinds.iter().position(|k| *k == kind).unwrap_or(0);
    for round in 0..opts.rounds {
        let order = rotated(&kinds, round);
        for kind in &order {
            let path = bed.path(*kind).context("path")?;
            let sample = phases::rate(bed, path, opts)?;
            if sample.errors > 0 {
                eprintln!("  {}: {} failed exchanges", kind.as_str(), sample.errors);
            }
            runs[slot(*kind)].rate.push(sample);
        }
        for kind in &order {
            let path = bed.path(*kind).context("path")?;
            runs[slot(*kind)]
                .latency
                .push(phases::latency(bed, path, opts)?);
        }
        for kind in &order {
            let path = bed.path(*kind).context("path")?;
            runs[slot(*kind)].bulk.push(phases::bulk(path, opts)?);
        }
        eprintln!("round {}/{} done", round + 1, opts.rounds);
    }
    let proxied: Vec<PathKind> = kinds
        .iter()
        .copied()
        .filter(|k| *k != PathKind::Direct)
        .collect();
    for round in 0..opts.mem_rounds {
        for kind in rotated(&proxied, round) {
            let path = bed.path_mut(kind).context("path")?;
            let sample = memory::round(path, opts)?;
            if let Some(why) = &sample.stopped {
                eprintln!(
                    "  {}: stopped at {} idle connections: {why}",
                    kind.as_str(),
                    sample.opened
                );
            }
            runs[slot(kind)].memory.push(sample);
        }
        eprintln!("memory round {}/{} done", round + 1, opts.mem_rounds);
    }
    Ok(runs)
}

/// Which egress-proxy was measured: `EGRESS_PROXY_BIN`, or the work tree's
/// commit and whether `proxy/` or `policy-matcher/` had uncommitted changes.
fn source_version() -> serde_json::Value {
    if let Some(bin) = std::env::var_os("EGRESS_PROXY_BIN") {
        return json!({ "bin": bin.to_string_lossy() });
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let dirty = git(&["status", "--porcelain", "--", "proxy", "policy-matcher"]);
    json!({
        "commit": git(&["rev-parse", "--short", "HEAD"]),
        "dirty": dirty.map(|d| !d.is_empty()),
    })
}

fn rotated<T: Copy>(items: &[T], by: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        let len = v.len();
        v.rotate_left(by % len);
    }
    v
}

fn write_outputs(
    opts: &Options,
    bed: &Bed,
    runs: &[PathRuns],
    summary: &Summary,
    fds: u64,
    started: Instant,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let results = json!({
        "mode": if opts.smoke { "smoke" } else { "full" },
        "options": {
            "rounds": opts.rounds,
            "rate_secs": opts.rate_time.as_secs_f64(),
            "rate_max": opts.rate_max,
            "parallel": opts.parallel,
            "latency_conns": opts.latency_conns,
            "bulk_bytes": opts.bulk_bytes,
            "idle_conns": opts.idle_conns,
            "mem_rounds": opts.mem_rounds,
        },
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "fd_limit": fds,
        },
        "haproxy": { "version": bed.haproxy_version, "skipped": bed.haproxy_skipped },
        "egress_proxy": source_version(),
        "elapsed_s": started.elapsed().as_secs_f64(),
        "summary": summary.to_json(),
        "rounds": runs.iter().map(PathRuns::to_json).collect::<Vec<_>>(),
    });
    let json_path = opts.out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    let svg_path = opts.out.join("load.svg");
    chart::draw(&svg_path, runs, summary)?;
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    Ok(())
}
