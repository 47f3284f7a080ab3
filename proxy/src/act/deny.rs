//! Denying a connection: a fatal TLS `access_denied` alert, an HTTP `403`,
//! or a TCP reset. Written bytes are given a moment to reach the client
//! before the socket closes, so that unread input does not turn the answer
//! into a reset.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sys;

/// How long a denied client is given to read the answer and close.
const LINGER: Duration = Duration::from_millis(500);

/// How to answer a denied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyAction<'a> {
    /// A fatal `access_denied` alert in a record of this version.
    TlsAlert {
        /// The record-layer version the client's hello used.
        record_version: u16,
    },
    /// `403 Forbidden` naming the host and the policy.
    Forbidden {
        /// The host asked for.
        host: &'a str,
        /// The policy that denied it.
        policy: &'a str,
    },
    /// A TCP reset.
    Reset,
}

/// Answers and closes `stream`.
pub async fn deny(mut stream: TcpStream, action: DenyAction<'_>) {
    match action {
        DenyAction::Reset => {
            let _ = sys::set_reset_on_close(&stream);
        }
        DenyAction::TlsAlert { record_version } => {
            let [major, minor] = record_version.to_be_bytes();
            // Alert record: type 21, version, length 2, level fatal (2), access_denied (49).
            let alert = [21, major, minor, 0, 2, 2, 49];
            answer_then_close(&mut stream, &alert).await;
        }
        DenyAction::Forbidden { host, policy } => {
            let body = format!("egress-proxy: {host} denied by network policy {policy}\n");
            let head = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            answer_then_close(&mut stream, (head + &body).as_bytes()).await;
        }
    }
}

async fn answer_then_close(stream: &mut TcpStream, answer: &[u8]) {
    if stream.write_all(answer).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Drain what the client still sends until it closes, briefly.
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
