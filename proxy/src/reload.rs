//! Hot reload: the config file and the directories of its policy files are
//! watched (the `notify` crate); a change, or SIGHUP, reloads them. A change
//! that validates is applied to new connections at once (one atomic store of
//! the whole compiled state; open relays re-check); one that does not is
//! refused, every issue logged with its file and path, counted, and the last
//! good state stays in force. SIGHUP also reopens the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::api::state::{FilePart, StateSync};
use crate::config::{self, Config};
use crate::shared::Shared;

/// Events closer together than this are one reload.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Watches `config_path` (and its policy files) and reloads on change or
/// SIGHUP until the process ends. Without a path (the embedded config) only
/// SIGHUP's audit reopen applies.
pub async fn watch(shared: Arc<Shared>, config_path: Option<PathBuf>, sync: Arc<StateSync>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let _watcher = config_path
        .as_deref()
        .and_then(|path| start_watcher(path, &shared.config, tx));
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot handle SIGHUP");
        return;
    };
    loop {
        tokio::select! {
            Some(()) = rx.recv() => {}
            Some(()) = hup.recv() => shared.audit.reopen(),
            else => return,
        }
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
        if let Some(path) = config_path.as_deref() {
            reload(&shared, path, &sync);
        }
    }
}

/// Reloads once from `path`; returns whether the new state was installed.
/// The files' part is merged with the API's records (`sync`) before it is
/// installed; a file change that conflicts with them is refused too.
pub fn reload(shared: &Shared, path: &Path, sync: &StateSync) -> bool {
    let merged = config::load_file(path).and_then(|loaded| {
        sync.replace_files(FilePart::from_loaded(&loaded), shared)
            .map(|_| loaded)
    });
    match merged {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            warn_restart_needed(&shared.config, &loaded.config);
            shared.metrics.reloads.with_label_values(&["ok"]).inc();
            tracing::info!(config = %path.display(), "reloaded");
            true
        }
        Err(issues) => {
            for issue in &issues {
                tracing::error!("reload refused: {issue}");
            }
            shared.metrics.reloads.with_label_values(&["error"]).inc();
            tracing::error!(config = %path.display(), "reload refused: the last good state stays in force");
            false
        }
    }
}

/// Only policies, bindings and platform hosts reload; say so for the rest.
fn warn_restart_needed(running: &Config, new: &Config) {
    if running.listen != new.listen {
        tracing::warn!("listener changes need a restart; the listeners stay as they are");
    }
    let comparable = |c: &Config| Config {
        policy_files: Vec::new(),
        file: None,
        listen: Default::default(),
        ..c.clone()
    };
    if comparable(running) != comparable(new) {
        tracing::warn!("settings other than policies, bindings and platform hosts need a restart");
    }
}

fn start_watcher(
    path: &Path,
    config: &Config,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the config: only SIGHUP reloads");
                return None;
            }
        };
    let mut dirs: Vec<PathBuf> = config
        .policy_files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.extend(config.policy_dirs.iter().cloned());
    dirs.extend(path.parent().map(Path::to_path_buf));
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch");
        }
    }
    Some(watcher)
}
