//! `/v1/devboxes` and `/v1/blueprints`: binding a microVM's addresses to a
//! policy when it starts, and unbinding them when it stops.
//!
//! Field names follow Runloop's devbox and blueprint calls: a devbox's
//! `launch_parameters.network_policy_id`; a blueprint's top-level
//! `network_policy_id` (its build, on `build_addresses`) and
//! `launch_parameters.network_policy_id` (inherited by its devboxes). Other
//! `launch_parameters` keys are accepted and ignored. Bindings belong to the
//! token's account; config-defined ones are visible to their account and
//! read-only. Updates follow the policy rule: absent or null keeps, a list
//! replaces.

use policy_matcher::{Issue, parse_network};
use serde::{Deserialize, Serialize};

use crate::store::{Snapshot, StoredBlueprint, StoredDevbox};

use super::auth::Account;
use super::error::ApiError;
use super::state::FilePart;

pub mod blueprints;
pub mod devboxes;

/// `launch_parameters`: only `network_policy_id` is read.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct LaunchParameters {
    /// The runtime policy.
    #[serde(default)]
    pub network_policy_id: Option<String>,
}

/// Where a binding was defined, in views.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Created through the API.
    Api,
    /// Defined in the config file (read-only).
    Config,
}

/// Checks a client-chosen record id: 1-128 of `A-Z a-z 0-9 _ - .`.
pub(crate) fn check_id(id: &str, issues: &mut Vec<Issue>) {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        let reason = "expected 1-128 characters of A-Z, a-z, 0-9, '_', '-', '.'";
        issues.push(Issue::error("id", id, reason));
    }
}

/// Checks addresses (IPs or canonical CIDRs) at `field[i]`.
pub(crate) fn check_addresses(field: &str, raw: &[String], issues: &mut Vec<Issue>) {
    for (i, a) in raw.iter().enumerate() {
        if let Err(reason) = parse_network(a) {
            issues.push(Issue::error(format!("{field}[{i}]"), a, reason));
        }
    }
}

/// Checks tunnel keys (the compiler's rule: 1-56 of `a-z 0-9 - _`).
pub(crate) fn check_tunnel_keys(raw: &[String], issues: &mut Vec<Issue>) {
    for (i, key) in raw.iter().enumerate() {
        let ok = (1..=56).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            let reason = "expected 1-56 characters of a-z, 0-9, '-', '_'";
            issues.push(Issue::error(format!("tunnel_keys[{i}]"), key, reason));
        }
    }
}

/// Refuses a policy id the account cannot use (another account's or none).
pub(crate) fn check_policy(
    snap: &Snapshot,
    files: &FilePart,
    account: &Account,
    field: &str,
    id: Option<&str>,
) -> Result<(), ApiError> {
    let Some(id) = id else { return Ok(()) };
    let usable = files.policy(id).is_some()
        || snap
            .policies
            .get(id)
            .is_some_and(|p| p.account == account.0);
    if usable {
        return Ok(());
    }
    let reason = "names no network policy of this account";
    Err(ApiError::Invalid(vec![Issue::error(field, id, reason)]))
}

/// Whether a devbox or blueprint id is taken by any record, any account.
pub(crate) fn id_taken(snap: &Snapshot, files: &FilePart, id: &str) -> bool {
    snap.devboxes.contains_key(id)
        || snap.blueprints.contains_key(id)
        || files.inputs.devboxes.iter().any(|d| d.id == id)
        || files.inputs.blueprints.iter().any(|b| b.id == id)
}

/// An address as written back: a bare IP for one-address networks.
pub(crate) fn show_net(net: &ipnet::IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// The account's API devbox `id`, or 404 / 409 (config-defined).
pub(crate) fn own_devbox<'a>(
    snap: &'a Snapshot,
    files: &FilePart,
    account: &Account,
    id: &str,
) -> Result<&'a StoredDevbox, ApiError> {
    if let Some(d) = snap.devboxes.get(id).filter(|d| d.account == account.0) {
        return Ok(d);
    }
    if files
        .inputs
        .devboxes
        .iter()
        .any(|d| d.id == id && d.account == account.0)
    {
        return Err(read_only("devbox", id));
    }
    Err(ApiError::NotFound(format!("devbox {id} not found")))
}

/// The account's API blueprint `id`, or 404 / 409 (config-defined).
pub(crate) fn own_blueprint<'a>(
    snap: &'a Snapshot,
    files: &FilePart,
    account: &Account,
    id: &str,
) -> Result<&'a StoredBlueprint, ApiError> {
    if let Some(b) = snap.blueprints.get(id).filter(|b| b.account == account.0) {
        return Ok(b);
    }
    if files
        .inputs
        .blueprints
        .iter()
        .any(|b| b.id == id && b.account == account.0)
    {
        return Err(read_only("blueprint", id));
    }
    Err(ApiError::NotFound(format!("blueprint {id} not found")))
}

fn read_only(kind: &str, id: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{kind} {id} is defined in the configuration and is read-only through the API"
    ))
}

/// `Err(Invalid)` when `issues` holds an error.
pub(crate) fn invalid_if_any(issues: Vec<Issue>) -> Result<(), ApiError> {
    if issues.iter().any(Issue::is_error) {
        Err(ApiError::Invalid(issues))
    } else {
        Ok(())
    }
}
