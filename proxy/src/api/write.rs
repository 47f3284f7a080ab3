//! The write path every mutating request takes, on a blocking thread:
//!
//! 1. plan the change on the latest snapshot and file part (refusals are
//!    4xx answers: duplicate name, limit, read-only record, ...);
//! 2. compile the would-be state, file and API records together, and refuse
//!    (409, naming each issue) what the data path could not load;
//! 3. commit to the store if no other write came first (else plan again);
//! 4. rebuild the data path's state before answering, so a 2xx means the
//!    change is on disk and in force for new connections.

use std::sync::Arc;

use policy_matcher::Issue;

use crate::store::{Change, Snapshot, StoreError};

use super::ApiState;
use super::error::ApiError;
use super::state::{self, FilePart};

/// How often a plan is retried when other writers keep committing first.
const ATTEMPTS: usize = 16;

/// What a plan decided: the changes to commit and the answer to give.
#[derive(Debug)]
pub struct Plan<T> {
    /// The changes.
    pub changes: Vec<Change>,
    /// The answer once committed.
    pub answer: T,
}

/// Decides the changes on a snapshot and file part, or refuses.
type Planner<T> = dyn Fn(&Snapshot, &FilePart) -> Result<Plan<T>, ApiError>;

/// Plans, checks and commits one change; see the module doc.
pub async fn commit<T, F>(api: &Arc<ApiState>, plan: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Fn(&Snapshot, &FilePart) -> Result<Plan<T>, ApiError> + Send + 'static,
{
    let api = api.clone();
    tokio::task::spawn_blocking(move || commit_blocking(&api, &plan))
        .await
        .map_err(|e| ApiError::Internal(format!("write task failed: {e}")))?
}

fn commit_blocking<T>(api: &ApiState, plan: &Planner<T>) -> Result<T, ApiError> {
    for _ in 0..ATTEMPTS {
        let snapshot = api.sync.snapshot();
        let files = api.sync.files();
        let Plan { changes, answer } = plan(&snapshot, &files)?;
        let next = snapshot.with(&changes);
        if let Err(issues) = state::rebuild(&files.inputs, &next) {
            return Err(ApiError::Refused(errors(issues)));
        }
        match api.sync.store().apply(snapshot.generation, &changes) {
            Ok(_) => {
                if let Err(issues) = api.sync.rebuild_into(&*api.target) {
                    // Only a concurrent file change can get here; the
                    // follower retries on the next change.
                    for issue in errors(issues) {
                        tracing::error!("committed state not in force: {issue}");
                    }
                }
                return Ok(answer);
            }
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Busy)
}

fn errors(issues: Vec<Issue>) -> Vec<Issue> {
    issues.into_iter().filter(Issue::is_error).collect()
}
