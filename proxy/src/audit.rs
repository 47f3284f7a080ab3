//! The audit log: one JSON line per connection. The decision's part of the
//! line is serialized once, when the decision is made, into a compact
//! [`Pending`] (one exact-size string) that a relayed connection keeps; the
//! writer completes it with bytes, duration and how it ended at close.
//!
//! Writing never blocks the data path: records go through a bounded queue to
//! a writer thread; what overflows is counted, never waited for. The file is
//! reopened on request (SIGHUP), for rotation.

use std::cell::RefCell;
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use policy_matcher::Rule;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::mpsc;

/// One connection, as an audit line reads back (`audit suggest`).
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

/// The decision's fields of a line, in the line's order, as
/// [`Tracker::decided`](crate::track::Tracker::decided) has them: borrowed,
/// serialized once into a [`Pending`].
#[derive(Debug, Serialize)]
pub struct Decided<'a> {
    /// When the connection was accepted (Unix milliseconds).
    pub time_ms: u64,
    /// The client's address.
    #[serde(serialize_with = "display")]
    pub source: SocketAddr,
    /// The devbox (or blueprint build) bound to the source.
    pub devbox: Option<&'a str>,
    /// Its account.
    pub account: Option<&'a str>,
    /// The original destination (or the dialled address, explicit proxy).
    #[serde(serialize_with = "display_opt")]
    pub dest: Option<SocketAddr>,
    /// The observed name.
    pub name: Option<&'a str>,
    /// The protocol label.
    pub protocol: &'a str,
    /// The listener label.
    pub listener: &'a str,
    /// The verdict label.
    pub verdict: &'a str,
    /// The reason label.
    pub reason: &'a str,
    /// A finer reason.
    pub detail: &'a str,
    /// The effective policy.
    pub policy: Option<&'a str>,
    /// The rule that matched (written as its display form).
    #[serde(serialize_with = "display")]
    pub rule: Rule<'a>,
    /// `enforce` or `report`.
    pub mode: &'a str,
}

/// A decided connection's line until it closes: the JSON object of its
/// [`Decided`] fields without the closing brace, in one exact-size string
/// (16 bytes and one allocation while a connection is relayed). Empty (and
/// then never written) only if serializing failed.
#[derive(Debug, Default)]
pub struct Pending(Box<str>);

/// A closed connection's record, queued for the writer: its [`Pending`]
/// head and what the close adds.
#[derive(Debug)]
pub struct Closed {
    /// The decision's part of the line.
    pub pending: Pending,
    /// Bytes client → upstream.
    pub bytes_up: u64,
    /// Bytes upstream → client.
    pub bytes_down: u64,
    /// From accept to close.
    pub duration_ms: u64,
    /// Why the relay ended, if it ran.
    pub end: Option<&'static str>,
}

/// The sending side, cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Closed>,
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

    /// Queues `closed`; counts it as dropped when the queue is full.
    pub fn record(&self, closed: Closed) {
        if self.tx.try_send(closed).is_err() {
            self.dropped.inc();
        }
    }

    /// Reopens the file before the next write (log rotation).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

// === impl Pending ===

thread_local! {
    /// Where heads are serialized before being copied to their exact size.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch space kept per thread up to this size.
const SCRATCH_KEEP: usize = 4096;

impl Pending {
    /// Serializes `decided` (one allocation, of the line's exact length).
    pub fn new(decided: &Decided<'_>) -> Self {
        let head = |buf: &mut Vec<u8>| {
            buf.clear();
            let head = serde_json::to_writer(&mut *buf, decided)
                .ok()
                .and_then(|()| std::str::from_utf8(buf).ok())
                .and_then(|object| object.strip_suffix('}'))
                .map(Box::from);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            head
        };
        let head = SCRATCH
            .try_with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut buf) => head(&mut buf),
                Err(_) => head(&mut Vec::new()),
            })
            .unwrap_or_else(|_| head(&mut Vec::new()));
        match head {
            Some(head) => Self(head),
            None => {
                tracing::error!("cannot serialize an audit record");
                Self::default()
            }
        }
    }

    /// The head: a JSON object without its closing brace (or empty).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Serializes a field by its `Display` form, as a JSON string.
fn display<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// [`display`] for an optional field (`null` when absent).
fn display_opt<T: Display, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
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

