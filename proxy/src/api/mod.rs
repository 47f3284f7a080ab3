//! The `/v1` API, Runloop-compatible so that Runloop's official SDKs work
//! against it with `base_url`:
//!
//! - `/v1/network-policies` ([`policies`]): create, list, get, update, delete;
//! - `/v1/devboxes`, `/v1/blueprints` ([`bindings`]): bind and unbind
//!   source addresses;
//! - `/v1/check` ([`check`]): the live decision for a would-be connection;
//! - `/v1/openapi.json`: the OpenAPI 3 document of all of it (no token).
//!
//! Every other route needs `Authorization: Bearer <token>` ([`auth`]). A
//! POST retried with the same `x-request-id` gets the first answer again
//! ([`idempotency`]).
//! Writes go through [`write`]: validated, compiled with the file part,
//! committed to the [`crate::store`], and in force before the answer.
//! Errors are [`error::ApiError`] JSON answers.

pub mod auth;
pub mod bindings;
pub mod check;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod list;
pub mod policies;
pub mod start;
pub mod state;
pub mod write;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::config::Api;

use self::auth::Account;
use self::error::ApiError;
use self::idempotency::Replays;
use self::list::ListParams;
use self::state::{StateSync, Target};

/// The OpenAPI document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the API serves from: its settings, the state sync, and the data
/// path's state it keeps current.
pub struct ApiState {
    config: Api,
    sync: Arc<StateSync>,
    target: Arc<dyn Target>,
    replays: Replays,
}

/// The body of `…/delete`: nothing, or a JSON object (ignored).
type EmptyBody = serde_json::Map<String, serde_json::Value>;

/// One parsed request, ready to dispatch.
struct Call<'a, B> {
    api: &'a Arc<ApiState>,
    account: Account,
    method: Method,
    query: Vec<(String, String)>,
    body: B,
}

// === impl ApiState ===

impl ApiState {
    /// The API with `config`, writing through `sync` into `target`.
    pub fn new(config: Api, sync: Arc<StateSync>, target: Arc<dyn Target>) -> Self {
        Self {
            config,
            sync,
            target,
            replays: Replays::default(),
        }
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("tokens", &self.config.tokens.len())
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

/// Answers one `/v1` request; never fails (errors are JSON answers).
pub async fn handle<B>(api: &Arc<ApiState>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = route(api, req)
        .await
        .unwrap_or_else(ApiError::into_response);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "api request");
    resp
}

async fn route<B>(api: &Arc<ApiState>, req: Request<B>) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let rest = path
        .strip_prefix("/v1/")
        .ok_or_else(|| no_route(&parts.method, path))?;
    if rest == "openapi.json" {
        return match parts.method {
            Method::GET | Method::HEAD => {
                Ok(http::with_type(StatusCode::OK, OPENAPI, "application/json"))
            }
            _ => Err(not_allowed(&parts.method, path, "GET, HEAD")),
        };
    }
    let account = auth::account(&parts.headers, &api.config.tokens)?;
    let segments: Vec<String> = rest
        .split('/')
        .map(http::decode)
        .collect::<Result<_, _>>()?;
    if segments.iter().any(String::is_empty) {
        return Err(no_route(&parts.method, path));
    }
    let key = match parts.method {
        // The same key on another path is another request.
        Method::POST => Replays::key(&parts.headers).map(|k| format!("{path} {k}")),
        _ => None,
    };
    if let Some(kept) = key.as_deref().and_then(|k| api.replays.get(&account.0, k)) {
        return Ok(http::with_type(kept.status, kept.body, "application/json"));
    }
    let owner = account.0.clone();
    let call = Call {
        api,
        account,
        method: parts.method.clone(),
        query: http::query_pairs(parts.uri.query())?,
        body,
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let answer = match call.dispatch(&segs).await {
        Err(ApiError::NoRoute { .. }) => return Err(no_route(&parts.method, path)),
        Err(ApiError::MethodNotAllowed { .. }) => {
            return Err(not_allowed(&parts.method, path, allowed(&segs)));
        }
        other => other?,
    };
    match key {
        Some(key) if answer.status().is_success() => Ok(remember(api, &owner, &key, answer).await),
        _ => Ok(answer),
    }
}

/// Keeps a successful POST answer for a retry with the same key.
async fn remember(
    api: &ApiState,
    account: &str,
    key: &str,
    answer: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = answer.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let kept = idempotency::Kept {
        status: parts.status,
        body: body.clone(),
    };
    api.replays.put(account, key, kept);
    Response::from_parts(parts, Full::new(body))
}

/// The methods a known path serves (the `Allow` header of a 405).
fn allowed(segments: &[&str]) -> &'static str {
    match segments {
        ["check"] => "GET",
        [_, _, "delete"] => "POST",
        _ => "GET, POST",
    }
}

