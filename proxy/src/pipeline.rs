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
use std::time::Instant;

use policy_matcher::{Compiled, Query};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::act::deny::{DenyAction, deny};
use crate::act::relay::{Counters, RelayEnd, Relayed, relay};
use crate::audit::Pending;
use crate::config::{Dial, EchAction, TlsDeny};
use crate::decide::{self, Outcome, Reason};
use crate::detect::{Detected, Detection};
use crate::first_bytes::{self, FirstBytes};
use crate::recheck::Recheck;
use crate::shared::Shared;
use crate::target::{OpenError, Target};
use crate::track::{Tracker, protocol_of};
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
    /// How many kinds there are ([`ListenerKind::index`] is below).
    pub const COUNT: usize = 3;

    /// A dense index, for tables by listener (metric handles).
    pub fn index(self) -> usize {
        match self {
            Self::Transparent => 0,
            Self::Tproxy => 1,
            Self::Connect => 2,
        }
    }

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
///
/// Detection, the decision and the dial run in boxed futures on this task;
/// an allowed connection is then relayed by a task of its own that holds
/// only what relaying needs (and `permit`), so an idle relay costs little.
pub async fn serve(shared: Arc<Shared>, conn: Intercepted, permit: OwnedSemaphorePermit) {
    let tracker = Tracker::new(shared.clone(), conn.listener, conn.peer);
    let Some((admitted, client)) = Box::pin(admit(&shared, &tracker, conn)).await else {
        return;
    };
    let Admitted {
        record,
        first,
        recheck,
        by_name,
    } = admitted;
    match Box::pin(dial(&shared, &recheck, by_name)).await {
        Ok(upstream) => {
            // The bytes already read go upstream from this task, before the
            // relay task is spawned: the hop to it is off the path of the
            // server's first answer.
            if !first.is_empty()
                && Box::pin(first_bytes::write_all(&upstream, &first))
                    .await
                    .is_err()
            {
                let _ = crate::sys::set_reset_on_close(&client);
                tracker.closed(record, Relayed::default(), None);
                return;
            }
            let relaying = Relaying {
                shared,
                tracker,
                record,
                client,
                upstream,
                written: first.len() as u64,
                recheck,
                permit,
            };
            drop(first);
            tokio::spawn(relaying.run());
        }
        Err(kind) => {
            shared
                .metrics
                .upstream_errors
                .with_label_values(&[kind])
                .inc();
            tracing::info!(dest = %recheck.dest, error = kind, "upstream connect failed");
            Box::pin(deny(client, DenyAction::Reset)).await;
            tracker.closed(record, Relayed::default(), None);
        }
    }
}

/// An allowed, dialled connection: everything its relay task owns.
struct Relaying {
    shared: Arc<Shared>,
    tracker: Tracker,
    record: Pending,
    client: TcpStream,
    upstream: TcpStream,
    /// Bytes written upstream before the relay began.
    written: u64,
    recheck: Recheck,
    /// Held until the relay ends (the connection cap and the drain count it).
    permit: OwnedSemaphorePermit,
}

impl Relaying {
    /// Relays until both sides close, the relay idles out, or a policy
    /// change denies it.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store `self` twice"
    )]
    fn run(self) -> impl std::future::Future<Output = ()> + Send {
        // An async block captures `self` once (an async fn would keep a
        // second copy): this future is what an idle connection costs.
        async move {
            let counters = Counters::default();
            let idle = self.shared.config.limits.idle_timeout;
            let stop = std::pin::pin!(self.recheck.until_denied(&self.shared));
            let end = relay(&self.client, &self.upstream, idle, stop, &counters).await;
            let mut moved = counters.relayed();
            moved.up += self.written;
            self.tracker.closed(self.record, moved, Some(end));
            // Named here so the async block owns it (a block captures only
            // the fields it mentions): the permit lives as long as the relay.
            drop(self.permit);
        }
    }
}

/// What the relay of an allowed connection starts from.
struct Admitted {
    record: Pending,
    first: Vec<u8>,
    recheck: Recheck,
    by_name: bool,
}

