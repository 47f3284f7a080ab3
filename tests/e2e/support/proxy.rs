//! The `egress-proxy` binary under test, as a child process.
//!
//! [`ProxyDir`] is a temporary directory holding `config.toml` and
//! `policies/*.json` (a config names them `policy_files = ["policies/*.json"]`);
//! [`ProxyDir::write`] replaces a file atomically for reload tests, and
//! [`ProxyDir::cli`] runs `validate` / `check` against it.
//! [`ProxyProc`] runs `egress-proxy run --config DIR/config.toml` in a namespace,
//! waits until every listener of the config's `[listen]` table is listening (and
//! `/readyz` answers 200 when `admin` is set), keeps stdout and stderr in files,
//! and stops it on drop: SIGTERM, then SIGKILL. A test that panics prints the
//! proxy's output.
//!
//! The binary is `target/<profile>/egress-proxy` next to the test executable,
//! brought up to date by one `cargo build -p egress-proxy` per test process, or
//! the file named by `EGRESS_PROXY_BIN`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::netns::{CmdOutput, Netns, run_bounded};
use super::{WAIT, wait_until};

/// How long a proxy may take to start listening.
const READY_WAIT: Duration = Duration::from_secs(10);

/// A temporary directory with the proxy's config and policy files.
#[derive(Debug)]
pub(crate) struct ProxyDir {
    dir: TempDir,
}

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub(crate) struct ProxyProc {
    child: Option<Child>,
    dir: Option<ProxyDir>,
    logs: TempDir,
    listen: Listen,
}

/// The listener addresses from the config's `[listen]` table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listen {
    pub(crate) transparent: Vec<SocketAddr>,
    pub(crate) tproxy: Vec<SocketAddr>,
    pub(crate) connect: Vec<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
}

// === impl ProxyDir ===

impl ProxyDir {
    /// Writes `config` as `config.toml` and each `(file name, JSON)` as
    /// `policies/FILE`.
    pub(crate) fn new(config: &str, policies: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = ProxyDir {
            dir: tempfile::Builder::new().prefix("e2e-proxy-").tempdir()?,
        };
        std::fs::create_dir(dir.path().join("policies"))?;
        dir.write("config.toml", config)?;
        for (name, json) in policies {
            dir.write(&format!("policies/{name}"), json)?;
        }
        Ok(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    /// Replaces `relative` (e.g. `policies/np_1.json`) atomically: a temporary
    /// file, fsync, rename, as an operator's tooling would.
    pub(crate) fn write(&self, relative: &str, contents: &str) -> anyhow::Result<()> {
        let target = self.path().join(relative);
        let parent = target.parent().context("file has no parent directory")?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        tmp.write_all(contents.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target)
            .with_context(|| format!("writing {}", target.display()))?;
        Ok(())
    }

    /// Runs `egress-proxy SUBCOMMAND --config DIR/config.toml REST...` (e.g.
    /// `&["check", "--source", "10.77.1.2", "allowed.test"]`) in the test's own
    /// namespace; it must not open sockets.
    pub(crate) fn cli(&self, args: &[&str]) -> anyhow::Result<CmdOutput> {
        let (subcommand, rest) = args.split_first().context("no subcommand")?;
        let mut cmd = Command::new(proxy_binary()?);
        cmd.arg(subcommand)
            .arg("--config")
            .arg(self.config_path())
            .args(rest);
        run_bounded(cmd, None, WAIT)
    }
}

// === impl ProxyProc ===

impl ProxyProc {
    /// Writes the files (see [`ProxyDir::new`]) and starts the proxy in `ns`.
    pub(crate) fn start(
        ns: &Netns,
        config: &str,
        policies: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_in(ns, ProxyDir::new(config, policies)?)
    }

    /// Starts the proxy in `ns` on an existing directory (e.g. after
    /// [`ProxyProc::kill`], to test what survives a restart) and waits until ready.
    pub(crate) fn start_in(ns: &Netns, dir: ProxyDir) -> anyhow::Result<Self> {
        let config = std::fs::read_to_string(dir.config_path())?;
        let listen = Listen::parse(&config)?;
        let logs = tempfile::Builder::new()
            .prefix("e2e-proxy-logs-")
            .tempdir()?;
        let child = ns
            .command(&proxy_binary()?.display().to_string())
            .arg("run")
            .arg("--config")
            .arg(dir.config_path())
            .current_dir(dir.path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(File::create(logs.path().join("stdout"))?)
            .stderr(File::create(logs.path().join("stderr"))?)
            .spawn()
            .context("spawning egress-proxy")?;
        let mut proxy = ProxyProc {
            child: Some(child),
            dir: Some(dir),
            logs,
            listen,
        };
        proxy.wait_ready(ns)?;
        Ok(proxy)
    }

    /// The config and policy files, e.g. to change a policy.
    pub(crate) fn dir(&self) -> &ProxyDir {
        self.dir
            .as_ref()
            .expect("dir is present until stop or kill")
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// The listeners it was configured with.
    pub(crate) fn listen(&self) -> &Listen {
        &self.listen
    }

    /// Everything it wrote so far: stdout, then stderr.
    pub(crate) fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.logs.path().join(name));
        format!(
            "--- proxy stdout ---\n{}\n--- proxy stderr ---\n{}",
            read("stdout").unwrap_or_default(),
            read("stderr").unwrap_or_default()
        )
    }

    /// Waits up to `timeout` for `needle` to appear in its output.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.logs().contains(needle))
    }

    /// Sends SIGTERM and waits (up to 5 s) for a graceful exit; returns the exit
    /// status and the directory.
    pub(crate) fn stop(mut self) -> anyhow::Result<(ExitStatus, ProxyDir)> {
        let mut child = self.child.take().context("proxy already stopped")?;
        let status = terminate(&mut child)?;
        let dir = self.dir.take().context("proxy dir already taken")?;
        Ok((status, dir))
    }

    /// SIGKILL, no drain: what survives must already be on disk.
    pub(crate) fn kill(mut self) -> anyhow::Result<ProxyDir> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        self.dir.take().context("proxy dir already taken")
    }

