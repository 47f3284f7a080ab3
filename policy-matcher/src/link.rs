//! Linking bindings to policies: the effective policy of every devbox and
//! blueprint build, and the source-address and tunnel-key tables.
//!
//! Dangling references are warnings, never silent allows: a devbox whose
//! policy (or blueprint) cannot be found is denied at run time.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::binding::{Binding, BindingKind, BlueprintBinding, PolicyRef};
use crate::compile::{Compiled, Inputs};
use crate::error::Issue;
use crate::model::ValidPolicy;

pub(crate) struct Linker<'a> {
    policy_index: &'a HashMap<Box<str>, u32, RandomState>,
    policies: &'a [ValidPolicy],
    blueprints: HashMap<&'a str, &'a BlueprintBinding, RandomState>,
}

impl<'a> Linker<'a> {
    pub(crate) fn new(
        policy_index: &'a HashMap<Box<str>, u32, RandomState>,
        policies: &'a [ValidPolicy],
        blueprints: &'a [BlueprintBinding],
    ) -> Self {
        Self {
            policy_index,
            policies,
            blueprints: HashMap::default(),
        }
        .with_blueprints(blueprints)
    }

    fn with_blueprints(mut self, blueprints: &'a [BlueprintBinding]) -> Self {
        for b in blueprints {
            self.blueprints.entry(&b.id).or_insert(b);
        }
        self
    }

    pub(crate) fn link(&mut self, c: &mut Compiled, inputs: &Inputs, issues: &mut Vec<Issue>) {
        let mut seen: HashMap<&str, &str, RandomState> = HashMap::default();
        for b in &inputs.blueprints {
            if let Some(first) = seen.insert(&b.id, &b.origin) {
                let reason = format!("duplicate blueprint id (first at {first})");
                issues.push(Issue::error(format!("{}.id", b.origin), &b.id, reason));
                continue;
            }
            let policy = self.policy_ref(
                b.network_policy_id.as_deref(),
                &b.account,
                &format!("{}.network_policy_id", b.origin),
                issues,
            );
            let binding = Binding {
                id: b.id.as_str().into(),
                kind: BindingKind::BlueprintBuild,
                account: b.account.as_str().into(),
                policy,
            };
            bind(
                c,
                binding,
                &b.build_addresses,
                &format!("{}.build_addresses", b.origin),
                issues,
            );
        }
        seen.clear();
        for d in &inputs.devboxes {
            if let Some(first) = seen.insert(&d.id, &d.origin) {
                let reason = format!("duplicate devbox id (first at {first})");
                issues.push(Issue::error(format!("{}.id", d.origin), &d.id, reason));
                continue;
            }
            let policy = self.devbox_policy(d, issues);
            let binding = Binding {
                id: d.id.as_str().into(),
                kind: BindingKind::Devbox,
                account: d.account.as_str().into(),
                policy,
            };
            let Some(idx) = bind(
                c,
                binding,
                &d.addresses,
                &format!("{}.addresses", d.origin),
                issues,
            ) else {
                continue;
            };
            for (i, key) in d.tunnel_keys.iter().enumerate() {
                let path = format!("{}.tunnel_keys[{i}]", d.origin);
                if let Err(reason) = check_tunnel_key(key) {
                    issues.push(Issue::error(path, key, reason));
                } else if !c.add_tunnel_key(key, idx) {
                    issues.push(Issue::error(
                        path,
                        key,
                        "tunnel key already used by another devbox",
                    ));
                }
            }
        }
    }

    fn devbox_policy(
        &self,
        d: &crate::binding::DevboxBinding,
        issues: &mut Vec<Issue>,
    ) -> PolicyRef {
        if let Some(id) = d.network_policy_id.as_deref() {
            return self.policy_ref(
                Some(id),
                &d.account,
                &format!("{}.network_policy_id", d.origin),
                issues,
            );
        }
        let Some(bp_id) = d.blueprint_id.as_deref() else {
            return PolicyRef::Default;
        };
        let path = format!("{}.blueprint_id", d.origin);
        match self.blueprints.get(bp_id) {
            None => {
                let reason = "names no known blueprint: the devbox's connections are denied";
                issues.push(Issue::warning(path, bp_id, reason));
                PolicyRef::Missing(format!("blueprint:{bp_id}").into())
            }
            Some(bp) if bp.account != d.account => {
                let reason =
                    "blueprint belongs to another account: the devbox's connections are denied";
                issues.push(Issue::warning(path, bp_id, reason));
                PolicyRef::Missing(format!("blueprint:{bp_id}").into())
            }
            Some(bp) => self.policy_ref(
                bp.launch_network_policy_id.as_deref(),
                &d.account,
                &format!("{}.launch_network_policy_id", bp.origin),
                issues,
            ),
        }
    }

    fn policy_ref(
        &self,
        id: Option<&str>,
        account: &str,
        path: &str,
        issues: &mut Vec<Issue>,
    ) -> PolicyRef {
        let Some(id) = id else {
            return PolicyRef::Default;
        };
        let Some(&idx) = self.policy_index.get(id) else {
            let reason = "names no known policy: connections under it are denied";
            issues.push(Issue::warning(path, id, reason));
            return PolicyRef::Missing(id.into());
        };
        let owner = self
            .policies
            .get(idx as usize)
            .and_then(|p| p.account.as_deref());
        if owner.is_some_and(|owner| owner != account) {
            let reason = "policy belongs to another account: connections under it are denied";
            issues.push(Issue::warning(path, id, reason));
            return PolicyRef::Missing(id.into());
        }
        PolicyRef::Known(idx)
    }
}

fn bind(
    c: &mut Compiled,
    binding: Binding,
    nets: &[ipnet::IpNet],
    path: &str,
    issues: &mut Vec<Issue>,
) -> Option<u32> {
    let id = binding.id.clone();
    match c.push_binding(binding, nets) {
        Ok(idx) => Some(idx),
        Err(net) => {
            let other = c.binding_of_prefix(net).unwrap_or("?").to_owned();
            let reason = format!("address already bound to {other}");
            issues.push(Issue::error(path, net.to_string(), reason));
            let _ = id;
            None
        }
    }
}

fn check_tunnel_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() || key.len() > 56 {
        return Err("tunnel key must be 1-56 characters");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err("tunnel key may hold only lower-case letters, digits, '-' and '_'");
    }
    Ok(())
}
