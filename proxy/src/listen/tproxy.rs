//! The TPROXY listener: an IP_TRANSPARENT socket to which iptables `TPROXY`
//! delivers connections for any destination; the original destination is
//! the accepted socket's own local address.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::pipeline::{self, Intercepted, ListenerKind};
use crate::shared::Shared;

/// Serves one TPROXYed connection.
pub async fn handle(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let orig_dst = stream.local_addr().ok();
    let conn = Intercepted {
        stream,
        peer,
        orig_dst,
        listener: ListenerKind::Tproxy,
    };
    pipeline::serve(shared, conn).await;
}
