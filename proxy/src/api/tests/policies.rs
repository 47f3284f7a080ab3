//! `/v1/network-policies` as the SDKs call it.

use super::*;

#[tokio::test]
async fn create_answers_the_whole_view() {
    let h = Harness::new();
    let body = json!({"name": "agents", "description": "d", "allowed_hostnames": ["GitHub.com", "*.npmjs.org"],
        "allowed_cidrs": [{"cidr": "10.12.0.0/16", "ports": [{"port": 443}, {"port": 8000, "end_port": 8100, "protocol": "TCP"}]}],
        "allow_all": null, "allow_mcp_gateway": true});
    let a = h.post("/v1/network-policies", T1, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let p = a.body;
    assert!(p["id"].as_str().unwrap().starts_with("np_"));
    assert_eq!(p["name"], "agents");
    assert_eq!(p["description"], "d");
    assert_eq!(p["create_time_ms"], p["update_time_ms"]);
    let egress = p["egress"].as_object().unwrap();
    for field in [
        "allow_all",
        "allowed_hostnames",
        "allowed_cidrs",
        "allow_devbox_to_devbox",
        "allow_agent_gateway",
        "allow_mcp_gateway",
        "allow_runloop_mirrors",
    ] {
        assert!(egress.contains_key(field), "{field} missing: {p}");
    }
    assert_eq!(egress["allow_mcp_gateway"], true);
    assert_eq!(egress["allow_all"], false);
    assert_eq!(egress["allowed_cidrs"][0]["ports"][1]["end_port"], 8100);
    let got = h
        .get(
            &format!("/v1/network-policies/{}", p["id"].as_str().unwrap()),
            T1,
        )
        .await;
    assert_eq!(got.body, p);
}

#[tokio::test]
async fn tokens_are_required_and_accounts_are_isolated() {
    let h = Harness::new();
    let a = h
        .call(Method::GET, "/v1/network-policies", None, None)
        .await;
    assert_client_error(&a, StatusCode::UNAUTHORIZED);
    let a = h.get("/v1/network-policies", "tok-unknown").await;
    assert_client_error(&a, StatusCode::UNAUTHORIZED);
    let id = h.create(T1, "mine").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/network-policies/{id}");
    assert_client_error(&h.get(&path, T2).await, StatusCode::NOT_FOUND);
    assert_client_error(
        &h.post(&path, T2, json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
    );
    let del = h.post(&format!("{path}/delete"), T2, json!({})).await;
    assert_client_error(&del, StatusCode::NOT_FOUND);
    let list = h.get("/v1/network-policies", T2).await;
    assert!(
        list.body["network_policies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != id.as_str())
    );
}

#[tokio::test]
async fn names_are_unique_per_account() {
    let h = Harness::new();
    h.create(T1, "same").await;
    let dup = h
        .post("/v1/network-policies", T1, json!({"name": "same"}))
        .await;
    assert_client_error(&dup, StatusCode::CONFLICT);
    h.create(T2, "same").await;
    let file = h
        .post("/v1/network-policies", T1, json!({"name": "file-policy"}))
        .await;
    assert_client_error(&file, StatusCode::CONFLICT);
    let other = h.create(T1, "other").await;
    let rename = format!("/v1/network-policies/{}", other["id"].as_str().unwrap());
    assert_client_error(
        &h.post(&rename, T1, json!({"name": "same"})).await,
        StatusCode::CONFLICT,
    );
}

#[tokio::test]
async fn bad_values_are_400_naming_path_and_value() {
    let h = Harness::new();
    let cases = [
        (
            json!({"name": "a", "allowed_hostnames": ["ok.com", "git*.com"]}),
            "allowed_hostnames[1]",
            "git*.com",
        ),
        (
            json!({"name": "a", "allowed_cidrs": [{"cidr": "10.0.0.1/8"}]}),
            "allowed_cidrs[0].cidr",
            "10.0.0.1/8",
        ),
        (
            json!({"name": "a", "allowed_cidrs": [{"cidr": "10.0.0.0/8", "ports": [{"port": 70000}]}]}),
            "allowed_cidrs[0].ports[0].port",
            "70000",
        ),
        (
            json!({"name": "a", "allowed_cidrs": [{"cidr": "10.0.0.0/8", "ports": [{"port": 1, "protocol": "SCTP"}]}]}),
            "allowed_cidrs[0].ports[0].protocol",
            "SCTP",
        ),
        (json!({"name": "  "}), "name", "  "),
    ];
    for (body, path, value) in cases {
        let a = h.post("/v1/network-policies", T1, body).await;
        assert_client_error(&a, StatusCode::BAD_REQUEST);
        let message = a.body["message"].as_str().unwrap();
        assert!(
            message.contains(path) && message.contains(value),
            "{message}"
        );
        assert_eq!(a.body["issues"][0]["path"], path);
    }
    let typo = h
        .post(
            "/v1/network-policies",
            T1,
            json!({"name": "a", "allowed_hostname": []}),
        )
        .await;
    assert_client_error(&typo, StatusCode::BAD_REQUEST);
    let no_name = h
        .post("/v1/network-policies", T1, json!({"name": null}))
        .await;
    assert_client_error(&no_name, StatusCode::BAD_REQUEST);
    let not_json = h
        .call(
            Method::POST,
            "/v1/network-policies",
            Some(T1),
            Some(json!("x")),
        )
        .await;
    assert_client_error(&not_json, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn update_keeps_absent_and_null_and_replaces_lists() {
    let h = Harness::new();
    let body = json!({"name": "u", "description": "keep", "allowed_hostnames": ["a.com", "b.com"], "allow_agent_gateway": true});
    let created = h.post("/v1/network-policies", T1, body).await.body;
    let path = format!("/v1/network-policies/{}", created["id"].as_str().unwrap());
    let upd = h.post(&path, T1, json!({"description": null, "allowed_hostnames": ["c.com"], "allow_agent_gateway": null})).await;
    assert_eq!(upd.status, StatusCode::OK, "{}", upd.body);
    let p = upd.body;
    assert_eq!(p["name"], "u");
    assert_eq!(p["description"], "keep");
    assert_eq!(p["egress"]["allowed_hostnames"], json!(["c.com"]));
    assert_eq!(p["egress"]["allow_agent_gateway"], true);
    assert!(p["update_time_ms"].as_i64() > created["update_time_ms"].as_i64());
    assert_eq!(p["create_time_ms"], created["create_time_ms"]);
    let empty = h.post(&path, T1, json!({})).await.body;
    assert_eq!(empty["egress"], p["egress"]);
    let cleared = h
        .post(&path, T1, json!({"allowed_hostnames": []}))
        .await
        .body;
    assert_eq!(cleared["egress"]["allowed_hostnames"], json!([]));
    let bad = h.post(&path, T1, json!({"allowed_hostnames": ["*"]})).await;
    assert_client_error(&bad, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.get(&path, T1).await.body,
        cleared,
        "a refused update changes nothing"
    );
}

#[tokio::test]
async fn the_account_limit_is_a_409_saying_so() {
    let h = Harness::new();
    for i in 0..4 {
        h.create(T1, &format!("p{i}")).await;
    }
    let a = h
        .post("/v1/network-policies", T1, json!({"name": "p4"}))
        .await;
    assert_client_error(&a, StatusCode::CONFLICT);
    assert!(
        a.body["message"].as_str().unwrap().contains("limit"),
        "{}",
        a.body
    );
    h.create(T2, "p4").await;
}

#[tokio::test]
async fn list_pages_and_filters() {
    let h = Harness::new();
    let mut ids = Vec::new();
    for name in ["alpha-prod", "beta-prod", "gamma-dev"] {
        ids.push(h.create(T1, name).await["id"].as_str().unwrap().to_owned());
    }
    let all = h.get("/v1/network-policies", T1).await.body;
    assert_eq!(
        all["total_count"], 4,
        "three own and the file policy: {all}"
    );
    assert_eq!(all["has_more"], false);
    let mut seen = Vec::new();
    let mut uri = "/v1/network-policies?limit=1".to_owned();
    loop {
        let page = h.get(&uri, T1).await.body;
        let items = page["network_policies"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        let last = items[0]["id"].as_str().unwrap().to_owned();
        seen.push(last.clone());
        if page["has_more"] == false {
            break;
        }
        uri = format!("/v1/network-policies?limit=1&starting_after={last}");
    }
    assert_eq!(seen.len(), 4);
    let by_name = h.get("/v1/network-policies?name=PROD", T1).await.body;
    assert_eq!(by_name["total_count"], 2);
    let by_id = h
        .get(&format!("/v1/network-policies?id={}", ids[2]), T1)
        .await
        .body;
    assert_eq!(by_id["network_policies"][0]["name"], "gamma-dev");
    let search = h.get("/v1/network-policies?search=beta", T1).await.body;
    assert_eq!(search["network_policies"].as_array().unwrap().len(), 1);
    let search_id = h
        .get(&format!("/v1/network-policies?search={}", ids[0]), T1)
        .await
        .body;
    assert_eq!(search_id["network_policies"][0]["name"], "alpha-prod");
    let no_count = h
        .get("/v1/network-policies?include_total_count=false", T1)
        .await
        .body;
    assert!(no_count.get("total_count").is_none(), "{no_count}");
    let bad = h.get("/v1/network-policies?limit=5001", T1).await;
    assert_client_error(&bad, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn file_policies_are_visible_and_read_only() {
    let h = Harness::new();
    let got = h.get("/v1/network-policies/np_file", T2).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["name"], "file-policy");
    let upd = h
        .post("/v1/network-policies/np_file", T1, json!({"name": "x"}))
        .await;
    assert_client_error(&upd, StatusCode::CONFLICT);
    let del = h
        .post("/v1/network-policies/np_file/delete", T1, json!({}))
        .await;
    assert_client_error(&del, StatusCode::CONFLICT);
}

#[tokio::test]
async fn delete_answers_the_policy_and_ids_may_be_percent_encoded() {
    let h = Harness::new();
    let p = h.create(T1, "gone").await;
    let id = p["id"].as_str().unwrap();
    let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let got = h.get(&format!("/v1/network-policies/{encoded}"), T1).await;
    assert_eq!(got.body, p);
    let del = h
        .call(
            Method::POST,
            &format!("/v1/network-policies/{encoded}/delete"),
            Some(T1),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert_eq!(del.body, p);
    assert_client_error(
        &h.get(&format!("/v1/network-policies/{id}"), T1).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn writes_survive_reopening_the_store() {
    let h = Harness::new();
    let p = h.create(T1, "durable").await;
    let Harness { api, dir, .. } = h;
    drop(api);
    let again = Harness::open(dir);
    let got = again
        .get(
            &format!("/v1/network-policies/{}", p["id"].as_str().unwrap()),
            T1,
        )
        .await;
    assert_eq!(got.body, p);
}

#[tokio::test]
async fn routes_and_methods_are_checked() {
    let h = Harness::new();
    assert_client_error(&h.get("/v1/nothing", T1).await, StatusCode::NOT_FOUND);
    let a = h
        .call(Method::DELETE, "/v1/network-policies", Some(T1), None)
        .await;
    assert_client_error(&a, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "GET, POST");
    let body = h
        .call(
            Method::POST,
            "/v1/network-policies/x/delete",
            Some(T1),
            Some(json!(7)),
        )
        .await;
    assert_client_error(&body, StatusCode::BAD_REQUEST);
    let doc = h.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/v1/network-policies"].is_object());
}

#[tokio::test]
async fn a_retried_create_replays_the_first_answer() {
    let h = Harness::new();
    let send = || async {
        let req = Request::post("/v1/network-policies")
            .header("authorization", format!("Bearer {T1}"))
            .header("x-request-id", "stainless-python-retry-1")
            .body(Full::new(Bytes::from(r#"{"name": "once"}"#)))
            .unwrap();
        let resp = handle(&h.api, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.unwrap().to_bytes()
    };
    let first = send().await;
    assert_eq!(send().await, first, "not made twice, not a 409");
    let list = h.get("/v1/network-policies?name=once", T1).await.body;
    assert_eq!(list["total_count"], 1);
}
