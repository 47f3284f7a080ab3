//! The admin listener (`[listen] admin`), HTTP/1.1 and HTTP/2 (prior
//! knowledge, as Runloop's npm SDK speaks by default):
//!
//! - `GET /healthz`: 200 `ok` while the process serves;
//! - `GET /readyz`: 200 once every listener is up and the state is loaded,
//!   503 before (and while draining);
//! - `GET /metrics`: whatever the metrics function renders (Prometheus text);
//! - `/v1/*`: the API ([`crate::api`]), when the store is open.
//!
//! Connections are bounded ([`MAX_CONNECTIONS`]) and must send their request
//! head within [`HEADER_TIMEOUT`]; on shutdown the listener stops accepting
//! and open connections finish their current request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::api::{self, ApiState};

/// Admin connections open at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 256;
/// Concurrent requests on one HTTP/2 connection.
pub const MAX_STREAMS: u32 = 64;
/// How long a client may take to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders the metrics page.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;
/// Whether the proxy is ready.
pub type ReadyFn = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the admin listener serves.
pub struct AdminState {
    /// The `/v1` API; `None` answers 404 there.
    pub api: Option<Arc<ApiState>>,
    /// Renders `/metrics`.
    pub metrics: MetricsFn,
    /// Whether `/readyz` answers 200.
    pub ready: ReadyFn,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("api", &self.api.is_some())
            .field("ready", &(self.ready)())
            .finish_non_exhaustive()
    }
}

/// Serves admin connections on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(listener = "admin", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (admin, stop) = (admin.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection(stream, admin, stop).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    admin: Arc<AdminState>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req: Request<Incoming>| {
        let admin = admin.clone();
        async move { Ok::<_, Infallible>(route(&admin, req).await) }
    });
    // HTTP/1.1, and HTTP/2 with prior knowledge (the npm SDK's default).
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let stopped = async move {
        // The guard `wait_for` returns must not live across an await.
        let _ = stop.wait_for(|s| *s).await.map(|_| ());
    };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(listener = "admin", error = %e, "connection ended");
    }
}

/// Answers one admin request.
pub async fn route<B>(admin: &AdminState, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        return match &admin.api {
            Some(api_state) => api::handle(api_state, req).await,
            None => text(StatusCode::NOT_FOUND, "the API is not enabled\n"),
        };
    }
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match (path, get) {
        ("/healthz", true) => text(StatusCode::OK, "ok\n"),
        ("/readyz", true) if (admin.ready)() => text(StatusCode::OK, "ready\n"),
        ("/readyz", true) => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        ("/metrics", true) => {
            let mut resp = text(StatusCode::OK, (admin.metrics)());
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        ("/healthz" | "/readyz" | "/metrics", false) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    api::http::with_type(status, body, "text/plain; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicBool, Ordering};

    fn admin(ready: &Arc<AtomicBool>) -> AdminState {
        let ready = ready.clone();
        AdminState {
            api: None,
            metrics: Arc::new(|| "egress_proxy_up 1\n".to_owned()),
            ready: Arc::new(move || ready.load(Ordering::Relaxed)),
        }
    }

    async fn get(admin: &AdminState, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(Empty::<Bytes>::new()).unwrap();
        let resp = route(admin, req).await;
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_and_readiness() {
        let ready = Arc::new(AtomicBool::new(false));
        let a = admin(&ready);
        assert_eq!(get(&a, "/healthz").await, (StatusCode::OK, "ok\n".into()));
        assert_eq!(get(&a, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get(&a, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_come_from_the_given_function() {
        let (status, body) = get(&admin(&Arc::default()), "/metrics").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "egress_proxy_up 1\n")
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_a_missing_api_are_404() {
        assert_eq!(
            get(&admin(&Arc::default()), "/nope").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&admin(&Arc::default()), "/v1/network-policies").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
