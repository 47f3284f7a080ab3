//! The configuration file as written (TOML), before validation.
//!
//! Every key may be omitted and takes the default documented in the README;
//! unknown keys are refused. Only [`super::Config`], built from this by
//! [`super::validate`], ever reaches the data path.

use serde::Deserialize;

use policy_matcher::NetworkPolicy;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub(crate) mode: Option<String>,
    pub(crate) unknown_source: Option<String>,
    pub(crate) on_policy_change: Option<String>,
    pub(crate) policy_files: Vec<String>,
    pub(crate) listen: RawListen,
    pub(crate) platform: RawPlatform,
    pub(crate) upstream: RawUpstream,
    pub(crate) detect: RawDetect,
    pub(crate) deny: RawDeny,
    pub(crate) limits: RawLimits,
    pub(crate) audit: RawAudit,
    pub(crate) api: RawApi,
    pub(crate) policies: Vec<NetworkPolicy>,
    pub(crate) devboxes: Vec<RawDevbox>,
    pub(crate) blueprints: Vec<RawBlueprint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawListen {
    pub(crate) transparent: Vec<String>,
    pub(crate) tproxy: Vec<String>,
    pub(crate) connect: Vec<String>,
    pub(crate) admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPlatform {
    pub(crate) agent_gateway: Vec<String>,
    pub(crate) mcp_hub: Vec<String>,
    pub(crate) mirrors: Vec<String>,
    pub(crate) tunnel_domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub(crate) dial: Option<String>,
    pub(crate) deny_private: Option<bool>,
    pub(crate) mark: Option<u32>,
    pub(crate) connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDetect {
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) ech: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDeny {
    pub(crate) tls: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_detecting: Option<usize>,
    pub(crate) idle_timeout_ms: Option<u64>,
    pub(crate) drain_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAudit {
    pub(crate) path: Option<String>,
    pub(crate) queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawApi {
    pub(crate) state_dir: Option<String>,
    pub(crate) max_policies_per_account: Option<usize>,
    pub(crate) tokens: Vec<RawToken>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub(crate) account: String,
    pub(crate) token_sha256: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevbox {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) account: String,
    #[serde(default)]
    pub(crate) addresses: Vec<String>,
    #[serde(default)]
    pub(crate) network_policy_id: Option<String>,
    #[serde(default)]
    pub(crate) blueprint_id: Option<String>,
    #[serde(default)]
    pub(crate) tunnel_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBlueprint {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) account: String,
    #[serde(default)]
    pub(crate) network_policy_id: Option<String>,
    #[serde(default)]
    pub(crate) build_addresses: Vec<String>,
    #[serde(default)]
    pub(crate) launch_network_policy_id: Option<String>,
}