/// Detects and decides; answers a denied connection itself. `Some` when the
/// connection is to be relayed.
async fn admit(
    shared: &Shared,
    tracker: &Tracker,
    conn: Intercepted,
) -> Option<(Admitted, TcpStream)> {
    let state = shared.state.load_full();
    let stream = conn.stream;
    let Some(dest) = conn.orig_dst else {
        let outcome = decide::refused(Reason::NoOriginalDst, None);
        return refuse(tracker, shared, stream, None, outcome, None).await;
    };
    if shared.is_own_listener(dest) {
        let outcome = decide::refused(Reason::Loop, None);
        return refuse(tracker, shared, stream, Some(dest), outcome, None).await;
    }
    let source = conn.peer.ip();
    let at_accept = state
        .decide_at_accept(source, dest)
        .map(|d| decide::checked(&state, &shared.config, d, dest));
    if let Some(outcome) = at_accept.filter(Outcome::relays) {
        let record = tracker.decided(Some(dest), "none", None, &outcome);
        let recheck = Recheck {
            source,
            dest,
            name: None,
            by_name: false,
        };
        return Some((
            Admitted {
                record,
                first: Vec::new(),
                recheck,
                by_name: false,
            },
            stream,
        ));
    }
    let Ok(detecting) = shared.detecting.clone().try_acquire_owned() else {
        let outcome = decide::refused(Reason::Overloaded, None);
        return refuse(tracker, shared, stream, Some(dest), outcome, None).await;
    };
    shared.metrics.detecting.inc();
    let first = first_bytes::read(&stream, shared.config.detect.timeout, &[], None).await;
    shared.metrics.detecting.dec();
    drop(detecting);
    let detected = match first.detection {
        Some(Detection::Done(d)) => Some(d),
        _ => None,
    };
    let protocol = protocol_of(detected.as_ref());
    let seconds = tracker.elapsed().as_secs_f64();
    shared.metrics.detected(protocol, seconds);
    let outcome = match at_accept {
        Some(denied) => denied,
        None => decide_first(&state, shared, &first, source, dest),
    };
    if !outcome.relays() {
        return refuse(tracker, shared, stream, Some(dest), outcome, detected).await;
    }
    let name = name_of(detected.as_ref());
    let record = tracker.decided(Some(dest), protocol, name, &outcome);
    let recheck = Recheck {
        source,
        dest,
        name: name.map(str::to_owned),
        by_name: false,
    };
    let by_name = outcome.policy.is_some_and(|d| d.reason.is_name_based());
    Some((
        Admitted {
            record,
            first: first.bytes,
            recheck,
            by_name,
        },
        stream,
    ))
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
    let started = Instant::now();
    let name = name_of(Some(&detected));
    let outcome = decide::by_policy(state, &shared.config, &Query { source, dest, name });
    shared
        .metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    outcome
}

/// The observed name in what was detected.
pub fn name_of(detected: Option<&Detected>) -> Option<&str> {
    match detected? {
        Detected::Tls { sni, .. } => sni.as_ref().map(|n| n.as_str()),
        Detected::Http { host, .. } => host.as_ref().map(|n| n.as_str()),
        Detected::Unknown => None,
    }
}

/// The original destination, or with `dial = "resolve"` the observed name's
/// own addresses (decided and checked again by name: a client cannot steer
/// a name-allowed connection to another address).
async fn dial(
    shared: &Shared,
    recheck: &Recheck,
    by_name: bool,
) -> Result<TcpStream, &'static str> {
    let cfg = &shared.config.upstream;
    let dest = recheck.dest;
    let name = recheck
        .name
        .as_deref()
        .filter(|_| by_name && cfg.dial == Dial::Resolve);
    let Some(target) = name.and_then(|n| Target::parse(n, n, Some(dest.port())).ok()) else {
        return upstream::dial(dest, cfg.mark, cfg.connect_timeout)
            .await
            .map_err(|e| e.as_str());
    };
    let state = shared.state.load_full();
    match crate::target::open(shared, &state, recheck.source, &target).await {
        Ok((_, stream, _)) => Ok(stream),
        Err(OpenError::Denied(_)) => Err("denied_address"),
        Err(OpenError::Resolve) => Err("resolve"),
        Err(OpenError::Dial(e)) => Err(e.as_str()),
    }
}

