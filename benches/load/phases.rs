//! One measurement of one path for the connection-rate, latency and bulk
//! phases (the memory phase is `memory.rs`). Each reads the proxy's CPU time
//! just before and just after the client's work, so a sample holds only what
//! that work cost.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

use crate::bed::{Bed, PathBed};
use crate::cli::Options;
use crate::client;
use crate::procstat::cpu_seconds;
use crate::servers::{BULK_PORT, TLS_PORT};
use crate::stats::{BulkSample, RateSample};
use crate::support::Topology;

/// Untimed exchanges before each latency run (connection set-up paths warm).
const LATENCY_WARMUP: usize = 10;
/// Longest a bulk stream may take.
const BULK_LIMIT: Duration = Duration::from_secs(60);

/// The server's IPv4 address with `port`.
pub(crate) fn server(port: u16) -> SocketAddr {
    Topology::server_addr(false, port)
}

/// The proxy's (user, system) CPU seconds so far (`None`: direct path).
fn cpu(path: &PathBed) -> anyhow::Result<Option<(f64, f64)>> {
    path.pid().map(cpu_seconds).transpose()
}

/// New TLS connections per second, `opts.parallel` in flight.
pub(crate) fn rate(bed: &Bed, path: &PathBed, opts: &Options) -> anyhow::Result<RateSample> {
    path.settle();
    let before = cpu(path)?;
    let run = path.topo.client.run(client::rate(
        &bed.tls,
        server(TLS_PORT),
        opts.parallel,
        opts.rate_time,
        opts.rate_max,
    ));
    let after = cpu(path)?;
    if run.completed == 0 {
        bail!(
            "{}: no TLS exchange completed ({} failed)",
            path.kind.as_str(),
            run.errors
        );
    }
    let per_conn = |f: fn((f64, f64)) -> f64| {
        before
            .zip(after)
            .map(|(b, a)| (f(a) - f(b)) * 1e6 / run.completed as f64)
    };
    Ok(RateSample {
        conns_per_s: run.completed as f64 / run.elapsed.as_secs_f64(),
        cpu_us_per_conn: per_conn(|(user, sys)| user + sys),
        sys_us_per_conn: per_conn(|(_, sys)| sys),
        completed: run.completed,
        errors: run.errors,
    })
}

/// Sequential exchange times in microseconds, sorted.
pub(crate) fn latency(bed: &Bed, path: &PathBed, opts: &Options) -> anyhow::Result<Vec<f64>> {
    path.settle();
    let mut samples = path.topo.client.run(client::latency(
        &bed.tls,
        server(TLS_PORT),
        LATENCY_WARMUP,
        opts.latency_conns,
    ))?;
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

/// One bulk stream from the server to the client.
pub(crate) fn bulk(path: &PathBed, opts: &Options) -> anyhow::Result<BulkSample> {
    path.settle();
    let before = cpu(path)?;
    let (bytes, took) = path
        .topo
        .client
        .enter(|| client::bulk(server(BULK_PORT), BULK_LIMIT))?;
    let after = cpu(path)?;
    if bytes != opts.bulk_bytes {
        bail!(
            "{}: bulk stream ended after {bytes} of {} bytes",
            path.kind.as_str(),
            opts.bulk_bytes
        );
    }
    let gb = bytes as f64 / 1e9;
    Ok(BulkSample {
        gbit_per_s: gb * 8.0 / took.as_secs_f64(),
        cpu_s_per_gb: before.zip(after).map(|(b, a)| (a.0 + a.1 - b.0 - b.1) / gb),
        bytes,
    })
}
