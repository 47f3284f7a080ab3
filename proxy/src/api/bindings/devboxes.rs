//! `/v1/devboxes`: bind (create), list, get, update and unbind (delete) a
//! devbox's source addresses.

use std::sync::Arc;

use policy_matcher::{DevboxBinding, Issue};
use serde::{Deserialize, Serialize};

use crate::api::ApiState;
use crate::api::auth::Account;
use crate::api::error::ApiError;
use crate::api::ids;
use crate::api::list::{ListParams, Page};
use crate::api::state::FilePart;
use crate::api::write::{self, Plan};
use crate::store::{Change, Snapshot, StoredDevbox};

use super::{LaunchParameters, Source};

/// The create and update body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevboxFields {
    id: Option<String>,
    addresses: Option<Vec<String>>,
    launch_parameters: Option<LaunchParameters>,
    blueprint_id: Option<String>,
    tunnel_keys: Option<Vec<String>>,
}

/// A devbox as answered.
#[derive(Debug, Clone, Serialize)]
pub struct DevboxView {
    id: String,
    addresses: Vec<String>,
    launch_parameters: LaunchParameters,
    blueprint_id: Option<String>,
    tunnel_keys: Vec<String>,
    create_time_ms: i64,
    source: Source,
}

/// `POST /v1/devboxes`.
pub async fn create(
    api: &Arc<ApiState>,
    account: Account,
    fields: DevboxFields,
) -> Result<DevboxView, ApiError> {
    let mut issues = Vec::new();
    if let Some(id) = &fields.id {
        super::check_id(id, &mut issues);
    }
    fields.check(Write::Create, &mut issues);
    super::invalid_if_any(issues)?;
    let id = match fields.id.clone() {
        Some(id) => id,
        None => ids::new_id("dbx_").map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let mut devbox = StoredDevbox {
        id,
        account: account.0.clone(),
        addresses: Vec::new(),
        network_policy_id: None,
        blueprint_id: None,
        tunnel_keys: Vec::new(),
        create_time_ms: ids::now_ms(),
    };
    fields.apply_to(&mut devbox);
    write::commit(api, move |snap, files| {
        if super::id_taken(snap, files, &devbox.id) {
            let msg = format!("a devbox or blueprint with id {} already exists", devbox.id);
            return Err(ApiError::Conflict(msg));
        }
        references(snap, files, &account, &devbox)?;
        Ok(Plan {
            changes: vec![Change::PutDevbox(devbox.clone())],
            answer: view_of(&devbox),
        })
    })
    .await
}

/// `GET /v1/devboxes`.
pub fn list(api: &ApiState, account: &Account, params: &ListParams) -> Page<DevboxView> {
    let snap = api.sync.snapshot();
    let files = api.sync.files();
    let api_made = snap
        .devboxes
        .values()
        .filter(|d| d.account == account.0)
        .map(view_of);
    let configured = files
        .inputs
        .devboxes
        .iter()
        .filter(|d| d.account == account.0)
        .map(config_view);
    let items = api_made
        .chain(configured)
        .filter(|d| params.matches(&d.id, &d.id))
        .collect();
    params.page(items, |d| d.id.as_str())
}

/// `GET /v1/devboxes/{id}`.
pub fn get(api: &ApiState, account: &Account, id: &str) -> Result<DevboxView, ApiError> {
    let snap = api.sync.snapshot();
    if let Some(d) = snap.devboxes.get(id).filter(|d| d.account == account.0) {
        return Ok(view_of(d));
    }
    let files = api.sync.files();
    files
        .inputs
        .devboxes
        .iter()
        .find(|d| d.id == id && d.account == account.0)
        .map(config_view)
        .ok_or_else(|| ApiError::NotFound(format!("devbox {id} not found")))
}

/// `POST /v1/devboxes/{id}`.
pub async fn update(
    api: &Arc<ApiState>,
    account: Account,
    id: String,
    fields: DevboxFields,
) -> Result<DevboxView, ApiError> {
    let mut issues = Vec::new();
    if fields.id.as_ref().is_some_and(|given| *given != id) {
        issues.push(Issue::error("id", "", "differs from the id in the path"));
    }
    fields.check(Write::Update, &mut issues);
    super::invalid_if_any(issues)?;
    write::commit(api, move |snap, files| {
        let mut devbox = super::own_devbox(snap, files, &account, &id)?.clone();
        fields.apply_to(&mut devbox);
        references(snap, files, &account, &devbox)?;
        Ok(Plan {
            changes: vec![Change::PutDevbox(devbox.clone())],
            answer: view_of(&devbox),
        })
    })
    .await
}

/// `POST /v1/devboxes/{id}/delete`: unbinds; answers the removed devbox.
pub async fn delete(
    api: &Arc<ApiState>,
    account: Account,
    id: String,
) -> Result<DevboxView, ApiError> {
    write::commit(api, move |snap, files| {
        let devbox = super::own_devbox(snap, files, &account, &id)?;
        Ok(Plan {
            changes: vec![Change::DeleteDevbox(id.clone())],
            answer: view_of(devbox),
        })
    })
    .await
}

/// Which write a devbox's fields arrive with.
#[derive(Debug, Clone, Copy)]
enum Write {
    Create,
    Update,
}

// === impl DevboxFields ===

impl DevboxFields {
    /// Checks the fields; a create must name addresses, an update may leave
    /// them out but not empty them.
    fn check(&self, write: Write, issues: &mut Vec<Issue>) {
        let missing = match write {
            Write::Create => self.addresses.as_ref().is_none_or(Vec::is_empty),
            Write::Update => self.addresses.as_ref().is_some_and(Vec::is_empty),
        };
        if missing {
            issues.push(Issue::error(
                "addresses",
                "",
                "at least one address is required",
            ));
        }
        super::check_addresses(
            "addresses",
            self.addresses.as_deref().unwrap_or_default(),
            issues,
        );
        super::check_tunnel_keys(self.tunnel_keys.as_deref().unwrap_or_default(), issues);
    }

    fn apply_to(&self, d: &mut StoredDevbox) {
        if let Some(a) = &self.addresses {
            d.addresses.clone_from(a);
        }
        if let Some(p) = self
            .launch_parameters
            .as_ref()
            .and_then(|l| l.network_policy_id.as_ref())
        {
            d.network_policy_id = Some(p.clone());
        }
        if let Some(b) = &self.blueprint_id {
            d.blueprint_id = Some(b.clone());
        }
        if let Some(k) = &self.tunnel_keys {
            d.tunnel_keys.clone_from(k);
        }
    }
}

/// Refuses a devbox naming a policy or blueprint the account cannot use.
fn references(
    snap: &Snapshot,
    files: &FilePart,
    account: &Account,
    d: &StoredDevbox,
) -> Result<(), ApiError> {
    let field = "launch_parameters.network_policy_id";
    super::check_policy(snap, files, account, field, d.network_policy_id.as_deref())?;
    let Some(bp) = d.blueprint_id.as_deref() else {
        return Ok(());
    };
    let known = snap
        .blueprints
        .get(bp)
        .is_some_and(|b| b.account == account.0)
        || files
            .inputs
            .blueprints
            .iter()
            .any(|b| b.id == bp && b.account == account.0);
    if known {
        return Ok(());
    }
    let reason = "names no blueprint of this account";
    Err(ApiError::Invalid(vec![Issue::error(
        "blueprint_id",
        bp,
        reason,
    )]))
}

fn view_of(d: &StoredDevbox) -> DevboxView {
    DevboxView {
        id: d.id.clone(),
        addresses: d.addresses.clone(),
        launch_parameters: LaunchParameters {
            network_policy_id: d.network_policy_id.clone(),
        },
        blueprint_id: d.blueprint_id.clone(),
        tunnel_keys: d.tunnel_keys.clone(),
        create_time_ms: d.create_time_ms,
        source: Source::Api,
    }
}

fn config_view(d: &DevboxBinding) -> DevboxView {
    DevboxView {
        id: d.id.clone(),
        addresses: d.addresses.iter().map(super::show_net).collect(),
        launch_parameters: LaunchParameters {
            network_policy_id: d.network_policy_id.clone(),
        },
        blueprint_id: d.blueprint_id.clone(),
        tunnel_keys: d.tunnel_keys.clone(),
        create_time_ms: 0,
        source: Source::Config,
    }
}
