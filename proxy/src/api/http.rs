//! HTTP plumbing for the API: JSON answers, bounded JSON bodies, query
//! strings and percent-encoded path segments (the Python SDK encodes ids,
//! the npm one sends them raw; both decode to the same id).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// A JSON answer with `status`.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, body, "application/json"),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an api answer");
            let body = br#"{"message":"internal error"}"#.to_vec();
            with_type(StatusCode::INTERNAL_SERVER_ERROR, body, "application/json")
        }
    }
}

/// A plain answer with a content type.
pub fn with_type(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; an empty body is `{}`
/// (the SDKs send none with `…/delete`). Unknown or mistyped fields are a
/// 400 naming the field path.
pub async fn read_json<T, B>(body: B) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::TooLarge(MAX_BODY));
        }
        Err(e) => return Err(ApiError::BadRequest(format!("cannot read the body: {e}"))),
    };
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::BadRequest(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid JSON body at {path}: {inner}"))
        }
    })
}

/// The decoded `key=value` pairs of a query string (`+` is a space).
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = decode(&k.replace('+', " "))?;
            let v = decode(&v.replace('+', " "))?;
            Ok((k, v))
        })
        .collect()
}

/// Percent-decodes `raw` (a path segment or query part) into UTF-8.
pub fn decode(raw: &str) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest(format!("bad percent-encoding in {raw:?}"));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoded_and_raw_ids_decode_alike() {
        assert_eq!(decode("np_1%2Fx").unwrap(), "np_1/x");
        assert_eq!(decode("np_1").unwrap(), "np_1");
        assert!(decode("np_%zz").is_err());
        assert!(decode("np_%2").is_err());
        assert!(decode("%ff").is_err(), "not UTF-8");
    }

    #[test]
    fn query_strings_decode_pairs() {
        let pairs = query_pairs(Some("name=a+b&starting_after=np_%31&flag")).unwrap();
        assert_eq!(
            pairs,
            [
                ("name".into(), "a b".into()),
                ("starting_after".into(), "np_1".into()),
                ("flag".into(), String::new())
            ]
        );
    }
}
