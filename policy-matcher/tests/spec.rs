//! Table tests for every example of SPEC §1 (patterns) and §2 (the decision).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};

use policy_matcher::{
    BlueprintBinding, Compiled, DevboxBinding, Inputs, NetworkPolicy, Pattern, Platform, Query,
    Reason, Verdict, parse_network,
};

fn policy(json: &str) -> policy_matcher::ValidPolicy {
    let p: NetworkPolicy = serde_json::from_str(json).unwrap();
    p.validate("").unwrap()
}

fn devbox(id: &str, account: &str, addr: &str, policy: Option<&str>) -> DevboxBinding {
    DevboxBinding {
        id: id.into(),
        account: account.into(),
        addresses: vec![parse_network(addr).unwrap()],
        network_policy_id: policy.map(Into::into),
        origin: format!("devboxes.{id}"),
        ..DevboxBinding::default()
    }
}

fn platform() -> Platform {
    let p = |s: &[&str]| s.iter().map(|x| Pattern::parse(x).unwrap()).collect();
    Platform {
        agent_gateway: p(&["gateway.runloop.ai"]),
        mcp_hub: p(&["mcp.runloop.ai"]),
        mirrors: p(&["*.mirrors.runloop.ai"]),
        tunnel_domain: Some("tunnel.runloop.ai".into()),
    }
}

fn fixture() -> Compiled {
    let mut tunnel_owner = devbox("dbx_peer", "acct_1", "10.200.1.9", None);
    tunnel_owner.tunnel_keys = vec!["k1abc".into()];
    let mut other_account = devbox("dbx_other", "acct_2", "10.200.2.9", None);
    other_account.tunnel_keys = vec!["k2xyz".into()];
    let mut from_blueprint = devbox("dbx_bp", "acct_1", "10.200.3.0/24", None);
    from_blueprint.blueprint_id = Some("bpt_1".into());
    let mut overrides = devbox("dbx_over", "acct_1", "10.200.3.7", Some("np_all"));
    overrides.blueprint_id = Some("bpt_1".into());
    let inputs = Inputs {
        policies: vec![
            policy(
                r#"{"id":"np_1","egress":{"allowed_hostnames":["github.com","*.npmjs.org","Bücher.DE."],
                "allowed_cidrs":[{"cidr":"10.12.0.0/16","ports":[{"port":443},{"port":8000,"end_port":8100,"protocol":"TCP"},{"port":53,"protocol":"UDP"}]},
                                 {"cidr":"fd12::/32"}],
                "allow_agent_gateway":true,"allow_runloop_mirrors":true,"allow_devbox_to_devbox":true}}"#,
            ),
            policy(r#"{"id":"np_deny","egress":{"allow_all":false}}"#),
            policy(
                r#"{"id":"np_all","egress":{"allow_all":true,"allowed_hostnames":["ignored.com"]}}"#,
            ),
            policy(r#"{"id":"np_build","egress":{"allowed_hostnames":["pypi.org"]}}"#),
            policy(r#"{"id":"np_runtime","egress":{"allowed_hostnames":["api.openai.com"]}}"#),
        ],
        devboxes: vec![
            devbox("dbx_1", "acct_1", "10.200.1.2", Some("np_1")),
            devbox("dbx_v6", "acct_1", "fd00::2", Some("np_1")),
            devbox("dbx_deny", "acct_1", "10.200.1.3", Some("np_deny")),
            devbox("dbx_none", "acct_1", "10.200.1.4", None),
            devbox("dbx_dangling", "acct_1", "10.200.1.5", Some("np_gone")),
            tunnel_owner,
            other_account,
            from_blueprint,
            overrides,
        ],
        blueprints: vec![BlueprintBinding {
            id: "bpt_1".into(),
            account: "acct_1".into(),
            network_policy_id: Some("np_build".into()),
            build_addresses: vec![parse_network("10.200.9.2").unwrap()],
            launch_network_policy_id: Some("np_runtime".into()),
            origin: "blueprints[0]".into(),
        }],
        platform: platform(),
        unknown_source: Verdict::Deny,
    };
    let (compiled, warnings) = Compiled::compile(&inputs).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].path.contains("network_policy_id"));
    compiled
}

fn decide(c: &Compiled, src: &str, dest: &str, name: Option<&str>) -> (Verdict, Reason, String) {
    let q = Query {
        source: src.parse::<IpAddr>().unwrap(),
        dest: dest.parse::<SocketAddr>().unwrap(),
        name,
    };
    let d = c.decide(&q);
    (d.verdict, d.reason, d.rule.to_string())
}

const SRC: &str = "10.200.1.2";
const DEST: &str = "93.184.216.34:443";

