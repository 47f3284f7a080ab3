//! The `validate` and `check` commands: config files in, one report out, no
//! network I/O. Exit codes: 0 ok/allow, 1 deny, 2 error.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use policy_matcher::{Query, Verdict};

use crate::config::{self, Issue};

/// Exit code: success, or allow.
pub const EXIT_OK: i32 = 0;
/// Exit code: deny.
pub const EXIT_DENY: i32 = 1;
/// Exit code: the input is invalid.
pub const EXIT_ERROR: i32 = 2;

/// `egress-proxy validate`: every issue, then a summary; 2 on any error.
pub fn validate(path: &Path, out: &mut dyn Write) -> i32 {
    match config::load_file(path) {
        Ok(loaded) => {
            print_issues(&loaded.warnings, out);
            let _ = writeln!(
                out,
                "ok: {} policies ({} distinct), {} bindings, {} warning(s)",
                loaded.state.policy_count(),
                loaded.state.distinct_rule_sets(),
                loaded.state.binding_count(),
                loaded.warnings.len()
            );
            EXIT_OK
        }
        Err(issues) => {
            print_issues(&issues, out);
            let errors = issues.iter().filter(|i| i.is_error()).count();
            let _ = writeln!(out, "invalid: {errors} error(s)");
            EXIT_ERROR
        }
    }
}

/// `egress-proxy check`: one line, `allow` or `deny` with reason, policy and
/// rule. `target` is `HOST[:PORT]` (port 443 by default); an IP-literal host
/// is the destination itself, a name is matched with `dest` (if given) as
/// its address.
pub fn check(
    path: &Path,
    source: IpAddr,
    dest: Option<IpAddr>,
    target: &str,
    out: &mut dyn Write,
) -> i32 {
    let loaded = match config::load_file(path) {
        Ok(l) => l,
        Err(issues) => {
            print_issues(&issues, out);
            return EXIT_ERROR;
        }
    };
    let Some((host, port)) = split_target(target) else {
        let _ = writeln!(
            out,
            "error: {target:?}: expected HOST[:PORT] with a port of 1-65535"
        );
        return EXIT_ERROR;
    };
    let (dest, name) = match host.parse::<IpAddr>() {
        Ok(ip) => (SocketAddr::new(ip, port), None),
        Err(_) => {
            let unspecified = IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED);
            (
                SocketAddr::new(dest.unwrap_or(unspecified), port),
                Some(host),
            )
        }
    };
    let d = loaded.state.decide(&Query { source, dest, name });
    let _ = writeln!(out, "{d} devbox={}", d.devbox.unwrap_or("-"));
    match d.verdict {
        Verdict::Allow => EXIT_OK,
        Verdict::Deny => EXIT_DENY,
    }
}

fn print_issues(issues: &[Issue], out: &mut dyn Write) {
    for issue in issues {
        let _ = writeln!(out, "{issue}");
    }
}

/// Splits `HOST[:PORT]`; `[v6]:port`, a bare IPv6 literal, and names.
pub(crate) fn split_target(target: &str) -> Option<(&str, u16)> {
    if target.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((target, 443));
    }
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match target.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (target, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => 443,
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::split_target;

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(split_target("github.com"), Some(("github.com", 443)));
        assert_eq!(split_target("github.com:22"), Some(("github.com", 22)));
        assert_eq!(split_target("[fd00::1]:80"), Some(("fd00::1", 80)));
        assert_eq!(split_target("fd00::1"), Some(("fd00::1", 443)));
        assert_eq!(split_target("a.com:0"), None);
        assert_eq!(split_target(":80"), None);
    }
}
