//! The REDIRECT listener: the original destination is read with
//! SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::pipeline::{self, Intercepted, ListenerKind};
use crate::shared::Shared;
use crate::sys;

/// Serves one redirected connection.
pub async fn handle(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let orig_dst = sys::original_dst(&stream).ok();
    let conn = Intercepted {
        stream,
        peer,
        orig_dst,
        listener: ListenerKind::Transparent,
    };
    pipeline::serve(shared, conn).await;
}
