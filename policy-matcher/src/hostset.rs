//! Compiled sets of hostname patterns, looked up in O(labels).
//!
//! Every distinct name (an exact pattern, or a wildcard's suffix) is stored
//! once in a shared [`Interner`], whatever the number of policies using it,
//! together with every suffix of it (`a.example.com` brings `example.com` and
//! `com`); a [`HostSet`] holds only 4-byte ids. A lookup walks the observed
//! name's labels from the right, hashing each label once (the hash of a
//! suffix extends the hash of the shorter one), probes the interner once per
//! label, and stops at the first suffix no pattern has. It never scans
//! patterns and never allocates.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use crate::pattern::Pattern;

/// Every distinct name used by any pattern, and its suffixes, stored once in
/// one arena.
#[derive(Debug, Default)]
pub struct Interner {
    text: String,
    spans: Vec<(u32, u8)>,
    table: HashTable<Entry>,
    hasher: FixedState,
}

/// One interned name: its hash, its id, and how any pattern uses it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    id: u32,
    /// `EXACT` and/or `WILDCARD`: a lookup probes a set only for the uses
    /// some pattern has, so bare suffixes (`com`) cost one probe, not three.
    uses: u8,
}

const EXACT: u8 = 1;
const WILDCARD: u8 = 2;

/// The ids of a set of patterns.
#[derive(Debug, Default, Clone)]
pub struct HostSet {
    exact: HashSet<u32, FixedState>,
    wildcard: HashSet<u32, FixedState>,
}

/// A pattern that matched: its interned name and whether it was a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The interned name id.
    pub id: u32,
    /// Whether the pattern was `*.name`.
    pub wildcard: bool,
}

// === impl Interner ===

impl Interner {
    /// The id of `name`, adding it (and its suffixes) when new.
    pub fn intern(&mut self, name: &str) -> u32 {
        let mut id = u32::MAX;
        let mut suffixes = Vec::new();
        self.walk(name, |start, hash| {
            suffixes.push((start, hash));
            true
        });
        for (start, hash) in suffixes {
            let suffix = name.get(start..).unwrap_or_default();
            id = match self.find(hash, suffix) {
                Some(found) => found.id,
                None => self.insert(hash, suffix),
            };
        }
        id
    }

    /// Records that `name` (already interned) is used as an exact pattern or
    /// as a wildcard's suffix.
    fn mark(&mut self, name: &str, wildcard: bool) {
        let mut hash = 0;
        self.walk(name, |_, h| {
            hash = h;
            true
        });
        let Self {
            text, spans, table, ..
        } = self;
        if let Some(entry) =
            table.find_mut(hash, |e| e.hash == hash && span(text, spans, e.id) == name)
        {
            entry.uses |= if wildcard { WILDCARD } else { EXACT };
        }
    }

    fn insert(&mut self, hash: u64, name: &str) -> u32 {
        let id = u32::try_from(self.spans.len()).unwrap_or(u32::MAX);
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        let len = u8::try_from(name.len()).unwrap_or(u8::MAX);
        self.text.push_str(name);
        self.spans.push((start, len));
        self.table
            .insert_unique(hash, Entry { hash, id, uses: 0 }, |e| e.hash);
        id
    }

    /// The id of `name`, if any pattern uses it (or a longer name ending in it).
    pub fn get(&self, name: &str) -> Option<u32> {
        let mut found = None;
        self.walk(name, |start, hash| {
            found = self
                .find(hash, name.get(start..).unwrap_or_default())
                .map(|e| e.id);
            found.is_some()
        });
        found
    }

    fn find(&self, hash: u64, name: &str) -> Option<Entry> {
        self.table
            .find(hash, |e| e.hash == hash && self.resolve(e.id) == name)
            .copied()
    }

    /// Calls `f(start, hash)` for each suffix of `name` from the last label
    /// to the whole name, while `f` answers true. Each byte is hashed once.
    fn walk(&self, name: &str, mut f: impl FnMut(usize, u64) -> bool) {
        let bytes = name.as_bytes();
        let mut hasher = self.hasher.build_hasher();
        let mut end = bytes.len();
        loop {
            let head = bytes.get(..end).unwrap_or_default();
            let start = head
                .iter()
                .rposition(|&b| b == b'.')
                .map_or(0, |dot| dot + 1);
            hasher.write(head.get(start..).unwrap_or_default());
            hasher.write_u8(b'.');
            if !f(start, hasher.finish()) || start == 0 {
                return;
            }
            end = start - 1;
        }
    }