fn write_loop(mut rx: mpsc::Receiver<Closed>, mut sink: Sink, reopen: &AtomicBool) {
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

/// Writes `closed`'s line: its head, then what the close adds.
fn write_one(sink: &mut Sink, closed: &Closed) {
    if closed.pending.0.is_empty() {
        return;
    }
    let _ = write_line(sink.writer(), closed);
}

fn write_line(w: &mut dyn Write, closed: &Closed) -> io::Result<()> {
    w.write_all(closed.pending.0.as_bytes())?;
    write!(
        w,
        ",\"bytes_up\":{},\"bytes_down\":{},\"duration_ms\":{},\"end\":",
        closed.bytes_up, closed.bytes_down, closed.duration_ms
    )?;
    match closed.end {
        Some(end) => serde_json::to_writer(&mut *w, end)?,
        None => w.write_all(b"null")?,
    }
    w.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(closed: &Closed) -> String {
        let mut out = Vec::new();
        write_line(&mut out, closed).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A line is byte for byte what serializing the whole [`Record`] gives,
    /// and reads back into it.
    #[test]
    fn a_line_reads_back_as_the_record() {
        let decided = Decided {
            time_ms: 1_795_439_188_679,
            source: "10.77.1.2:51234".parse().unwrap(),
            devbox: Some("dbx_1"),
            account: Some("acct_1"),
            dest: Some("[fd77:2::2%3]:443".parse().unwrap()),
            name: Some("we\"ird\\näme\u{1}.test"),
            protocol: "tls",
            listener: "transparent",
            verdict: "allow",
            reason: "hostname",
            detail: "hostname",
            policy: Some("np_1"),
            rule: Rule::Hostname {
                name: "npmjs.org",
                wildcard: true,
            },
            mode: "enforce",
        };
        let closed = Closed {
            pending: Pending::new(&decided),
            bytes_up: 517,
            bytes_down: u64::MAX,
            duration_ms: 12,
            end: Some("closed"),
        };
        let expected = Record {
            time_ms: 1_795_439_188_679,
            source: "10.77.1.2:51234".into(),
            devbox: Some("dbx_1".into()),
            account: Some("acct_1".into()),
            dest: Some("[fd77:2::2%3]:443".into()),
            name: Some("we\"ird\\näme\u{1}.test".into()),
            protocol: "tls".into(),
            listener: "transparent".into(),
            verdict: "allow".into(),
            reason: "hostname".into(),
            detail: "hostname".into(),
            policy: Some("np_1".into()),
            rule: "hostname:*.npmjs.org".into(),
            mode: "enforce".into(),
            bytes_up: 517,
            bytes_down: u64::MAX,
            duration_ms: 12,
            end: Some("closed".into()),
        };
        let text = line(&closed);
        assert_eq!(
            text,
            format!("{}\n", serde_json::to_string(&expected).unwrap())
        );
        let back: Record = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, expected);
        assert_eq!(closed.pending.as_str().len(), closed.pending.0.len());
    }

    #[test]
    fn absent_fields_are_null_and_the_default_rule_is_a_dash() {
        let decided = Decided {
            time_ms: 0,
            source: "[::1]:9".parse().unwrap(),
            devbox: None,
            account: None,
            dest: None,
            name: None,
            protocol: "none",
            listener: "tproxy",
            verdict: "deny",
            reason: "malformed",
            detail: "tls_record_type",
            policy: None,
            rule: Rule::None,
            mode: "report",
        };
        let closed = Closed {
            pending: Pending::new(&decided),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            end: None,
        };
        let expected = Record {
            source: "[::1]:9".into(),
            protocol: "none".into(),
            listener: "tproxy".into(),
            verdict: "deny".into(),
            reason: "malformed".into(),
            detail: "tls_record_type".into(),
            rule: "-".into(),
            mode: "report".into(),
            ..Record::default()
        };
        let text = line(&closed);
        assert_eq!(
            text,
            format!("{}\n", serde_json::to_string(&expected).unwrap())
        );
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), expected);
    }

    #[test]
    fn a_pending_record_is_one_exact_size_string() {
        assert_eq!(std::mem::size_of::<Pending>(), 16);
        let head = Pending::new(&Decided {
            time_ms: 1,
            source: "10.0.0.1:1".parse().unwrap(),
            devbox: None,
            account: None,
            dest: None,
            name: None,
            protocol: "none",
            listener: "transparent",
            verdict: "deny",
            reason: "loop",
            detail: "loop",
            policy: None,
            rule: Rule::None,
            mode: "enforce",
        });
        assert!(
            head.as_str()
                .starts_with("{\"time_ms\":1,\"source\":\"10.0.0.1:1\"")
        );
        assert!(head.as_str().ends_with("\"mode\":\"enforce\""));
    }
}
