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
use crate::act::relay::Relayed;
use crate::decide::{self, Outcome, Reason};
use crate::detect::Detection;
use crate::first_bytes::{self, ServerFirst};
use crate::pipeline::{self, ListenerKind};
use crate::recheck::Recheck;
use crate::shared::Shared;
use crate::target::{OpenError, Target};
use crate::track::{Tracker, protocol_of};

pub(super) type Body = BoxBody<Bytes, hyper::Error>;

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
    let tracker = Tracker::new(shared.clone(), ListenerKind::Connect, peer);
    if req.method() == Method::CONNECT {
        connect(shared, tracker, peer, req).await
    } else if req.uri().scheme().is_some() {
        super::forward::absolute_form(shared, tracker, peer, req).await
    } else {
        text(
            StatusCode::BAD_REQUEST,
            "egress-proxy: expected CONNECT or an absolute-form request\n",
        )
    }
}

/// `CONNECT host:port`: decide, dial, answer 200, then check and relay.
async fn connect(
    shared: Arc<Shared>,
    tracker: Tracker,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let target = match authority_target(&req, None) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let state = shared.state.load_full();
    if let Err(resp) = host_agrees(&req, &target, &state, &tracker, peer, "connect") {
        return *resp;
    }
    let (_, upstream, dest) = match crate::target::open(&shared, &state, peer.ip(), &target).await {
        Ok(opened) => opened,
        Err(e) => return open_failed(&shared, &tracker, &target, e, "connect"),
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return;
        };
        let client = parts.io.into_inner();
        tunnel(
            &shared,
            &tracker,
            peer,
            client,
            &parts.read_buf,
            upstream,
            dest,
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

/// Inside an established tunnel: detect, check the inner name, then record
/// the decision and relay (or refuse: the upstream saw nothing).
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the tunnel's whole context"
)]
async fn tunnel(
    shared: &Shared,
    tracker: &Tracker,
    peer: SocketAddr,
    client: TcpStream,
    leftover: &[u8],
    upstream: TcpStream,
    dest: SocketAddr,
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
    let state = shared.state.load_full();
    let host = target.host();
    let (by_name, name) = match target {
        Target::Name(n, _) => (true, Some(n.clone())),
        Target::Addr(_) => (false, None),
    };
    let recheck = Recheck {
        source: peer.ip(),
        dest,
        name,
        by_name,
    };
    // The decision that let the tunnel open, taken again on the same state
    // the inner check runs against.
    let allowed = crate::target::decide_again(&state, shared, &recheck);
    let (detected, refusal) = match first.detection {
        Some(Detection::Done(d)) => {
            let mismatch = pipeline::name_of(Some(&d)).is_some_and(|n| !target.is_named_by(n));
            (Some(d), mismatch.then_some(Reason::NameMismatch))
        }
        Some(Detection::Reject(m)) => (None, Some(Reason::Malformed(m))),
        _ => (None, None),
    };
    let protocol = protocol_of(detected.as_ref());
    let inner = pipeline::name_of(detected.as_ref());
    if let Some(reason) = refusal {
        let outcome = decide::refused(reason, allowed.policy);
        let record = tracker.decided(Some(dest), protocol, Some(inner.unwrap_or(&host)), &outcome);
        deny(
            client,
            pipeline::deny_action(shared, detected.as_ref(), &outcome),
        )
        .await;
        tracker.closed(record, Relayed::default(), None);
        return;
    }
    let record = tracker.decided(Some(dest), protocol, Some(&host), &allowed);
    if first.detection.is_none() && first.bytes.is_empty() {
        tracker.closed(record, Relayed::default(), None);
        return;
    }
    let (moved, end) = pipeline::splice_to(shared, client, upstream, first.bytes, &recheck).await;
    tracker.closed(record, moved, Some(end));
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
    state: &policy_matcher::Compiled,
    tracker: &Tracker,
    peer: SocketAddr,
    protocol: &'static str,
) -> Result<(), Box<Response<Body>>> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let agrees = match (hosts.next(), hosts.next()) {
        (None, _) => true,
        (Some(h), None) => host_header_names(h, target),
        (Some(_), Some(_)) => false,
    };
    if agrees {
        return Ok(());
    }
    let decision = state.decide_name(peer.ip(), &target.host());
    let outcome = decide::refused(Reason::NameMismatch, Some(decision));
    let record = tracker.decided(None, protocol, Some(&target.host()), &outcome);
    tracker.closed(record, Relayed::default(), None);
    Err(Box::new(forbidden(&target.host(), &outcome)))
}

fn host_header_names(value: &HeaderValue, target: &Target) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p))
            if !h.ends_with(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
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
    tracker: &Tracker,
    target: &Target,
    e: OpenError<'_>,
    protocol: &'static str,
) -> Response<Body> {
    let host = target.host();
    match e {
        OpenError::Denied(outcome) => {
            let record = tracker.decided(None, protocol, Some(&host), &outcome);
            tracker.closed(record, Relayed::default(), None);
            forbidden(&host, &outcome)
        }
        OpenError::Resolve => {
            shared
                .metrics
                .upstream_errors
                .with_label_values(&["resolve"])
                .inc();
            text(
                StatusCode::BAD_GATEWAY,
                &format!("egress-proxy: cannot resolve {host}\n"),
            )
        }
        OpenError::Dial(e) => {
            shared
                .metrics
                .upstream_errors
                .with_label_values(&[e.as_str()])
                .inc();
            text(
                StatusCode::BAD_GATEWAY,
                &format!("egress-proxy: cannot connect to {host}: {}\n", e.as_str()),
            )
        }
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
