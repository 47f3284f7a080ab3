//! The API's durable state behind a small interface: [`Store`] loads every
//! record, applies a change atomically (compare-and-swap on a generation),
//! and publishes each committed [`Snapshot`] on a `watch` channel.
//!
//! [`sqlite::SqliteStore`] keeps the records in an embedded SQLite database
//! (WAL, `synchronous=FULL`: a committed change is on disk);
//! [`memory::MemoryStore`] serves when the API is off. A distributed store (etcd, for fleets of hosts) can take its place:
//! the API and the data path only see this trait.

pub mod memory;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use policy_matcher::NetworkPolicy;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// What the store holds: durable, versioned records.
pub trait Store: Send + Sync + 'static {
    /// Reads every record from durable storage (blocking).
    fn load(&self) -> Result<Snapshot, StoreError>;

    /// Commits `changes` atomically if the store is still at generation
    /// `expected`, and returns the new snapshot (blocking). A 2xx may be
    /// answered once this returns `Ok`: the change is durable.
    fn apply(&self, expected: u64, changes: &[Change]) -> Result<Arc<Snapshot>, StoreError>;

    /// The latest committed snapshot, updated after every commit.
    fn watch(&self) -> watch::Receiver<Arc<Snapshot>>;
}

/// Every record at one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Bumped by every commit.
    pub generation: u64,
    /// Policies by id.
    pub policies: BTreeMap<String, StoredPolicy>,
    /// Devbox bindings by id.
    pub devboxes: BTreeMap<String, StoredDevbox>,
    /// Blueprint bindings by id.
    pub blueprints: BTreeMap<String, StoredBlueprint>,
}

/// A policy created through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The owning account.
    pub account: String,
    /// The policy as served (id, name, description, egress, times).
    pub policy: NetworkPolicy,
}

/// A devbox bound through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDevbox {
    /// The devbox id.
    pub id: String,
    /// The owning account.
    pub account: String,
    /// Its addresses: IPs or canonical CIDRs, validated before storing.
    pub addresses: Vec<String>,
    /// Its own policy.
    pub network_policy_id: Option<String>,
    /// The blueprint it was created from.
    pub blueprint_id: Option<String>,
    /// Keys of its tunnels.
    pub tunnel_keys: Vec<String>,
    /// Creation time, Unix milliseconds.
    pub create_time_ms: i64,
}

/// A blueprint bound through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlueprint {
    /// The blueprint id.
    pub id: String,
    /// The owning account.
    pub account: String,
    /// A label.
    pub name: Option<String>,
    /// Build-time policy, applied to `build_addresses`.
    pub network_policy_id: Option<String>,
    /// Addresses of its build.
    pub build_addresses: Vec<String>,
    /// Runtime policy inherited by its devboxes.
    pub launch_network_policy_id: Option<String>,
    /// Creation time, Unix milliseconds.
    pub create_time_ms: i64,
}

/// One change to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Inserts or replaces a policy.
    PutPolicy(StoredPolicy),
    /// Removes a policy by id.
    DeletePolicy(String),
    /// Inserts or replaces a devbox.
    PutDevbox(StoredDevbox),
    /// Removes a devbox by id.
    DeleteDevbox(String),
    /// Inserts or replaces a blueprint.
    PutBlueprint(StoredBlueprint),
    /// Removes a blueprint by id.
    DeleteBlueprint(String),
}

/// Why the store could not load or commit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another change committed first; plan again on the new snapshot.
    #[error("the state changed concurrently (expected generation {expected}, found {found})")]
    Conflict {
        /// The generation the change was planned on.
        expected: u64,
        /// The store's generation.
        found: u64,
    },
    /// The state directory could not be created or opened.
    #[error("state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored record does not decode (a damaged or newer database).
    #[error("stored {kind} {id:?} does not decode: {source}")]
    Decode {
        /// The record kind.
        kind: &'static str,
        /// The record id.
        id: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A record could not be encoded.
    #[error("cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
    /// The database's lock was poisoned by a panic.
    #[error("the database lock is poisoned")]
    Poisoned,
}

// === impl Snapshot ===

impl Snapshot {
    /// This snapshot with `changes` applied (generation unchanged).
    #[must_use]
    pub fn with(&self, changes: &[Change]) -> Self {
        let mut next = self.clone();
        for change in changes {
            next.apply(change);
        }
        next
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::PutPolicy(p) => {
                self.policies.insert(p.policy.id.clone(), p.clone());
            }
            Change::DeletePolicy(id) => {
                self.policies.remove(id);
            }
            Change::PutDevbox(d) => {
                self.devboxes.insert(d.id.clone(), d.clone());
            }
            Change::DeleteDevbox(id) => {
                self.devboxes.remove(id);
            }
            Change::PutBlueprint(b) => {
                self.blueprints.insert(b.id.clone(), b.clone());
            }
            Change::DeleteBlueprint(id) => {
                self.blueprints.remove(id);
            }
        }
    }
}
