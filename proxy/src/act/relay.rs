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
use std::task::{Context, Poll, ready};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::sys;

/// The most bytes one splice call moves (a pipe's capacity, when enlarged).
const CHUNK: usize = sys::PIPE_SIZE;
/// Empty pipes kept for reuse at most.
const POOL_CAP: usize = 256;

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
}

/// Relays until both directions finish, the relay idles out, or `stop`
/// resolves. One hand-written future drives both directions (no waiter node
/// per direction, one timer), so an idle relay costs a few hundred bytes.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice"
)]
pub fn relay<'a>(
    client: &'a TcpStream,
    upstream: &'a TcpStream,
    idle: Duration,
    mut stop: Pin<&'a mut (dyn Future<Output = ()> + Send)>,
    counters: &'a Counters,
) -> impl Future<Output = RelayEnd> + Send + 'a {
    // An async block (not an async fn) captures its inputs once: the future
    // is what an idle connection costs, so every byte counts.
    async move {
        let mut up = Direction::default();
        let mut down = Direction::default();
        let mut timer = std::pin::pin!(tokio::time::sleep(idle));
        std::future::poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(RelayEnd::Stopped);
            }
            let mut moved = false;
            let a = up.poll(cx, client, upstream, &counters.up, &mut moved);
            let b = down.poll(cx, upstream, client, &counters.down, &mut moved);
            match (a, b) {
                (Poll::Ready(Err(_)), _) | (_, Poll::Ready(Err(_))) => {
                    return Poll::Ready(RelayEnd::Error);
                }
                (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => return Poll::Ready(RelayEnd::Closed),
                _ => {}
            }
            if moved {
                timer.as_mut().reset(Instant::now() + idle);
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(RelayEnd::Idle),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
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

/// One direction: socket → pipe → socket until EOF, then the FIN passed on.
#[derive(Debug, Default)]
struct Direction {
    /// The pipe holding `pending` bytes, while a chunk is in flight.
    pipe: Option<(OwnedFd, OwnedFd)>,
    pending: usize,
    done: bool,
}

impl Direction {
    /// Moves what can be moved now; `Ready(Ok)` once EOF has been passed on.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &TcpStream,
        bytes: &AtomicU64,
        moved: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if let Some((pipe_r, _)) = self.pipe.as_ref().filter(|_| self.pending > 0) {
                ready!(to.poll_write_ready(cx))?;
                match to.try_io(Interest::WRITABLE, || sys::splice(pipe_r, to, self.pending)) {
                    Ok(m) => {
                        self.pending = self.pending.saturating_sub(m);
                        bytes.fetch_add(m as u64, Ordering::Relaxed);
                        *moved = true;
                        if self.pending == 0
                            && let Some(pipe) = self.pipe.take()
                        {
                            give_pipe(pipe);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                continue;
            }
            ready!(from.poll_read_ready(cx))?;
            let (pipe_r, pipe_w) = match self.pipe.take() {
                Some(pipe) => pipe,
                None => take_pipe()?,
            };
            match from.try_io(Interest::READABLE, || sys::splice(from, &pipe_w, CHUNK)) {
                Ok(0) => {
                    give_pipe((pipe_r, pipe_w));
                    // Half-close: pass the FIN on; the other direction goes on.
                    let _ = SockRef::from(to).shutdown(Shutdown::Write);
                    self.done = true;
                }
                Ok(n) => {
                    self.pending = n;
                    self.pipe = Some((pipe_r, pipe_w));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => give_pipe((pipe_r, pipe_w)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}
