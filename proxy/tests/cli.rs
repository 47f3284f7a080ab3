//! The built binary's `validate` and `check` commands on config files in a
//! temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new(config: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("proxy.toml"), config).unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Self(dir)
    }

    fn config(&self) -> PathBuf {
        self.0.path().join("proxy.toml")
    }
}

fn run(args: &[&str], config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_egress-proxy"))
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

const CONFIG: &str = r#"
policy_files = ["policies/*.json"]

[platform]
agent_gateway = ["gateway.runloop.ai"]
tunnel_domain = "tunnel.runloop.ai"

[[devboxes]]
id = "dbx_1"
account = "acct_1"
addresses = ["10.200.1.2", "fd00::2"]
network_policy_id = "np_1"

[[devboxes]]
id = "dbx_2"
account = "acct_1"
addresses = ["10.200.1.3"]
network_policy_id = "np_missing"
"#;

const POLICIES: &str = r#"[
  {"id": "np_1", "name": "agent", "egress": {"allowed_hostnames": ["github.com", "*.npmjs.org"],
    "allowed_cidrs": [{"cidr": "10.12.0.0/16", "ports": [{"port": 443}]}], "allow_agent_gateway": true}}
]"#;

fn valid() -> Dir {
    Dir::new(CONFIG, &[("policies/a.json", POLICIES)])
}

#[test]
fn validate_accepts_a_good_config_and_warns_about_dangling_ids() {
    let dir = valid();
    let (code, out) = run(&["validate"], &dir.config());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning") && out.contains("np_missing"),
        "{out}"
    );
    assert!(out.contains("devboxes[1].network_policy_id"), "{out}");
}

#[test]
fn validate_reports_every_invalid_pattern_with_file_and_path() {
    let bad = r#"[{"id": "np_1", "egress": {"allowed_hostnames":
        ["*", "*example.com", "a.*.com", "*.*.com", "git*.com", "10.0.0.1", "example.com:443", "a..com",
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.com", "LONG", "ok.com"]}}]"#;
    let long = vec!["a".repeat(60); 5].join(".");
    let bad = bad.replace("LONG", &long);
    let dir = Dir::new(CONFIG, &[("policies/a.json", &bad)]);
    let (code, out) = run(&["validate"], &dir.config());
    assert_eq!(code, 2, "{out}");
    for i in 0..10 {
        let needle = format!("a.json: [0].egress.allowed_hostnames[{i}]");
        assert!(out.contains(&needle), "missing {needle} in:\n{out}");
    }
    assert!(out.contains("name longer than 253 octets"), "{out}");
    assert!(!out.contains("allowed_hostnames[10]"), "{out}");
    assert!(out.contains("invalid: 10 error(s)"), "{out}");
}

#[test]
fn validate_refuses_unknown_keys_in_config_and_policies() {
    let dir = Dir::new(
        &CONFIG.replace("[platform]", "[platfrom]"),
        &[("policies/a.json", POLICIES)],
    );
    let (code, out) = run(&["validate"], &dir.config());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("platfrom"), "{out}");
    let typo = POLICIES.replace("allowed_hostnames", "allowed_hostname");
    let dir = Dir::new(CONFIG, &[("policies/a.json", &typo)]);
    let (code, out) = run(&["validate"], &dir.config());
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("a.json: [0].egress") && out.contains("allowed_hostname"),
        "{out}"
    );
}

#[test]
fn check_prints_one_line_and_exits_by_verdict() {
    let dir = valid();
    let (code, out) = run(
        &["check", "--source", "10.200.1.2", "registry.npmjs.org"],
        &dir.config(),
    );
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "allow reason=hostname policy=np_1 rule=hostname:*.npmjs.org devbox=dbx_1"
        )
    );
    let (code, out) = run(
        &["check", "--source", "10.200.1.2", "npmjs.org"],
        &dir.config(),
    );
    assert_eq!(
        (code, out.trim()),
        (1, "deny reason=no_match policy=np_1 rule=- devbox=dbx_1")
    );
    let (code, out) = run(
        &["check", "--source", "fd00::2", "10.12.9.9:443"],
        &dir.config(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rule=cidr:10.12.0.0/16:443"), "{out}");
    let (code, _) = run(
        &["check", "--source", "fd00::2", "10.12.9.9:80"],
        &dir.config(),
    );
    assert_eq!(code, 1);
    let (code, out) = run(
        &["check", "--source", "10.200.1.3", "github.com"],
        &dir.config(),
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("reason=policy_not_found policy=np_missing"),
        "{out}"
    );
    let (code, out) = run(
        &["check", "--source", "192.0.2.1", "github.com"],
        &dir.config(),
    );
    assert_eq!(code, 1);
    assert!(out.contains("reason=unknown_source_denied"), "{out}");
    let (code, _) = run(
        &["check", "--source", "10.200.1.2", "gateway.runloop.ai"],
        &dir.config(),
    );
    assert_eq!(code, 0);
}

#[test]
fn check_on_an_invalid_config_exits_2() {
    let dir = Dir::new("mode = 1\n", &[]);
    let (code, out) = run(&["check", "--source", "10.0.0.1", "a.com"], &dir.config());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("proxy.toml") && out.contains("mode"), "{out}");
}
