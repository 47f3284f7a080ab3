//! Record ids and clocks: `np_` (policies), `dbx_` (devboxes), `bpt_`
//! (blueprints) followed by 8 base62 digits of the creation time in
//! milliseconds and 12 random base62 digits (71 bits).
//!
//! The base62 alphabet is in ASCII order, so ids of one kind sort by creation
//! time: listing in descending id order is newest first and a
//! `starting_after` cursor stays valid even after its record is deleted.

use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why no id could be made.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a new id: {0}")]
pub struct IdError(String);

/// A new id with `prefix` (e.g. `np_`).
pub fn new_id(prefix: &str) -> Result<String, IdError> {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| IdError(e.to_string()))?;
    let mut id = String::with_capacity(prefix.len() + 20);
    id.push_str(prefix);
    let mut t = u64::try_from(now_ms()).unwrap_or(0);
    let mut time = [b'0'; 8];
    for slot in time.iter_mut().rev() {
        *slot = digit(t % 62);
        t /= 62;
    }
    id.extend(time.iter().map(|&b| char::from(b)));
    // 256 is not a multiple of 62: the slight bias costs under a bit of 71.
    id.extend(random.iter().map(|&b| char::from(digit(u64::from(b) % 62))));
    Ok(id)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A time strictly after `previous` (an update always moves `update_time_ms`).
pub fn after(previous: i64) -> i64 {
    now_ms().max(previous.saturating_add(1))
}

fn digit(v: u64) -> u8 {
    usize::try_from(v)
        .ok()
        .and_then(|i| ALPHABET.get(i))
        .copied()
        .unwrap_or(b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_and_sort_by_time() {
        let a = new_id("np_").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("np_").unwrap();
        assert!(a.starts_with("np_") && a.len() == 23, "{a}");
        assert!(a.bytes().skip(3).all(|c| c.is_ascii_alphanumeric()));
        assert!(a < b, "{a} {b}");
    }

    #[test]
    fn updates_always_move_time_forward() {
        let far = now_ms() + 10_000;
        assert_eq!(after(far), far + 1);
    }
}
