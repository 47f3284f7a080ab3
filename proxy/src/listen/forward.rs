//! Absolute-form HTTP on the explicit proxy (`GET http://host/path`): each
//! request is decided on its authority (which must agree with Host), then
//! forwarded in origin form on a fresh upstream connection, with the proxy's
//! own hop-by-hop headers removed.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderName};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use super::connect::{Body, authority_target, host_agrees, open_failed, text};
use crate::act::relay::Relayed;
use crate::shared::Shared;
use crate::track::Tracker;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own: they describe
/// one connection, never forwarded across the proxy.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "upgrade",
];

/// Decides and forwards one absolute-form request.
pub(super) async fn absolute_form(
    shared: Arc<Shared>,
    tracker: Tracker,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<Body> {
    if req.uri().scheme_str() != Some("http") {
        return text(
            StatusCode::BAD_REQUEST,
            "egress-proxy: only http:// URLs are proxied in absolute form (use CONNECT for https)\n",
        );
    }
    let target = match authority_target(&req, Some(80)) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let state = shared.state.load_full();
    if let Err(resp) = host_agrees(&req, &target, &state, &tracker, peer, "http") {
        return *resp;
    }
    let (outcome, upstream, dest) =
        match crate::target::open(&shared, &state, peer.ip(), &target).await {
            Ok(opened) => opened,
            Err(e) => return open_failed(&shared, &tracker, &target, e, "http"),
        };
    let record = tracker.decided(Some(dest), "http", Some(&target.host()), &outcome);
    tracker.closed(record, Relayed::default(), None);
    let origin_form = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match origin_form.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "egress-proxy: bad request target\n",
            );
        }
    }
    strip_hop_by_hop(req.headers_mut());
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
    else {
        return text(
            StatusCode::BAD_GATEWAY,
            "egress-proxy: upstream handshake failed\n",
        );
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match sender.send_request(req).await {
        Ok(mut resp) => {
            strip_hop_by_hop(resp.headers_mut());
            resp.map(|b| b.boxed())
        }
        Err(_) => text(
            StatusCode::BAD_GATEWAY,
            "egress-proxy: upstream request failed\n",
        ),
    }
}

/// Removes hop-by-hop headers, and those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(HeaderName::from_static(name));
    }
}
