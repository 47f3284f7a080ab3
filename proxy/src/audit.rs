//! The audit log: one JSON line per connection. The decision's part of the
//! line is serialized once, when the decision is made, into a compact
//! [`Pending`] (its JSON values in one exact-size string, the keys left to
//! the writer) that a relayed connection keeps; the writer completes the
//! line with bytes, duration and how it ended at close.
//!
//! Writing never blocks the data path: records go through a bounded queue to
//! a writer thread; what overflows is counted, never waited for. The writer
//! is woken by the first record after a quiet spell, lets more gather for a
//! few milliseconds (senders do not wake it meanwhile), then writes them all
//! and flushes once. The file is reopened on request (SIGHUP), for rotation;
//! [`AuditLog::finish`] writes out what is queued (at shutdown).

use std::cell::RefCell;
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use policy_matcher::Rule;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::mpsc::{self, error::TrySendError};

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
#[derive(Debug)]
pub struct Decided<'a> {
    /// When the connection was accepted (Unix milliseconds).
    pub time_ms: u64,
    /// The client's address.
    pub source: SocketAddr,
    /// The devbox (or blueprint build) bound to the source.
    pub devbox: Option<&'a str>,
    /// Its account.
    pub account: Option<&'a str>,
    /// The original destination (or the dialled address, explicit proxy).
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
    pub rule: Rule<'a>,
    /// `enforce` or `report`.
    pub mode: &'a str,
}

/// A decided connection's line until it closes: the JSON values of its
/// [`Decided`] fields in [`KEYS`] order, separated by NUL (which JSON text
/// never holds raw), in one exact-size string: 16 bytes and one allocation
/// while a connection is relayed, the keys (about 150 bytes) written only by
/// the writer. Empty (and then never written) only if serializing failed.
#[derive(Debug, Default)]
pub struct Pending(Box<str>);

/// The keys of a [`Pending`]'s values, in the line's order.
const KEYS: [&str; 14] = [
    "time_ms", "source", "devbox", "account", "dest", "name", "protocol", "listener", "verdict",
    "reason", "detail", "policy", "rule", "mode",
];

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

/// How long the writer lets records gather after the first one of a batch.
const GATHER: Duration = Duration::from_millis(20);

/// How often [`AuditLog::finish`] nudges the writer while it waits.
const NUDGE: Duration = Duration::from_millis(10);

/// The sending side, cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    // tokio's bounded channel: a send pushes onto a block list and wakes the
    // receiver only when it is blocked waiting (once per batch here), with
    // no system call otherwise; its blocks are allocated as the queue fills
    // (std's `sync_channel` would allocate all of `audit.queue` up front).
    tx: mpsc::Sender<Msg>,
    dropped: IntCounter,
    control: Arc<Control>,
    /// The writer thread, to cut its gathering pause short.
    writer: Thread,
}

/// What goes through the queue.
#[derive(Debug)]
enum Msg {
    /// A line to write.
    Line(Closed),
    /// Wakes a writer blocked on an empty queue ([`AuditLog::finish`]).
    Wake,
}

/// What the senders and the writer share besides the queue.
#[derive(Debug, Default)]
struct Control {
    /// Reopen the file before the next write.
    reopen: AtomicBool,
    /// Flush requests made ([`AuditLog::finish`]): a count.
    requested: AtomicU64,
    /// The last request whose records are written and flushed.
    done: Mutex<u64>,
    /// Signalled when `done` moves.
    moved: Condvar,
}

// === impl AuditLog ===