#[test]
fn exact_hostname_matches_only_itself() {
    let c = fixture();
    assert_eq!(decide(&c, SRC, DEST, Some("github.com")).0, Verdict::Allow);
    assert_eq!(
        decide(&c, SRC, DEST, Some("GITHUB.com.")).1,
        Reason::Hostname
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("api.github.com")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("github.com.evil.io")).0,
        Verdict::Deny
    );
}

#[test]
fn wildcard_matches_one_or_more_labels_but_not_apex() {
    let c = fixture();
    let (v, r, rule) = decide(&c, SRC, DEST, Some("registry.npmjs.org"));
    assert_eq!(
        (v, r, rule.as_str()),
        (Verdict::Allow, Reason::Hostname, "hostname:*.npmjs.org")
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("a.b.npmjs.org")).0,
        Verdict::Allow
    );
    assert_eq!(decide(&c, SRC, DEST, Some("npmjs.org")).0, Verdict::Deny);
    assert_eq!(
        decide(&c, SRC, DEST, Some("evilnpmjs.org")).0,
        Verdict::Deny
    );
}

#[test]
fn unicode_names_match_as_a_labels() {
    let c = fixture();
    assert_eq!(decide(&c, SRC, DEST, Some("bücher.de")).0, Verdict::Allow);
    assert_eq!(
        decide(&c, SRC, DEST, Some("xn--bcher-kva.de")).0,
        Verdict::Allow
    );
}

#[test]
fn cidr_rules_allow_tcp_ports_only() {
    let c = fixture();
    let (v, r, rule) = decide(&c, SRC, "10.12.3.4:443", None);
    assert_eq!(
        (v, r, rule.as_str()),
        (Verdict::Allow, Reason::Cidr, "cidr:10.12.0.0/16:443")
    );
    assert_eq!(decide(&c, SRC, "10.12.3.4:8050", None).0, Verdict::Allow);
    assert_eq!(decide(&c, SRC, "10.12.3.4:8101", None).0, Verdict::Deny);
    assert_eq!(
        decide(&c, SRC, "10.12.3.4:53", None).0,
        Verdict::Deny,
        "a UDP rule never allows TCP"
    );
    assert_eq!(decide(&c, SRC, "10.13.0.1:443", None).0, Verdict::Deny);
    assert_eq!(decide(&c, SRC, "[fd12:0:1::5]:22", None).1, Reason::Cidr);
}

#[test]
fn ip_literal_names_are_no_name() {
    let c = fixture();
    assert_eq!(
        decide(&c, SRC, DEST, Some("93.184.216.34")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, SRC, "10.12.0.1:443", Some("10.12.0.1")).1,
        Reason::Cidr
    );
}

#[test]
fn allow_all_ignores_other_fields_and_deny_all_allows_nothing() {
    let c = fixture();
    assert_eq!(
        decide(&c, "10.200.1.3", DEST, Some("github.com")).1,
        Reason::NoMatch
    );
    assert_eq!(
        decide(&c, "10.200.3.7", DEST, Some("anything.io")).1,
        Reason::AllowAll
    );
}

#[test]
fn no_policy_allows_all_and_missing_policy_denies() {
    let c = fixture();
    assert_eq!(decide(&c, "10.200.1.4", DEST, None).1, Reason::NoPolicy);
    let d = c.decide(&Query {
        source: "10.200.1.5".parse().unwrap(),
        dest: DEST.parse().unwrap(),
        name: Some("github.com"),
    });
    assert_eq!(
        (d.verdict, d.reason, d.policy_id),
        (Verdict::Deny, Reason::PolicyNotFound, Some("np_gone"))
    );
}

#[test]
fn unknown_source_takes_the_configured_verdict() {
    let c = fixture();
    assert_eq!(
        decide(&c, "192.0.2.1", DEST, Some("github.com")).1,
        Reason::UnknownSourceDenied
    );
}

#[test]
fn ipv6_sources_bind_by_prefix() {
    let c = fixture();
    assert_eq!(
        decide(&c, "fd00::2", DEST, Some("github.com")).0,
        Verdict::Allow
    );
    assert_eq!(
        decide(&c, "fd00::3", DEST, Some("github.com")).1,
        Reason::UnknownSourceDenied
    );
}

#[test]
fn blueprint_build_and_runtime_policies() {
    let c = fixture();
    assert_eq!(
        decide(&c, "10.200.9.2", DEST, Some("pypi.org")).0,
        Verdict::Allow
    );
    assert_eq!(
        decide(&c, "10.200.9.2", DEST, Some("api.openai.com")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, "10.200.3.5", DEST, Some("api.openai.com")).0,
        Verdict::Allow
    );
    assert_eq!(
        decide(&c, "10.200.3.5", DEST, Some("pypi.org")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, "10.200.3.7", DEST, Some("pypi.org")).0,
        Verdict::Allow,
        "own policy overrides"
    );
}

