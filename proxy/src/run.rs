//! `egress-proxy run`: load and validate the config before binding anything,
//! bind every listener, serve until SIGTERM/SIGINT, then drain: stop
//! accepting, wait for open connections up to the drain timeout, write out
//! the audit records still queued, exit. A second signal exits at once.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::api;
use crate::audit::AuditLog;
use crate::cli::{EXIT_ERROR, EXIT_OK};
use crate::config::{self, Loaded};
use crate::listen::{self, Bound};
use crate::metrics::Metrics;
use crate::pipeline::ListenerKind;
use crate::shared::Shared;

/// Runs the proxy; returns the process exit code.
pub fn main(config: Option<&Path>) -> i32 {
    init_tracing();
    let loaded = match config {
        Some(path) => config::load_file(path),
        None => config::load_str(
            config::EMBEDDED_DEFAULT,
            "<embedded default>",
            Path::new("."),
        ),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(issues) => {
            for issue in &issues {
                tracing::error!("{issue}");
            }
            return EXIT_ERROR;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(serve(loaded))
}

async fn serve(loaded: Loaded) -> i32 {
    // The API's store, merged with the files' state (before any port is bound).
    let (sync, state) = match api::start::open_state(&loaded) {
        Ok(opened) => opened,
        Err(e) => return start_failed(&e),
    };
    let listen = &loaded.config.listen;
    let wanted = listen
        .transparent
        .iter()
        .map(|a| (ListenerKind::Transparent, *a))
        .chain(listen.tproxy.iter().map(|a| (ListenerKind::Tproxy, *a)))
        .chain(listen.connect.iter().map(|a| (ListenerKind::Connect, *a)));
    let mut bound: Vec<Bound> = Vec::new();
    for (kind, addr) in wanted {
        match listen::bind(kind, addr) {
            Ok(b) => bound.push(b),
            Err(e) => {
                tracing::error!(listener = kind.as_str(), %addr, error = %e, "cannot listen");
                return EXIT_ERROR;
            }
        }
    }
    let admin_listener = match api::start::bind_admin(listen.admin) {
        Ok(l) => l,
        Err(e) => return start_failed(&e),
    };
    let own = bound.iter().map(|b| b.addr).collect();
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot register metrics");
            return EXIT_ERROR;
        }
    };
    let audit_cfg = &loaded.config.audit;
    let audit = match AuditLog::start(
        audit_cfg.path.clone(),
        audit_cfg.queue,
        metrics.audit_dropped.clone(),
    ) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the audit log");
            return EXIT_ERROR;
        }
    };
    let shared = Arc::new(Shared::new(loaded.config, state, own, metrics, audit));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for b in bound {
        tracing::info!(listener = b.kind.as_str(), addr = %b.addr, "listening");
        tasks.push(tokio::spawn(listen::serve(
            shared.clone(),
            b,
            stop_rx.clone(),
        )));
    }
    tasks.extend(api::start::spawn(&shared, &sync, admin_listener, &stop_rx));
    tokio::spawn(crate::reload::watch(
        shared.clone(),
        shared.config.file.clone(),
        sync,
    ));
    shared
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(
        policies = shared.state.load().policy_count(),
        bindings = shared.state.load().binding_count(),
        "ready"
    );
    wait_for_signal().await;
    shared
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    tracing::info!("shutting down: draining open connections");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    drain(&shared).await;
    let audit = shared.audit.clone();
    let finished = tokio::task::spawn_blocking(move || audit.finish(AUDIT_FINISH))
        .await
        .unwrap_or(false);
    if !finished {
        tracing::warn!("audit log: records still queued at exit may be lost");
    }
    EXIT_OK
}

/// How long shutdown waits for the audit writer to write out its queue.
const AUDIT_FINISH: std::time::Duration = std::time::Duration::from_secs(5);

/// Logs why the API side cannot start (each conflicting record) and fails.
fn start_failed(e: &api::start::StartError) -> i32 {
    if let api::start::StartError::State(issues) = e {
        for issue in issues.iter().filter(|i| i.is_error()) {
            tracing::error!("{issue}");
        }
    }
    tracing::error!("{e}");
    EXIT_ERROR
}

/// Waits until every connection permit is back, the drain timeout passes,
/// or a second signal arrives.
async fn drain(shared: &Shared) {
    let max = shared.config.limits.max_connections;
    let all_back = async {
        while shared.connections.available_permits() < max {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = all_back => tracing::info!("drained"),
        () = tokio::time::sleep(shared.config.limits.drain_timeout) => tracing::warn!("drain timeout: closing open connections"),
        () = wait_for_signal() => tracing::warn!("second signal: exiting now"),
    }
}

async fn wait_for_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EGRESS_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
