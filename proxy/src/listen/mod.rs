//! Listeners: bind every configured address before serving anything, then
//! accept until shutdown, one task per connection under the connection cap.
//!
//! - [`transparent`]: iptables REDIRECT; the original destination comes from
//!   SO_ORIGINAL_DST.
//! - [`tproxy`]: iptables TPROXY; the original destination is the socket's
//!   own local address.
//! - [`connect`]: the explicit HTTP proxy (CONNECT and absolute-form).

pub mod connect;
mod forward;
pub mod tproxy;
pub mod transparent;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::pipeline::{self, Intercepted, ListenerKind};
use crate::shared::Shared;
use crate::sys;

/// A bound listener of one kind.
#[derive(Debug)]
pub struct Bound {
    /// What it serves.
    pub kind: ListenerKind,
    /// The socket.
    pub listener: TcpListener,
    /// The address it is bound to.
    pub addr: SocketAddr,
}

/// Binds `addr` for `kind`.
pub fn bind(kind: ListenerKind, addr: SocketAddr) -> io::Result<Bound> {
    let listener = sys::listener(addr, kind == ListenerKind::Tproxy)?;
    let addr = listener.local_addr()?;
    Ok(Bound {
        kind,
        listener,
        addr,
    })
}

/// Accepts on `bound` until `shutdown` turns true.
pub async fn serve(shared: Arc<Shared>, bound: Bound, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = bound.listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(listener = bound.kind.as_str(), error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(listener = bound.kind.as_str(), source = %peer, reason = "overloaded", "connection refused");
            let _ = sys::set_reset_on_close(&stream);
            continue;
        };
        let shared = shared.clone();
        let kind = bound.kind;
        tokio::spawn(dispatch(shared, kind, stream, peer, permit));
    }
}

/// Serves one connection; `permit` is held until it is closed (for a relayed
/// connection, by the relay's own task).
async fn dispatch(
    shared: Arc<Shared>,
    kind: ListenerKind,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let orig_dst = match kind {
        ListenerKind::Transparent => transparent::original_dst(&stream, peer),
        ListenerKind::Tproxy => tproxy::original_dst(&stream),
        ListenerKind::Connect => {
            connect::handle(shared, stream, peer).await;
            drop(permit);
            return;
        }
    };
    let conn = Intercepted {
        stream,
        peer,
        orig_dst,
        listener: kind,
    };
    pipeline::serve(shared, conn, permit).await;
}
