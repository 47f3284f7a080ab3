//! [`Store`] in memory: nothing survives the process. Used when the API is
//! off (no admin listener and no database yet), so that the data path's
//! state is always built the same way, and in tests.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{Change, Snapshot, Store, StoreError};

/// The in-memory store.
#[derive(Debug)]
pub struct MemoryStore {
    lock: Mutex<()>,
    tx: watch::Sender<Arc<Snapshot>>,
}

// === impl MemoryStore ===

impl MemoryStore {
    /// An empty store at generation 0.
    pub fn new() -> Self {
        Self {
            lock: Mutex::new(()),
            tx: watch::Sender::new(Arc::new(Snapshot::default())),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok((**self.tx.borrow()).clone())
    }

    fn apply(&self, expected: u64, changes: &[Change]) -> Result<Arc<Snapshot>, StoreError> {
        let _one_writer = self.lock.lock().map_err(|_| StoreError::Poisoned)?;
        let current = self.tx.borrow().clone();
        if current.generation != expected {
            return Err(StoreError::Conflict {
                expected,
                found: current.generation,
            });
        }
        let mut next = current.with(changes);
        next.generation = expected.saturating_add(1);
        let next = Arc::new(next);
        self.tx.send_replace(next.clone());
        Ok(next)
    }

    fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}
