//! `/v1/blueprints`: create, list, get, update and delete a blueprint's
//! build-time binding (`network_policy_id` on `build_addresses`) and its
//! runtime policy (`launch_parameters.network_policy_id`).

use std::sync::Arc;

use policy_matcher::{BlueprintBinding, Issue};
use serde::{Deserialize, Serialize};

use crate::api::ApiState;
use crate::api::auth::Account;
use crate::api::error::ApiError;
use crate::api::ids;
use crate::api::list::{ListParams, Page};
use crate::api::state::FilePart;
use crate::api::write::{self, Plan};
use crate::store::{Change, Snapshot, StoredBlueprint};

use super::{LaunchParameters, Source};

/// The create and update body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueprintFields {
    id: Option<String>,
    name: Option<String>,
    network_policy_id: Option<String>,
    build_addresses: Option<Vec<String>>,
    launch_parameters: Option<LaunchParameters>,
}

/// A blueprint as answered.
#[derive(Debug, Clone, Serialize)]
pub struct BlueprintView {
    id: String,
    name: Option<String>,
    network_policy_id: Option<String>,
    build_addresses: Vec<String>,
    launch_parameters: LaunchParameters,
    create_time_ms: i64,
    source: Source,
}

/// `POST /v1/blueprints`.
pub async fn create(
    api: &Arc<ApiState>,
    account: Account,
    fields: BlueprintFields,
) -> Result<BlueprintView, ApiError> {
    let mut issues = Vec::new();
    if let Some(id) = &fields.id {
        super::check_id(id, &mut issues);
    }
    fields.check(&mut issues);
    super::invalid_if_any(issues)?;
    let id = match fields.id.clone() {
        Some(id) => id,
        None => ids::new_id("bpt_").map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let mut blueprint = StoredBlueprint {
        id,
        account: account.0.clone(),
        name: None,
        network_policy_id: None,
        build_addresses: Vec::new(),
        launch_network_policy_id: None,
        create_time_ms: ids::now_ms(),
    };
    fields.apply_to(&mut blueprint);
    write::commit(api, move |snap, files| {
        if super::id_taken(snap, files, &blueprint.id) {
            let msg = format!(
                "a devbox or blueprint with id {} already exists",
                blueprint.id
            );
            return Err(ApiError::Conflict(msg));
        }
        references(snap, files, &account, &blueprint)?;
        Ok(Plan {
            changes: vec![Change::PutBlueprint(blueprint.clone())],
            answer: view_of(&blueprint),
        })
    })
    .await
}

/// `GET /v1/blueprints`.
pub fn list(api: &ApiState, account: &Account, params: &ListParams) -> Page<BlueprintView> {
    let snap = api.sync.snapshot();
    let files = api.sync.files();
    let api_made = snap
        .blueprints
        .values()
        .filter(|b| b.account == account.0)
        .map(view_of);
    let configured = files
        .inputs
        .blueprints
        .iter()
        .filter(|b| b.account == account.0)
        .map(config_view);
    let items = api_made
        .chain(configured)
        .filter(|b| params.matches(&b.id, b.name.as_deref().unwrap_or(&b.id)))
        .collect();
    params.page(items, |b| b.id.as_str())
}

/// `GET /v1/blueprints/{id}`.
pub fn get(api: &ApiState, account: &Account, id: &str) -> Result<BlueprintView, ApiError> {
    let snap = api.sync.snapshot();
    if let Some(b) = snap.blueprints.get(id).filter(|b| b.account == account.0) {
        return Ok(view_of(b));
    }
    let files = api.sync.files();
    files
        .inputs
        .blueprints
        .iter()
        .find(|b| b.id == id && b.account == account.0)
        .map(config_view)
        .ok_or_else(|| ApiError::NotFound(format!("blueprint {id} not found")))
}

/// `POST /v1/blueprints/{id}` (e.g. `build_addresses: []` when its build ends).
pub async fn update(
    api: &Arc<ApiState>,
    account: Account,
    id: String,
    fields: BlueprintFields,
) -> Result<BlueprintView, ApiError> {
    let mut issues = Vec::new();
    if fields.id.as_ref().is_some_and(|given| *given != id) {
        issues.push(Issue::error("id", "", "differs from the id in the path"));
    }
    fields.check(&mut issues);
    super::invalid_if_any(issues)?;
    write::commit(api, move |snap, files| {
        let mut blueprint = super::own_blueprint(snap, files, &account, &id)?.clone();
        fields.apply_to(&mut blueprint);
        references(snap, files, &account, &blueprint)?;
        Ok(Plan {
            changes: vec![Change::PutBlueprint(blueprint.clone())],
            answer: view_of(&blueprint),
        })
    })
    .await
}

/// `POST /v1/blueprints/{id}/delete`: refused while a devbox names it.
pub async fn delete(
    api: &Arc<ApiState>,
    account: Account,
    id: String,
) -> Result<BlueprintView, ApiError> {
    write::commit(api, move |snap, files| {
        let blueprint = super::own_blueprint(snap, files, &account, &id)?;
        let user = snap
            .devboxes
            .values()
            .map(|d| (&d.id, &d.account, &d.blueprint_id))
            .chain(
                files
                    .inputs
                    .devboxes
                    .iter()
                    .map(|d| (&d.id, &d.account, &d.blueprint_id)),
            )
            .find(|(_, a, b)| **a == account.0 && b.as_deref() == Some(id.as_str()));
        if let Some((devbox, _, _)) = user {
            return Err(ApiError::Conflict(format!(
                "blueprint {id} is in use by devbox {devbox}; unbind it first"
            )));
        }
        Ok(Plan {
            changes: vec![Change::DeleteBlueprint(id.clone())],
            answer: view_of(blueprint),
        })
    })
    .await
}

// === impl BlueprintFields ===

impl BlueprintFields {
    fn check(&self, issues: &mut Vec<Issue>) {
        let addresses = self.build_addresses.as_deref().unwrap_or_default();
        super::check_addresses("build_addresses", addresses, issues);
    }

    fn apply_to(&self, b: &mut StoredBlueprint) {
        if let Some(n) = &self.name {
            b.name = Some(n.clone());
        }
        if let Some(p) = &self.network_policy_id {
            b.network_policy_id = Some(p.clone());
        }
        if let Some(a) = &self.build_addresses {
            b.build_addresses.clone_from(a);
        }
        if let Some(p) = self
            .launch_parameters
            .as_ref()
            .and_then(|l| l.network_policy_id.as_ref())
        {
            b.launch_network_policy_id = Some(p.clone());
        }
    }
}

fn references(
    snap: &Snapshot,
    files: &FilePart,
    account: &Account,
    b: &StoredBlueprint,
) -> Result<(), ApiError> {
    let build = b.network_policy_id.as_deref();
    super::check_policy(snap, files, account, "network_policy_id", build)?;
    let field = "launch_parameters.network_policy_id";
    super::check_policy(
        snap,
        files,
        account,
        field,
        b.launch_network_policy_id.as_deref(),
    )
}

fn view_of(b: &StoredBlueprint) -> BlueprintView {
    BlueprintView {
        id: b.id.clone(),
        name: b.name.clone(),
        network_policy_id: b.network_policy_id.clone(),
        build_addresses: b.build_addresses.clone(),
        launch_parameters: LaunchParameters {
            network_policy_id: b.launch_network_policy_id.clone(),
        },
        create_time_ms: b.create_time_ms,
        source: Source::Api,
    }
}

fn config_view(b: &BlueprintBinding) -> BlueprintView {
    BlueprintView {
        id: b.id.clone(),
        name: None,
        network_policy_id: b.network_policy_id.clone(),
        build_addresses: b.build_addresses.iter().map(super::show_net).collect(),
        launch_parameters: LaunchParameters {
            network_policy_id: b.launch_network_policy_id.clone(),
        },
        create_time_ms: 0,
        source: Source::Config,
    }
}