// === impl Call ===

impl<B> Call<'_, B>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn dispatch(self, segs: &[&str]) -> Result<Response<Full<Bytes>>, ApiError> {
        match segs.split_first() {
            Some((&"network-policies", tail)) => self.policies(tail).await,
            Some((&"devboxes", tail)) => self.devboxes(tail).await,
            Some((&"blueprints", tail)) => self.blueprints(tail).await,
            Some((&"check", [])) if self.method == Method::GET => {
                ok(&check::check(self.api, &self.account, &self.query)?)
            }
            Some((&"check", [])) => Err(method_error()),
            _ => Err(route_error()),
        }
    }

    async fn policies(self, tail: &[&str]) -> Result<Response<Full<Bytes>>, ApiError> {
        let (api, account) = (self.api, self.account.clone());
        match (&self.method, tail) {
            (&Method::GET, []) => {
                let page = policies::list(api, &account, &ListParams::parse(&self.query)?);
                ok(&page.view("network_policies"))
            }
            (&Method::POST, []) => {
                let fields = http::read_json(self.body).await?;
                ok(&policies::create(api, account, fields).await?)
            }
            (&Method::GET, [id]) => ok(&policies::get(api, &account, id)?),
            (&Method::POST, [id]) => {
                let fields = http::read_json(self.body).await?;
                ok(&policies::update(api, account, (*id).to_owned(), fields).await?)
            }
            (&Method::POST, [id, "delete"]) => {
                http::read_json::<EmptyBody, _>(self.body).await?;
                ok(&policies::delete(api, account, (*id).to_owned()).await?)
            }
            (_, [] | [_] | [_, "delete"]) => Err(method_error()),
            _ => Err(route_error()),
        }
    }

    async fn devboxes(self, tail: &[&str]) -> Result<Response<Full<Bytes>>, ApiError> {
        use bindings::devboxes;
        let (api, account) = (self.api, self.account.clone());
        match (&self.method, tail) {
            (&Method::GET, []) => {
                let page = devboxes::list(api, &account, &ListParams::parse(&self.query)?);
                ok(&page.view("devboxes"))
            }
            (&Method::POST, []) => {
                let fields = http::read_json(self.body).await?;
                ok(&devboxes::create(api, account, fields).await?)
            }
            (&Method::GET, [id]) => ok(&devboxes::get(api, &account, id)?),
            (&Method::POST, [id]) => {
                let fields = http::read_json(self.body).await?;
                ok(&devboxes::update(api, account, (*id).to_owned(), fields).await?)
            }
            (&Method::POST, [id, "delete"]) => {
                http::read_json::<EmptyBody, _>(self.body).await?;
                ok(&devboxes::delete(api, account, (*id).to_owned()).await?)
            }
            (_, [] | [_] | [_, "delete"]) => Err(method_error()),
            _ => Err(route_error()),
        }
    }

    async fn blueprints(self, tail: &[&str]) -> Result<Response<Full<Bytes>>, ApiError> {
        use bindings::blueprints;
        let (api, account) = (self.api, self.account.clone());
        match (&self.method, tail) {
            (&Method::GET, []) => {
                let page = blueprints::list(api, &account, &ListParams::parse(&self.query)?);
                ok(&page.view("blueprints"))
            }
            (&Method::POST, []) => {
                let fields = http::read_json(self.body).await?;
                ok(&blueprints::create(api, account, fields).await?)
            }
            (&Method::GET, [id]) => ok(&blueprints::get(api, &account, id)?),
            (&Method::POST, [id]) => {
                let fields = http::read_json(self.body).await?;
                ok(&blueprints::update(api, account, (*id).to_owned(), fields).await?)
            }
            (&Method::POST, [id, "delete"]) => {
                http::read_json::<EmptyBody, _>(self.body).await?;
                ok(&blueprints::delete(api, account, (*id).to_owned()).await?)
            }
            (_, [] | [_] | [_, "delete"]) => Err(method_error()),
            _ => Err(route_error()),
        }
    }
}

fn no_route(method: &Method, path: &str) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: path.to_owned(),
    }
}

fn ok<T: Serialize + ?Sized>(value: &T) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(http::json(StatusCode::OK, value))
}

fn not_allowed(method: &Method, path: &str, allow: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_owned(),
        allow,
    }
}

/// Placeholders the router replaces with the request's own method and path.
fn method_error() -> ApiError {
    not_allowed(&Method::GET, "", "")
}

fn route_error() -> ApiError {
    ApiError::NoRoute {
        method: String::new(),
        path: String::new(),
    }
}

#[cfg(test)]
mod tests;
