//! The harness's command line: which mode (full or smoke) and how much work
//! each phase does.
//!
//! `cargo bench --bench load [-- FLAGS]` passes `--bench`: a full run.
//! `cargo test --bench load` passes nothing: a smoke run (set-up and tear-down
//! with tiny counts, seconds). `--smoke` forces a smoke run, `--full` a full one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Tiny counts, no figures worth reading; exercises set-up and tear-down.
    pub(crate) smoke: bool,
    /// Rounds of the connection-rate, latency and bulk phases.
    pub(crate) rounds: usize,
    /// How long each connection-rate measurement runs.
    pub(crate) rate_time: Duration,
    /// Bound on connections in one connection-rate measurement.
    pub(crate) rate_max: usize,
    /// Connections in flight during the connection-rate phase.
    pub(crate) parallel: usize,
    /// Sequential connections per latency measurement.
    pub(crate) latency_conns: usize,
    /// Bytes of one bulk stream.
    pub(crate) bulk_bytes: u64,
    /// Idle connections held open for the memory figure.
    pub(crate) idle_conns: usize,
    /// Rounds of the memory phase (each opens `idle_conns` per proxy).
    pub(crate) mem_rounds: usize,
    /// Measure HAProxy (installing it with apt when missing).
    pub(crate) haproxy: bool,
    /// Where results.json and load.svg go.
    pub(crate) out: PathBuf,
}

const USAGE: &str = "\
usage: cargo bench --bench load [-- FLAGS]     (full run)
       cargo test --bench load                  (smoke run)
flags:
  --smoke | --full        force the mode (default: full iff --bench is given)
  --rounds N              rounds of rate, latency and bulk (full: 5)
  --rate-secs S           seconds per connection-rate run (full: 3)
  --rate-max N            connections at most per rate run (full: 200000)
  --parallel N            connections in flight in the rate phase (full: 32)
  --latency-conns N       sequential connections per latency run (full: 1000)
  --bulk-mib N            MiB per bulk stream (full: 1024)
  --idle-conns N          idle connections held for the memory figure (full: 10000)
  --mem-rounds N          rounds of the memory phase (full: 3)
  --no-haproxy            leave HAProxy out
  --out DIR               output directory (default: <target dir>/load)";

// === impl Options ===

impl Options {
    /// Parses `std::env::args()`; `--help` prints usage and exits.
    pub(crate) fn from_env() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self::parse(&args)
    }

    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let full = args.iter().any(|a| a == "--full")
            || (args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--smoke"));
        let mut opts = if full { Self::full() } else { Self::smoke() };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--bench" | "--smoke" | "--full" => {}
                "--rounds" => opts.rounds = number(arg, value()?)?,
                "--rate-secs" => {
                    opts.rate_time = Duration::from_secs_f64(number(arg, value()?)?);
                }
                "--rate-max" => opts.rate_max = number(arg, value()?)?,
                "--parallel" => opts.parallel = number(arg, value()?)?,
                "--latency-conns" => opts.latency_conns = number(arg, value()?)?,
                "--bulk-mib" => opts.bulk_bytes = number::<u64>(arg, value()?)? << 20,
                "--idle-conns" => opts.idle_conns = number(arg, value()?)?,
                "--mem-rounds" => opts.mem_rounds = number(arg, value()?)?,
                "--no-haproxy" => opts.haproxy = false,
                "--out" => opts.out = PathBuf::from(value()?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                // cargo bench may pass a name filter; there is one benchmark.
                other if !other.starts_with('-') => {}
                other => bail!("unknown flag {other}\n{USAGE}"),
            }
        }
        if opts.rounds == 0 || opts.parallel == 0 || opts.latency_conns < 2 {
            bail!("--rounds and --parallel must be at least 1, --latency-conns at least 2");
        }
        Ok(opts)
    }

    fn full() -> Self {
        Options {
            smoke: false,
            rounds: 5,
            rate_time: Duration::from_secs(3),
            rate_max: 200_000,
            parallel: 32,
            latency_conns: 1000,
            bulk_bytes: 1 << 30,
            idle_conns: 10_000,
            mem_rounds: 3,
            haproxy: true,
            out: default_out(),
        }
    }

    fn smoke() -> Self {
        Options {
            smoke: true,
            rounds: 1,
            rate_time: Duration::from_millis(300),
            rate_max: 2_000,
            parallel: 4,
            latency_conns: 20,
            bulk_bytes: 8 << 20,
            idle_conns: 50,
            mem_rounds: 1,
            ..Self::full()
        }
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<T> {
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {value:?} is not a number"))
}

/// `<target dir>/load`: the bench executable is `<target dir>/<profile>/deps/load-<hash>`.
fn default_out() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let target = exe.ancestors().nth(3).map(PathBuf::from);
    target
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("load")
}
