//! One named network namespace and the three ways a test runs code in it:
//!
//! - a child process: [`Netns::command`] (`ip netns exec NAME ...`) and the bounded
//!   [`Netns::output`], for curl, `openssl s_client` and the proxy binary;
//! - in-process Rust on a thread that joined the namespace with `setns(2)`:
//!   [`Netns::enter`] (a closure), [`Netns::run`] (a future on a current-thread
//!   tokio runtime), both blocking; [`Netns::spawn`] runs a future in the
//!   background and stops it when its [`NsTask`] is dropped.
//!
//! A socket belongs to the namespace of the thread that created it, for life: a
//! listener or stream made inside [`Netns::enter`] may be used from any thread.
//! Dropping a [`Netns`] deletes it (`ip netns del`), also during a panic.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sched::{CloneFlags, setns};
use tokio::sync::oneshot;

use super::{WAIT, wait_until};

/// A network namespace this process created; deleted on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
}

/// A future running in the background on its own thread inside a namespace.
/// Dropping it stops the future (and every task it spawned) and joins the thread.
pub(crate) struct NsTask<T> {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Option<T>>>,
}

/// What a child process did: exit code (`None` if killed by a signal or by the
/// timeout), captured output, and whether the timeout fired.
#[derive(Debug, Clone)]
pub(crate) struct CmdOutput {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) timed_out: bool,
}

// === impl Netns ===

impl Netns {
    /// Creates namespace `name` with `lo` up.
    pub(crate) fn create(name: String) -> anyhow::Result<Self> {
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on, drop deletes the namespace even if the setup fails.
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The name `ip netns` knows it by.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`; an error carries ip's stderr.
    pub(crate) fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs `ip -n NAME ARGS...` and returns its stdout (e.g. `-o link show`).
    pub(crate) fn ip_output(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        let out = run_bounded(cmd, None, WAIT)?;
        if !out.success() {
            bail!("ip -n {} {args:?}: {out}", self.name);
        }
        Ok(out.stdout)
    }

    /// Runs `PROGRAM ARGS...` in the namespace and requires exit status 0.
    pub(crate) fn exec_ok(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        run_ok(self.command(program).args(args))
    }

    /// Writes a sysctl under `/proc/sys/` (e.g. `net/ipv4/ip_forward`) for this
    /// namespace, from a thread inside it.
    pub(crate) fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let path = format!("/proc/sys/{key}");
        self.enter(|| std::fs::write(&path, value))
            .with_context(|| format!("setting {path} = {value} in netns {}", self.name))
    }

    /// `ip netns exec NAME PROGRAM`: add arguments, then spawn or run it.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `PROGRAM ARGS...` in the namespace with `stdin` (then EOF), killing it
    /// after `timeout`; any exit status is returned, not an error.
    pub(crate) fn output(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<CmdOutput> {
        let mut cmd = self.command(program);
        cmd.args(args);
        run_bounded(cmd, stdin, timeout)
    }

    /// Runs `f` on a thread inside the namespace and returns its result; a panic
    /// in `f` is re-raised here with its own message.
    pub(crate) fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                join_netns(&path);
                f()
            });
            thread
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
        })
    }

    /// Runs `fut` to completion on a current-thread tokio runtime inside the
    /// namespace. The future may borrow from the caller.
    pub(crate) fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.enter(|| runtime().block_on(fut))
    }

    /// Runs `fut` in the background on its own thread and runtime inside the
    /// namespace until it ends or the returned [`NsTask`] is dropped.
    pub(crate) fn spawn<F>(&self, fut: F) -> NsTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let path = self.path();
        let thread = std::thread::spawn(move || {
            join_netns(&path);
            runtime().block_on(async move {
                tokio::select! {
                    out = fut => Some(out),
                    _ = stopped => None,
                }
            })
        });
        NsTask {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !deleted.is_ok_and(|out| out.status.success()) {
            eprintln!("warning: could not delete netns {}", self.name);
        }
    }
}

// === impl NsTask ===

impl<T> NsTask<T> {
    /// Waits up to `timeout` for the future to finish by itself and returns its
    /// output; an error if it is still running (it is then stopped) or panicked.
    pub(crate) fn join(mut self, timeout: Duration) -> anyhow::Result<T> {
        let thread = self.thread.take().context("task already joined")?;
        if !wait_until(timeout, || thread.is_finished()) {
            self.thread = Some(thread);
            bail!("background task still running after {timeout:?}");
        }
        match thread.join() {
            Ok(Some(out)) => Ok(out),
            Ok(None) => bail!("background task was stopped"),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Whether the future has finished (or panicked).
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl<T> Drop for NsTask<T> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the task is reported by `join`; here it would abort a
            // test that is already unwinding, so it is dropped.
            let _ = thread.join();
        }
    }
}

impl<T> fmt::Debug for NsTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsTask")
            .field("finished", &self.is_finished())
            .finish()
    }
}

// === impl CmdOutput ===

impl CmdOutput {
    /// Exit status 0.
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.map_or("none".to_string(), |c| c.to_string());
        write!(f, "exit code {code}")?;
        if self.timed_out {
            write!(f, " (killed by timeout)")?;
        }
        write!(
            f,
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

// === processes and threads ===

/// Moves the calling thread into the network namespace at `path`.
fn join_netns(path: &PathBuf) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    setns(&file, CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread tokio runtime")
}

/// Runs `cmd` to completion and requires exit status 0.
pub(crate) fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `cmd` with `stdin` then EOF (or no stdin), collecting its output; kills
/// it once `timeout` has passed.
pub(crate) fn run_bounded(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<CmdOutput> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let input = stdin.map(<[u8]>::to_vec).unwrap_or_default();
    let writer = child.stdin.take().map(|mut pipe| {
        // Dropping the pipe at the end of the thread sends EOF.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let exited = wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {cmd:?}"))?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let collect = |reader: Option<JoinHandle<Vec<u8>>>| {
        let bytes = reader.and_then(|r| r.join().ok()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(CmdOutput {
        code: status.code(),
        stdout: collect(stdout),
        stderr: collect(stderr),
        timed_out: !exited,
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
