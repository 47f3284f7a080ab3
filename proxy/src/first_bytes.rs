//! Reading a connection's first bytes for detection: into one buffer that
//! grows to at most [`MAX_DETECT_BYTES`], until the detector has an answer,
//! the client closes, or the deadline passes (a client trickling bytes is
//! cut off by the same deadline). The bytes are kept to be replayed upstream.
//!
//! Inside a CONNECT tunnel the upstream is already dialled: while waiting for
//! the client's first bytes, whatever the upstream sends (a server-first
//! banner) is passed to the client, and the deadline becomes the idle timeout.

use std::io;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::decide::Reason;
use crate::detect::{Detection, Detector, MAX_DETECT_BYTES, Malformed};

/// What the first bytes were.
#[derive(Debug)]
pub struct FirstBytes {
    /// The bytes read, to be written upstream unmodified.
    pub bytes: Vec<u8>,
    /// The detector's answer; `None` when it never answered.
    pub detection: Option<Detection>,
    /// Why it never answered (timeout, close).
    pub failure: Reason,
}

/// An upstream already connected, whose bytes flow to the client meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct ServerFirst<'a> {
    /// The upstream socket.
    pub upstream: &'a TcpStream,
    /// The deadline once the upstream has spoken.
    pub idle: Duration,
}

const FIRST_READ: usize = 2048;
/// The most upstream bytes passed on per read while waiting in a tunnel.
const BANNER_CHUNK: usize = 2048;

/// Reads until detection answers, within `timeout`; `prefix` holds bytes
/// already read from the client (they count as the start of the stream).
pub async fn read(
    client: &TcpStream,
    timeout: Duration,
    prefix: &[u8],
    server_first: Option<ServerFirst<'_>>,
) -> FirstBytes {
    let mut deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(FIRST_READ.max(prefix.len()));
    buf.extend_from_slice(prefix);
    let mut detector = Detector::new();
    if !buf.is_empty() {
        let detection = detector.feed(&buf);
        if detection != Detection::Incomplete {
            return done(buf, detection);
        }
    }
    // Only a tunnel passes a banner on; its buffer is allocated on first use.
    let mut banner = Vec::new();
    let failure = loop {
        if buf.len() >= MAX_DETECT_BYTES {
            break Reason::Malformed(Malformed::TooLarge);
        }
        let upstream = async {
            match server_first {
                Some(s) => s.upstream.readable().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = client.readable() => {
                if ready.is_err() {
                    break Reason::ClientClosed;
                }
                match read_some(client, &mut buf) {
                    Ok(Some(0)) | Err(_) => break Reason::ClientClosed,
                    Ok(Some(_)) => {
                        let detection = detector.feed(&buf);
                        if detection != Detection::Incomplete {
                            return done(buf, detection);
                        }
                    }
                    Ok(None) => {}
                }
            }
            ready = upstream => {
                let Some(s) = server_first else { continue };
                if ready.is_err() || !pass_banner(s.upstream, client, &mut banner).await {
                    break Reason::ClientClosed;
                }
                deadline = Instant::now() + s.idle;
            }
            () = tokio::time::sleep_until(deadline) => break Reason::DetectTimeout,
        }
    };
    FirstBytes {
        bytes: buf,
        detection: None,
        failure,
    }
}

fn done(bytes: Vec<u8>, detection: Detection) -> FirstBytes {
    FirstBytes {
        bytes,
        detection: Some(detection),
        failure: Reason::ClientClosed,
    }
}

/// One non-blocking read into `buf`'s spare room (grown up to the cap);
/// `None` when the readiness was spurious. A short read drained the socket:
/// its readiness is cleared then, so the relay that follows does not start
/// with a read that can only hear `EAGAIN`.
fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let len = buf.len();
    let room = (len.max(FIRST_READ / 2) * 2).min(MAX_DETECT_BYTES);
    buf.resize(room, 0);
    let mut got = 0;
    let result = match buf.get_mut(len..) {
        Some(spare) => {
            let want = spare.len();
            stream.try_io(Interest::READABLE, || {
                got = crate::sys::recv(stream, spare)?;
                if got > 0 && got < want {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(got)
            })
        }
        None => Ok(0),
    };
    match result {
        Ok(n) => {
            buf.truncate(len + n);
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {
            buf.truncate(len + got);
            Ok(Some(got))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            buf.truncate(len);
            Ok(None)
        }
        Err(e) => {
            buf.truncate(len);
            Err(e)
        }
    }
}

/// Passes what the upstream sent to the client; false when either side is done.
async fn pass_banner(upstream: &TcpStream, client: &TcpStream, scratch: &mut Vec<u8>) -> bool {
    scratch.resize(BANNER_CHUNK, 0);
    match upstream.try_read(scratch) {
        Ok(0) => false,
        Ok(n) => {
            let Some(bytes) = scratch.get(..n) else {
                return false;
            };
            write_all(client, bytes).await.is_ok()
        }
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// `write_all` on a shared reference.
pub async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
