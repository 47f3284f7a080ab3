//! The one pipeline every listener feeds: detect → decide → act.
//!
//! A connection arrives with its source and original destination. If the
//! destination alone settles the policy (and it allows), it is relayed at
//! once, so server-first protocols work through CIDR rules. Otherwise the
//! first bytes are read (bounded in size and time), the name is detected, the
//! policy decides, and the connection is relayed (the bytes read are written
//! upstream first, unmodified) or denied in the form its protocol expects.

use std::net::SocketAddr;
use std::sync::Arc;

use policy_matcher::{Compiled, Query};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::act::deny::{DenyAction, deny};
use crate::act::relay::{Counters, relay};
use crate::config::{EchAction, TlsDeny};
use crate::decide::{self, Outcome, Reason};
use crate::detect::{Detected, Detection};
use crate::first_bytes::{self, FirstBytes};
use crate::shared::Shared;
use crate::upstream;

/// Which listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// iptables REDIRECT.
    Transparent,
    /// iptables TPROXY.
    Tproxy,
    /// Explicit proxy (CONNECT, absolute-form).
    Connect,
}

/// An accepted connection and where it was going.
#[derive(Debug)]
pub struct Intercepted {
    /// The client socket.
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The original destination (`None` when it could not be read).
    pub orig_dst: Option<SocketAddr>,
    /// The listener.
    pub listener: ListenerKind,
}

// === impl ListenerKind ===

impl ListenerKind {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transparent => "transparent",
            Self::Tproxy => "tproxy",
            Self::Connect => "connect",
        }
    }
}

/// Serves one intercepted connection to the end.
pub async fn serve(shared: Arc<Shared>, conn: Intercepted) {
    let state = shared.state.load_full();
    let Some(dest) = conn.orig_dst else {
        finish_deny(
            &shared,
            conn,
            None,
            decide::refused(Reason::NoOriginalDst, None),
            None,
        )
        .await;
        return;
    };
    if shared.is_own_listener(dest) {
        finish_deny(
            &shared,
            conn,
            Some(dest),
            decide::refused(Reason::Loop, None),
            None,
        )
        .await;
        return;
    }
    let source = conn.peer.ip();
    let at_accept = state
        .decide_at_accept(source, dest)
        .map(|d| decide::checked(&state, &shared.config, d, dest));
    if let Some(outcome) = at_accept.filter(Outcome::relays) {
        log(&conn, dest, None, &outcome);
        forward(&shared, conn.stream, dest, Vec::new()).await;
        return;
    }
    let Ok(_detecting) = shared.detecting.clone().try_acquire_owned() else {
        finish_deny(
            &shared,
            conn,
            Some(dest),
            decide::refused(Reason::Overloaded, None),
            None,
        )
        .await;
        return;
    };
    let first = first_bytes::read(&conn.stream, shared.config.detect.timeout, &[], None).await;
    drop(_detecting);
    let outcome = match at_accept {
        Some(denied) => denied,
        None => decide_first(&state, &shared, &first, source, dest),
    };
    let detected = match first.detection {
        Some(Detection::Done(d)) => Some(d),
        _ => None,
    };
    if outcome.relays() {
        log(&conn, dest, name_of(detected.as_ref()), &outcome);
        forward(&shared, conn.stream, dest, first.bytes).await;
    } else {
        finish_deny(&shared, conn, Some(dest), outcome, detected).await;
    }
}

/// The decision once the first bytes are in.
fn decide_first<'c>(
    state: &'c Compiled,
    shared: &Shared,
    first: &FirstBytes,
    source: std::net::IpAddr,
    dest: SocketAddr,
) -> Outcome<'c> {
    let detected = match first.detection {
        Some(Detection::Done(d)) => d,
        Some(Detection::Reject(m)) => return decide::refused(Reason::Malformed(m), None),
        Some(Detection::Incomplete) | None => return decide::refused(first.failure, None),
    };
    if let Detected::Tls { ech: true, .. } = detected
        && shared.config.detect.ech == EchAction::Deny
    {
        return decide::refused(Reason::EchDenied, None);
    }
    let name = name_of(Some(&detected));
    decide::by_policy(state, &shared.config, &Query { source, dest, name })
}

