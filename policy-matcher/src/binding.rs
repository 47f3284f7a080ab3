//! Bindings: which source addresses belong to which devbox (or blueprint
//! build), and which policy applies to them.
//!
//! A devbox's effective policy is its own `network_policy_id`, else its
//! blueprint's runtime (`launch_network_policy_id`) policy, else none (allow
//! all, the documented default). A blueprint's `build_addresses` get its
//! build-time `network_policy_id`.

use ipnet::IpNet;

/// A devbox as configured (`[[devboxes]]`) or created through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevboxBinding {
    /// The devbox id.
    pub id: String,
    /// The owning account.
    pub account: String,
    /// Its addresses (single IPs are one-address networks).
    pub addresses: Vec<IpNet>,
    /// Its own policy; overrides the blueprint's runtime policy.
    pub network_policy_id: Option<String>,
    /// The blueprint it was created from.
    pub blueprint_id: Option<String>,
    /// Keys of its tunnels (`{port}-{key}.<tunnel_domain>`).
    pub tunnel_keys: Vec<String>,
    /// Where it was defined, for issue paths (e.g. `devboxes[3]`).
    pub origin: String,
}

/// A blueprint as configured (`[[blueprints]]`) or created through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlueprintBinding {
    /// The blueprint id.
    pub id: String,
    /// The owning account.
    pub account: String,
    /// Build-time policy, applied to `build_addresses`.
    pub network_policy_id: Option<String>,
    /// Addresses of the blueprint's build.
    pub build_addresses: Vec<IpNet>,
    /// Runtime policy inherited by its devboxes.
    pub launch_network_policy_id: Option<String>,
    /// Where it was defined, for issue paths (e.g. `blueprints[0]`).
    pub origin: String,
}

/// What a bound source address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    /// A devbox.
    Devbox,
    /// A blueprint's build.
    BlueprintBuild,
}

/// The policy a binding resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicyRef {
    /// No policy: allow all.
    Default,
    /// A known policy, by index.
    Known(u32),
    /// An id that names no usable policy: deny.
    Missing(Box<str>),
}

/// A compiled binding.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) id: Box<str>,
    pub(crate) kind: BindingKind,
    pub(crate) account: Box<str>,
    pub(crate) policy: PolicyRef,
}
