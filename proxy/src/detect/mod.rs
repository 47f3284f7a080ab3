//! Detection of the protocol and the observed name from a connection's first bytes.
//!
//! Pure functions over `&[u8]`: no I/O, no clock, no heap allocation. The caller
//! peeks or reads into a buffer of at most [`MAX_DETECT_BYTES`] and feeds the whole
//! buffer to a [`Detector`] each time it grows; the detector keeps offsets so that
//! each byte is scanned once, and runs the full parse (tls-parser for a ClientHello,
//! httparse for an HTTP/1.x head) once, when the unit is complete.
//!
//! - [`tls`]: a ClientHello reassembled across records, its SNI and whether it
//!   carries Encrypted Client Hello.
//! - [`http`]: an HTTP/1.x request head, the name from Host (or the target's authority).
//! - Anything else (an HTTP/2 prior-knowledge preface, an SSLv2-style hello, a
//!   server-first protocol, garbage) is [`Detected::Unknown`]: no name.
//!
//! Ambiguity is a deny: every case where two readers could disagree on the
//! name is [`Detection::Reject`] with a specific [`Malformed`].

#![deny(clippy::indexing_slicing)]

pub mod http;
mod malformed;
mod name;
pub mod tls;

pub use self::malformed::Malformed;
pub use self::name::{MAX_NAME_LEN, ObservedName};
pub use self::tls::MAX_HELLO_LEN;

/// The most bytes detection reads: a [`MAX_HELLO_LEN`] ClientHello plus the
/// headers of up to 512 records carrying it; also the largest HTTP head.
///
/// [`Detector::feed`] never answers [`Detection::Incomplete`] for a buffer this long.
pub const MAX_DETECT_BYTES: usize = MAX_HELLO_LEN + 5 * 512;

/// The outcome of looking at a connection's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "the name is inline (272 bytes in all) so that detection never allocates"
)]
pub enum Detection {
    /// More bytes are needed.
    Incomplete,
    /// The first unit is complete and unambiguous.
    Done(Detected),
    /// The bytes are refused: deny.
    Reject(Malformed),
}

/// What the first bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// A TLS ClientHello.
    Tls {
        /// The one host_name of the server_name extension; `None` when absent.
        sni: Option<ObservedName>,
        /// The hello carries an encrypted_client_hello (0xfe0d) extension, so
        /// `sni` is the outer (public) name.
        ech: bool,
        /// Version of the first record header, for the deny alert.
        record_version: u16,
    },
    /// An HTTP/1.x request head.
    Http {
        /// Host, or the target's authority when Host is absent; `None` when
        /// both are (HTTP/1.0). May be an IP literal (IPv6 without brackets).
        host: Option<ObservedName>,
        /// The explicit port of the authority `host` came from.
        port: Option<u16>,
        /// The target is absolute-form (`http://host/path`).
        absolute_form: bool,
        /// Length of the head, final CRLFCRLF included.
        head_len: usize,
    },
    /// Neither a ClientHello nor an HTTP/1.x head: there is no name.
    Unknown,
}

/// Incremental detection over a growing buffer.
///
/// Call [`Detector::feed`] with every byte received so far (the same prefix,
/// longer each time); once it answers `Done` or `Reject` it keeps that answer.
#[derive(Clone, Debug, Default)]
pub struct Detector {
    state: State,
}

/// Which parser the first bytes call for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Tls,
    Http,
    Unknown,
}

#[derive(Clone, Debug, Default)]
#[expect(
    clippy::large_enum_variant,
    reason = "keeps the final answer inline; one per connection in detection"
)]
enum State {
    #[default]
    Start,
    Tls(tls::Scanner),
    Http(http::Scanner),
    Finished(Detection),
}

/// Detects the protocol and the name in `buf`, from scratch.
pub fn detect(buf: &[u8]) -> Detection {
    match dispatch(buf) {
        Some(Protocol::Tls) => tls::parse_client_hello(buf),
        Some(Protocol::Http) => http::parse_request_head(buf),
        Some(Protocol::Unknown) => Detection::Done(Detected::Unknown),
        None => Detection::Incomplete,
    }
}

// === impl Detector ===

impl Detector {
    /// A detector that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at `buf`, all the bytes received so far.
    pub fn feed(&mut self, buf: &[u8]) -> Detection {
        if matches!(self.state, State::Start) {
            self.state = match dispatch(buf) {
                Some(Protocol::Tls) => State::Tls(tls::Scanner::default()),
                Some(Protocol::Http) => State::Http(http::Scanner::default()),
                Some(Protocol::Unknown) => State::Finished(Detection::Done(Detected::Unknown)),
                None => return Detection::Incomplete,
            };
        }
        let detection = match &mut self.state {
            State::Start => Detection::Incomplete,
            State::Tls(scanner) => scanner.feed(buf),
            State::Http(scanner) => scanner.feed(buf),
            State::Finished(detection) => *detection,
        };
        if detection != Detection::Incomplete {
            self.state = State::Finished(detection);
        }
        detection
    }
}

/// Chooses the parser from the first bytes; `None` until they can tell.
fn dispatch(buf: &[u8]) -> Option<Protocol> {
    match buf.first()? {
        &tls::HANDSHAKE_RECORD => Some(Protocol::Tls),
        _ => match http::method_prefix(buf) {
            http::Prefix::Method => Some(Protocol::Http),
            http::Prefix::Partial => None,
            http::Prefix::Other => Some(Protocol::Unknown),
        },
    }
}

/// `Incomplete` past the cap becomes `Reject(TooLarge)`.
fn capped(detection: Detection, len: usize) -> Detection {
    match detection {
        Detection::Incomplete if len >= MAX_DETECT_BYTES => Detection::Reject(Malformed::TooLarge),
        other => other,
    }
}

#[cfg(test)]
mod tests;