impl AuditLog {
    /// Starts the writer thread for `path` (standard output when `None`).
    pub fn start(path: Option<PathBuf>, queue: usize, dropped: IntCounter) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let control = Arc::new(Control::default());
        let sink = Sink::open(path)?;
        let shared = control.clone();
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(rx, sink, &shared))?;
        Ok(Self {
            tx,
            dropped,
            control,
            writer: writer.thread().clone(),
        })
    }

    /// Queues `closed`; counts it as dropped when the queue is full. Never
    /// blocks; wakes the writer only when it is idle.
    pub fn record(&self, closed: Closed) {
        if self.tx.try_send(Msg::Line(closed)).is_err() {
            self.dropped.inc();
        }
    }

    /// Reopens the file before the next write (log rotation).
    pub fn reopen(&self) {
        self.control.reopen.store(true, Ordering::Relaxed);
    }

    /// Has every record queued before the call written and flushed, waiting
    /// up to `timeout`; whether that happened. Blocks the calling thread.
    pub fn finish(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let want = self.control.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut done = self
            .control
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if *done >= want {
                return true;
            }
            let now = Instant::now();
            let left = deadline.map_or(NUDGE, |d| d.saturating_duration_since(now));
            if left.is_zero() {
                return false;
            }
            // A writer blocked on an empty queue needs a message; a gathering
            // one, its pause cut short. Repeated: the queue may be full now
            // and drained (the writer blocked) by the next nudge.
            if let Err(TrySendError::Closed(_)) = self.tx.try_send(Msg::Wake) {
                return false;
            }
            self.writer.unpark();
            done = self
                .control
                .moved
                .wait_timeout(done, NUDGE.min(left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

// === impl Control ===

impl Control {
    /// Records that flush request `request` (and those before) are done.
    fn finished(&self, request: u64) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        *done = (*done).max(request);
        drop(done);
        self.moved.notify_all();
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
    /// Serializes `decided` (one allocation, of the values' exact length).
    pub fn new(decided: &Decided<'_>) -> Self {
        let head = |buf: &mut Vec<u8>| {
            buf.clear();
            let head = values(decided, buf)
                .ok()
                .and_then(|()| std::str::from_utf8(buf).ok())
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

    /// The values, NUL-separated (or empty).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the line's opening: `{"time_ms":…,…,"mode":…` (no closing brace).
    fn write_head(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut sep = b"{\"";
        for (key, value) in KEYS.iter().zip(self.0.split('\0')) {
            w.write_all(sep)?;
            w.write_all(key.as_bytes())?;
            w.write_all(b"\":")?;
            w.write_all(value.as_bytes())?;
            sep = b",\"";
        }
        Ok(())
    }
}

/// `decided`'s values as JSON, in [`KEYS`] order, NUL-separated.
fn values(d: &Decided<'_>, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    fn put(buf: &mut Vec<u8>, value: &impl Serialize) -> serde_json::Result<()> {
        if !buf.is_empty() {
            buf.push(0);
        }
        serde_json::to_writer(&mut *buf, value)
    }
    put(buf, &d.time_ms)?;
    put(buf, &Shown(&d.source))?;
    put(buf, &d.devbox)?;
    put(buf, &d.account)?;
    put(buf, &d.dest.as_ref().map(Shown))?;
    put(buf, &d.name)?;
    put(buf, &d.protocol)?;
    put(buf, &d.listener)?;
    put(buf, &d.verdict)?;
    put(buf, &d.reason)?;
    put(buf, &d.detail)?;
    put(buf, &d.policy)?;
    put(buf, &Shown(&d.rule))?;
    put(buf, &d.mode)
}

/// A value serialized by its `Display` form, as a JSON string (no
/// temporary `String`).
struct Shown<'a, T>(&'a T);

impl<T: Display> Serialize for Shown<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// The writer's buffer: a batch of a few hundred lines in one write.
const BUFFER: usize = 64 * 1024;

enum Sink {
    File(PathBuf, BufWriter<File>),
    Stdout(BufWriter<io::Stdout>),
}

impl Sink {
    fn open(path: Option<PathBuf>) -> io::Result<Self> {
        Ok(match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                Self::File(path, BufWriter::with_capacity(BUFFER, file))
            }
            None => Self::Stdout(BufWriter::with_capacity(BUFFER, io::stdout())),
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
                Ok(file) => *w = BufWriter::with_capacity(BUFFER, file),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot reopen the audit log")
                }
            }
        }
    }
}