/// Writes the bytes already read to `upstream`, then relays both ways until
/// both sides close, the relay idles out, or a policy change denies it.
pub async fn splice_to(
    shared: &Shared,
    client: TcpStream,
    mut upstream: TcpStream,
    first: Vec<u8>,
    recheck: &Recheck,
) -> (Relayed, RelayEnd) {
    if !first.is_empty() && Box::pin(upstream.write_all(&first)).await.is_err() {
        Box::pin(deny(client, DenyAction::Reset)).await;
        return (Relayed::default(), RelayEnd::Error);
    }
    let written = first.len() as u64;
    drop(first);
    let counters = Counters::default();
    let idle = shared.config.limits.idle_timeout;
    let stop = std::pin::pin!(recheck.until_denied(shared));
    let mut stop: std::pin::Pin<&mut (dyn std::future::Future<Output = ()> + Send)> = stop;
    let end = relay(&client, &upstream, idle, stop.as_mut(), &counters).await;
    let mut moved = counters.relayed();
    moved.up += written;
    (moved, end)
}

/// Records and answers a denied connection in its protocol's form.
async fn refuse<T>(
    tracker: &Tracker,
    shared: &Shared,
    stream: TcpStream,
    dest: Option<SocketAddr>,
    outcome: Outcome<'_>,
    detected: Option<Detected>,
) -> Option<T> {
    let name = name_of(detected.as_ref());
    let record = tracker.decided(dest, protocol_of(detected.as_ref()), name, &outcome);
    deny(stream, deny_action(shared, detected.as_ref(), &outcome)).await;
    tracker.closed(record, Relayed::default(), None);
    None
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The relay task's future is what an idle relayed connection costs in
    /// memory; detection, decision and dial ran on another task.
    #[tokio::test]
    async fn an_idle_relay_task_stays_small() {
        let loaded = crate::config::load_str("", "t", std::path::Path::new(".")).unwrap();
        let metrics = crate::metrics::Metrics::new().unwrap();
        let audit = crate::audit::AuditLog::start(None, 1, metrics.audit_dropped.clone()).unwrap();
        let shared = Arc::new(Shared::new(
            loaded.config,
            loaded.state,
            vec![],
            metrics,
            audit,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let conn = Intercepted {
            stream,
            peer: addr,
            orig_dst: None,
            listener: ListenerKind::Transparent,
        };
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let upstream = TcpStream::connect(addr).await.unwrap();
        let serve_size = std::mem::size_of_val(&serve(shared.clone(), conn, permit));
        assert!(
            serve_size <= 1024,
            "the accepting task's future is {serve_size} bytes"
        );
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let relaying = Relaying {
            tracker: crate::track::Tracker::new(shared.clone(), ListenerKind::Transparent, addr),
            shared,
            record: Pending::default(),
            client: TcpStream::connect(addr).await.unwrap(),
            upstream,
            written: 0,
            recheck: Recheck {
                source: addr.ip(),
                dest: addr,
                name: None,
                by_name: false,
            },
            permit,
        };
        let size = std::mem::size_of_val(&relaying.run());
        eprintln!(
            "serve {serve_size} relay task {size} sleep {} relaying {} tcpstream {} tracker {} recheck {} pending {}",
            std::mem::size_of::<tokio::time::Sleep>(),
            std::mem::size_of::<Relaying>(),
            std::mem::size_of::<TcpStream>(),
            std::mem::size_of::<Tracker>(),
            std::mem::size_of::<Recheck>(),
            std::mem::size_of::<Pending>()
        );
        assert!(size <= 768, "the relay task's future is {size} bytes");
    }
}
