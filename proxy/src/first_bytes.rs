//! Reading a connection's first bytes for detection: into one buffer that
//! grows to at most [`MAX_DETECT_BYTES`], until the detector has an answer,
//! the client closes, or the deadline passes (a client trickling bytes is
//! cut off by the same deadline). The bytes are kept to be replayed upstream.

use std::time::Duration;

use tokio::io::AsyncReadExt;
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

const FIRST_READ: usize = 2048;

/// Reads until detection answers, within `timeout`.
pub async fn read(stream: &mut TcpStream, timeout: Duration) -> FirstBytes {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; FIRST_READ];
    let mut len = 0usize;
    let mut detector = Detector::new();
    let failure = loop {
        if len == buf.len() {
            if len >= MAX_DETECT_BYTES {
                break Reason::Malformed(Malformed::TooLarge);
            }
            buf.resize((len * 2).min(MAX_DETECT_BYTES), 0);
        }
        let Some(spare) = buf.get_mut(len..) else {
            break Reason::Malformed(Malformed::TooLarge);
        };
        let n = match tokio::time::timeout_at(deadline, stream.read(spare)).await {
            Err(_) => break Reason::DetectTimeout,
            Ok(Err(_)) | Ok(Ok(0)) => break Reason::ClientClosed,
            Ok(Ok(n)) => n,
        };
        len += n;
        let seen = buf.get(..len).unwrap_or_default();
        match detector.feed(seen) {
            Detection::Incomplete => {}
            done => {
                buf.truncate(len);
                return FirstBytes {
                    bytes: buf,
                    detection: Some(done),
                    failure: Reason::ClientClosed,
                };
            }
        }
    };
    buf.truncate(len);
    FirstBytes {
        bytes: buf,
        detection: None,
        failure,
    }
}
