//! HTTP/1.x request head: the end of the head, httparse, and the Host checks.
//!
//! `Scanner` looks for the CRLFCRLF that ends the head, each byte once, and
//! refuses a bare LF on the way (readers differ on it). httparse then parses the
//! head once, with its headers on the stack. The name comes from the single
//! Host header; an absolute-form or CONNECT target must name the same host and
//! port, so that the proxy and the upstream cannot read different names.

use core::mem::MaybeUninit;

use super::name::{self, ObservedName};
use super::{Detected, Detection, MAX_DETECT_BYTES, Malformed, capped};

/// Most headers in a head (hyper's default); more is `HttpSyntax(TooManyHeaders)`.
const MAX_HEADERS: usize = 100;

/// Methods that start an HTTP head: RFC 9110, PATCH and WebDAV. Any other first
/// bytes (`PRI * HTTP/2.0` among them) are not HTTP/1.x here.
const METHODS: [&[u8]; 17] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
    b"UNLOCK ",
    b"REPORT ",
];

/// Whether the first bytes are a known method followed by a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefix {
    Method,
    /// Too short to tell.
    Partial,
    Other,
}

/// Finds the end of the head in a growing buffer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scanner {
    /// Bytes already searched for the end of the head.
    scanned: usize,
}

/// A request target, by form (RFC 9112 section 3.2).
enum Target<'a> {
    /// `/path` or `*`: names nothing.
    Origin,
    /// `http://authority/path`; the scheme's default port.
    Absolute(&'a [u8], u16),
    /// `host:port` of a CONNECT.
    Authority(&'a [u8]),
}

/// A checked host (an IPv6 literal without its brackets) and its explicit
/// port, borrowed from the head; copied into an [`ObservedName`] once, at the end.
#[derive(Clone, Copy)]
struct Authority<'a> {
    host: &'a [u8],
    ipv6: bool,
    port: Option<u16>,
}

/// Parses the HTTP/1.x request head at the start of `buf`.
pub fn parse_request_head(buf: &[u8]) -> Detection {
    Scanner::default().feed(buf)
}

/// Whether `buf` starts with a method of [`METHODS`], may still, or cannot.
pub(crate) fn method_prefix(buf: &[u8]) -> Prefix {
    if METHODS.iter().any(|m| buf.starts_with(m)) {
        Prefix::Method
    } else if METHODS.iter().any(|m| m.starts_with(buf)) {
        Prefix::Partial
    } else {
        Prefix::Other
    }
}

// === impl Scanner ===

impl Scanner {
    /// Scans the bytes added since the last call; parses the head once complete.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Detection {
        match self
            .head_len(buf)
            .and_then(|end| end.map(|n| parse_head(buf, n)).transpose())
        {
            Ok(Some(detected)) => Detection::Done(detected),
            Ok(None) => capped(Detection::Incomplete, buf.len()),
            Err(malformed) => Detection::Reject(malformed),
        }
    }

    /// The head's length once its CRLFCRLF has arrived; a bare LF is refused.
    fn head_len(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        let limit = buf.len().min(MAX_DETECT_BYTES);
        let mut from = self.scanned;
        while let Some(lf) = next_line_feed(buf, from, limit) {
            if lf.checked_sub(1).and_then(|cr| buf.get(cr)) != Some(&b'\r') {
                return Err(Malformed::HttpBareLineFeed);
            }
            if lf >= 3 && buf.get(lf - 3..lf) == Some(b"\r\n\r") {
                return Ok(Some(lf + 1));
            }
            from = lf + 1;
        }
        self.scanned = self.scanned.max(limit);
        Ok(None)
    }
}

// === impl Authority ===

impl Authority<'_> {
    fn name(&self) -> Result<ObservedName, Malformed> {
        let name = if self.ipv6 {
            ObservedName::ipv6(self.host)
        } else {
            ObservedName::new(self.host)
        };
        name.map_err(Malformed::from_host)
    }
}

/// The offset of the next LF in `buf[from..limit]`. Blocks of 16 bytes are
/// tested whole first (the compiler vectorises the test), lines being ~40 bytes.
fn next_line_feed(buf: &[u8], from: usize, limit: usize) -> Option<usize> {
    const BLOCK: usize = 16;
    let hay = buf.get(from..limit)?;
    let skip = hay
        .chunks_exact(BLOCK)
        .take_while(|block| !block.iter().fold(false, |seen, &b| seen | (b == b'\n')))
        .count()
        * BLOCK;
    let at = hay.get(skip..)?.iter().position(|&b| b == b'\n')?;
    Some(from + skip + at)
}

