//! Hostname patterns: `example.com` (exactly that name) and `*.example.com`
//! (one or more labels in front of `example.com`, never the apex).
//!
//! A wildcard is only ever the whole first label. Patterns are normalised
//! like observed names (see [`crate::name`]) when a policy is loaded.

use crate::name::{self, NameBuf, NameError};

/// A validated, normalised hostname pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// Matches exactly this name.
    Exact(Box<str>),
    /// Matches every name with at least one label in front of this suffix.
    Wildcard(Box<str>),
}

/// Why a pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// `*` alone would allow everything; use `allow_all`.
    #[error("a bare \"*\" is not a pattern (use allow_all)")]
    BareWildcard,
    /// `*` anywhere but as the whole first label.
    #[error("a wildcard must be the whole first label, as in \"*.example.com\"")]
    MisplacedWildcard,
    /// The name part is not a valid host name.
    #[error("{0}")]
    Name(#[from] NameError),
}

// === impl Pattern ===

impl Pattern {
    /// Parses and normalises one pattern.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let trimmed = raw.strip_suffix('.').unwrap_or(raw);
        if trimmed == "*" {
            return Err(PatternError::BareWildcard);
        }
        let (wildcard, rest) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if rest.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        if name::is_ip_literal(rest) {
            return Err(NameError::IpLiteral.into());
        }
        let mut buf = NameBuf::new();
        let name = name::normalize(rest, &mut buf)?;
        let name: Box<str> = name.into();
        Ok(if wildcard {
            Self::Wildcard(name)
        } else {
            Self::Exact(name)
        })
    }

    /// The name part (the suffix, for a wildcard).
    pub fn name(&self) -> &str {
        match self {
            Self::Exact(n) | Self::Wildcard(n) => n,
        }
    }

    /// Whether `name` (already normalised) matches; the reference semantics,
    /// used by tests to check the compiled sets.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(n) => name == &**n,
            Self::Wildcard(suffix) => name
                .strip_suffix(&**suffix)
                .and_then(|front| front.strip_suffix('.'))
                .is_some_and(|front| !front.is_empty()),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(n) => f.write_str(n),
            Self::Wildcard(n) => write!(f, "*.{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_parse_normalised() {
        assert_eq!(
            Pattern::parse("GitHub.com.").unwrap(),
            Pattern::Exact("github.com".into())
        );
        assert_eq!(
            Pattern::parse("*.NPMJS.org").unwrap(),
            Pattern::Wildcard("npmjs.org".into())
        );
        assert_eq!(
            Pattern::parse("*.bücher.de").unwrap(),
            Pattern::Wildcard("xn--bcher-kva.de".into())
        );
    }

    #[test]
    fn spec_rejections() {
        use PatternError::*;
        let cases: &[(&str, PatternError)] = &[
            ("*", BareWildcard),
            ("*example.com", MisplacedWildcard),
            ("a.*.com", MisplacedWildcard),
            ("*.*.com", MisplacedWildcard),
            ("git*.com", MisplacedWildcard),
            ("10.0.0.1", Name(NameError::IpLiteral)),
            ("::1", Name(NameError::IpLiteral)),
            ("[fd00::1]", Name(NameError::IpLiteral)),
            ("example.com:443", Name(NameError::Port)),
            ("a..com", Name(NameError::EmptyLabel)),
            ("", Name(NameError::Empty)),
            ("*.", BareWildcard),
            ("*..com", Name(NameError::EmptyLabel)),
        ];
        for (raw, want) in cases {
            assert_eq!(Pattern::parse(raw), Err(*want), "pattern {raw:?}");
        }
    }

    #[test]
    fn wildcard_does_not_match_apex() {
        let p = Pattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("badexample.com"));
    }
}
