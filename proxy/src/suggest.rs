//! `egress-proxy audit suggest`: from an audit log, the names each devbox was
//! (or in report mode would have been) denied, most frequent first, as a
//! starting point for a policy.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use crate::audit::Record;
use crate::cli::{EXIT_ERROR, EXIT_OK};

/// Prints `devbox<TAB>count<TAB>name` lines, per devbox, most frequent first.
pub fn suggest(log: &Path, devbox: Option<&str>, out: &mut dyn Write) -> i32 {
    let file = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "error: {}: {e}", log.display());
            return EXIT_ERROR;
        }
    };
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    let mut skipped = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(r) = serde_json::from_str::<Record>(&line) else {
            skipped += 1;
            continue;
        };
        let denied = r.verdict == "deny" || r.verdict == "would_deny";
        let (Some(name), Some(dbx)) = (r.name, r.devbox) else {
            continue;
        };
        if denied && devbox.is_none_or(|d| d == dbx) {
            *counts.entry((dbx, name)).or_default() += 1;
        }
    }
    let mut rows: Vec<((String, String), u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| {
        a.0.0
            .cmp(&b.0.0)
            .then(b.1.cmp(&a.1))
            .then(a.0.1.cmp(&b.0.1))
    });
    for ((dbx, name), n) in rows {
        let _ = writeln!(out, "{dbx}\t{n}\t{name}");
    }
    if skipped > 0 {
        let _ = writeln!(out, "# {skipped} line(s) were not audit records");
    }
    EXIT_OK
}
