//! Compiling validated policies and bindings into the state the data path
//! decides on, and the decision itself (SPEC §2).
//!
//! Identical rule sets are compiled once and shared by every policy id that
//! has them; every distinct name is interned once. A decision is one
//! longest-prefix lookup for the source, a few hash probes per label of the
//! name, and one longest-prefix walk for the destination; it never allocates.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use foldhash::fast::RandomState;
use ipnet::IpNet;

use crate::binding::{Binding, BindingKind, BlueprintBinding, DevboxBinding, PolicyRef};
use crate::decision::{Decision, Query, Reason, Rule, Verdict};
use crate::error::Issue;
use crate::hostset::{HostSet, Interner};
use crate::model::{CidrRule, PortRange, Protocol, Rules, ValidPolicy};
use crate::name::{self, NameBuf, Observed};
use crate::pattern::Pattern;
use crate::prefix::PrefixTable;

/// The platform's own hosts, from the `[platform]` config section.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    /// Agent gateway hosts (`allow_agent_gateway`).
    pub agent_gateway: Vec<Pattern>,
    /// MCP hub hosts (`allow_mcp_gateway`).
    pub mcp_hub: Vec<Pattern>,
    /// Package mirror hosts (`allow_runloop_mirrors`).
    pub mirrors: Vec<Pattern>,
    /// Tunnel hosts are `{port}-{key}.<tunnel_domain>` (normalised).
    pub tunnel_domain: Option<String>,
}

/// Everything a compiled state is built from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Validated policies.
    pub policies: Vec<ValidPolicy>,
    /// Devboxes.
    pub devboxes: Vec<DevboxBinding>,
    /// Blueprints.
    pub blueprints: Vec<BlueprintBinding>,
    /// Platform hosts.
    pub platform: Platform,
    /// The verdict for sources no binding claims.
    pub unknown_source: Verdict,
}

/// The compiled, immutable state one decision reads.
#[derive(Debug)]
pub struct Compiled {
    names: Interner,
    rules: Vec<CompiledRules>,
    policies: Vec<(Box<str>, u32)>,
    bindings: Vec<Binding>,
    sources: PrefixTable<u32>,
    tunnel_keys: HashMap<Box<str>, u32, RandomState>,
    agent_gateway: HostSet,
    mcp_hub: HostSet,
    mirrors: HostSet,
    tunnel_domain: Option<Box<str>>,
    unknown_source: Verdict,
}

#[derive(Debug)]
struct CompiledRules {
    allow_all: bool,
    hosts: HostSet,
    cidrs: PrefixTable<Vec<(IpNet, PortRange)>>,
    /// The CIDR rules as given (UDP ones are for the host's rules).
    cidr_rules: Vec<CidrRule>,
    toggles: Toggles,
}

/// The platform toggles of one rule set.
#[derive(Debug, Clone, Copy)]
struct Toggles {
    devbox_to_devbox: bool,
    agent_gateway: bool,
    mcp_gateway: bool,
    mirrors: bool,
}

const ALL_PORTS: PortRange = PortRange {
    start: 1,
    end: u16::MAX,
    protocol: Protocol::Any,
};

// === impl Compiled ===

impl Compiled {
    /// Compiles `inputs`. `Ok` carries the warnings (e.g. dangling policy
    /// ids, which deny at run time); `Err` every issue, errors included.
    pub fn compile(inputs: &Inputs) -> Result<(Self, Vec<Issue>), Vec<Issue>> {
        let mut issues = Vec::new();
        let mut c = Self {
            names: Interner::default(),
            rules: Vec::new(),
            policies: Vec::new(),
            bindings: Vec::new(),
            sources: PrefixTable::new(),
            tunnel_keys: HashMap::default(),
            agent_gateway: HostSet::default(),
            mcp_hub: HostSet::default(),
            mirrors: HostSet::default(),
            tunnel_domain: inputs.platform.tunnel_domain.as_deref().map(Into::into),
            unknown_source: inputs.unknown_source,
        };
        c.agent_gateway = HostSet::build(&mut c.names, &inputs.platform.agent_gateway);
        c.mcp_hub = HostSet::build(&mut c.names, &inputs.platform.mcp_hub);
        c.mirrors = HostSet::build(&mut c.names, &inputs.platform.mirrors);
        let policy_index = c.add_policies(&inputs.policies, &mut issues);
        let mut linker =
            crate::link::Linker::new(&policy_index, &inputs.policies, &inputs.blueprints);
        linker.link(&mut c, inputs, &mut issues);
        if issues.iter().any(Issue::is_error) {
            return Err(issues);
        }
        Ok((c, issues))
    }

