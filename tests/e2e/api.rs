//! The `/v1` API on real connections: a policy and a devbox binding created
//! through the API decide the devbox's next intercepted connection (REDIRECT)
//! as soon as the write is answered; an update flips it; a SIGKILL right after
//! the answers loses nothing; unbinding denies again.

use std::time::{Duration, Instant};

use crate::support::{self, Curl, ProxyProc, TestCa, TestServer, Topology};

const NAMES: &[&str] = &["allowed.test", "denied.test"];
/// The bearer token whose SHA-256 the config lists.
const TOKEN: &str = "e2e-token";
const TOKEN_SHA256: &str = "cc318af2129b329b084ebdf17f2608bf3d8a7da6082f345cebf205833876fd88";
const ADMIN: &str = "127.0.0.1:9901";

fn config() -> String {
    format!(
        r#"
unknown_source = "deny"
[listen]
transparent = ["0.0.0.0:15001", "[::]:15001"]
admin = "{ADMIN}"
[upstream]
deny_private = false
[[api.tokens]]
account = "acct_1"
token_sha256 = "{TOKEN_SHA256}"
"#
    )
}

fn curl_ok(topo: &Topology, ca: &TestCa, name: &str) -> bool {
    Curl::new(&format!("https://{name}/"))
        .resolve(name, 443, Topology::server_ip(false))
        .cacert(ca.pem_path())
        .max_time(Duration::from_secs(2))
        .run(&topo.client)
        .unwrap()
        .success()
}

/// POSTs `body` to the API (from the gateway, where the admin listener is)
/// and returns the answer's JSON; panics unless it is a 2xx.
fn post(topo: &Topology, path: &str, body: &str) -> serde_json::Value {
    let url = format!("http://{ADMIN}{path}");
    let auth = format!("Authorization: Bearer {TOKEN}");
    let args = [
        "-sS",
        "--fail-with-body",
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &url,
    ];
    let out = topo
        .gateway
        .output("curl", &args, None, Duration::from_secs(5))
        .unwrap();
    assert!(out.success(), "{path}: {out}\n{}", out.stdout);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn an_api_policy_decides_the_next_connection_and_survives_a_kill() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    let ca = TestCa::new().unwrap();
    topo.redirect(15001).unwrap();
    let _server = TestServer::tls(&topo.server, 443, ca.server_config(NAMES).unwrap()).unwrap();
    let proxy = ProxyProc::start(&topo.gateway, &config(), &[]).unwrap();
    assert!(!curl_ok(&topo, &ca, "allowed.test"), "unknown source");

    let policy = post(
        &topo,
        "/v1/network-policies",
        r#"{"name": "e2e", "allowed_hostnames": ["allowed.test"]}"#,
    );
    let id = policy["id"].as_str().unwrap();
    let bind = format!(
        r#"{{"id": "dbx_1", "addresses": ["10.77.1.2", "fd77:1::2"],
            "launch_parameters": {{"network_policy_id": "{id}"}}}}"#
    );
    post(&topo, "/v1/devboxes", &bind);
    let answered = Instant::now();
    assert!(curl_ok(&topo, &ca, "allowed.test"), "{}", proxy.logs());
    assert!(answered.elapsed() < Duration::from_secs(1));
    assert!(!curl_ok(&topo, &ca, "denied.test"));

    post(
        &topo,
        &format!("/v1/network-policies/{id}"),
        r#"{"allowed_hostnames": ["denied.test"], "description": null}"#,
    );
    assert!(curl_ok(&topo, &ca, "denied.test"));
    assert!(!curl_ok(&topo, &ca, "allowed.test"));

    let dir = proxy.kill().unwrap();
    let proxy = ProxyProc::start_in(&topo.gateway, dir).unwrap();
    assert!(curl_ok(&topo, &ca, "denied.test"), "{}", proxy.logs());

    post(&topo, "/v1/devboxes/dbx_1/delete", "");
    assert!(
        !curl_ok(&topo, &ca, "denied.test"),
        "unbound: unknown source"
    );
}