/// Blocks for a record, writes it, lets more gather for [`GATHER`], writes
/// everything queued, flushes; until every sender is gone.
fn write_loop(mut rx: mpsc::Receiver<Msg>, mut sink: Sink, control: &Control) {
    let mut flushed = 0;
    while let Some(first) = rx.blocking_recv() {
        if control.reopen.swap(false, Ordering::Relaxed) {
            sink.reopen();
        }
        write_one(&mut sink, &first);
        drop(first);
        if control.requested.load(Ordering::Acquire) == flushed {
            std::thread::park_timeout(GATHER);
        }
        // Read before draining: what was queued before the request is then
        // written by this batch.
        let requested = control.requested.load(Ordering::Acquire);
        if control.reopen.swap(false, Ordering::Relaxed) {
            sink.reopen();
        }
        while let Ok(more) = rx.try_recv() {
            write_one(&mut sink, &more);
        }
        let _ = sink.writer().flush();
        if requested != flushed {
            flushed = requested;
            control.finished(requested);
        }
    }
}

/// Writes a line (its head, then what the close adds); skips a wake.
fn write_one(sink: &mut Sink, msg: &Msg) {
    match msg {
        Msg::Line(closed) if !closed.pending.0.is_empty() => {
            let _ = write_line(sink.writer(), closed);
        }
        Msg::Line(_) | Msg::Wake => {}
    }
}

fn write_line(w: &mut dyn Write, closed: &Closed) -> io::Result<()> {
    closed.pending.write_head(w)?;
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

    fn closed(name: &str) -> Closed {
        Closed {
            pending: Pending::new(&Decided {
                time_ms: 1,
                source: "10.0.0.1:1".parse().unwrap(),
                devbox: None,
                account: None,
                dest: None,
                name: Some(name),
                protocol: "none",
                listener: "transparent",
                verdict: "allow",
                reason: "cidr",
                detail: "cidr",
                policy: None,
                rule: Rule::None,
                mode: "enforce",
            }),
            bytes_up: 1,
            bytes_down: 2,
            duration_ms: 3,
            end: Some("closed"),
        }
    }

    fn names(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Record>(l).unwrap().name.unwrap())
            .collect()
    }

    fn counter() -> IntCounter {
        IntCounter::new("dropped", "dropped").unwrap()
    }

    #[test]
    fn finish_writes_out_everything_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::start(Some(path.clone()), 4096, counter()).unwrap();
        assert!(log.finish(Duration::from_secs(5)), "an idle writer");
        let sent: Vec<String> = (0..1000).map(|i| format!("n{i}.test")).collect();
        for name in &sent {
            log.record(closed(name));
        }
        assert!(log.finish(Duration::from_secs(5)));
        assert_eq!(names(&path), sent);
        log.record(closed("last.test"));
        assert!(log.finish(Duration::from_secs(5)));
        assert_eq!(names(&path).len(), 1001);
    }

    /// While the writer gathers a batch, senders do not wake it: a full
    /// queue overflows (counted) rather than blocking or being drained.
    #[test]
    fn records_gather_and_overflow_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let dropped = counter();
        let log = AuditLog::start(Some(path.clone()), 1, dropped.clone()).unwrap();
        for i in 0..3 {
            log.record(closed(&format!("n{i}.test")));
        }
        assert!(log.finish(Duration::from_secs(5)));
        let written = names(&path).len();
        assert!(dropped.get() >= 1, "dropped {}", dropped.get());
        assert_eq!(written as u64 + dropped.get(), 3);
    }

    #[test]
    fn reopen_starts_a_new_file_for_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::start(Some(path.clone()), 16, counter()).unwrap();
        log.record(closed("before.test"));
        assert!(log.finish(Duration::from_secs(5)));
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log.record(closed("after.test"));
        assert!(log.finish(Duration::from_secs(5)));
        assert_eq!(names(&rotated), ["before.test"]);
        assert_eq!(names(&path), ["after.test"]);
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
        assert_eq!(
            head.as_str(),
            "1\0\"10.0.0.1:1\"\0null\0null\0null\0null\0\"none\"\0\"transparent\"\0\"deny\"\0\
             \"loop\"\0\"loop\"\0null\0\"-\"\0\"enforce\""
        );
        let mut head_text = Vec::new();
        head.write_head(&mut head_text).unwrap();
        assert!(
            String::from_utf8(head_text)
                .unwrap()
                .starts_with("{\"time_ms\":1,\"source\":\"10.0.0.1:1\",\"devbox\":null")
        );
    }
}
