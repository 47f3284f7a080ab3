//! [`Store`] on an embedded SQLite database (`<state_dir>/egress-proxy.sqlite3`).
//!
//! WAL journal with `synchronous=FULL`: a commit returns only once its WAL
//! frames are fsynced, so an answered write survives `kill -9` and power loss.
//! Each record is a row keyed by id, its body JSON (upserts, never `OR
//! REPLACE`, which would silently delete a row holding the same unique
//! name); `meta.generation` is
//! bumped by every commit and compared before it (the store's
//! compare-and-swap). One connection behind a mutex: callers are blocking
//! threads (`spawn_blocking`), never the async workers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{Change, Snapshot, Store, StoreError, StoredBlueprint, StoredDevbox, StoredPolicy};

/// The database file inside the state directory.
pub const DB_FILE: &str = "egress-proxy.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS policies (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    UNIQUE (account, name));
CREATE TABLE IF NOT EXISTS devboxes (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blueprints (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, body TEXT NOT NULL);
PRAGMA user_version = 1;
";

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    tx: watch::Sender<Arc<Snapshot>>,
    path: PathBuf,
}

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir` and loads it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        };
        create_private_dir(dir).map_err(dir_err)?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        // The database and WAL files now exist: make their names durable too.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(dir_err)?;
        let snapshot = read_all(&conn)?;
        let (tx, _) = watch::channel(Arc::new(snapshot));
        Ok(Self {
            conn: Mutex::new(conn),
            tx,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        read_all(&conn)
    }

    fn apply(&self, expected: u64, changes: &[Change]) -> Result<Arc<Snapshot>, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = generation(&tx)?;
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        for change in changes {
            write(&tx, change)?;
        }
        let next = found.saturating_add(1);
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'generation'",
            params![to_i64(next)],
        )?;
        tx.commit()?;
        let mut snapshot = self.tx.borrow().with(changes);
        snapshot.generation = next;
        let snapshot = Arc::new(snapshot);
        self.tx.send_replace(snapshot.clone());
        Ok(snapshot)
    }

    fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn generation(conn: &Connection) -> Result<u64, StoreError> {
    let g: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'generation'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(g.and_then(|g| u64::try_from(g).ok()).unwrap_or(0))
}

fn to_i64(g: u64) -> i64 {
    i64::try_from(g).unwrap_or(i64::MAX)
}

fn write(conn: &Connection, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::PutPolicy(p) => conn.execute(
            "INSERT INTO policies (id, account, name, body) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET account = ?2, name = ?3, body = ?4",
            params![
                p.policy.id,
                p.account,
                p.policy.name,
                serde_json::to_string(p)?
            ],
        ),
        Change::DeletePolicy(id) => conn.execute("DELETE FROM policies WHERE id = ?1", [id]),
        Change::PutDevbox(d) => conn.execute(
            "INSERT INTO devboxes (id, account, body) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET account = ?2, body = ?3",
            params![d.id, d.account, serde_json::to_string(d)?],
        ),
        Change::DeleteDevbox(id) => conn.execute("DELETE FROM devboxes WHERE id = ?1", [id]),
        Change::PutBlueprint(b) => conn.execute(
            "INSERT INTO blueprints (id, account, body) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET account = ?2, body = ?3",
            params![b.id, b.account, serde_json::to_string(b)?],
        ),
        Change::DeleteBlueprint(id) => conn.execute("DELETE FROM blueprints WHERE id = ?1", [id]),
    }?;
    Ok(())
}

fn read_all(conn: &Connection) -> Result<Snapshot, StoreError> {
    let mut s = Snapshot {
        generation: generation(conn)?,
        ..Snapshot::default()
    };
    for p in read_table::<StoredPolicy>(conn, "policies", "policy")? {
        s.policies.insert(p.policy.id.clone(), p);
    }
    for d in read_table::<StoredDevbox>(conn, "devboxes", "devbox")? {
        s.devboxes.insert(d.id.clone(), d);
    }
    for b in read_table::<StoredBlueprint>(conn, "blueprints", "blueprint")? {
        s.blueprints.insert(b.id.clone(), b);
    }
    Ok(s)
}

fn read_table<T: DeserializeOwned>(
    conn: &Connection,
    table: &'static str,
    kind: &'static str,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT id, body FROM {table} ORDER BY id"))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, body) = row?;
        let record = serde_json::from_str(&body).map_err(|source| StoreError::Decode {
            kind,
            id,
            source,
        })?;
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_matcher::EgressRules;

    fn policy(id: &str, account: &str, name: &str) -> StoredPolicy {
        StoredPolicy {
            account: account.into(),
            policy: policy_matcher::NetworkPolicy {
                id: id.into(),
                name: name.into(),
                description: None,
                egress: EgressRules {
                    allowed_hostnames: vec!["github.com".into()],
                    ..EgressRules::default()
                },
                create_time_ms: 1,
                update_time_ms: 1,
            },
        }
    }

    #[test]
    fn committed_changes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let devbox = StoredDevbox {
            id: "dbx_1".into(),
            account: "a".into(),
            addresses: vec!["10.0.0.2".into()],
            network_policy_id: Some("np_1".into()),
            blueprint_id: None,
            tunnel_keys: vec![],
            create_time_ms: 1,
        };
        let changes = [
            Change::PutPolicy(policy("np_1", "a", "one")),
            Change::PutDevbox(devbox),
        ];
        let snap = store.apply(0, &changes).unwrap();
        assert_eq!(snap.generation, 1);
        drop(store);
        let again = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(*again.watch().borrow().clone(), *snap);
        assert_eq!(again.load().unwrap(), *snap);
    }

    #[test]
    fn a_stale_generation_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .apply(0, &[Change::PutPolicy(policy("np_1", "a", "one"))])
            .unwrap();
        let err = store
            .apply(0, &[Change::DeletePolicy("np_1".into())])
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                found: 1
            }
        ));
        assert_eq!(store.load().unwrap().policies.len(), 1);
    }

    #[test]
    fn names_are_unique_per_account_in_the_database_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let twins = [
            Change::PutPolicy(policy("np_1", "a", "same")),
            Change::PutPolicy(policy("np_2", "a", "same")),
        ];
        assert!(matches!(store.apply(0, &twins), Err(StoreError::Db(_))));
        assert_eq!(store.load().unwrap().generation, 0, "rolled back whole");
        let other = [Change::PutPolicy(policy("np_3", "b", "same"))];
        store.apply(0, &other).unwrap();
    }

    #[test]
    fn watchers_see_each_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut rx = store.watch();
        store
            .apply(0, &[Change::PutPolicy(policy("np_1", "a", "one"))])
            .unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().policies.len(), 1);
    }
}
