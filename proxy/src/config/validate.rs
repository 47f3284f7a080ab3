//! Validation of a [`RawConfig`] into a [`Config`] and the compile inputs.
//!
//! Collects every issue (file, key path, value, reason) rather than stopping
//! at the first.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use policy_matcher::{
    BlueprintBinding, DevboxBinding, Inputs, Issue, Pattern, Platform, ValidPolicy, Verdict,
};

use super::raw::{RawBlueprint, RawConfig, RawDevbox};
use super::{
    Api, ApiToken, Audit, Config, Detect, Dial, EchAction, Limits, Listen, Mode, OnPolicyChange,
    TlsDeny, Upstream,
};

/// Collects issues for one file.
pub(crate) struct Checker<'a> {
    pub(crate) file: &'a str,
    pub(crate) issues: Vec<Issue>,
}

impl Checker<'_> {
    fn error(
        &mut self,
        path: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.issues
            .push(Issue::error(path, value, reason).in_file(self.file));
    }

    /// One of several spellings, or the default when absent.
    fn choice<T: Copy>(
        &mut self,
        path: &str,
        raw: Option<&str>,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(raw) = raw else { return default };
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == raw) {
            return *v;
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.error(path, raw, format!("expected one of: {}", names.join(", ")));
        default
    }

    fn addrs(&mut self, path: &str, raw: &[String]) -> Vec<SocketAddr> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, a)| match a.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.error(
                        format!("{path}[{i}]"),
                        a,
                        "not an address with a port (e.g. 127.0.0.1:3128)",
                    );
                    None
                }
            })
            .collect()
    }

    fn patterns(&mut self, path: &str, raw: &[String]) -> Vec<Pattern> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, p)| match Pattern::parse(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.error(format!("{path}[{i}]"), p, e.to_string());
                    None
                }
            })
            .collect()
    }

    fn networks(&mut self, path: &str, raw: &[String]) -> Vec<ipnet::IpNet> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, a)| match policy_matcher::parse_network(a) {
                Ok(n) => Some(n),
                Err(reason) => {
                    self.error(format!("{path}[{i}]"), a, reason);
                    None
                }
            })
            .collect()
    }
}

/// Validates the settings; `base` resolves relative paths.
pub(crate) fn settings(raw: &RawConfig, base: &Path, c: &mut Checker<'_>) -> Config {
    let mode = c.choice(
        "mode",
        raw.mode.as_deref(),
        &[("enforce", Mode::Enforce), ("report", Mode::Report)],
        Mode::Enforce,
    );
    let on_policy_change = c.choice(
        "on_policy_change",
        raw.on_policy_change.as_deref(),
        &[
            ("close", OnPolicyChange::Close),
            ("keep", OnPolicyChange::Keep),
        ],
        OnPolicyChange::Close,
    );
    let admin = raw.listen.admin.as_deref().and_then(|a| match a.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            c.error(
                "listen.admin",
                a,
                "not an address with a port (e.g. 127.0.0.1:9901)",
            );
            None
        }
    });
    let listen = Listen {
        transparent: c.addrs("listen.transparent", &raw.listen.transparent),
        tproxy: c.addrs("listen.tproxy", &raw.listen.tproxy),
        connect: c.addrs("listen.connect", &raw.listen.connect),
        admin,
    };
    let u = &raw.upstream;
    let upstream = Upstream {
        dial: c.choice(
            "upstream.dial",
            u.dial.as_deref(),
            &[
                ("original-dst", Dial::OriginalDst),
                ("resolve", Dial::Resolve),
            ],
            Dial::OriginalDst,
        ),
        deny_private: u.deny_private.unwrap_or(true),
        mark: u.mark,
        connect_timeout: ms(u.connect_timeout_ms, 5_000),
    };
    let detect = Detect {
        timeout: ms(raw.detect.timeout_ms, 5_000),
        ech: c.choice(
            "detect.ech",
            raw.detect.ech.as_deref(),
            &[("allow", EchAction::Allow), ("deny", EchAction::Deny)],
            EchAction::Allow,
        ),
    };
    let deny_tls = c.choice(
        "deny.tls",
        raw.deny.tls.as_deref(),
        &[("alert", TlsDeny::Alert), ("reset", TlsDeny::Reset)],
        TlsDeny::Alert,
    );
    let l = &raw.limits;
    let limits = Limits {
        max_connections: l.max_connections.unwrap_or(20_000),
        max_detecting: l.max_detecting.unwrap_or(4_096),
        idle_timeout: ms(l.idle_timeout_ms, 600_000),
        drain_timeout: ms(l.drain_timeout_ms, 30_000),
    };
    for (key, v) in [
        ("limits.max_connections", limits.max_connections),
        ("limits.max_detecting", limits.max_detecting),
    ] {
        if v == 0 {
            c.error(key, "0", "must be at least 1");
        }
    }
    let audit = Audit {
        path: raw.audit.path.as_deref().map(|p| base.join(p)),
        queue: raw.audit.queue.unwrap_or(65_536),
    };
    let api = Api {
        state_dir: base.join(raw.api.state_dir.as_deref().unwrap_or("state")),
        max_policies_per_account: raw.api.max_policies_per_account.unwrap_or(100),
        tokens: tokens(raw, c),
    };
    Config {
        file: None,
        mode,
        on_policy_change,
        policy_files: Vec::new(),
        policy_dirs: raw
            .policy_files
            .iter()
            .filter_map(|p| base.join(p).parent().map(Path::to_path_buf))
            .filter(|d| !d.to_string_lossy().contains(['*', '?', '[']))
            .collect(),
        listen,
        upstream,
        detect,
        deny_tls,
        limits,
        audit,
        api,
    }
}

