//! Bearer-token authentication: `Authorization: Bearer <token>` maps to one
//! account through `[[api.tokens]]`, which holds only SHA-256 digests.
//!
//! The presented token is hashed and compared with every configured digest
//! without an early exit, so the time taken does not depend on which token
//! (or how much of a digest) matched. Tokens are never logged or stored.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use crate::config::ApiToken;

use super::error::ApiError;

/// The account a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account(pub String);

/// The account of the request's bearer token, or 401.
pub fn account(headers: &HeaderMap, tokens: &[ApiToken]) -> Result<Account, ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .ok_or(ApiError::Unauthorized)?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found: Option<&ApiToken> = None;
    for t in tokens {
        if equal(&digest, &t.sha256) && found.is_none() {
            found = Some(t);
        }
    }
    found
        .map(|t| Account(t.account.clone()))
        .ok_or(ApiError::Unauthorized)
}

/// The token of an `Authorization` value (`Bearer` in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two digests in time independent of where they differ.
fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn token(account: &str, secret: &str) -> ApiToken {
        ApiToken {
            account: account.into(),
            sha256: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_known_token_names_its_account() {
        let tokens = [token("a", "tok-a"), token("b", "tok-b")];
        let got = account(&headers("Bearer tok-b"), &tokens).unwrap();
        assert_eq!(got, Account("b".into()));
        let got = account(&headers("bearer tok-a"), &tokens).unwrap();
        assert_eq!(got, Account("a".into()));
    }

    #[test]
    fn missing_unknown_or_malformed_tokens_are_refused() {
        let tokens = [token("a", "tok-a")];
        assert!(account(&HeaderMap::new(), &tokens).is_err());
        assert!(account(&headers("Bearer tok-x"), &tokens).is_err());
        assert!(account(&headers("Basic tok-a"), &tokens).is_err());
        assert!(account(&headers("Bearer "), &tokens).is_err());
        assert!(account(&headers("Bearer tok-a"), &[]).is_err());
    }
}
