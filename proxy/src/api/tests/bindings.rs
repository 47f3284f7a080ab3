//! `/v1/devboxes`, `/v1/blueprints` and `/v1/check`: bindings reach the
//! data path's state before the answer.

use super::*;

async fn policy(h: &Harness, token: &str, name: &str, host: &str) -> String {
    let body = json!({"name": name, "allowed_hostnames": [host]});
    let a = h.post("/v1/network-policies", token, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_bound_devbox_is_in_force_before_the_answer() {
    let h = Harness::new();
    let np = policy(&h, T1, "gh", "github.com").await;
    assert_eq!(
        h.verdict("10.0.0.2", "github.com"),
        "deny",
        "unknown source"
    );
    let body = json!({"id": "dbx_a", "addresses": ["10.0.0.2"], "launch_parameters": {"network_policy_id": np, "launch_commands": ["x"]}});
    let a = h.post("/v1/devboxes", T1, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["launch_parameters"]["network_policy_id"],
        np.as_str()
    );
    assert_eq!(h.verdict("10.0.0.2", "github.com"), "allow");
    assert_eq!(h.verdict("10.0.0.2", "example.org"), "deny");
    let upd = format!("/v1/network-policies/{np}");
    h.post(&upd, T1, json!({"allowed_hostnames": ["example.org"]}))
        .await;
    assert_eq!(h.verdict("10.0.0.2", "example.org"), "allow");
    let check = h
        .get("/v1/check?source=10.0.0.2&host=example.org", T1)
        .await;
    assert_eq!(check.body["verdict"], "allow", "{}", check.body);
    assert_eq!(check.body["policy_id"], np.as_str());
    assert_eq!(check.body["rule"], "hostname:example.org");
    let del = h.post("/v1/devboxes/dbx_a/delete", T1, json!({})).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert_eq!(h.verdict("10.0.0.2", "example.org"), "deny");
}

#[tokio::test]
async fn conflicting_or_bad_bindings_are_refused_precisely() {
    let h = Harness::new();
    let taken = h
        .post("/v1/devboxes", T1, json!({"addresses": ["10.9.0.2"]}))
        .await;
    assert_client_error(&taken, StatusCode::CONFLICT);
    let msg = taken.body["message"].as_str().unwrap();
    assert!(
        msg.contains("10.9.0.2") && msg.contains("dbx_file"),
        "{msg}"
    );
    let bad = h
        .post("/v1/devboxes", T1, json!({"addresses": ["10.0.0.1/8"]}))
        .await;
    assert_client_error(&bad, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["issues"][0]["path"], "addresses[0]");
    let none = h.post("/v1/devboxes", T1, json!({"addresses": []})).await;
    assert_client_error(&none, StatusCode::BAD_REQUEST);
    let key = h
        .post(
            "/v1/devboxes",
            T1,
            json!({"addresses": ["10.0.0.3"], "tunnel_keys": ["UP"]}),
        )
        .await;
    assert_client_error(&key, StatusCode::BAD_REQUEST);
    let np2 = policy(&h, T2, "theirs", "a.com").await;
    let foreign =
        json!({"addresses": ["10.0.0.4"], "launch_parameters": {"network_policy_id": np2}});
    let a = h.post("/v1/devboxes", T1, foreign).await;
    assert_client_error(&a, StatusCode::BAD_REQUEST);
    let dup = h
        .post(
            "/v1/devboxes",
            T1,
            json!({"id": "dbx_file", "addresses": ["10.0.0.5"]}),
        )
        .await;
    assert_client_error(&dup, StatusCode::CONFLICT);
    let ro = h.post("/v1/devboxes/dbx_file/delete", T1, json!({})).await;
    assert_client_error(&ro, StatusCode::CONFLICT);
    assert_client_error(
        &h.get("/v1/devboxes/dbx_file", T2).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        h.get("/v1/devboxes/dbx_file", T1).await.body["source"],
        "config"
    );
}

#[tokio::test]
async fn blueprints_bind_builds_and_pass_their_runtime_policy_on() {
    let h = Harness::new();
    let build = policy(&h, T1, "build", "pypi.org").await;
    let runtime = policy(&h, T1, "runtime", "api.openai.com").await;
    let body = json!({"id": "bpt_a", "network_policy_id": build, "build_addresses": ["10.1.0.0/24"],
        "launch_parameters": {"network_policy_id": runtime}});
    let a = h.post("/v1/blueprints", T1, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.verdict("10.1.0.7", "pypi.org"), "allow");
    let dbx = json!({"addresses": ["10.2.0.2"], "blueprint_id": "bpt_a"});
    let d = h.post("/v1/devboxes", T1, dbx).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(h.verdict("10.2.0.2", "api.openai.com"), "allow");
    assert_eq!(h.verdict("10.2.0.2", "pypi.org"), "deny");
    let in_use = h
        .post(
            &format!("/v1/network-policies/{runtime}/delete"),
            T1,
            json!({}),
        )
        .await;
    assert_client_error(&in_use, StatusCode::CONFLICT);
    let bp_in_use = h.post("/v1/blueprints/bpt_a/delete", T1, json!({})).await;
    assert_client_error(&bp_in_use, StatusCode::CONFLICT);
    let done = h
        .post("/v1/blueprints/bpt_a", T1, json!({"build_addresses": []}))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(h.verdict("10.1.0.7", "pypi.org"), "deny", "build unbound");
    let dbx_id = d.body["id"].as_str().unwrap();
    assert!(dbx_id.starts_with("dbx_"));
    h.post(&format!("/v1/devboxes/{dbx_id}/delete"), T1, json!({}))
        .await;
    let gone = h.post("/v1/blueprints/bpt_a/delete", T1, json!({})).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    let list = h.get("/v1/blueprints", T1).await.body;
    assert_eq!(list["blueprints"], json!([]));
    assert_eq!(
        h.get("/v1/devboxes", T1).await.body["total_count"],
        1,
        "the config devbox"
    );
}

#[tokio::test]
async fn check_hides_other_accounts_devboxes() {
    let h = Harness::new();
    let a = h
        .get("/v1/check?source=10.9.0.2&host=example.com", T2)
        .await;
    assert_client_error(&a, StatusCode::NOT_FOUND);
    let mine = h
        .get("/v1/check?source=10.9.0.2&host=example.com", T1)
        .await;
    assert_eq!(mine.body["verdict"], "allow", "{}", mine.body);
    let bad = h.get("/v1/check?source=nope&host=example.com", T1).await;
    assert_client_error(&bad, StatusCode::BAD_REQUEST);
}