    /// The name behind `id`.
    pub fn resolve(&self, id: u32) -> &str {
        span(&self.text, &self.spans, id)
    }

    /// Bytes held by the arena, the spans and the table.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.spans.capacity() * std::mem::size_of::<(u32, u8)>()
            + self.table.capacity() * (std::mem::size_of::<Entry>() + 1)
    }

    /// How many distinct names (suffixes included) are interned.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether no name is interned.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

fn span<'a>(text: &'a str, spans: &[(u32, u8)], id: u32) -> &'a str {
    let Some(&(start, len)) = spans.get(id as usize) else {
        return "";
    };
    let start = start as usize;
    text.get(start..start + usize::from(len)).unwrap_or("")
}

// === impl HostSet ===

impl HostSet {
    /// Compiles `patterns`, interning their names.
    pub fn build<'p>(
        interner: &mut Interner,
        patterns: impl IntoIterator<Item = &'p Pattern>,
    ) -> Self {
        let mut set = Self::default();
        for p in patterns {
            let id = interner.intern(p.name());
            interner.mark(p.name(), matches!(p, Pattern::Wildcard(_)));
            match p {
                Pattern::Exact(_) => set.exact.insert(id),
                Pattern::Wildcard(_) => set.wildcard.insert(id),
            };
        }
        set
    }

    /// Whether the set holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// The pattern matching `name` (normalised): an exact pattern first,
    /// else the most specific wildcard.
    pub fn find(&self, interner: &Interner, name: &str) -> Option<Hit> {
        if self.is_empty() {
            return None;
        }
        let mut best = None;
        interner.walk(name, |start, hash| {
            let Some(entry) = interner.find(hash, name.get(start..).unwrap_or_default()) else {
                // No pattern has this suffix, so none has a longer one.
                return false;
            };
            let id = entry.id;
            if start == 0 {
                if entry.uses & EXACT != 0 && self.exact.contains(&id) {
                    best = Some(Hit {
                        id,
                        wildcard: false,
                    });
                }
            } else if entry.uses & WILDCARD != 0 && self.wildcard.contains(&id) {
                best = Some(Hit { id, wildcard: true });
            }
            true
        });
        best
    }

    /// Bytes held by the id sets (capacity-based estimate).
    pub fn heap_bytes(&self) -> usize {
        (self.exact.capacity() + self.wildcard.capacity()) * (std::mem::size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> (Interner, HostSet) {
        let mut interner = Interner::default();
        let parsed: Vec<Pattern> = patterns
            .iter()
            .map(|p| Pattern::parse(p).unwrap())
            .collect();
        let set = HostSet::build(&mut interner, &parsed);
        (interner, set)
    }

    #[test]
    fn exact_and_wildcard_lookups() {
        let (i, s) = set(&[
            "github.com",
            "*.npmjs.org",
            "*.b.example.com",
            "a.example.com",
        ]);
        assert_eq!(s.find(&i, "github.com").map(|h| h.wildcard), Some(false));
        assert!(s.find(&i, "api.github.com").is_none());
        assert!(s.find(&i, "npmjs.org").is_none());
        let hit = s.find(&i, "x.y.npmjs.org").unwrap();
        assert_eq!((i.resolve(hit.id), hit.wildcard), ("npmjs.org", true));
        assert!(s.find(&i, "a.example.com").is_some());
        assert!(s.find(&i, "b.example.com").is_none());
        assert!(s.find(&i, "z.b.example.com").is_some());
    }

    #[test]
    fn identical_names_are_interned_once() {
        let mut interner = Interner::default();
        let p = [
            Pattern::parse("*.example.com").unwrap(),
            Pattern::parse("example.com").unwrap(),
        ];
        let a = HostSet::build(&mut interner, &p);
        let b = HostSet::build(&mut interner, &p[..1]);
        assert_eq!(interner.len(), 2, "example.com and its suffix com");
        assert!(a.find(&interner, "example.com").is_some());
        assert!(b.find(&interner, "example.com").is_none());
    }
}
