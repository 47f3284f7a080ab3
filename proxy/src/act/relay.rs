//! Relaying an allowed connection both ways. A FIN from either side is
//! passed on (half-close) and the other direction keeps flowing; the relay
//! ends when both sides are done, on an error, when idle too long, or when
//! told to stop.
//!
//! Each direction starts in message mode: a burst is read into the worker
//! thread's buffer and written straight on (two system calls; a short read
//! means the socket is drained, so no third call to hear `EAGAIN`). Once a
//! read fills the buffer the direction is carrying a stream and switches to
//! splice(2) for good: bytes move socket → pipe → socket inside the kernel in
//! chunks of up to a pipe's size, never through user space. No allocation
//! per chunk either way.
//!
//! A pipe is taken from a shared pool only while a chunk is in flight and
//! given back empty, so an idle relay holds no pipe and no buffer (two
//! descriptors per connection, not six).

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
/// The message-mode buffer (one per worker thread, never held by a relay);
/// a read that fills it switches the direction to splice.
const MESSAGE: usize = 16 * 1024;

thread_local! {
    /// Zeroed once per thread, not per read.
    static MESSAGE_BUF: std::cell::RefCell<[u8; MESSAGE]> =
        const { std::cell::RefCell::new([0u8; MESSAGE]) };
}

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
            let done = down.done;
            let a = up.poll(cx, client, upstream, &counters.up, &mut moved, done);
            let done = up.done;
            let b = down.poll(cx, upstream, client, &counters.down, &mut moved, done);
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
    /// Carrying a stream: splice from now on.
    stream: bool,
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
        other_done: bool,
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
            if !self.stream {
                // Round again: a drained socket's cleared readiness makes
                // the next `poll_read_ready` register the waker.
                self.message(from, to, bytes, moved, other_done)?;
                continue;
            }
            let (pipe_r, pipe_w) = match self.pipe.take() {
                Some(pipe) => pipe,
                None => take_pipe()?,
            };
            // No short-read shortcut here: a splice also stops when the
            // pipe runs out of slots, with bytes still queued.
            match from.try_io(Interest::READABLE, || sys::splice(from, &pipe_w, CHUNK)) {
                Ok(0) => {
                    give_pipe((pipe_r, pipe_w));
                    self.finish(to, other_done);
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

    /// One read into the thread's message buffer and its write onward. A
    /// short read drained the socket: its readiness is cleared without
    /// another call.
    fn message(
        &mut self,
        from: &TcpStream,
        to: &TcpStream,
        bytes: &AtomicU64,
        moved: &mut bool,
        other_done: bool,
    ) -> io::Result<()> {
        let mut run =
            |buf: &mut [u8; MESSAGE]| self.message_in(buf, from, to, bytes, moved, other_done);
        MESSAGE_BUF
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut buf) => run(&mut buf),
                Err(_) => run(&mut [0u8; MESSAGE]),
            })
            .unwrap_or_else(|_| run(&mut [0u8; MESSAGE]))
    }

    fn message_in(
        &mut self,
        buf: &mut [u8; MESSAGE],
        from: &TcpStream,
        to: &TcpStream,
        bytes: &AtomicU64,
        moved: &mut bool,
        other_done: bool,
    ) -> io::Result<()> {
        let mut got = 0;
        let read = from.try_io(Interest::READABLE, || {
            got = sys::recv(from, &mut buf[..])?;
            if got > 0 && got < MESSAGE {
                // Drained: report WouldBlock so tokio clears the readiness
                // (the bytes are in `got`).
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        match read {
            Ok(0) => {
                self.finish(to, other_done);
                return Ok(());
            }
            Ok(_) => self.stream = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
        let data = buf.get(..got).unwrap_or_default();
        *moved = true;
        let sent = match to.try_write(data) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        bytes.fetch_add(sent as u64, Ordering::Relaxed);
        if let Some(rest) = data.get(sent..).filter(|r| !r.is_empty()) {
            // The peer is slow: park the rest in a pipe; the splice path
            // writes it when `to` has room.
            let (pipe_r, pipe_w) = take_pipe()?;
            let parked = sys::write(&pipe_w, rest)?;
            if parked != rest.len() {
                return Err(io::Error::other("relay pipe too small"));
            }
            self.pending = parked;
            self.pipe = Some((pipe_r, pipe_w));
        }
        Ok(())
    }

    /// EOF read: passes the FIN on. When the other direction is done too
    /// the relay closes both sockets next and the close sends it (one call
    /// fewer); otherwise a half-close, and the other direction goes on.
    fn finish(&mut self, to: &TcpStream, other_done: bool) {
        if !other_done {
            let _ = SockRef::from(to).shutdown(Shutdown::Write);
        }
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Two connected loopback pairs: (client end, proxy's client side) and
    /// (proxy's upstream side, server end).
    async fn pairs() -> ((TcpStream, TcpStream), (TcpStream, TcpStream)) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut ends = Vec::new();
        for _ in 0..2 {
            let near = TcpStream::connect(addr).await.unwrap();
            let (far, _) = listener.accept().await.unwrap();
            ends.push((near, far));
        }
        let second = ends.pop().unwrap();
        let first = ends.pop().unwrap();
        (first, second)
    }

    async fn run_relay(client: TcpStream, upstream: TcpStream) -> (RelayEnd, Relayed) {
        let counters = Counters::default();
        let stop = std::pin::pin!(std::future::pending::<()>());
        let end = relay(&client, &upstream, Duration::from_secs(10), stop, &counters).await;
        (end, counters.relayed())
    }

    #[tokio::test]
    async fn messages_pass_both_ways_and_fins_close_the_relay() {
        let ((mut user, client), (upstream, mut server)) = pairs().await;
        let task = tokio::spawn(run_relay(client, upstream));
        for round in 0..20u8 {
            user.write_all(&[round; 100]).await.unwrap();
            let mut got = [0u8; 100];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [round; 100]);
            server.write_all(&[round; 300]).await.unwrap();
            let mut back = [0u8; 300];
            user.read_exact(&mut back).await.unwrap();
            assert_eq!(back, [round; 300]);
        }
        user.shutdown().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
        server.shutdown().await.unwrap();
        assert_eq!(user.read_to_end(&mut rest).await.unwrap(), 0);
        let (end, moved) = task.await.unwrap();
        assert_eq!(end, RelayEnd::Closed);
        assert_eq!(
            moved,
            Relayed {
                up: 2000,
                down: 6000
            }
        );
    }

    /// Messages the upstream cannot take at once (tiny buffers, a reader
    /// that waits): what does not fit is parked in a pipe and arrives in
    /// order.
    #[tokio::test]
    async fn messages_larger_than_the_peers_room_are_parked_and_delivered() {
        let ((mut user, client), (upstream, mut server)) = pairs().await;
        SockRef::from(&upstream).set_send_buffer_size(4096).unwrap();
        SockRef::from(&server).set_recv_buffer_size(4096).unwrap();
        let task = tokio::spawn(run_relay(client, upstream));
        let message: Vec<u8> = (0..75_000u32).map(|i| (i % 253) as u8).collect();
        for part in message.chunks(15_000) {
            user.write_all(part).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut got = vec![0u8; message.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, message);
        drop(user);
        drop(server);
        let (_, moved) = task.await.unwrap();
        assert_eq!(moved.up, message.len() as u64);
    }

    /// A stream larger than the message buffer, to a reader that stalls:
    /// partial writes park bytes in a pipe, the direction switches to
    /// splice, and every byte arrives in order.
    #[tokio::test]
    async fn a_stream_to_a_slow_reader_arrives_whole_and_in_order() {
        let ((mut user, client), (upstream, mut server)) = pairs().await;
        let task = tokio::spawn(run_relay(client, upstream));
        let total: usize = 8 << 20;
        let writer = tokio::spawn(async move {
            let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            let mut sent = 0;
            while sent < total {
                server.write_all(&block).await.unwrap();
                sent += block.len();
            }
            server.shutdown().await.unwrap();
            server
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut seen = 0usize;
        let mut buf = vec![0u8; 7_000];
        loop {
            let n = user.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(
                    *b,
                    ((seen + i) % (64 * 1024) % 251) as u8,
                    "byte {}",
                    seen + i
                );
            }
            seen += n;
        }
        assert_eq!(seen, total);
        drop(user);
        let _server = writer.await.unwrap();
        let (_, moved) = task.await.unwrap();
        assert_eq!(moved.down, total as u64);
    }
}
