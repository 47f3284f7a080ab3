//! [`ApiError`]: every way a `/v1` request fails, and its JSON answer.
//!
//! The body is `{"message": "...", "issues": [...]?}` with a non-empty
//! message. Every 4xx carries `x-should-retry: false`: the official SDKs
//! otherwise retry 409 and 429 five times. Internal errors are logged in
//! full and answered without detail.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use policy_matcher::Issue;
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header, or an unknown token.
    #[error("missing or unknown bearer token")]
    Unauthorized,
    /// No such resource for this account.
    #[error("{0}")]
    NotFound(String),
    /// No route for this path.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// The path exists, the method does not.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The methods the path serves (the `Allow` header).
        allow: &'static str,
    },
    /// The request is malformed (body, query, path).
    #[error("{0}")]
    BadRequest(String),
    /// Values that fail validation, each with its field path.
    #[error("{}", summary(.0))]
    Invalid(Vec<Issue>),
    /// The request conflicts with the current state (duplicate name,
    /// read-only record, an address already bound, a limit reached).
    #[error("{0}")]
    Conflict(String),
    /// The change would leave a state the data path cannot load (an address
    /// or tunnel key already bound, ...), each issue with its path.
    #[error("{}", summary(.0))]
    Refused(Vec<Issue>),
    /// The body is over the size limit.
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    /// Concurrent writers kept winning; the client may retry.
    #[error("the state is busy; retry")]
    Busy,
    /// A bug or a failing disk; detail goes to the log only.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    message: String,
    #[serde(skip_serializing_if = "<[IssueView<'_>]>::is_empty")]
    issues: Vec<IssueView<'a>>,
}

#[derive(Serialize)]
struct IssueView<'a> {
    path: &'a str,
    value: &'a str,
    reason: &'a str,
}

// === impl ApiError ===

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) | Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::Refused(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON answer.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "api request failed");
        }
        let status = self.status();
        let issues = match &self {
            Self::Invalid(issues) | Self::Refused(issues) => issues
                .iter()
                .map(|i| IssueView {
                    path: &i.path,
                    value: &i.value,
                    reason: &i.reason,
                })
                .collect(),
            _ => Vec::new(),
        };
        let body = Body {
            message: self.to_string(),
            issues,
        };
        let allow = match &self {
            Self::MethodNotAllowed { allow, .. } => Some(*allow),
            _ => None,
        };
        let mut resp = super::http::json(status, &body);
        if let Some(allow) = allow {
            resp.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        let retry = if status.is_client_error() {
            "false"
        } else {
            "true"
        };
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static(retry));
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

fn summary(issues: &[Issue]) -> String {
    let parts: Vec<String> = issues
        .iter()
        .filter(|i| i.is_error())
        .map(|i| {
            let mut s = String::new();
            if !i.path.is_empty() {
                s.push_str(&i.path);
                s.push_str(": ");
            }
            if !i.value.is_empty() {
                s.push_str(&format!("{:?}: ", i.value));
            }
            s.push_str(&i.reason);
            s
        })
        .collect();
    if parts.is_empty() {
        "invalid request".to_owned()
    } else {
        parts.join("; ")
    }
}
