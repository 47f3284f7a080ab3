//! What every connection task shares: the settings, the compiled policy
//! state (swapped atomically on reload, loaded once per connection), the
//! proxy's own addresses and the connection limits.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use policy_matcher::Compiled;
use tokio::sync::Semaphore;

use crate::config::Config;

/// State shared by the listeners and connection tasks.
#[derive(Debug)]
pub struct Shared {
    /// Settings (listener changes need a restart).
    pub config: Config,
    /// The compiled policy state; a reload stores a whole new one.
    pub state: ArcSwap<Compiled>,
    /// The addresses the proxy listens on (a connection to one is a loop).
    pub own_addrs: Vec<SocketAddr>,
    /// Permits for open connections.
    pub connections: Arc<Semaphore>,
    /// Permits for connections still in detection.
    pub detecting: Arc<Semaphore>,
}

// === impl Shared ===

impl Shared {
    /// Shared state for `config` and `state`, listening on `own_addrs`.
    pub fn new(config: Config, state: Compiled, own_addrs: Vec<SocketAddr>) -> Self {
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let detecting = Arc::new(Semaphore::new(config.limits.max_detecting));
        Self {
            config,
            state: ArcSwap::from_pointee(state),
            own_addrs,
            connections,
            detecting,
        }
    }

    /// Whether `dest` is one of the proxy's own listeners (no NAT happened:
    /// relaying would loop).
    pub fn is_own_listener(&self, dest: SocketAddr) -> bool {
        self.own_addrs.iter().any(|own| {
            own.port() == dest.port() && (own.ip() == dest.ip() || own.ip().is_unspecified())
        })
    }
}
