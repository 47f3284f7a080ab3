//! [`ObservedName`]: the name a client put in its first bytes (TLS SNI, HTTP Host,
//! absolute-form authority), kept inline so that detection never allocates.
//!
//! Only the bytes are checked here (length and alphabet); case folding, the
//! trailing dot and IP-literal handling are the matcher's normalisation.

use core::fmt;
use core::net::{IpAddr, Ipv6Addr};

/// Longest name kept: a DNS name is at most 253 octets in text form.
pub const MAX_NAME_LEN: usize = 253;

/// A client-supplied name, ASCII only, 1..=253 bytes.
///
/// Holds `[A-Za-z0-9._-]` (a host name or an IPv4 literal), or an IPv6 literal
/// (without brackets) that parsed as an [`Ipv6Addr`].
#[derive(Clone, Copy)]
pub struct ObservedName {
    buf: [u8; MAX_NAME_LEN],
    len: u8,
}

/// Why a byte string is not an [`ObservedName`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameError {
    Empty,
    TooLong,
    InvalidByte,
}

// === impl ObservedName ===

impl ObservedName {
    /// Checks a host name or IPv4 literal: 1..=253 bytes of `[A-Za-z0-9._-]`.
    pub(crate) fn new(name: &[u8]) -> Result<Self, NameError> {
        check(name)?;
        Self::copy(name)
    }

    /// Checks an IPv6 literal given without its brackets.
    pub(crate) fn ipv6(literal: &[u8]) -> Result<Self, NameError> {
        check_ipv6(literal)?;
        Self::copy(literal)
    }

    fn copy(name: &[u8]) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let len = u8::try_from(name.len()).map_err(|_| NameError::TooLong)?;
        let mut buf = [0; MAX_NAME_LEN];
        buf.get_mut(..name.len())
            .ok_or(NameError::TooLong)?
            .copy_from_slice(name);
        Ok(Self { buf, len })
    }

    /// The name exactly as the client sent it (ASCII).
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..usize::from(self.len)).unwrap_or_default();
        // Every byte was checked to be ASCII on construction.
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The address, when the name is an IPv4 or IPv6 literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.as_str().parse().ok()
    }
}

impl PartialEq for ObservedName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ObservedName {}

impl core::hash::Hash for ObservedName {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ObservedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ObservedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks what [`ObservedName::new`] accepts, without copying.
pub(crate) fn check(name: &[u8]) -> Result<(), NameError> {
    if !name.iter().all(|&b| is_name_byte(b)) {
        return Err(NameError::InvalidByte);
    }
    check_len(name)
}

/// Checks what [`ObservedName::ipv6`] accepts, without copying.
pub(crate) fn check_ipv6(literal: &[u8]) -> Result<(), NameError> {
    let text = core::str::from_utf8(literal).map_err(|_| NameError::InvalidByte)?;
    if text.parse::<Ipv6Addr>().is_err() {
        return Err(NameError::InvalidByte);
    }
    check_len(literal)
}

fn check_len(name: &[u8]) -> Result<(), NameError> {
    match name.len() {
        0 => Err(NameError::Empty),
        1..=MAX_NAME_LEN => Ok(()),
        _ => Err(NameError::TooLong),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_names_up_to_253_bytes() {
        let long = [b'a'; MAX_NAME_LEN];
        assert_eq!(ObservedName::new(&long).unwrap().as_str().len(), 253);
        assert_eq!(ObservedName::new(&[b'a'; 254]), Err(NameError::TooLong));
        assert_eq!(ObservedName::new(b""), Err(NameError::Empty));
    }

    #[test]
    fn rejects_bytes_outside_the_name_alphabet() {
        for bad in [
            &b"a\0b"[..],
            b"a b",
            b"a@b",
            b"a:1",
            "é.com".as_bytes(),
            b"a/b",
        ] {
            assert_eq!(
                ObservedName::new(bad),
                Err(NameError::InvalidByte),
                "{bad:?}"
            );
        }
        let ok = ObservedName::new(b"Under_score-1.Example.COM.").unwrap();
        assert_eq!(
            format!("{ok:?} {ok}"),
            "\"Under_score-1.Example.COM.\" Under_score-1.Example.COM."
        );
    }

    #[test]
    fn ip_literals_are_recognised() {
        let v4 = ObservedName::new(b"10.0.0.1").unwrap();
        assert_eq!(v4.ip(), Some("10.0.0.1".parse().unwrap()));
        let v6 = ObservedName::ipv6(b"fd00::2").unwrap();
        assert_eq!(v6.ip(), Some("fd00::2".parse().unwrap()));
        assert_eq!(ObservedName::ipv6(b"fd00::zz"), Err(NameError::InvalidByte));
        assert_eq!(ObservedName::new(b"example.com").unwrap().ip(), None);
    }
}
