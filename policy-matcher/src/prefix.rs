//! Longest-prefix tables over IPv4 and IPv6 networks.
//!
//! One hash map per prefix length present, searched from the longest length
//! down: a lookup costs at most one hash probe per distinct length (33 for
//! IPv4, 129 for IPv6, in practice two or three) and never allocates.

use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use ipnet::IpNet;

/// Values keyed by network, found by longest (or every) matching prefix.
#[derive(Debug, Clone)]
pub struct PrefixTable<V> {
    v4: Vec<(u8, HashMap<u32, V, RandomState>)>,
    v6: Vec<(u8, HashMap<u128, V, RandomState>)>,
}

// === impl PrefixTable ===

impl<V> PrefixTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    /// The value stored for exactly `net`, inserting `make()` when absent.
    pub fn entry(&mut self, net: IpNet, make: impl FnOnce() -> V) -> &mut V {
        match net {
            IpNet::V4(n) => {
                let key = u32::from(n.network());
                level(&mut self.v4, n.prefix_len())
                    .entry(key)
                    .or_insert_with(make)
            }
            IpNet::V6(n) => {
                let key = u128::from(n.network());
                level(&mut self.v6, n.prefix_len())
                    .entry(key)
                    .or_insert_with(make)
            }
        }
    }

    /// The value of the longest prefix containing `addr`.
    pub fn longest(&self, addr: IpAddr) -> Option<&V> {
        self.matches(addr).next()
    }

    /// Every value whose prefix contains `addr`, longest prefix first.
    pub fn matches(&self, addr: IpAddr) -> impl Iterator<Item = &V> {
        let (v4, v6) = match to_canonical(addr) {
            IpAddr::V4(a) => (Some(u32::from(a)), None),
            IpAddr::V6(a) => (None, Some(u128::from(a))),
        };
        let v4_hits = v4.into_iter().flat_map(move |a| {
            self.v4
                .iter()
                .filter_map(move |(len, map)| map.get(&mask_u32(a, *len)))
        });
        let v6_hits = v6.into_iter().flat_map(move |a| {
            self.v6
                .iter()
                .filter_map(move |(len, map)| map.get(&mask_u128(a, *len)))
        });
        v4_hits.chain(v6_hits)
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for an IPv4 peer) is looked up as the IPv4 address it carries.
pub fn to_canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The map for prefix length `len`, kept sorted longest first.
fn level<K, V>(
    levels: &mut Vec<(u8, HashMap<K, V, RandomState>)>,
    len: u8,
) -> &mut HashMap<K, V, RandomState> {
    let at = match levels.binary_search_by(|(l, _)| len.cmp(l)) {
        Ok(at) => at,
        Err(at) => {
            levels.insert(at, (len, HashMap::default()));
            at
        }
    };
    #[expect(clippy::indexing_slicing, reason = "`at` was just found or inserted")]
    &mut levels[at].1
}

fn mask_u32(addr: u32, len: u8) -> u32 {
    addr & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_u128(addr: u128, len: u8) -> u128 {
    addr & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(nets: &[(&str, u32)]) -> PrefixTable<u32> {
        let mut t = PrefixTable::new();
        for (net, v) in nets {
            *t.entry(net.parse().unwrap(), || 0) = *v;
        }
        t
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.3/32", 3)]);
        assert_eq!(t.longest("10.1.2.3".parse().unwrap()), Some(&3));
        assert_eq!(t.longest("10.1.9.9".parse().unwrap()), Some(&2));
        assert_eq!(t.longest("10.9.9.9".parse().unwrap()), Some(&1));
        assert_eq!(t.longest("11.0.0.1".parse().unwrap()), None);
        let all: Vec<_> = t.matches("10.1.2.3".parse().unwrap()).copied().collect();
        assert_eq!(all, vec![3, 2, 1]);
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let t = table(&[("fd00::/64", 1), ("0.0.0.0/0", 4), ("::/0", 6)]);
        assert_eq!(t.longest("fd00::2".parse().unwrap()), Some(&1));
        assert_eq!(t.longest("fd01::2".parse().unwrap()), Some(&6));
        assert_eq!(t.longest("::ffff:10.0.0.1".parse().unwrap()), Some(&4));
    }
}
