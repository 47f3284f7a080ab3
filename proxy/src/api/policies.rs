//! `/v1/network-policies`: create, list, get, update, delete, exactly as
//! Runloop's SDKs call them.
//!
//! Policies created here belong to the token's account; another account's
//! policy answers 404 as if it did not exist. Policies from the config and
//! policy files have no account: every account can read and use them, none
//! can change them (409). Names are unique per account and never shadow a
//! file policy's name. Validation is the policy files' own
//! ([`NetworkPolicy::validate`]).

use std::sync::Arc;

use policy_matcher::{CidrSpec, EgressRules, Issue, NetworkPolicy};
use serde::Deserialize;

use crate::store::{Change, Snapshot, StoredPolicy};

use super::ApiState;
use super::auth::Account;
use super::error::ApiError;
use super::ids;
use super::list::{ListParams, Page};
use super::state::FilePart;
use super::write::{self, Plan};

/// The longest name accepted.
const MAX_NAME: usize = 256;
/// The longest description accepted.
const MAX_DESCRIPTION: usize = 4096;

/// The create and update body: every field optional and nullable; on update
/// absent or null keeps the stored value and a list replaces the whole list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFields {
    name: Option<String>,
    description: Option<String>,
    allow_all: Option<bool>,
    allowed_hostnames: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<CidrSpec>>,
    allow_devbox_to_devbox: Option<bool>,
    allow_agent_gateway: Option<bool>,
    allow_mcp_gateway: Option<bool>,
    allow_runloop_mirrors: Option<bool>,
}

/// A policy the account can see.
enum Found<'a> {
    Api(&'a StoredPolicy),
    File(&'a NetworkPolicy, &'a str),
}

/// `POST /v1/network-policies`.
pub async fn create(
    api: &Arc<ApiState>,
    account: Account,
    fields: PolicyFields,
) -> Result<NetworkPolicy, ApiError> {
    let Some(name) = fields.name.clone() else {
        return Err(ApiError::Invalid(vec![Issue::error(
            "name", "", "required",
        )]));
    };
    let now = ids::now_ms();
    let id = ids::new_id("np_").map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut policy = NetworkPolicy {
        id,
        name,
        description: None,
        egress: EgressRules::default(),
        create_time_ms: now,
        update_time_ms: now,
    };
    fields.apply_to(&mut policy);
    check(&policy)?;
    let max = api.config.max_policies_per_account;
    write::commit(api, move |snap, files| {
        let owned = snap
            .policies
            .values()
            .filter(|p| p.account == account.0)
            .count();
        if owned >= max {
            return Err(ApiError::Conflict(format!(
                "account {} already has {owned} network policies, the limit \
                 (max_policies_per_account = {max}); delete one first",
                account.0
            )));
        }
        unique_name(snap, files, &account, &policy)?;
        let stored = StoredPolicy {
            account: account.0.clone(),
            policy: policy.clone(),
        };
        Ok(Plan {
            changes: vec![Change::PutPolicy(stored)],
            answer: policy.clone(),
        })
    })
    .await
}

/// `GET /v1/network-policies`.
pub fn list(api: &ApiState, account: &Account, params: &ListParams) -> Page<NetworkPolicy> {
    let snap = api.sync.snapshot();
    let files = api.sync.files();
    let own = snap
        .policies
        .values()
        .filter(|p| p.account == account.0)
        .map(|p| &p.policy);
    let visible: Vec<NetworkPolicy> = own
        .chain(files.policies.iter())
        .filter(|p| params.matches(&p.id, &p.name))
        .cloned()
        .collect();
    params.page(visible, |p| p.id.as_str())
}

/// `GET /v1/network-policies/{id}`.
pub fn get(api: &ApiState, account: &Account, id: &str) -> Result<NetworkPolicy, ApiError> {
    let snap = api.sync.snapshot();
    let files = api.sync.files();
    match find(&snap, &files, account, id) {
        Some(Found::Api(p)) => Ok(p.policy.clone()),
        Some(Found::File(p, _)) => Ok(p.clone()),
        None => Err(not_found(id)),
    }
}

/// `POST /v1/network-policies/{id}`.
pub async fn update(
    api: &Arc<ApiState>,
    account: Account,
    id: String,
    fields: PolicyFields,
) -> Result<NetworkPolicy, ApiError> {
    write::commit(api, move |snap, files| {
        let stored = writable(snap, files, &account, &id)?;
        let mut policy = stored.policy.clone();
        fields.apply_to(&mut policy);
        policy.update_time_ms = ids::after(stored.policy.update_time_ms);
        check(&policy)?;
        unique_name(snap, files, &account, &policy)?;
        let next = StoredPolicy {
            account: account.0.clone(),
            policy: policy.clone(),
        };
        Ok(Plan {
            changes: vec![Change::PutPolicy(next)],
            answer: policy,
        })
    })
    .await
}

