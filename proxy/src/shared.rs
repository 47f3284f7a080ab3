//! What every connection task shares: the settings, the compiled policy
//! state (swapped atomically on reload, loaded once per connection), the
//! proxy's own addresses, the connection limits, metrics and the audit log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use policy_matcher::Compiled;
use tokio::sync::{Semaphore, watch};

use crate::audit::AuditLog;
use crate::config::Config;
use crate::metrics::Metrics;

/// State shared by the listeners and connection tasks.
#[derive(Debug)]
pub struct Shared {
    /// Settings (only policies and bindings reload; the rest needs a restart).
    pub config: Config,
    /// The compiled policy state; a reload stores a whole new one.
    pub state: ArcSwap<Compiled>,
    /// Bumped after every store into `state` (open relays re-check).
    pub generation: watch::Sender<u64>,
    /// The addresses the proxy listens on (a connection to one is a loop).
    pub own_addrs: Vec<SocketAddr>,
    /// Permits for open connections.
    pub connections: Arc<Semaphore>,
    /// Permits for connections still in detection.
    pub detecting: Arc<Semaphore>,
    /// Metric families.
    pub metrics: Metrics,
    /// The audit log.
    pub audit: AuditLog,
    /// Set once every listener is bound and the state is loaded.
    pub ready: AtomicBool,
}

// === impl Shared ===

impl Shared {
    /// Shared state for `config` and `state`, listening on `own_addrs`.
    pub fn new(
        config: Config,
        state: Compiled,
        own_addrs: Vec<SocketAddr>,
        metrics: Metrics,
        audit: AuditLog,
    ) -> Self {
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let detecting = Arc::new(Semaphore::new(config.limits.max_detecting));
        metrics.loaded(&state);
        Self {
            config,
            state: ArcSwap::from_pointee(state),
            generation: watch::Sender::new(0),
            own_addrs,
            connections,
            detecting,
            metrics,
            audit,
            ready: AtomicBool::new(false),
        }
    }

    /// Makes `state` the one new connections (and re-checks) see.
    pub fn install(&self, state: Compiled) {
        self.metrics.loaded(&state);
        self.state.store(Arc::new(state));
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Whether `dest` is one of the proxy's own listeners (no NAT happened:
    /// relaying would loop).
    pub fn is_own_listener(&self, dest: SocketAddr) -> bool {
        self.own_addrs.iter().any(|own| {
            own.port() == dest.port() && (own.ip() == dest.ip() || own.ip().is_unspecified())
        })
    }
}