#[test]
fn platform_toggles() {
    let c = fixture();
    assert_eq!(
        decide(&c, SRC, DEST, Some("gateway.runloop.ai")).1,
        Reason::AgentGateway
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("mcp.runloop.ai")).0,
        Verdict::Deny,
        "mcp toggle off"
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("eu.mirrors.runloop.ai")).1,
        Reason::Mirror
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("mirrors.runloop.ai")).0,
        Verdict::Deny
    );
}

#[test]
fn tunnels_only_to_same_account_devboxes() {
    let c = fixture();
    let (v, r, rule) = decide(&c, SRC, DEST, Some("8080-k1abc.tunnel.runloop.ai"));
    assert_eq!(
        (v, r, rule.as_str()),
        (Verdict::Allow, Reason::DevboxTunnel, "tunnel:dbx_peer")
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("8080-k2xyz.tunnel.runloop.ai")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("0-k1abc.tunnel.runloop.ai")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("70000-k1abc.tunnel.runloop.ai")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("x.8080-k1abc.tunnel.runloop.ai")).0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&c, SRC, DEST, Some("8080-nokey.tunnel.runloop.ai")).0,
        Verdict::Deny
    );
}

#[test]
fn decide_at_accept_only_when_the_name_cannot_matter() {
    let c = fixture();
    let src: IpAddr = SRC.parse().unwrap();
    assert!(c.decide_at_accept(src, DEST.parse().unwrap()).is_none());
    assert_eq!(
        c.decide_at_accept(src, "10.12.0.1:443".parse().unwrap())
            .map(|d| d.reason),
        Some(Reason::Cidr)
    );
    let deny_all: IpAddr = "10.200.1.3".parse().unwrap();
    assert_eq!(
        c.decide_at_accept(deny_all, DEST.parse().unwrap())
            .map(|d| d.reason),
        Some(Reason::NoMatch)
    );
    let unknown: IpAddr = "192.0.2.1".parse().unwrap();
    assert!(c.decide_at_accept(unknown, DEST.parse().unwrap()).is_some());
}

#[test]
fn identical_policies_compile_once() {
    let mut inputs = Inputs {
        policies: vec![],
        devboxes: vec![],
        blueprints: vec![],
        platform: Platform::default(),
        unknown_source: Verdict::Deny,
    };
    for i in 0..10 {
        let mut p =
            policy(r#"{"id":"x","egress":{"allowed_hostnames":["b.com","a.com","a.com"]}}"#);
        p.id = format!("np_{i}").into();
        inputs.policies.push(p);
    }
    let (c, _) = Compiled::compile(&inputs).unwrap();
    assert_eq!((c.policy_count(), c.distinct_rule_sets()), (10, 1));
}

#[test]
fn conflicting_bindings_are_errors() {
    let inputs = Inputs {
        policies: vec![],
        devboxes: vec![
            devbox("a", "acct", "10.0.0.1", None),
            devbox("b", "acct", "10.0.0.1/32", None),
        ],
        blueprints: vec![],
        platform: Platform::default(),
        unknown_source: Verdict::Deny,
    };
    let issues = Compiled::compile(&inputs).unwrap_err();
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0].reason.contains("already bound to a"),
        "{}",
        issues[0]
    );
}

#[test]
fn invalid_policy_reports_every_issue_with_its_path() {
    let p: NetworkPolicy = serde_json::from_str(
        r#"{"id":"np","egress":{"allowed_hostnames":["ok.com","*","a.*.com","10.0.0.1","x.com:443"],
            "allowed_cidrs":[{"cidr":"10.0.0.1/8"},{"cidr":"10.0.0.0/8","ports":[{"port":0},{"port":10,"end_port":5},{"port":1,"protocol":"SCTP"}]}]}}"#,
    )
    .unwrap();
    let issues = p.validate("[2]").unwrap_err();
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "[2].egress.allowed_hostnames[1]",
            "[2].egress.allowed_hostnames[2]",
            "[2].egress.allowed_hostnames[3]",
            "[2].egress.allowed_hostnames[4]",
            "[2].egress.allowed_cidrs[0].cidr",
            "[2].egress.allowed_cidrs[1].ports[0].port",
            "[2].egress.allowed_cidrs[1].ports[1].end_port",
            "[2].egress.allowed_cidrs[1].ports[2].protocol",
        ]
    );
    assert!(issues[4].reason.contains("10.0.0.0/8"));
}

#[test]
fn unknown_fields_are_refused() {
    let err = serde_json::from_str::<NetworkPolicy>(
        r#"{"id":"np","egress":{"allowed_hostname":["a.com"]}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("allowed_hostname"), "{err}");
}