/// The observed name in what was detected.
pub fn name_of(detected: Option<&Detected>) -> Option<&str> {
    match detected? {
        Detected::Tls { sni, .. } => sni.as_ref().map(|n| n.as_str()),
        Detected::Http { host, .. } => host.as_ref().map(|n| n.as_str()),
        Detected::Unknown => None,
    }
}

/// Dials `dest`, writes the bytes already read, and relays.
async fn forward(shared: &Shared, client: TcpStream, dest: SocketAddr, first: Vec<u8>) {
    let cfg = &shared.config.upstream;
    match upstream::dial(dest, cfg.mark, cfg.connect_timeout).await {
        Ok(upstream) => splice_to(shared, client, upstream, first).await,
        Err(e) => {
            tracing::info!(%dest, error = e.as_str(), "upstream connect failed");
            deny(client, DenyAction::Reset).await;
        }
    }
}

/// Writes the bytes already read to `upstream`, then relays both ways.
pub async fn splice_to(
    shared: &Shared,
    client: TcpStream,
    mut upstream: TcpStream,
    first: Vec<u8>,
) {
    if !first.is_empty() && upstream.write_all(&first).await.is_err() {
        deny(client, DenyAction::Reset).await;
        return;
    }
    drop(first);
    let counters = Counters::default();
    let _ = client.set_nodelay(true);
    let idle = shared.config.limits.idle_timeout;
    let end = relay(&client, &upstream, idle, std::future::pending(), &counters).await;
    let moved = counters.relayed();
    tracing::debug!(up = moved.up, down = moved.down, end = ?end, "relay closed");
}

/// Logs and answers a denied connection in its protocol's form.
async fn finish_deny(
    shared: &Shared,
    conn: Intercepted,
    dest: Option<SocketAddr>,
    outcome: Outcome<'_>,
    detected: Option<Detected>,
) {
    let name = name_of(detected.as_ref());
    log_decision(conn.listener, conn.peer, dest, name, &outcome);
    deny(
        conn.stream,
        deny_action(shared, detected.as_ref(), &outcome),
    )
    .await;
}

/// The deny form for what was detected: a TLS alert (or reset), a 403, or a reset.
pub fn deny_action<'a>(
    shared: &Shared,
    detected: Option<&'a Detected>,
    outcome: &'a Outcome<'_>,
) -> DenyAction<'a> {
    match detected {
        Some(Detected::Tls { record_version, .. }) => match shared.config.deny_tls {
            TlsDeny::Alert => DenyAction::TlsAlert {
                record_version: *record_version,
            },
            TlsDeny::Reset => DenyAction::Reset,
        },
        Some(d @ Detected::Http { .. }) => DenyAction::Forbidden {
            host: name_of(Some(d)).unwrap_or("-"),
            policy: outcome.policy_id(),
        },
        _ => DenyAction::Reset,
    }
}

fn log(conn: &Intercepted, dest: SocketAddr, name: Option<&str>, outcome: &Outcome<'_>) {
    log_decision(conn.listener, conn.peer, Some(dest), name, outcome);
}

/// One log line per decision.
pub fn log_decision(
    listener: ListenerKind,
    peer: SocketAddr,
    dest: Option<SocketAddr>,
    name: Option<&str>,
    outcome: &Outcome<'_>,
) {
    tracing::info!(
        listener = listener.as_str(),
        source = %peer,
        dest = %dest.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        name = name.unwrap_or("-"),
        devbox = outcome.devbox(),
        policy = outcome.policy_id(),
        verdict = outcome.verdict.as_str(),
        reason = outcome.reason.detail(),
        rule = %outcome.rule(),
        "decision"
    );
}