/// `POST /v1/network-policies/{id}/delete`: answers the deleted policy.
/// Refused while a binding of the account still names it.
pub async fn delete(
    api: &Arc<ApiState>,
    account: Account,
    id: String,
) -> Result<NetworkPolicy, ApiError> {
    write::commit(api, move |snap, files| {
        let stored = writable(snap, files, &account, &id)?;
        if let Some(user) = user_of(snap, files, &account, &id) {
            return Err(ApiError::Conflict(format!(
                "network policy {id} is in use by {user}; unbind or update it first"
            )));
        }
        Ok(Plan {
            changes: vec![Change::DeletePolicy(id.clone())],
            answer: stored.policy.clone(),
        })
    })
    .await
}

// === impl PolicyFields ===

impl PolicyFields {
    /// Sets every given field on `p`.
    fn apply_to(&self, p: &mut NetworkPolicy) {
        let e = &mut p.egress;
        set(&mut p.name, &self.name);
        if let Some(d) = &self.description {
            p.description = Some(d.clone());
        }
        set(&mut e.allow_all, &self.allow_all);
        set(&mut e.allowed_hostnames, &self.allowed_hostnames);
        set(&mut e.allowed_cidrs, &self.allowed_cidrs);
        set(&mut e.allow_devbox_to_devbox, &self.allow_devbox_to_devbox);
        set(&mut e.allow_agent_gateway, &self.allow_agent_gateway);
        set(&mut e.allow_mcp_gateway, &self.allow_mcp_gateway);
        set(&mut e.allow_runloop_mirrors, &self.allow_runloop_mirrors);
    }
}

fn set<T: Clone>(slot: &mut T, given: &Option<T>) {
    if let Some(v) = given {
        slot.clone_from(v);
    }
}

/// The policy files' validation, with paths as the API body names them.
fn check(p: &NetworkPolicy) -> Result<(), ApiError> {
    let mut issues = match p.validate("") {
        Ok(_) => Vec::new(),
        Err(found) => found,
    };
    for i in &mut issues {
        if let Some(rest) = i.path.strip_prefix("egress.") {
            i.path = rest.to_owned();
        }
    }
    if p.name.trim().is_empty() {
        issues.push(Issue::error("name", &p.name, "empty name"));
    } else if p.name.chars().count() > MAX_NAME {
        issues.push(Issue::error(
            "name",
            "",
            format!("longer than {MAX_NAME} characters"),
        ));
    }
    if p.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        let reason = format!("longer than {MAX_DESCRIPTION} characters");
        issues.push(Issue::error("description", "", reason));
    }
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::Invalid(issues));
    }
    Ok(())
}

fn unique_name(
    snap: &Snapshot,
    files: &FilePart,
    account: &Account,
    p: &NetworkPolicy,
) -> Result<(), ApiError> {
    let taken = snap
        .policies
        .values()
        .any(|o| o.account == account.0 && o.policy.name == p.name && o.policy.id != p.id);
    if taken {
        return Err(ApiError::Conflict(format!(
            "a network policy named {:?} already exists in this account",
            p.name
        )));
    }
    if let Some(f) = files.policies.iter().find(|f| f.name == p.name) {
        return Err(ApiError::Conflict(format!(
            "the name {:?} is taken by the config-defined network policy {}",
            p.name, f.id
        )));
    }
    Ok(())
}

fn find<'a>(
    snap: &'a Snapshot,
    files: &'a FilePart,
    account: &Account,
    id: &str,
) -> Option<Found<'a>> {
    if let Some((p, origin)) = files.policy(id) {
        return Some(Found::File(p, origin));
    }
    snap.policies
        .get(id)
        .filter(|p| p.account == account.0)
        .map(Found::Api)
}

/// The account's own API policy `id`, or 404 / 409 (file policies).
fn writable<'a>(
    snap: &'a Snapshot,
    files: &'a FilePart,
    account: &Account,
    id: &str,
) -> Result<&'a StoredPolicy, ApiError> {
    match find(snap, files, account, id) {
        Some(Found::Api(p)) => Ok(p),
        Some(Found::File(_, origin)) => Err(ApiError::Conflict(format!(
            "network policy {id} is defined in the configuration ({origin}) \
             and is read-only through the API"
        ))),
        None => Err(not_found(id)),
    }
}

/// A binding of `account` that names policy `id`, for the refusal message.
fn user_of(snap: &Snapshot, files: &FilePart, account: &Account, id: &str) -> Option<String> {
    let names = |p: &Option<String>| p.as_deref() == Some(id);
    let api_devbox = snap
        .devboxes
        .values()
        .find(|d| d.account == account.0 && names(&d.network_policy_id));
    if let Some(d) = api_devbox {
        return Some(format!("devbox {}", d.id));
    }
    let api_blueprint = snap.blueprints.values().find(|b| {
        b.account == account.0
            && (names(&b.network_policy_id) || names(&b.launch_network_policy_id))
    });
    if let Some(b) = api_blueprint {
        return Some(format!("blueprint {}", b.id));
    }
    let inputs = &files.inputs;
    let file_devbox = inputs
        .devboxes
        .iter()
        .find(|d| d.account == account.0 && names(&d.network_policy_id));
    if let Some(d) = file_devbox {
        return Some(format!("config devbox {}", d.id));
    }
    inputs
        .blueprints
        .iter()
        .find(|b| {
            b.account == account.0
                && (names(&b.network_policy_id) || names(&b.launch_network_policy_id))
        })
        .map(|b| format!("config blueprint {}", b.id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("network policy {id} not found"))
}
