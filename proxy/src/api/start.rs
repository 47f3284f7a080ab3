//! The API's part of `egress-proxy run`, in three calls:
//!
//! 1. [`open_state`], before any port is bound: opens the store and compiles
//!    the file part with its records (a conflict refuses to start: the
//!    proxy never runs on a partial state);
//! 2. [`bind_admin`], with the other listeners;
//! 3. [`spawn`], once [`Shared`] exists: the admin server and the task that
//!    follows the store.
//!
//! The SQLite store is opened when the API can write (an admin listener and
//! at least one token) or the database already exists (what the API wrote
//! stays in force even with the API turned off); otherwise an empty
//! in-memory store stands in and nothing is created on disk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use policy_matcher::{Compiled, Issue};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config::Loaded;
use crate::shared::Shared;
use crate::store::{MemoryStore, SqliteStore, Store, StoreError, sqlite::DB_FILE};

use super::ApiState;
use super::state::{self, FilePart, StateSync};

/// Why the API side cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store cannot be opened.
    #[error("cannot open the API store: {0}")]
    Store(#[from] StoreError),
    /// The files and the stored records do not compile together.
    #[error("the config and the API's stored records conflict ({} error(s))", .0.iter().filter(|i| i.is_error()).count())]
    State(Vec<Issue>),
    /// The admin address cannot be bound.
    #[error("cannot listen on the admin address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Opens the store and compiles the merged state; logs the stored records'
/// own warnings (the file's are logged by the loader).
pub fn open_state(loaded: &Loaded) -> Result<(Arc<StateSync>, Compiled), StartError> {
    let api = &loaded.config.api;
    let writable = loaded.config.listen.admin.is_some() && !api.tokens.is_empty();
    let wanted = writable || api.state_dir.join(DB_FILE).exists();
    let store: Arc<dyn Store> = if wanted {
        let store = SqliteStore::open(&api.state_dir)?;
        tracing::info!(db = %store.path().display(), "api store open");
        Arc::new(store)
    } else {
        Arc::new(MemoryStore::new())
    };
    let sync = Arc::new(StateSync::new(FilePart::from_loaded(loaded), store));
    let (compiled, warnings) = sync.compile().map_err(StartError::State)?;
    let known: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    for w in warnings.iter().map(ToString::to_string) {
        if !known.contains(&w) {
            tracing::warn!("{w}");
        }
    }
    Ok((sync, compiled))
}

/// Binds the admin address, if one is configured.
pub fn bind_admin(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = addr else { return Ok(None) };
    let bind = || {
        let std = std::net::TcpListener::bind(addr)?;
        std.set_nonblocking(true)?;
        TcpListener::from_std(std)
    };
    bind()
        .map(Some)
        .map_err(|source| StartError::Bind { addr, source })
}

/// Spawns the store follower and, with a listener, the admin server; both
/// end when `stop` turns true.
pub fn spawn(
    shared: &Arc<Shared>,
    sync: &Arc<StateSync>,
    admin_listener: Option<TcpListener>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let target: Arc<dyn state::Target> = shared.clone();
    let mut tasks = vec![tokio::spawn(state::follow(
        sync.clone(),
        target.clone(),
        stop.clone(),
    ))];
    if let Some(listener) = admin_listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(listener = "admin", %addr, "listening");
        }
        let api = ApiState::new(shared.config.api.clone(), sync.clone(), target);
        let (metrics, ready) = (shared.clone(), shared.clone());
        let state = AdminState {
            api: Some(Arc::new(api)),
            metrics: Arc::new(move || metrics.metrics.render()),
            ready: Arc::new(move || ready.ready.load(Ordering::Acquire)),
        };
        tasks.push(tokio::spawn(admin::serve(
            listener,
            Arc::new(state),
            stop.clone(),
        )));
    }
    tasks
}
