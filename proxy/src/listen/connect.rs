//! The explicit proxy listener: `CONNECT host:port` tunnels and absolute-form
//! `GET http://host/path` requests, served with hyper (HTTP/1.1 framing,
//! keep-alive, upgrades).
//!
//! Both share the pipeline's decide and act steps: the target is decided
//! before any DNS lookup (see [`crate::target`]); a CONNECT tunnel's first
//! bytes are detected like an intercepted connection's, and a TLS SNI or
//! HTTP Host inside it must name the CONNECT authority, or the tunnel is
//! closed before the upstream sees a byte. Every request on a kept-alive
//! connection is decided on its own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::act::deny::deny;
use crate::decide::{self, Outcome, Reason};
use crate::detect::{Detected, Detection};
use crate::first_bytes::{self, ServerFirst};
use crate::pipeline::{self, ListenerKind};
use crate::shared::Shared;
use crate::target::{OpenError, Target};

type Body = BoxBody<Bytes, hyper::Error>;

/// Serves one client connection of the explicit proxy.
pub async fn handle(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let timeout = shared.config.detect.timeout;
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(shared, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(source = %peer, error = %e, "explicit proxy connection ended");
    }
}

async fn route(shared: Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        connect(shared, peer, req).await
    } else if req.uri().scheme().is_some() {
        super::forward::absolute_form(shared, peer, req).await
    } else {
        text(
            StatusCode::BAD_REQUEST,
            "egress-proxy: expected CONNECT or an absolute-form request\n",
        )
    }
}

/// `CONNECT host:port`: decide, dial, answer 200, then check and relay.
async fn connect(shared: Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let target = match authority_target(&req, None) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let state = shared.state.load_full();
    if let Err(resp) = host_agrees(&req, &target, &shared, &state, peer) {
        return *resp;
    }
    let (outcome, upstream, dest) =
        match crate::target::open(&shared, &state, peer.ip(), &target).await {
            Ok(opened) => opened,
            Err(e) => return open_failed(&shared, peer, &target, e),
        };
    pipeline::log_decision(
        ListenerKind::Connect,
        peer,
        Some(dest),
        Some(&target.host()),
        &outcome,
    );
    let on_upgrade = hyper::upgrade::on(req);
    let task_shared = shared.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return;
        };
        tunnel(
            &task_shared,
            peer,
            parts.io.into_inner(),
            &parts.read_buf,
            upstream,
            &target,
        )
        .await;
    });
    let mut resp = Response::new(empty());
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(&b"Connection established"[..]) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

/// Inside an established tunnel: detect, check the inner name, relay.
async fn tunnel(
    shared: &Shared,
    peer: SocketAddr,
    client: TcpStream,
    leftover: &[u8],
    upstream: TcpStream,
    target: &Target,
) {
    let server_first = ServerFirst {
        upstream: &upstream,
        idle: shared.config.limits.idle_timeout,
    };
    let first = first_bytes::read(
        &client,
        shared.config.detect.timeout,
        leftover,
        Some(server_first),
    )
    .await;
    let detected = match first.detection {
        Some(Detection::Done(d)) => d,
        Some(Detection::Reject(m)) => {
            return refuse(shared, peer, client, target, Reason::Malformed(m), None).await;
        }
        _ => return,
    };
    let inner = pipeline::name_of(Some(&detected));
    if let Some(name) = inner.filter(|n| !target.is_named_by(n)) {
        return refuse(
            shared,
            peer,
            client,
            target,
            Reason::NameMismatch,
            Some((detected, name)),
        )
        .await;
    }
    pipeline::splice_to(shared, client, upstream, first.bytes).await;
}

/// Closes a tunnel whose first bytes were refused (the upstream saw nothing).
async fn refuse(
    shared: &Shared,
    peer: SocketAddr,
    client: TcpStream,
    target: &Target,
    reason: Reason,
    inner: Option<(Detected, &str)>,
) {
    let outcome = decide::refused(reason, None);
    let name = inner.map(|(_, n)| n).unwrap_or("-");
    tracing::info!(listener = "connect", source = %peer, target = %target.host(), inner = name, reason = reason.detail(), verdict = "deny", "tunnel closed");
    let detected = inner.map(|(d, _)| d);
    deny(
        client,
        pipeline::deny_action(shared, detected.as_ref(), &outcome),
    )
    .await;
}

/// The target named by the request's authority (`default_port` for absolute-form).
pub(super) fn authority_target<B>(
    req: &Request<B>,
    default_port: Option<u16>,
) -> Result<Target, Box<Response<Body>>> {
    let Some(authority) = req.uri().authority() else {
        let msg = "egress-proxy: the request has no authority\n";
        return Err(Box::new(text(StatusCode::BAD_REQUEST, msg)));
    };
    let port = authority.port_u16().or(default_port);
    Target::parse(authority.as_str(), authority.host(), port).map_err(|e| {
        let msg = format!("egress-proxy: bad authority: {e}\n");
        Box::new(text(StatusCode::BAD_REQUEST, &msg))
    })
}

/// A Host header, when present, must name the same target; exactly one.
pub(super) fn host_agrees<B>(
    req: &Request<B>,
    target: &Target,
    shared: &Shared,
    state: &policy_matcher::Compiled,
    peer: SocketAddr,
) -> Result<(), Box<Response<Body>>> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    let agrees = match (first, second) {
        (None, _) => true,
        (Some(h), None) => host_header_names(h, target),
        (Some(_), Some(_)) => false,
    };
    if agrees {
        return Ok(());
    }
    let decision = state.decide_name(peer.ip(), &target.host());
    let outcome = decide::refused(Reason::NameMismatch, Some(decision));
    pipeline::log_decision(
        ListenerKind::Connect,
        peer,
        None,
        Some(&target.host()),
        &outcome,
    );
    let _ = shared;
    Err(Box::new(forbidden(&target.host(), &outcome)))
}

fn host_header_names(value: &HeaderValue, target: &Target) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p))
            if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() =>
        {
            (h, p.parse::<u16>().ok())
        }
        _ => (value, None),
    };
    let target_port = match target {
        Target::Name(_, p) => *p,
        Target::Addr(a) => a.port(),
    };
    target.is_named_by(host) && port.is_none_or(|p| p == target_port)
}

/// The answer when a target could not be opened.
pub(super) fn open_failed(
    shared: &Shared,
    peer: SocketAddr,
    target: &Target,
    e: OpenError<'_>,
) -> Response<Body> {
    let _ = shared;
    match e {
        OpenError::Denied(outcome) => {
            pipeline::log_decision(
                ListenerKind::Connect,
                peer,
                None,
                Some(&target.host()),
                &outcome,
            );
            forbidden(&target.host(), &outcome)
        }
        OpenError::Resolve => text(
            StatusCode::BAD_GATEWAY,
            &format!("egress-proxy: cannot resolve {}\n", target.host()),
        ),
        OpenError::Dial(e) => text(
            StatusCode::BAD_GATEWAY,
            &format!(
                "egress-proxy: cannot connect to {}: {}\n",
                target.host(),
                e.as_str()
            ),
        ),
    }
}

/// `403` with `Connection: close` and a one-line body naming host and policy.
pub(super) fn forbidden(host: &str, outcome: &Outcome<'_>) -> Response<Body> {
    let body = format!(
        "egress-proxy: {host} denied by network policy {}\n",
        outcome.policy_id()
    );
    text(StatusCode::FORBIDDEN, &body)
}

/// A plain-text answer that closes the connection.
pub(super) fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