    fn add_policies(
        &mut self,
        policies: &[ValidPolicy],
        issues: &mut Vec<Issue>,
    ) -> HashMap<Box<str>, u32, RandomState> {
        let mut index: HashMap<Box<str>, u32, RandomState> = HashMap::default();
        let mut shared: HashMap<&Rules, u32, RandomState> = HashMap::default();
        for p in policies {
            if index.contains_key(&p.id) {
                issues.push(Issue::error("id", &*p.id, "duplicate policy id").in_file(&p.origin));
                continue;
            }
            let rules = *shared.entry(&p.rules).or_insert_with(|| {
                let compiled = CompiledRules::build(&mut self.names, &p.rules);
                self.rules.push(compiled);
                len_u32(self.rules.len()) - 1
            });
            index.insert(p.id.clone(), len_u32(self.policies.len()));
            self.policies.push((p.id.clone(), rules));
        }
        index
    }

    pub(crate) fn push_binding(&mut self, binding: Binding, nets: &[IpNet]) -> Result<u32, IpNet> {
        let idx = len_u32(self.bindings.len());
        for net in nets {
            let slot = self.sources.entry(*net, || u32::MAX);
            if *slot != u32::MAX {
                return Err(*net);
            }
            *slot = idx;
        }
        self.bindings.push(binding);
        Ok(idx)
    }

    pub(crate) fn binding_of_prefix(&self, net: IpNet) -> Option<&str> {
        self.sources
            .longest(net.network())
            .and_then(|&i| self.bindings.get(i as usize))
            .map(|b| &*b.id)
    }

    pub(crate) fn add_tunnel_key(&mut self, key: &str, binding: u32) -> bool {
        self.tunnel_keys.insert(key.into(), binding).is_none()
    }

    /// Decides one connection (SPEC §2). Never allocates on ASCII names.
    pub fn decide<'c>(&'c self, q: &Query<'_>) -> Decision<'c> {
        self.decide_with(q.source, Some(q.dest), q.name)
    }

