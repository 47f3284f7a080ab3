//! List parameters and cursor pagination shared by every `GET /v1/<kind>`.
//!
//! Items are ordered by id, descending (ids sort by creation time, so newest
//! first). `starting_after` is an id: the page holds the items after it in
//! that order, whether or not it still exists. `has_more` is exact;
//! `total_count` counts every item matching the filters (not only the page)
//! and is left out with `include_total_count=false`.

use serde::Serialize;

use super::error::ApiError;

/// The default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// The largest page size.
pub const MAX_LIMIT: usize = 5000;

/// Parsed list parameters; unknown parameters are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: usize,
    /// The id the page starts after.
    pub starting_after: Option<String>,
    /// Exact id filter.
    pub id: Option<String>,
    /// Partial, case-insensitive name filter.
    pub name: Option<String>,
    /// Partial, case-insensitive match on id or name.
    pub search: Option<String>,
    /// Whether to answer `total_count`.
    pub include_total_count: bool,
}

/// One page of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Whether more items follow.
    pub has_more: bool,
    /// Every matching item, when asked for.
    pub total_count: Option<usize>,
}

/// The answer's shape: `{<key>: [...], has_more, total_count?}`.
#[derive(Serialize)]
pub struct PageView<'a, T: Serialize> {
    #[serde(flatten)]
    items: std::collections::BTreeMap<&'static str, &'a [T]>,
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
}

// === impl ListParams ===

impl ListParams {
    /// Parses decoded query pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut p = Self {
            limit: DEFAULT_LIMIT,
            starting_after: None,
            id: None,
            name: None,
            search: None,
            include_total_count: true,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => p.limit = limit(v)?,
                "starting_after" => p.starting_after = non_empty(v),
                "id" => p.id = non_empty(v),
                "name" => p.name = non_empty(v).map(|n| n.to_lowercase()),
                "search" => p.search = non_empty(v).map(|s| s.to_lowercase()),
                "include_total_count" => p.include_total_count = boolean(k, v)?,
                _ => {}
            }
        }
        Ok(p)
    }

    /// Whether an item with `id` and `name` passes the filters.
    pub fn matches(&self, id: &str, name: &str) -> bool {
        let name = name.to_lowercase();
        self.id.as_deref().is_none_or(|want| want == id)
            && self.name.as_deref().is_none_or(|want| name.contains(want))
            && self
                .search
                .as_deref()
                .is_none_or(|s| name.contains(s) || id.to_lowercase().contains(s))
    }

    /// The page of `items` (already filtered) these parameters select.
    pub fn page<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> &str) -> Page<T> {
        items.sort_unstable_by(|a, b| id(b).cmp(id(a)));
        let total = items.len();
        let start = match &self.starting_after {
            Some(after) => items.partition_point(|item| id(item) >= after.as_str()),
            None => 0,
        };
        let mut items: Vec<T> = items.into_iter().skip(start).collect();
        let has_more = items.len() > self.limit;
        items.truncate(self.limit);
        Page {
            items,
            has_more,
            total_count: self.include_total_count.then_some(total),
        }
    }
}

// === impl Page ===

impl<T: Serialize> Page<T> {
    /// The answer, with the items under `key`.
    pub fn view(&self, key: &'static str) -> PageView<'_, T> {
        PageView {
            items: std::iter::once((key, self.items.as_slice())).collect(),
            has_more: self.has_more,
            total_count: self.total_count,
        }
    }
}

fn limit(v: &str) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "limit: {v:?}: expected an integer from 1 to {MAX_LIMIT}"
            ))
        })
}

fn boolean(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "{key}: {v:?}: expected true or false"
        ))),
    }
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> ListParams {
        let pairs = super::super::http::query_pairs(Some(q)).unwrap();
        ListParams::parse(&pairs).unwrap()
    }

    #[test]
    fn pages_walk_every_item_once_newest_first() {
        let ids: Vec<String> = (0..7).map(|i| format!("np_{i}")).collect();
        let mut seen = Vec::new();
        let mut q = "limit=3".to_owned();
        loop {
            let page = params(&q).page(ids.clone(), |s| s.as_str());
            assert_eq!(page.total_count, Some(7));
            seen.extend(page.items.clone());
            if !page.has_more {
                break;
            }
            q = format!("limit=3&starting_after={}", page.items.last().unwrap());
        }
        let want: Vec<String> = (0..7).rev().map(|i| format!("np_{i}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_deleted_cursor_still_pages() {
        let ids = vec!["np_1", "np_3", "np_5"];
        let page = params("starting_after=np_4").page(ids, |s| s);
        assert_eq!(page.items, ["np_3", "np_1"]);
        assert!(!page.has_more);
    }

    #[test]
    fn filters_are_partial_and_case_insensitive() {
        let p = params("name=PROD&search=np_");
        assert!(p.matches("np_1", "ai-production"));
        assert!(!p.matches("np_1", "staging"));
        assert!(params("id=np_1").matches("np_1", "x"));
        assert!(!params("id=np_1").matches("np_12", "x"));
    }

    #[test]
    fn bad_limits_and_flags_are_refused() {
        for q in [
            "limit=0",
            "limit=5001",
            "limit=x",
            "include_total_count=maybe",
        ] {
            let pairs = super::super::http::query_pairs(Some(q)).unwrap();
            assert!(ListParams::parse(&pairs).is_err(), "{q}");
        }
        assert!(!params("include_total_count=false").include_total_count);
    }
}
