//! Compiled sets of hostname patterns, looked up in O(labels).
//!
//! Every distinct name (an exact pattern, or a wildcard's suffix) is stored
//! once in a shared [`Interner`], whatever the number of policies using it; a
//! [`HostSet`] holds only 4-byte ids. A lookup hashes the observed name and
//! each of its suffixes (one probe per label), never scanning patterns, and
//! never allocates.

use std::collections::HashSet;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use crate::pattern::Pattern;

/// Every distinct name used by any pattern, stored once in one arena.
#[derive(Debug, Default)]
pub struct Interner {
    text: String,
    spans: Vec<(u32, u8)>,
    table: HashTable<u32>,
    hasher: FixedState,
}

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
    /// The id of `name`, adding it when new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.get(name) {
            return id;
        }
        let id = u32::try_from(self.spans.len()).unwrap_or(u32::MAX);
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        let len = u8::try_from(name.len()).unwrap_or(u8::MAX);
        self.text.push_str(name);
        self.spans.push((start, len));
        let hash = self.hasher.hash_one(name);
        let Self {
            text,
            spans,
            table,
            hasher,
        } = self;
        table.insert_unique(hash, id, |&other| {
            hasher.hash_one(span_str(text, spans, other))
        });
        id
    }

    /// The id of `name`, if any pattern uses it.
    pub fn get(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&id| self.resolve(id) == name)
            .copied()
    }

    /// The name behind `id`.
    pub fn resolve(&self, id: u32) -> &str {
        span_str(&self.text, &self.spans, id)
    }

    /// Bytes held by the arena, the spans and the table (an estimate of the
    /// table's control bytes included).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.spans.capacity() * std::mem::size_of::<(u32, u8)>()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }

    /// How many distinct names are interned.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether no name is interned.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

fn span_str<'a>(text: &'a str, spans: &[(u32, u8)], id: u32) -> &'a str {
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

    /// The pattern matching `name` (normalised), exact patterns first, then
    /// the most specific wildcard.
    pub fn find(&self, interner: &Interner, name: &str) -> Option<Hit> {
        if self.is_empty() {
            return None;
        }
        if !self.exact.is_empty()
            && let Some(id) = interner.get(name).filter(|id| self.exact.contains(id))
        {
            return Some(Hit {
                id,
                wildcard: false,
            });
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest = name;
        while let Some((_, suffix)) = rest.split_once('.') {
            if let Some(id) = interner.get(suffix).filter(|id| self.wildcard.contains(id)) {
                return Some(Hit { id, wildcard: true });
            }
            rest = suffix;
        }
        None
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
        assert_eq!(interner.len(), 1);
        assert!(a.find(&interner, "example.com").is_some());
        assert!(b.find(&interner, "example.com").is_none());
    }
}