    /// Decides a connection known only by name (an explicit proxy request,
    /// before any DNS lookup): CIDR rules do not apply, since the name has no
    /// address yet. Check each resolved address with [`Self::cidr_allows`].
    pub fn decide_name<'c>(&'c self, source: IpAddr, name: &str) -> Decision<'c> {
        self.decide_with(source, None, Some(name))
    }

    fn decide_with<'c>(
        &'c self,
        source: IpAddr,
        dest: Option<SocketAddr>,
        name: Option<&str>,
    ) -> Decision<'c> {
        let (base, rules) = match self.resolve(source) {
            Ok(found) => found,
            Err(done) => return done,
        };
        if rules.allow_all {
            return base.allow(Reason::AllowAll, Rule::AllowAll);
        }
        let mut buf = NameBuf::new();
        let name = match name.map(|raw| name::observe(raw, &mut buf)) {
            Some(Observed::Name(n)) => Some(n),
            _ => None,
        };
        if let Some(hit) = name.and_then(|n| rules.hosts.find(&self.names, n)) {
            let name = self.names.resolve(hit.id);
            return base.allow(
                Reason::Hostname,
                Rule::Hostname {
                    name,
                    wildcard: hit.wildcard,
                },
            );
        }
        if let Some(rule) = dest.and_then(|d| rules.cidr_rule(d)) {
            return base.allow(Reason::Cidr, rule);
        }
        if let Some(n) = name
            && let Some(d) = self.platform_decision(&base, rules.toggles, n)
        {
            return d;
        }
        base.deny(Reason::NoMatch)
    }

    /// The decision when the destination alone settles it, before any byte
    /// from the client: unknown sources, no or missing policy, `allow_all`,
    /// a CIDR rule covering D:P, or a policy under which no name could allow
    /// anything. `None`: the observed name is needed.
    pub fn decide_at_accept(&self, source: IpAddr, dest: SocketAddr) -> Option<Decision<'_>> {
        let (base, rules) = match self.resolve(source) {
            Ok(found) => found,
            Err(done) => return Some(done),
        };
        if rules.allow_all {
            return Some(base.allow(Reason::AllowAll, Rule::AllowAll));
        }
        if let Some(rule) = rules.cidr_rule(dest) {
            return Some(base.allow(Reason::Cidr, rule));
        }
        let r = rules.toggles;
        let names_matter = !rules.hosts.is_empty()
            || (r.agent_gateway && !self.agent_gateway.is_empty())
            || (r.mcp_gateway && !self.mcp_hub.is_empty())
            || (r.mirrors && !self.mirrors.is_empty())
            || (r.devbox_to_devbox && self.tunnel_domain.is_some());
        (!names_matter).then(|| base.deny(Reason::NoMatch))
    }

    /// Whether the decided policy's CIDR rules allow a TCP connection to
    /// `dest` (used to let a name-allowed connection reach a private address,
    /// and to check each address a name resolves to).
    pub fn cidr_allows(&self, decision: &Decision<'_>, dest: SocketAddr) -> bool {
        decision
            .rules_index
            .and_then(|i| self.rules.get(i as usize))
            .is_some_and(|r| r.allow_all || r.cidr_rule(dest).is_some())
    }

    /// How many policies are loaded.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// How many distinct rule sets were compiled (identical policies share one).
    pub fn distinct_rule_sets(&self) -> usize {
        self.rules.len()
    }

    /// How many devboxes and blueprint builds are bound.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// UDP (and any-protocol) CIDR rules per policy id, for the host's rules.
    pub fn udp_rules(&self) -> impl Iterator<Item = (&str, &CidrRule)> {
        self.policies.iter().flat_map(move |(id, r)| {
            self.rules
                .get(*r as usize)
                .into_iter()
                .flat_map(|r| r.cidr_rules.iter())
                .filter(|c| {
                    c.ports.is_empty() || c.ports.iter().any(|p| p.protocol != Protocol::Tcp)
                })
                .map(move |c| (&**id, c))
        })
    }

    fn resolve(&self, source: IpAddr) -> Result<(Base<'_>, &CompiledRules), Decision<'_>> {
        let Some(binding) = self
            .sources
            .longest(source)
            .and_then(|&i| self.bindings.get(i as usize))
        else {
            let reason = match self.unknown_source {
                Verdict::Allow => Reason::UnknownSourceAllowed,
                Verdict::Deny => Reason::UnknownSourceDenied,
            };
            return Err(Base::default().finish(self.unknown_source, reason, Rule::None));
        };
        let mut base = Base {
            devbox: Some(&binding.id),
            account: Some(&binding.account),
            ..Base::default()
        };
        let index = match &binding.policy {
            PolicyRef::Default => return Err(base.allow(Reason::NoPolicy, Rule::None)),
            PolicyRef::Missing(id) => {
                base.policy_id = Some(id);
                return Err(base.deny(Reason::PolicyNotFound));
            }
            PolicyRef::Known(i) => *i,
        };
        let Some((id, rules_index)) = self.policies.get(index as usize) else {
            return Err(base.deny(Reason::PolicyNotFound));
        };
        let Some(rules) = self.rules.get(*rules_index as usize) else {
            return Err(base.deny(Reason::PolicyNotFound));
        };
        base.policy_id = Some(id);
        base.rules_index = Some(*rules_index);
        Ok((base, rules))
    }

    fn platform_decision<'c>(
        &'c self,
        base: &Base<'c>,
        r: Toggles,
        name: &str,
    ) -> Option<Decision<'c>> {
        let sets = [
            (r.agent_gateway, &self.agent_gateway, Reason::AgentGateway),
            (r.mcp_gateway, &self.mcp_hub, Reason::McpGateway),
            (r.mirrors, &self.mirrors, Reason::Mirror),
        ];
        for (on, set, reason) in sets {
            if let Some(hit) = on.then(|| set.find(&self.names, name)).flatten() {
                let name = self.names.resolve(hit.id);
                return Some(base.allow(
                    reason,
                    Rule::Platform {
                        name,
                        wildcard: hit.wildcard,
                    },
                ));
            }
        }
        if !r.devbox_to_devbox {
            return None;
        }
        let owner = self.tunnel_owner(name)?;
        (Some(&*owner.account) == base.account)
            .then(|| base.allow(Reason::DevboxTunnel, Rule::Tunnel { devbox: &owner.id }))
    }

    /// The devbox owning a tunnel host `{port}-{key}.<tunnel_domain>`.
    fn tunnel_owner(&self, name: &str) -> Option<&Binding> {
        let domain = self.tunnel_domain.as_deref()?;
        let label = name.strip_suffix(domain)?.strip_suffix('.')?;
        let (port, key) = label.split_once('-')?;
        let valid_port = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid_port || label.contains('.') || key.is_empty() {
            return None;
        }
        let &i = self.tunnel_keys.get(key)?;
        self.bindings
            .get(i as usize)
            .filter(|b| b.kind == BindingKind::Devbox)
    }
}

