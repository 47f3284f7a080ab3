//! What the harness reads about a proxy process from `/proc`, and the one
//! limit it raises for itself.
//!
//! - [`cpu_seconds`]: user and system time of every thread, live or exited
//!   (`/proc/PID/stat` fields 14 and 15, in USER_HZ = 100 ticks a second).
//! - [`rss_bytes`]: resident set size (`VmRSS` in `/proc/PID/status`).
//! - [`fd_count`], [`fd_limit`]: open descriptors (`/proc/PID/fd`) and the
//!   most it may open (`/proc/PID/limits`).
//! - [`pid_with_arg`]: the process whose command line holds an argument (the
//!   e2e `ProxyProc` does not expose its child's pid; its config path is unique).
//! - [`raise_fd_limit`]: RLIMIT_NOFILE for this process and the proxies it
//!   starts (they inherit it). A relayed connection costs a proxy at least
//!   two descriptors (egress-proxy holds no pipe while idle), so
//!   10,000 need more than the 20,000 some sandboxes cap the hard limit at;
//!   where the hard limit cannot be raised (no CAP_SYS_RESOURCE), the memory
//!   phase reports how many each proxy actually held.

use anyhow::{Context, bail};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Clock ticks per second in `/proc/PID/stat` (USER_HZ, 100 on Linux's ABIs).
const USER_HZ: f64 = 100.0;

/// CPU seconds `pid` has used so far, all threads: (user, system).
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: split after
    // its closing one. Then field 3 (state) is index 0, utime 11, stime 12.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/PID/stat without ')'")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        let field = fields.get(i).context("/proc/PID/stat is too short")?;
        Ok(field.parse()?)
    };
    Ok((tick(11)? as f64 / USER_HZ, tick(12)? as f64 / USER_HZ))
}

/// Resident set size of `pid` in bytes.
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmRSS is not a number of kB")?;
    Ok(kib * 1024)
}

/// Open file descriptors of `pid`.
pub(crate) fn fd_count(pid: u32) -> anyhow::Result<usize> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?;
    Ok(dir.count())
}

/// The soft RLIMIT_NOFILE of `pid` (`Max open files` in `/proc/PID/limits`).
pub(crate) fn fd_limit(pid: u32) -> anyhow::Result<usize> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading /proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no 'Max open files' line")?;
    let soft = line.split_whitespace().next().unwrap_or_default();
    Ok(soft.parse().unwrap_or(usize::MAX))
}

/// The pid of the one process whose argv contains `arg` exactly.
pub(crate) fn pid_with_arg(arg: &str) -> anyhow::Result<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(*pid),
        [] => bail!("no process has {arg:?} on its command line"),
        many => bail!("several processes have {arg:?} on their command line: {many:?}"),
    }
}

/// Raises this process's RLIMIT_NOFILE towards `want`: soft and hard when
/// it may (CAP_SYS_RESOURCE), else the soft limit to the hard one. Returns
/// the soft limit now in force.
pub(crate) fn raise_fd_limit(want: u64) -> anyhow::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= want {
        return Ok(soft);
    }
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(hard);
    let target = want.min(nr_open.max(hard));
    if setrlimit(Resource::RLIMIT_NOFILE, target, target.max(hard)).is_ok() {
        return Ok(target);
    }
    let fallback = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, fallback, hard)
        .with_context(|| format!("setrlimit(RLIMIT_NOFILE, {fallback})"))?;
    Ok(fallback)
}