    fn wait_ready(&mut self, ns: &Netns) -> anyhow::Result<()> {
        let ports = self.listen.ports();
        let admin = self.listen.admin;
        let child = self.child.as_mut().context("proxy not running")?;
        let mut exited = None;
        let ready = ns.enter(|| {
            wait_until(READY_WAIT, || {
                exited = child.try_wait().ok().flatten();
                exited.is_none()
                    && listening_ports().is_ok_and(|up| ports.iter().all(|p| up.contains(p)))
                    && admin.is_none_or(readyz_ok)
            })
        });
        if let Some(status) = exited {
            bail!(
                "egress-proxy exited during startup ({status})\n{}",
                self.logs()
            );
        }
        if !ready {
            bail!(
                "egress-proxy not ready within {READY_WAIT:?} (listening on {ports:?}{})\n{}",
                admin.map_or(String::new(), |a| format!(", /readyz on {a}")),
                self.logs()
            );
        }
        Ok(())
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && let Err(e) = terminate(&mut child)
        {
            eprintln!("stopping egress-proxy: {e:#}");
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

// === impl Listen ===

impl Listen {
    /// Reads the `[listen]` table of a config; absent keys are empty.
    pub(crate) fn parse(config: &str) -> anyhow::Result<Self> {
        let table: toml::Table = config.parse().context("config.toml is not TOML")?;
        let Some(listen) = table.get("listen") else {
            return Ok(Listen::default());
        };
        let addrs = |key: &str| -> anyhow::Result<Vec<SocketAddr>> {
            let Some(list) = listen.get(key).and_then(toml::Value::as_array) else {
                return Ok(Vec::new());
            };
            list.iter()
                .map(|v| v.as_str().unwrap_or_default().parse())
                .collect::<Result<_, _>>()
                .with_context(|| format!("listen.{key} has an entry that is not IP:PORT"))
        };
        let admin = listen
            .get("admin")
            .and_then(toml::Value::as_str)
            .map(str::parse)
            .transpose()
            .context("listen.admin is not IP:PORT")?;
        Ok(Listen {
            transparent: addrs("transparent")?,
            tproxy: addrs("tproxy")?,
            connect: addrs("connect")?,
            admin,
        })
    }

    fn ports(&self) -> Vec<u16> {
        let all = [&self.transparent, &self.tproxy, &self.connect];
        let listeners = all.into_iter().flatten().copied();
        listeners.chain(self.admin).map(|a| a.port()).collect()
    }
}

/// Ports in LISTEN state in the calling thread's network namespace.
fn listening_ports() -> std::io::Result<Vec<u16>> {
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/thread-self/net/{table}"))?;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&"0A")) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let port = local.rsplit(':').next().unwrap_or_default();
            if let Ok(port) = u16::from_str_radix(port, 16) {
                ports.push(port);
            }
        }
    }
    Ok(ports)
}

/// `GET /readyz` answers 200 (called from a thread inside the namespace).
fn readyz_ok(admin: SocketAddr) -> bool {
    let ip = match admin.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let get = || -> std::io::Result<Vec<u8>> {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::new(ip, admin.port()), Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")?;
        let mut head = vec![0; 16];
        stream.read_exact(&mut head)?;
        Ok(head)
    };
    get().is_ok_and(|head| head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}

/// SIGTERM, up to 5 s for the exit, then SIGKILL.
fn terminate(child: &mut Child) -> anyhow::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let pid = Pid::from_raw(i32::try_from(child.id())?);
    kill(pid, Signal::SIGTERM).context("SIGTERM to egress-proxy")?;
    if !wait_until(WAIT, || matches!(child.try_wait(), Ok(Some(_)))) {
        eprintln!("egress-proxy ignored SIGTERM for {WAIT:?}; sending SIGKILL");
        child.kill()?;
    }
    Ok(child.wait()?)
}

/// The proxy binary, built (or checked up to date) once per test process.
pub(crate) fn proxy_binary() -> anyhow::Result<&'static Path> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let binary = BINARY.get_or_init(|| locate_binary().map_err(|e| format!("{e:#}")));
    binary.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
}

fn locate_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("EGRESS_PROXY_BIN") {
        return Ok(PathBuf::from(path));
    }
    // current_exe is target/<profile>/deps/e2e-<hash>.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable is not in target/<profile>/deps")?;
    let target_dir = profile_dir.parent().context("no target dir")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "egress-proxy",
        "--bin",
        "egress-proxy",
    ])
    .arg("--manifest-path")
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target_dir)
    .args(["--profile", profile]);
    let built = run_bounded(cmd, None, Duration::from_secs(600))?;
    if !built.success() {
        bail!("cargo build -p egress-proxy failed: {built}");
    }
    let binary = profile_dir.join("egress-proxy");
    if !binary.is_file() {
        bail!("cargo build succeeded but {} is missing", binary.display());
    }
    Ok(binary)
}