fn tokens(raw: &RawConfig, c: &mut Checker<'_>) -> Vec<ApiToken> {
    let mut out = Vec::new();
    for (i, t) in raw.api.tokens.iter().enumerate() {
        if t.account.is_empty() {
            c.error(format!("api.tokens[{i}].account"), "", "empty account");
        }
        match decode_sha256(&t.token_sha256) {
            Some(sha256) => out.push(ApiToken {
                account: t.account.clone(),
                sha256,
            }),
            // Never echo the value: it might be a token pasted by mistake.
            None => c.error(
                format!("api.tokens[{i}].token_sha256"),
                "",
                "expected 64 hex digits (the SHA-256 of the token, never the token)",
            ),
        }
    }
    out
}

/// The compile inputs from the config's platform and bindings sections.
pub(crate) fn inputs(raw: &RawConfig, policies: Vec<ValidPolicy>, c: &mut Checker<'_>) -> Inputs {
    let p = &raw.platform;
    let tunnel_domain = p.tunnel_domain.as_deref().and_then(|d| {
        let mut buf = policy_matcher::name::NameBuf::new();
        match policy_matcher::name::normalize(d, &mut buf) {
            Ok(n) => Some(n.to_owned()),
            Err(e) => {
                c.error("platform.tunnel_domain", d, e.to_string());
                None
            }
        }
    });
    let platform = Platform {
        agent_gateway: c.patterns("platform.agent_gateway", &p.agent_gateway),
        mcp_hub: c.patterns("platform.mcp_hub", &p.mcp_hub),
        mirrors: c.patterns("platform.mirrors", &p.mirrors),
        tunnel_domain,
    };
    let unknown_source = c.choice(
        "unknown_source",
        raw.unknown_source.as_deref(),
        &[("deny", Verdict::Deny), ("allow", Verdict::Allow)],
        Verdict::Deny,
    );
    let devboxes = raw
        .devboxes
        .iter()
        .enumerate()
        .map(|(i, d)| devbox(i, d, c))
        .collect();
    let blueprints = raw
        .blueprints
        .iter()
        .enumerate()
        .map(|(i, b)| blueprint(i, b, c))
        .collect();
    Inputs {
        policies,
        devboxes,
        blueprints,
        platform,
        unknown_source,
    }
}

fn devbox(i: usize, d: &RawDevbox, c: &mut Checker<'_>) -> DevboxBinding {
    let origin = format!("devboxes[{i}]");
    if d.id.is_empty() {
        c.error(format!("{origin}.id"), "", "empty devbox id");
    }
    DevboxBinding {
        id: d.id.clone(),
        account: account(&d.account),
        addresses: c.networks(&format!("{origin}.addresses"), &d.addresses),
        network_policy_id: d.network_policy_id.clone(),
        blueprint_id: d.blueprint_id.clone(),
        tunnel_keys: d.tunnel_keys.clone(),
        origin,
    }
}

fn blueprint(i: usize, b: &RawBlueprint, c: &mut Checker<'_>) -> BlueprintBinding {
    let origin = format!("blueprints[{i}]");
    if b.id.is_empty() {
        c.error(format!("{origin}.id"), "", "empty blueprint id");
    }
    BlueprintBinding {
        id: b.id.clone(),
        account: account(&b.account),
        network_policy_id: b.network_policy_id.clone(),
        build_addresses: c.networks(&format!("{origin}.build_addresses"), &b.build_addresses),
        launch_network_policy_id: b.launch_network_policy_id.clone(),
        origin,
    }
}

/// Bindings without an account belong to the account `default`.
fn account(raw: &str) -> String {
    if raw.is_empty() {
        "default".to_owned()
    } else {
        raw.to_owned()
    }
}

fn ms(raw: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(raw.unwrap_or(default))
}

fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |b: u8| (b as char).to_digit(16);
        let (hi, lo) = (digit(*pair.first()?)?, digit(*pair.get(1)?)?);
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}
