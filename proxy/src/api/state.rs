//! Reaching the data path: the compiled state is rebuilt from the file part
//! (config and policy files) and the store's snapshot, and stored into
//! [`Shared::state`] in one atomic swap.
//!
//! [`rebuild`] is the pure merge + compile; a [`Target`] (the proxy's
//! [`Shared`]) takes the result. [`StateSync`] holds the current
//! file part and serialises rebuilds, so that an API commit and a file reload
//! racing each other always end on a state built from the newest of both.
//! [`follow`] rebuilds after every change the store publishes (commits by
//! this process are applied by the writer itself before it answers; the task
//! catches any other writer of a shared store).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use policy_matcher::{
    BlueprintBinding, Compiled, DevboxBinding, Inputs, Issue, NetworkPolicy, parse_network,
};
use tokio::sync::watch;

use crate::config::Loaded;
use crate::shared::Shared;
use crate::store::{Snapshot, Store};

/// What the config files contribute: compile inputs and the policies as
/// written (`policies[i]` is the document of `inputs.policies[i]`).
#[derive(Debug, Clone)]
pub struct FilePart {
    /// Policies, bindings, platform and `unknown_source` from the files.
    pub inputs: Inputs,
    /// The file policies as written, for the API's read-only views.
    pub policies: Vec<NetworkPolicy>,
}

/// Where a rebuilt state goes: the data path's [`Shared`] (or, in tests, a
/// bare `ArcSwap`).
pub trait Target: Send + Sync + 'static {
    /// Makes `state` the one new connections see (one atomic swap).
    fn install(&self, state: Compiled);
    /// The state in force.
    fn current(&self) -> Arc<Compiled>;
}

/// The file part and the store, rebuilt into the data path's state.
pub struct StateSync {
    files: ArcSwap<FilePart>,
    store: Arc<dyn Store>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// (file part, generation) of the state last stored; also the rebuild lock.
    last: Mutex<Option<(usize, u64)>>,
}

// === impl FilePart ===

impl FilePart {
    /// The file part of a loaded config.
    pub fn from_loaded(loaded: &Loaded) -> Self {
        Self {
            inputs: loaded.inputs.clone(),
            policies: loaded.file_policies.clone(),
        }
    }

    /// The file policy with `id`, and where it was defined.
    pub fn policy(&self, id: &str) -> Option<(&NetworkPolicy, &str)> {
        self.policies
            .iter()
            .zip(&self.inputs.policies)
            .find(|(p, _)| p.id == id)
            .map(|(p, v)| (p, v.origin.as_str()))
    }
}

// === impl StateSync ===

impl StateSync {
    /// Starts from `files` and whatever `store` holds.
    pub fn new(files: FilePart, store: Arc<dyn Store>) -> Self {
        let snapshots = store.watch();
        Self {
            files: ArcSwap::from_pointee(files),
            store,
            snapshots,
            last: Mutex::new(None),
        }
    }

    /// The current file part.
    pub fn files(&self) -> Arc<FilePart> {
        self.files.load_full()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store's latest committed snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// Compiles the current file part and snapshot (for startup).
    pub fn compile(&self) -> Result<(Compiled, Vec<Issue>), Vec<Issue>> {
        rebuild(&self.files().inputs, &self.snapshot())
    }

    /// Rebuilds `target` from the current file part and snapshot unless it
    /// already reflects both; `Ok(true)` when it stored a new state. On
    /// error the last good state stays in force.
    pub fn rebuild_into(&self, target: &dyn Target) -> Result<bool, Vec<Issue>> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let files = self.files();
        let snapshot = self.snapshot();
        let key = (Arc::as_ptr(&files) as usize, snapshot.generation);
        if *last == Some(key) {
            return Ok(false);
        }
        let (compiled, _warnings) = rebuild(&files.inputs, &snapshot)?;
        target.install(compiled);
        *last = Some(key);
        Ok(true)
    }

    /// Replaces the file part (a config reload) if it compiles with the
    /// store's records, and stores the new state into `target`. On error
    /// nothing changes. `Ok` carries the warnings.
    pub fn replace_files(
        &self,
        files: FilePart,
        target: &dyn Target,
    ) -> Result<Vec<Issue>, Vec<Issue>> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = self.snapshot();
        let (compiled, warnings) = rebuild(&files.inputs, &snapshot)?;
        let files = Arc::new(files);
        *last = Some((Arc::as_ptr(&files) as usize, snapshot.generation));
        self.files.store(files);
        target.install(compiled);
        Ok(warnings)
    }
}

