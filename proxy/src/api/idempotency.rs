//! Idempotent retries: the official SDKs send every POST with an
//! `x-request-id` key and reuse it when they retry (a timeout, a dropped
//! connection, a 5xx). The first successful answer for an (account, path,
//! key) is kept for [`TTL`] and replayed to a retry, so a create whose answer was
//! lost is not made twice (nor refused as a duplicate name).
//!
//! In memory and bounded ([`CAPACITY`], oldest evicted first): a retry after
//! a restart runs again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// How many answers are kept.
pub const CAPACITY: usize = 4096;
/// How long an answer is kept.
pub const TTL: Duration = Duration::from_secs(600);
/// The longest key accepted; longer keys are not remembered.
const MAX_KEY: usize = 256;

/// A kept answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Bytes,
}

/// The kept answers.
#[derive(Debug, Default)]
pub struct Replays {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    answers: HashMap<(String, String), (Instant, Kept)>,
    order: VecDeque<(String, String)>,
}

// === impl Replays ===

impl Replays {
    /// The key of a request, if it carries a usable one.
    pub fn key(headers: &HeaderMap) -> Option<String> {
        let v = headers.get("x-request-id")?.to_str().ok()?;
        (!v.is_empty() && v.len() <= MAX_KEY).then(|| v.to_owned())
    }

    /// The answer kept for `account` and `key`, if still fresh.
    pub fn get(&self, account: &str, key: &str) -> Option<Kept> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (at, kept) = inner.answers.get(&(account.to_owned(), key.to_owned()))?;
        (at.elapsed() < TTL).then(|| kept.clone())
    }

    /// Keeps `kept` for `account` and `key`.
    pub fn put(&self, account: &str, key: &str, kept: Kept) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = (account.to_owned(), key.to_owned());
        if inner
            .answers
            .insert(id.clone(), (Instant::now(), kept))
            .is_none()
        {
            inner.order.push_back(id);
        }
        while inner.order.len() > CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.answers.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(n: u8) -> Kept {
        Kept {
            status: StatusCode::OK,
            body: Bytes::from(vec![n]),
        }
    }

    #[test]
    fn answers_replay_per_account_and_key() {
        let r = Replays::default();
        r.put("a", "k1", kept(1));
        assert_eq!(r.get("a", "k1"), Some(kept(1)));
        assert_eq!(r.get("b", "k1"), None, "keys are per account");
        assert_eq!(r.get("a", "k2"), None);
    }

    #[test]
    fn the_oldest_answers_are_evicted() {
        let r = Replays::default();
        for i in 0..=CAPACITY {
            r.put("a", &i.to_string(), kept(0));
        }
        assert_eq!(r.get("a", "0"), None);
        assert!(r.get("a", &CAPACITY.to_string()).is_some());
    }
}
