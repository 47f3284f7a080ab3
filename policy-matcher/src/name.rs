//! Host-name normalisation shared by patterns (at load) and observed names
//! (per connection).
//!
//! A name is normalised to ASCII lower case with one trailing dot removed;
//! Unicode labels become A-labels (UTS 46, through the `idna` crate). The
//! ASCII path, which every TLS SNI takes, writes into a caller-provided stack
//! buffer and never allocates.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest DNS name, in octets, without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;
/// The longest DNS label, in octets.
pub const MAX_LABEL_LEN: usize = 63;

/// A stack buffer holding one normalised name.
#[derive(Clone, Copy)]
pub struct NameBuf {
    buf: [u8; MAX_NAME_LEN],
    len: usize,
}

/// Why a name is not a valid host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after normalisation.
    #[error("empty name")]
    Empty,
    /// An IPv4 or IPv6 literal (or a numeric last label, which is read as one).
    #[error("an IP literal is not a host name (use allowed_cidrs)")]
    IpLiteral,
    /// A `:port` suffix.
    #[error("ports are not allowed in host names")]
    Port,
    /// Two dots in a row, or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label over 63 octets.
    #[error("label longer than 63 octets")]
    LabelTooLong,
    /// A name over 253 octets.
    #[error("name longer than 253 octets")]
    NameTooLong,
    /// A character outside letters, digits, `-` and `_`.
    #[error("invalid character in host name")]
    InvalidChar,
    /// A `*` where a name is expected.
    #[error("wildcard not allowed here")]
    Wildcard,
    /// Unicode that UTS 46 refuses.
    #[error("invalid internationalised name")]
    Idna,
}

/// What an observed name turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed<'b> {
    /// A valid, normalised host name.
    Name(&'b str),
    /// An IP literal: no name, only CIDR rules apply.
    IpLiteral,
    /// Not a valid host name: no name rule can match it.
    Invalid,
}

// === impl NameBuf ===

impl NameBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_NAME_LEN],
            len: 0,
        }
    }

    /// The normalised name held.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters, digits, '.', '-' and '_' are ever written.
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// Normalises `raw` into `out` and validates it as a host name (no wildcard).
///
/// ASCII input never allocates; Unicode input (or an A-label, which UTS 46
/// must check) goes through the `idna` crate first.
pub fn normalize<'b>(raw: &str, out: &'b mut NameBuf) -> Result<&'b str, NameError> {
    let needs_uts46 = match normalize_ascii(raw.as_bytes(), out) {
        Ok(a_label) => a_label,
        Err(NameError::InvalidChar) if !raw.is_ascii() => true,
        Err(e) => return Err(e),
    };
    if needs_uts46 {
        let ascii = to_ascii(raw)?;
        normalize_ascii(ascii.as_bytes(), out)?;
    }
    let name = out.as_str();
    if is_ip_like(name) {
        return Err(NameError::IpLiteral);
    }
    Ok(name)
}

/// Classifies and normalises an observed name (SNI, Host, CONNECT authority).
pub fn observe<'b>(raw: &str, out: &'b mut NameBuf) -> Observed<'b> {
    match normalize(raw, out) {
        Ok(_) => Observed::Name(out.as_str()),
        Err(NameError::IpLiteral) => Observed::IpLiteral,
        Err(NameError::Port | NameError::InvalidChar) if is_ip_literal(raw) => Observed::IpLiteral,
        Err(_) => Observed::Invalid,
    }
}

/// Whether `raw` spells an IP literal (v4, v6, bracketed v6).
pub fn is_ip_literal(raw: &str) -> bool {
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    unbracketed.parse::<Ipv6Addr>().is_ok() || unbracketed.parse::<Ipv4Addr>().is_ok()
}

/// A name whose last label is all digits reads as an IPv4 address to URL
/// parsers (`1.2.3`, `0x7f.1`'s cousins); it is never a host name.
fn is_ip_like(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

fn to_ascii(raw: &str) -> Result<String, NameError> {
    if raw.contains('*') {
        return Err(NameError::Wildcard);
    }
    if raw.contains(':') {
        return Err(NameError::Port);
    }
    idna::domain_to_ascii(raw).map_err(|_| NameError::Idna)
}

/// One pass over `raw`: lower-cases it into `out`, strips one trailing dot,
/// checks every character and label length. `Ok(true)` when a label is an
/// A-label (`xn--`), which the caller has UTS 46 check.
fn normalize_ascii(raw: &[u8], out: &mut NameBuf) -> Result<bool, NameError> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong);
    }
    let mut label_len = 0usize;
    let mut a_label = false;
    for (i, (slot, &b)) in out.buf.iter_mut().zip(raw).enumerate() {
        let c = b.to_ascii_lowercase();
        match c {
            b'.' => {
                if label_len == 0 {
                    return Err(NameError::EmptyLabel);
                }
                label_len = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                if label_len == 0 && c == b'x' {
                    a_label |= raw
                        .get(i..i + 4)
                        .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"));
                }
                label_len += 1;
                if label_len > MAX_LABEL_LEN {
                    return Err(NameError::LabelTooLong);
                }
            }
            b':' => return Err(NameError::Port),
            b'*' => return Err(NameError::Wildcard),
            _ => return Err(NameError::InvalidChar),
        }
        *slot = c;
    }
    if label_len == 0 {
        return Err(NameError::EmptyLabel);
    }
    out.len = raw.len();
    Ok(a_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, NameError> {
        let mut buf = NameBuf::new();
        normalize(raw, &mut buf).map(str::to_owned)
    }

    #[test]
    fn lower_cases_and_strips_one_trailing_dot() {
        assert_eq!(norm("GitHub.COM.").unwrap(), "github.com");
        assert_eq!(norm("a.com..").unwrap_err(), NameError::EmptyLabel);
    }

    #[test]
    fn unicode_labels_become_a_labels() {
        assert_eq!(norm("Bücher.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(norm("xn--bcher-kva.de").unwrap(), "xn--bcher-kva.de");
    }

    #[test]
    fn rejects_ip_literals_ports_and_bad_labels() {
        assert_eq!(norm("10.0.0.1").unwrap_err(), NameError::IpLiteral);
        assert_eq!(norm("1.2.3").unwrap_err(), NameError::IpLiteral);
        assert_eq!(norm("example.com:443").unwrap_err(), NameError::Port);
        assert_eq!(norm("a..com").unwrap_err(), NameError::EmptyLabel);
        assert_eq!(norm(".a.com").unwrap_err(), NameError::EmptyLabel);
        assert_eq!(norm(&"a".repeat(64)).unwrap_err(), NameError::LabelTooLong);
        let long = ["a".repeat(63).as_str(); 5].join(".");
        assert_eq!(norm(&long).unwrap_err(), NameError::NameTooLong);
        assert_eq!(norm("a b.com").unwrap_err(), NameError::InvalidChar);
    }

    #[test]
    fn observed_ip_literals_are_no_name() {
        let mut buf = NameBuf::new();
        assert_eq!(observe("[::1]", &mut buf), Observed::IpLiteral);
        assert_eq!(observe("fd00::2", &mut buf), Observed::IpLiteral);
        assert_eq!(observe("127.0.0.1", &mut buf), Observed::IpLiteral);
        assert_eq!(observe("Ex.COM", &mut buf), Observed::Name("ex.com"));
        assert_eq!(observe("a/b", &mut buf), Observed::Invalid);
    }
}
