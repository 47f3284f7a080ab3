//! The audit log: one JSON line per connection, built when the decision is
//! made and written when the connection closes (with bytes and duration).
//!
//! Writing never blocks the data path: records go through a bounded queue to
//! a writer thread; what overflows is counted, never waited for. The file is
//! reopened on request (SIGHUP), for rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One connection, as the audit log records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the connection was accepted (Unix milliseconds).
    pub time_ms: u64,
    /// The client's address.
    pub source: String,
    /// The devbox (or blueprint build) bound to the source.
    pub devbox: Option<String>,
    /// Its account.
    pub account: Option<String>,
    /// The original destination (or the dialled address, explicit proxy).
    pub dest: Option<String>,
    /// The observed name.
    pub name: Option<String>,
    /// `tls`, `http`, `unknown`, `none` (decided at accept) or `connect`.
    pub protocol: String,
    /// The listener.
    pub listener: String,
    /// `allow`, `deny` or `would_deny`.
    pub verdict: String,
    /// The reason label.
    pub reason: String,
    /// A finer reason (e.g. which malformation).
    pub detail: String,
    /// The effective policy.
    pub policy: Option<String>,
    /// The rule that matched.
    pub rule: String,
    /// `enforce` or `report`.
    pub mode: String,
    /// Bytes client → upstream.
    pub bytes_up: u64,
    /// Bytes upstream → client.
    pub bytes_down: u64,
    /// From accept to close.
    pub duration_ms: u64,
    /// Why the relay ended, if it ran.
    pub end: Option<String>,
}

/// The sending side, cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Record>,
    dropped: IntCounter,
    reopen: Arc<AtomicBool>,
}

// === impl AuditLog ===

impl AuditLog {
    /// Starts the writer thread for `path` (standard output when `None`).
    pub fn start(path: Option<PathBuf>, queue: usize, dropped: IntCounter) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let sink = Sink::open(path)?;
        let flag = reopen.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(rx, sink, &flag))?;
        Ok(Self {
            tx,
            dropped,
            reopen,
        })
    }

    /// Queues `record`; counts it as dropped when the queue is full.
    pub fn record(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.dropped.inc();
        }
    }

    /// Reopens the file before the next write (log rotation).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

enum Sink {
    File(PathBuf, BufWriter<File>),
    Stdout(BufWriter<io::Stdout>),
}

impl Sink {
    fn open(path: Option<PathBuf>) -> io::Result<Self> {
        Ok(match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                Self::File(path, BufWriter::new(file))
            }
            None => Self::Stdout(BufWriter::new(io::stdout())),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::File(_, w) => w,
            Self::Stdout(w) => w,
        }
    }

    fn reopen(&mut self) {
        if let Self::File(path, w) = self {
            let _ = w.flush();
            match OpenOptions::new().create(true).append(true).open(&*path) {
                Ok(file) => *w = BufWriter::new(file),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot reopen the audit log")
                }
            }
        }
    }
}

fn write_loop(mut rx: mpsc::Receiver<Record>, mut sink: Sink, reopen: &AtomicBool) {
    while let Some(record) = rx.blocking_recv() {
        if reopen.swap(false, Ordering::Relaxed) {
            sink.reopen();
        }
        write_one(&mut sink, &record);
        while let Ok(more) = rx.try_recv() {
            write_one(&mut sink, &more);
        }
        let _ = sink.writer().flush();
    }
}

fn write_one(sink: &mut Sink, record: &Record) {
    let w = sink.writer();
    if serde_json::to_writer(&mut *w, record).is_ok() {
        let _ = w.write_all(b"\n");
    }
}
