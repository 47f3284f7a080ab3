//! The memory phase: resident memory per idle relayed connection.
//!
//! Each round restarts the proxy (a fresh process, so freed memory that its
//! allocator kept from earlier phases cannot hide the cost), warms it with a
//! few connections, reads its RSS and descriptor count, then opens idle
//! connections to the server's hold port in batches, each waited for until
//! the server's queue has it (the proxy dialled upstream). It stops at
//! `--idle-conns`, when the client cannot connect, or when one more batch
//! would take the proxy past 95% of its descriptor limit (a connection the
//! proxy cannot give all its descriptors is not a relayed one). RSS and
//! descriptors are read again, the connections closed and the hold queue
//! reset until the proxy is back to where it started.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::bed::PathBed;
use crate::cli::Options;
use crate::client;
use crate::phases::server;
use crate::procstat::{fd_count, fd_limit, rss_bytes};
use crate::servers::HOLD_PORT;
use crate::stats::MemSample;
use crate::support::wait_until;

/// Connections opened between two checks of the proxy's descriptors.
const BATCH: usize = 250;
/// Connections opened and closed before the baseline is read.
const WARMUP: usize = 64;
/// Longest wait for the proxy to take up or let go of connections.
const SETTLE: Duration = Duration::from_secs(30);
/// Descriptors a proxy may open or close by itself between two reads.
const FD_SLACK: usize = 8;

/// One memory round on `path` (which must have a proxy).
pub(crate) fn round(path: &mut PathBed, opts: &Options) -> anyhow::Result<MemSample> {
    path.restart_proxy()?;
    let pid = path.pid().context("the memory phase needs a proxy")?;
    let path = &*path;
    path.servers.reset_hold(&path.topo.server)?;
    let idle_fds = fd_count(pid)?;
    let warm = open(path, WARMUP)?.0;
    release(path, warm, pid, idle_fds)?;
    let limit = fd_limit(pid)?;
    let (fds_before, rss_before) = (fd_count(pid)?, rss_bytes(pid)?);
    let mut streams = Vec::with_capacity(opts.idle_conns);
    let mut stopped = None;
    while streams.len() < opts.idle_conns {
        let batch = BATCH.min(opts.idle_conns - streams.len());
        let (more, error) = open(path, batch)?;
        streams.extend(more);
        if let Some(e) = error {
            stopped = Some(format!("the client could not connect: {e}"));
            break;
        }
        let fds = fd_count(pid)?;
        let per_conn = fds.saturating_sub(fds_before) as f64 / streams.len().max(1) as f64;
        if fds as f64 + per_conn * BATCH as f64 > limit as f64 * 0.95 {
            stopped = Some(format!(
                "{fds} of the proxy's {limit} descriptors in use ({per_conn:.1} per connection)"
            ));
            break;
        }
    }
    let held = path.servers.held(&path.topo.server)?;
    let (fds_after, rss_after) = (fd_count(pid)?, rss_bytes(pid)?);
    let opened = streams.len();
    release(path, streams, pid, fds_before)?;
    let per = |delta: usize| delta as f64 / held.max(1) as f64;
    Ok(MemSample {
        opened,
        held,
        bytes_per_conn: per(rss_after.saturating_sub(rss_before) as usize),
        rss_before,
        rss_after,
        fds_per_conn: per(fds_after.saturating_sub(fds_before)),
        stopped,
    })
}

/// Opens `count` more idle connections and waits until the hold queue has
/// grown by as many (or stopped growing for a second).
fn open(path: &PathBed, count: usize) -> anyhow::Result<(Vec<TcpStream>, Option<std::io::Error>)> {
    let ns = &path.topo.server;
    let start = path.servers.held(ns)?;
    let (streams, error) = path
        .topo
        .client
        .enter(|| client::hold(server(HOLD_PORT), count));
    let want = start + streams.len();
    let mut last = (start, Instant::now());
    wait_until(SETTLE, || {
        let now = path.servers.held(ns).unwrap_or(0);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now >= want || last.1.elapsed() > Duration::from_secs(1)
    });
    Ok((streams, error))
}

/// Closes `streams`, then resets the hold queue until the proxy is back to
/// `fds` descriptors (a proxy may accept a late connection and dial the new
/// listener: each reset clears those too). Past [`SETTLE`] it warns.
fn release(path: &PathBed, streams: Vec<TcpStream>, pid: u32, fds: usize) -> anyhow::Result<()> {
    drop(streams);
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        path.servers.reset_hold(&path.topo.server)?;
        let back = wait_until(Duration::from_secs(1), || {
            fd_count(pid).is_ok_and(|n| n <= fds + FD_SLACK)
        });
        if back {
            return Ok(());
        }
    }
    eprintln!(
        "warning: {}: {} descriptors still open {SETTLE:?} after its connections closed ({fds} before)",
        path.kind.as_str(),
        fd_count(pid).unwrap_or(0)
    );
    Ok(())
}