impl Target for Shared {
    fn install(&self, state: Compiled) {
        Shared::install(self, state);
    }

    fn current(&self) -> Arc<Compiled> {
        self.state.load_full()
    }
}

impl Target for ArcSwap<Compiled> {
    fn install(&self, state: Compiled) {
        self.store(Arc::new(state));
    }

    fn current(&self) -> Arc<Compiled> {
        self.load_full()
    }
}

impl std::fmt::Debug for StateSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSync")
            .field("generation", &self.snapshot().generation)
            .finish_non_exhaustive()
    }
}

/// Merges the file inputs with the store's records and compiles them.
/// File records come first, so a conflict is reported on the API record.
pub fn rebuild(files: &Inputs, snapshot: &Snapshot) -> Result<(Compiled, Vec<Issue>), Vec<Issue>> {
    let (inputs, mut issues) = merge(files, snapshot);
    if issues.iter().any(Issue::is_error) {
        return Err(issues);
    }
    match Compiled::compile(&inputs) {
        Ok((compiled, warnings)) => {
            issues.extend(warnings);
            Ok((compiled, issues))
        }
        Err(found) => {
            issues.extend(found);
            Err(issues)
        }
    }
}

/// The file inputs plus the store's records. A stored policy that no longer
/// validates is left out with a warning (devboxes under it are then denied).
pub fn merge(files: &Inputs, snapshot: &Snapshot) -> (Inputs, Vec<Issue>) {
    let mut issues = Vec::new();
    let mut inputs = files.clone();
    for stored in snapshot.policies.values() {
        let origin = format!("policy {}", stored.policy.id);
        match stored.policy.validate(&origin) {
            Ok(mut valid) => {
                valid.account = Some(stored.account.as_str().into());
                valid.origin = "api".to_owned();
                inputs.policies.push(valid);
            }
            Err(found) => issues.extend(found.into_iter().map(|mut i| {
                i.severity = policy_matcher::Severity::Warning;
                i.reason = format!("{}; stored policy left out", i.reason);
                i
            })),
        }
    }
    for b in snapshot.blueprints.values() {
        let origin = format!("blueprint {}", b.id);
        inputs.blueprints.push(BlueprintBinding {
            id: b.id.clone(),
            account: b.account.clone(),
            network_policy_id: b.network_policy_id.clone(),
            build_addresses: networks(&b.build_addresses, &origin, "build_addresses", &mut issues),
            launch_network_policy_id: b.launch_network_policy_id.clone(),
            origin,
        });
    }
    for d in snapshot.devboxes.values() {
        let origin = format!("devbox {}", d.id);
        inputs.devboxes.push(DevboxBinding {
            id: d.id.clone(),
            account: d.account.clone(),
            addresses: networks(&d.addresses, &origin, "addresses", &mut issues),
            network_policy_id: d.network_policy_id.clone(),
            blueprint_id: d.blueprint_id.clone(),
            tunnel_keys: d.tunnel_keys.clone(),
            origin,
        });
    }
    (inputs, issues)
}

fn networks(
    raw: &[String],
    origin: &str,
    field: &str,
    issues: &mut Vec<Issue>,
) -> Vec<ipnet::IpNet> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, a)| {
            parse_network(a)
                .map_err(|reason| {
                    issues.push(Issue::error(format!("{origin}.{field}[{i}]"), a, reason));
                })
                .ok()
        })
        .collect()
}

/// Rebuilds `target` after every snapshot the store publishes, until
/// `shutdown` turns true. A snapshot that does not compile is logged and the
/// last good state stays in force.
pub async fn follow(
    sync: Arc<StateSync>,
    target: Arc<dyn Target>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = sync.store().watch();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        changes.borrow_and_update();
        let (sync, target) = (sync.clone(), target.clone());
        let done = tokio::task::spawn_blocking(move || sync.rebuild_into(&*target)).await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(issues)) => {
                for issue in issues.iter().filter(|i| i.is_error()) {
                    tracing::error!("stored state refused: {issue}");
                }
            }
            Err(e) => tracing::error!(error = %e, "state rebuild task failed"),
        }
    }
}
