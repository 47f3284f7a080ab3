//! Router tests without sockets: requests in, JSON answers out, on a real
//! store in a temporary directory and a config with file-defined records.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use policy_matcher::Compiled;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::state::{FilePart, StateSync};
use super::{ApiState, handle};
use crate::store::SqliteStore;

const T1: &str = "tok-1";
const T2: &str = "tok-2";

struct Harness {
    api: Arc<ApiState>,
    target: Arc<ArcSwap<Compiled>>,
    dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

fn hex_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[api]
state_dir = "{state}"
max_policies_per_account = 4

[[api.tokens]]
account = "acct_1"
token_sha256 = "{t1}"

[[api.tokens]]
account = "acct_2"
token_sha256 = "{t2}"

[[policies]]
id = "np_file"
name = "file-policy"
egress = {{ allowed_hostnames = ["example.com"] }}

[[devboxes]]
id = "dbx_file"
account = "acct_1"
addresses = ["10.9.0.2"]
network_policy_id = "np_file"
"#,
        state = dir.join("state").display(),
        t1 = hex_sha256(T1),
        t2 = hex_sha256(T2),
    )
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir)
    }

    fn open(dir: tempfile::TempDir) -> Self {
        let text = config(dir.path());
        let loaded = crate::config::load_str(&text, "test.toml", dir.path()).unwrap();
        let store = SqliteStore::open(&loaded.config.api.state_dir).unwrap();
        let sync = Arc::new(StateSync::new(
            FilePart::from_loaded(&loaded),
            Arc::new(store),
        ));
        let (compiled, _) = sync.compile().unwrap();
        let target = Arc::new(ArcSwap::from_pointee(compiled));
        let api = Arc::new(ApiState::new(
            loaded.config.api.clone(),
            sync,
            target.clone(),
        ));
        Self { api, target, dir }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = handle(&self.api, req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::GET, uri, Some(token), None).await
    }

    async fn post(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    async fn create(&self, token: &str, name: &str) -> Value {
        let a = self
            .post("/v1/network-policies", token, json!({"name": name}))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body
    }

    fn verdict(&self, source: &str, name: &str) -> &'static str {
        let state = self.target.load();
        let q = policy_matcher::Query {
            source: source.parse().unwrap(),
            dest: "0.0.0.0:443".parse().unwrap(),
            name: Some(name),
        };
        state.decide(&q).verdict.as_str()
    }
}

fn assert_client_error(a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.headers["x-should-retry"], "false");
    let message = a.body["message"].as_str().unwrap();
    assert!(!message.is_empty());
}

mod bindings;
mod policies;