/// Parses the complete head `buf[..head_len]` with httparse and checks the names.
fn parse_head(buf: &[u8], head_len: usize) -> Result<Detected, Malformed> {
    let head = buf.get(..head_len).ok_or(Malformed::TooLarge)?;
    // Uninitialised slots: httparse writes only those it fills, so no 3 KiB memset.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(head, &mut headers) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        // httparse stops short of our CRLFCRLF only on a line ending it reads
        // differently; treat it as a syntax error.
        Ok(_) => return Err(Malformed::HttpSyntax(httparse::Error::NewLine)),
        Err(e) => return Err(Malformed::HttpSyntax(e)),
    }
    let method = request.method.unwrap_or_default();
    let target = target(method, request.path.unwrap_or_default())?;
    let host = host_header(request.headers)?.map(authority).transpose()?;
    let (name, absolute_form) = match target {
        Target::Origin => (host, false),
        Target::Absolute(raw, default_port) => (Some(agree(raw, Some(default_port), host)?), true),
        Target::Authority(raw) => (Some(agree(raw, None, host)?), false),
    };
    Ok(Detected::Http {
        host: name.map(|a| a.name()).transpose()?,
        port: name.and_then(|a| a.port),
        absolute_form,
        head_len,
    })
}

/// Classifies the request target; forms a method may not use are refused.
fn target<'a>(method: &str, path: &'a str) -> Result<Target<'a>, Malformed> {
    let path = path.as_bytes();
    if method == "CONNECT" {
        return Ok(Target::Authority(path));
    }
    if path.starts_with(b"/") || (path == b"*" && method == "OPTIONS") {
        return Ok(Target::Origin);
    }
    let (rest, port) = if let Some(rest) = strip_prefix_ignore_case(path, b"http://") {
        (rest, 80)
    } else if let Some(rest) = strip_prefix_ignore_case(path, b"https://") {
        (rest, 443)
    } else {
        return Err(Malformed::HttpTarget);
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Ok(Target::Absolute(rest.get(..end).unwrap_or_default(), port))
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// The value of the one Host header, if any.
fn host_header<'a>(headers: &[httparse::Header<'a>]) -> Result<Option<&'a [u8]>, Malformed> {
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let first = hosts.next().map(|h| h.value);
    if hosts.next().is_some() {
        return Err(Malformed::HttpDuplicateHost);
    }
    Ok(first)
}

/// The target's authority, checked against Host: same host (ASCII case
/// insensitive) and same effective port. Without Host the target names the host.
fn agree<'a>(
    raw: &'a [u8],
    default_port: Option<u16>,
    host: Option<Authority<'_>>,
) -> Result<Authority<'a>, Malformed> {
    let target = authority(raw).map_err(|_| Malformed::HttpTargetAuthority)?;
    if default_port.is_none() && target.port.is_none() {
        // CONNECT needs host:port.
        return Err(Malformed::HttpTargetAuthority);
    }
    if let Some(host) = host {
        let effective = target.port.or(default_port);
        let same_host = host.host.eq_ignore_ascii_case(target.host);
        let same_port = match host.port {
            Some(p) => Some(p) == effective,
            None => default_port.is_none() || effective == default_port,
        };
        if !(same_host && same_port) {
            return Err(Malformed::AuthorityHostMismatch);
        }
    }
    Ok(target)
}

/// `name`, `name:port`, `[v6]` or `[v6]:port`; no userinfo, no whitespace.
fn authority(value: &[u8]) -> Result<Authority<'_>, Malformed> {
    if value.is_empty() {
        return Err(Malformed::HttpHostEmpty);
    }
    if value.contains(&b'@') {
        return Err(Malformed::HttpHostUserinfo);
    }
    if value.iter().any(|b| matches!(b, b' ' | b'\t')) {
        return Err(Malformed::HttpHostWhitespace);
    }
    let (host, ipv6, port_suffix) = match value.strip_prefix(b"[") {
        Some(bracketed) => {
            let close = bracketed
                .iter()
                .position(|&b| b == b']')
                .ok_or(Malformed::HttpHostInvalidByte)?;
            let (literal, after) = bracketed.split_at(close);
            name::check_ipv6(literal).map_err(Malformed::from_host)?;
            (literal, true, after.get(1..).unwrap_or_default())
        }
        None => {
            let colon = value.iter().rposition(|&b| b == b':');
            let (host, suffix) = value.split_at(colon.unwrap_or(value.len()));
            name::check(host).map_err(Malformed::from_host)?;
            (host, false, suffix)
        }
    };
    let port = match port_suffix {
        [] => None,
        [b':', digits @ ..] => Some(port(digits)?),
        _ => return Err(Malformed::HttpHostInvalidByte),
    };
    Ok(Authority { host, ipv6, port })
}

/// 1 to 5 digits, 1..=65535.
fn port(digits: &[u8]) -> Result<u16, Malformed> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Malformed::HttpHostPort);
    }
    let value = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value)
        .ok()
        .filter(|&p| p != 0)
        .ok_or(Malformed::HttpHostPort)
}
