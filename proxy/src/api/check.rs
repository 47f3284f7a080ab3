//! `GET /v1/check?source=IP&host=HOST[:PORT][&dest=IP]`: the decision the
//! running proxy would take for a connection, from its live compiled state.
//! The API twin of `egress-proxy check`, for operators and for tests that
//! an API change is in force.
//!
//! A source bound to another account's devbox answers 404, so an account
//! learns nothing about other accounts' bindings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use policy_matcher::Query;
use serde::Serialize;

use super::ApiState;
use super::auth::Account;
use super::error::ApiError;

/// The answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckView {
    /// `allow` or `deny`.
    pub verdict: &'static str,
    /// The stable reason (as in metrics and the audit log).
    pub reason: &'static str,
    /// The devbox (or blueprint build) bound to the source.
    pub devbox: Option<String>,
    /// The effective policy id.
    pub policy_id: Option<String>,
    /// The rule that decided (`hostname:*.example.com`, `cidr:10.0.0.0/8`, `-`).
    pub rule: String,
}

/// Decides one would-be connection on the live state.
pub fn check(
    api: &ApiState,
    account: &Account,
    pairs: &[(String, String)],
) -> Result<CheckView, ApiError> {
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let source: IpAddr = parse_ip("source", get("source"))?;
    let target = get("host").ok_or_else(|| ApiError::BadRequest("host: required".into()))?;
    let Some((host, port)) = crate::cli::split_target(target) else {
        return Err(ApiError::BadRequest(format!(
            "host: {target:?}: expected HOST[:PORT] with a port of 1-65535"
        )));
    };
    let dest_ip = match get("dest") {
        Some(_) => Some(parse_ip("dest", get("dest"))?),
        None => None,
    };
    let (dest, name) = match host.parse::<IpAddr>() {
        Ok(ip) => (SocketAddr::new(ip, port), None),
        Err(_) => {
            let ip = dest_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            (SocketAddr::new(ip, port), Some(host))
        }
    };
    let state = api.target.current();
    let d = state.decide(&Query { source, dest, name });
    if d.account.is_some_and(|a| a != account.0) {
        return Err(ApiError::NotFound(format!(
            "no devbox of this account is bound to {source}"
        )));
    }
    Ok(CheckView {
        verdict: d.verdict.as_str(),
        reason: d.reason.as_str(),
        devbox: d.devbox.map(str::to_owned),
        policy_id: d.policy_id.map(str::to_owned),
        rule: d.rule.to_string(),
    })
}

fn parse_ip(key: &str, raw: Option<&str>) -> Result<IpAddr, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest(format!("{key}: required")))?;
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{key}: {raw:?}: not an IP address")))
}
