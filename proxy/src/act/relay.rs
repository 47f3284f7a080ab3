//! Relaying an allowed connection both ways with splice(2): bytes move from
//! socket to pipe to socket inside the kernel, never through user space, with
//! no per-chunk allocation. A FIN from either side is passed on (half-close)
//! and the other direction keeps flowing; the relay ends when both sides are
//! done, on an error, when idle too long, or when told to stop.
//!
//! A pipe is taken from a shared pool only while a chunk is in flight and
//! given back empty, so an idle relay holds no pipe (two descriptors per
//! connection, not six).

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::sys;

/// The most bytes one splice call moves (the default pipe capacity).
const CHUNK: usize = 64 * 1024;
/// Empty pipes kept for reuse at most.
const POOL_CAP: usize = 1024;

/// Empty pipes between transfers: (read end, write end).
static POOL: Mutex<Vec<(OwnedFd, OwnedFd)>> = Mutex::new(Vec::new());

fn take_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let parked = POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    match parked {
        Some(pipe) => Ok(pipe),
        None => sys::pipe(),
    }
}

/// Parks an empty pipe (one that may hold bytes must be dropped instead).
fn give_pipe(pipe: (OwnedFd, OwnedFd)) {
    let mut pool = POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < POOL_CAP {
        pool.push(pipe);
    }
}

/// Bytes moved each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Client to upstream.
    pub up: u64,
    /// Upstream to client.
    pub down: u64,
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed their write half.
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// The `stop` future fired (policy change, shutdown).
    Stopped,
    /// A socket error.
    Error,
}

/// Live counters a relay updates as it goes (read by metrics and audit).
#[derive(Debug, Default)]
pub struct Counters {
    up: AtomicU64,
    down: AtomicU64,
    last_activity_ms: AtomicU64,
}

/// Relays until both directions finish; returns the bytes moved and why it
/// ended.
pub async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    idle: Duration,
    stop: Pin<&mut (dyn Future<Output = ()> + Send)>,
    counters: &Counters,
) -> RelayEnd {
    let start = Instant::now();
    let both = async {
        let (a, b) = tokio::join!(
            pump(client, upstream, &counters.up, counters, start),
            pump(upstream, client, &counters.down, counters, start)
        );
        if a.is_err() || b.is_err() {
            RelayEnd::Error
        } else {
            RelayEnd::Closed
        }
    };
    tokio::select! {
        end = both => end,
        () = idle_watch(counters, start, idle) => RelayEnd::Idle,
        () = stop => RelayEnd::Stopped,
    }
}

// === impl RelayEnd ===

impl RelayEnd {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Idle => "idle",
            Self::Stopped => "policy_change",
            Self::Error => "error",
        }
    }
}

// === impl Counters ===

impl Counters {
    /// Bytes moved so far.
    pub fn relayed(&self) -> Relayed {
        Relayed {
            up: self.up.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
        }
    }
}

/// One direction: socket → pipe → socket until EOF, then pass the FIN on.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    bytes: &AtomicU64,
    counters: &Counters,
    start: Instant,
) -> io::Result<()> {
    loop {
        from.readable().await?;
        let (pipe_r, pipe_w) = take_pipe()?;
        let n = match from.try_io(Interest::READABLE, || sys::splice(from, &pipe_w, CHUNK)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_pipe((pipe_r, pipe_w));
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            give_pipe((pipe_r, pipe_w));
            // Half-close: pass the FIN on; the other direction goes on.
            let _ = SockRef::from(to).shutdown(Shutdown::Write);
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || sys::splice(&pipe_r, to, left)) {
                Ok(m) => left = left.saturating_sub(m),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        give_pipe((pipe_r, pipe_w));
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        counters.last_activity_ms.store(now, Ordering::Relaxed);
    }
}

/// Resolves once nothing has moved for `idle`.
async fn idle_watch(counters: &Counters, start: Instant, idle: Duration) {
    loop {
        let last = Duration::from_millis(counters.last_activity_ms.load(Ordering::Relaxed));
        let deadline = start + last + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