// === impl CompiledRules ===

impl CompiledRules {
    fn build(names: &mut Interner, rules: &Rules) -> Self {
        let mut cidrs: PrefixTable<Vec<(IpNet, PortRange)>> = PrefixTable::new();
        for c in &rules.cidrs {
            let entry = cidrs.entry(c.net, Vec::new);
            if c.ports.is_empty() {
                entry.push((c.net, ALL_PORTS));
            }
            entry.extend(c.ports.iter().map(|p| (c.net, *p)));
        }
        Self {
            allow_all: rules.allow_all,
            hosts: HostSet::build(names, &rules.patterns),
            cidrs,
            cidr_rules: rules.cidrs.clone(),
            toggles: Toggles {
                devbox_to_devbox: rules.devbox_to_devbox,
                agent_gateway: rules.agent_gateway,
                mcp_gateway: rules.mcp_gateway,
                mirrors: rules.mirrors,
            },
        }
    }

    fn cidr_rule(&self, dest: SocketAddr) -> Option<Rule<'static>> {
        let port = dest.port();
        self.cidrs.matches(dest.ip()).find_map(|rules| {
            rules
                .iter()
                .find(|(_, p)| p.allows_tcp(port))
                .map(|(net, p)| Rule::Cidr {
                    net: *net,
                    ports: (*p != ALL_PORTS).then_some(*p),
                })
        })
    }
}

/// The parts of a decision known once the source is resolved.
#[derive(Default, Clone, Copy)]
struct Base<'c> {
    devbox: Option<&'c str>,
    account: Option<&'c str>,
    policy_id: Option<&'c str>,
    rules_index: Option<u32>,
}

impl<'c> Base<'c> {
    fn finish(self, verdict: Verdict, reason: Reason, rule: Rule<'c>) -> Decision<'c> {
        Decision {
            verdict,
            reason,
            devbox: self.devbox,
            account: self.account,
            policy_id: self.policy_id,
            rule,
            rules_index: self.rules_index,
        }
    }

    fn allow(&self, reason: Reason, rule: Rule<'c>) -> Decision<'c> {
        self.finish(Verdict::Allow, reason, rule)
    }

    fn deny(&self, reason: Reason) -> Decision<'c> {
        self.finish(Verdict::Deny, reason, Rule::None)
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
