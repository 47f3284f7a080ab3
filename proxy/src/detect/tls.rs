//! TLS ClientHello: the record layer walk, reassembly, and the server_name checks.
//!
//! `Scanner` walks record headers (5 bytes each) and the handshake header
//! (4 bytes) as bytes arrive, so it knows when the whole ClientHello is there
//! without parsing it. Then the hello is parsed once: in place when it lies in
//! one record, else from a stack copy of the record payloads. tls-parser reads
//! the record header and the server_name entries; the fixed fields and the
//! extension framing are read with its nom re-export, because its own
//! `parse_tls_handshake_client_hello` allocates (cipher and extension `Vec`s)
//! and folds a trailing partial server_name entry away.

use tls_parser::nom::IResult;
use tls_parser::nom::bytes::complete::take;
use tls_parser::nom::multi::length_data;
use tls_parser::nom::number::complete::{be_u8, be_u16};
use tls_parser::{
    SNIType, TlsRecordType, parse_tls_extension_sni_hostname, parse_tls_record_header,
};

use super::{Detected, Detection, Malformed, ObservedName, capped};

/// Largest ClientHello handshake message reassembled, its 4-byte header included.
pub const MAX_HELLO_LEN: usize = 16 * 1024;

/// Content type of a handshake record: the first byte of every ClientHello.
pub(crate) const HANDSHAKE_RECORD: u8 = 22;
const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
/// Reassembly buffer size for the common split hello (curl, openssl, browsers).
const SMALL_HELLO_LEN: usize = 2048;
const MAX_FRAGMENT_LEN: usize = 1 << 14;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ECH: u16 = 0xfe0d;

/// Walks the records of a growing buffer until the ClientHello is complete.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scanner {
    /// Offset of the first record not yet walked.
    next: usize,
    /// Records walked.
    records: usize,
    /// Handshake bytes in the records walked.
    received: usize,
    /// The handshake header (type, u24 length), once `received >= 4`.
    head: [u8; HANDSHAKE_HEADER_LEN],
    /// Version of the first record header.
    record_version: u16,
}

/// What a hello names, borrowed from it: the host_name (not yet checked)
/// and whether ECH is offered.
#[derive(Default)]
struct Hello<'a> {
    sni: Option<&'a [u8]>,
    ech: bool,
}

/// The ClientHello fields before the extensions.
struct FixedFields<'a> {
    legacy_version: u16,
    session_id: &'a [u8],
    cipher_suites: &'a [u8],
    compression_methods: &'a [u8],
}

/// Parses the ClientHello at the start of `buf` (records included).
pub fn parse_client_hello(buf: &[u8]) -> Detection {
    Scanner::default().feed(buf)
}

// === impl Scanner ===

impl Scanner {
    /// Walks the records added since the last call; parses the hello once complete.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Detection {
        let outcome = self.walk(buf).and_then(|complete| match complete {
            Some(hello_len) => self.finish(buf, hello_len).map(Some),
            None => Ok(None),
        });
        match outcome {
            Ok(Some(detected)) => Detection::Done(detected),
            Ok(None) => capped(Detection::Incomplete, buf.len()),
            Err(malformed) => Detection::Reject(malformed),
        }
    }

    /// Returns the hello's length once its last byte has arrived.
    fn walk(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        loop {
            if self.received >= HANDSHAKE_HEADER_LEN {
                let hello_len = self.hello_len()?;
                if self.received >= hello_len {
                    return Ok(Some(hello_len));
                }
            }
            let rest = buf.get(self.next..).unwrap_or_default();
            let Some((version, len)) = record_header(rest)? else {
                return Ok(None);
            };
            if self.records == 0 {
                self.record_version = version;
            }
            let arrived = rest.get(RECORD_HEADER_LEN..).unwrap_or_default();
            let payload = arrived.get(..len);
            self.check_head(payload.unwrap_or(arrived))?;
            let Some(payload) = payload else {
                return Ok(None);
            };
            self.received += payload.len();
            self.records += 1;
            self.next += RECORD_HEADER_LEN + payload.len();
        }
    }

    /// Copies the handshake header bytes found in `record` (the current record's
    /// payload, as far as it has arrived) and checks as much of it as is known,
    /// so that a wrong type or an oversized hello is refused early.
    fn check_head(&mut self, record: &[u8]) -> Result<(), Malformed> {
        for (slot, &byte) in self.head.iter_mut().skip(self.received).zip(record) {
            *slot = byte;
        }
        let known = self.received + record.len();
        let [kind, ..] = self.head;
        if known >= 1 && kind != CLIENT_HELLO {
            return Err(Malformed::TlsNotClientHello);
        }
        if known >= HANDSHAKE_HEADER_LEN {
            self.hello_len()?;
        }
        Ok(())
    }

    /// The handshake message length (header included) from its header.
    fn hello_len(&self) -> Result<usize, Malformed> {
        let [kind, a, b, c] = self.head;
        if kind != CLIENT_HELLO {
            return Err(Malformed::TlsNotClientHello);
        }
        let len =
            HANDSHAKE_HEADER_LEN + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c));
        if len > MAX_HELLO_LEN {
            return Err(Malformed::TooLarge);
        }
        Ok(len)
    }

    fn finish(&self, buf: &[u8], hello_len: usize) -> Result<Detected, Malformed> {
        if self.received > hello_len {
            return Err(Malformed::TlsTrailingData);
        }
        if self.records == 1 {
            let start = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN;
            let body = buf.get(start..RECORD_HEADER_LEN + hello_len);
            self.detected(body.ok_or(Malformed::TlsRecordLength)?)
        } else if hello_len <= SMALL_HELLO_LEN {
            // Most split hellos are small: a 2 KiB copy saves zeroing 16 KiB.
            self.join::<SMALL_HELLO_LEN>(buf, hello_len)
        } else {
            self.join::<MAX_HELLO_LEN>(buf, hello_len)
        }
    }

    /// Copies the payloads of the records walked into one stack buffer, then parses.
    #[inline(never)]
    fn join<const N: usize>(&self, buf: &[u8], hello_len: usize) -> Result<Detected, Malformed> {
        let mut joined = [0u8; N];
        let (mut at, mut pos) = (0, 0);
        for _ in 0..self.records {
            let payload = buf
                .get(pos + 3..pos + RECORD_HEADER_LEN)
                .and_then(|len| {
                    let len = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
                    buf.get(pos + RECORD_HEADER_LEN..pos + RECORD_HEADER_LEN + len)
                })
                .ok_or(Malformed::TlsRecordLength)?;
            joined
                .get_mut(at..at + payload.len())
                .ok_or(Malformed::TooLarge)?
                .copy_from_slice(payload);
            at += payload.len();
            pos += RECORD_HEADER_LEN + payload.len();
        }
        let body = joined.get(HANDSHAKE_HEADER_LEN..hello_len);
        self.detected(body.ok_or(Malformed::TlsRecordLength)?)
    }

    /// Parses the hello body and copies the server name out of it.
    fn detected(&self, body: &[u8]) -> Result<Detected, Malformed> {
        let hello = parse_hello_body(body)?;
        let sni = hello.sni.map(ObservedName::new).transpose();
        Ok(Detected::Tls {
            sni: sni.map_err(Malformed::from_sni)?,
            ech: hello.ech,
            record_version: self.record_version,
        })
    }
}

// === impl FixedFields ===

impl FixedFields<'_> {
    fn is_valid(&self) -> bool {
        self.legacy_version >> 8 == 3
            && self.session_id.len() <= 32
            && !self.cipher_suites.is_empty()
            && self.cipher_suites.len().is_multiple_of(2)
            && !self.compression_methods.is_empty()
    }
}

/// Checks the record header at the start of `rest`, as far as it has arrived;
/// returns its version and length once all 5 bytes are there.
fn record_header(rest: &[u8]) -> Result<Option<(u16, usize)>, Malformed> {
    if rest.first().is_some_and(|&t| t != HANDSHAKE_RECORD) {
        return Err(Malformed::TlsRecordType);
    }
    if rest.get(1).is_some_and(|&major| major != 3)
        || rest.get(2).is_some_and(|minor| !(1..=4).contains(minor))
    {
        return Err(Malformed::TlsRecordVersion);
    }
    let Some(header) = rest.get(..RECORD_HEADER_LEN) else {
        return Ok(None);
    };
    let (_, header) = parse_tls_record_header(header).map_err(|_| Malformed::TlsRecordLength)?;
    if header.record_type != TlsRecordType::Handshake {
        return Err(Malformed::TlsRecordType);
    }
    let len = usize::from(header.len);
    if len == 0 || len > MAX_FRAGMENT_LEN {
        return Err(Malformed::TlsRecordLength);
    }
    Ok(Some((header.version.0, len)))
}

/// Parses a ClientHello body (after the 4-byte handshake header).
fn parse_hello_body(body: &[u8]) -> Result<Hello<'_>, Malformed> {
    let (rest, fields) = fixed_fields(body).map_err(|_| Malformed::TlsHelloFields)?;
    if !fields.is_valid() {
        return Err(Malformed::TlsHelloFields);
    }
    if rest.is_empty() {
        return Ok(Hello::default());
    }
    let (rest, block) = vector_u16(rest).map_err(|_| Malformed::TlsExtensions)?;
    if !rest.is_empty() {
        return Err(Malformed::TlsTrailingData);
    }
    extensions(block)
}

fn fixed_fields(i: &[u8]) -> IResult<&[u8], FixedFields<'_>> {
    let (i, legacy_version) = be_u16(i)?;
    let (i, _random) = take(32usize)(i)?;
    let (i, session_id) = length_data(be_u8)(i)?;
    let (i, cipher_suites) = vector_u16(i)?;
    let (i, compression_methods) = length_data(be_u8)(i)?;
    let fields = FixedFields {
        legacy_version,
        session_id,
        cipher_suites,
        compression_methods,
    };
    Ok((i, fields))
}

/// An opaque vector with a 2-byte length.
fn vector_u16(i: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u16)(i)
}

/// Walks the extensions block: one server_name at most, one ECH at most.
fn extensions(mut block: &[u8]) -> Result<Hello<'_>, Malformed> {
    let (mut sni, mut ech) = (None, false);
    while !block.is_empty() {
        let (rest, (kind, data)) = extension(block).map_err(|_| Malformed::TlsExtensions)?;
        match kind {
            EXT_SERVER_NAME if sni.is_some() => return Err(Malformed::TlsDuplicateServerName),
            EXT_SERVER_NAME => sni = Some(server_name(data)?),
            EXT_ECH if ech => return Err(Malformed::TlsDuplicateEch),
            EXT_ECH => ech = true,
            _ => {}
        }
        block = rest;
    }
    Ok(Hello { sni, ech })
}

fn extension(i: &[u8]) -> IResult<&[u8], (u16, &[u8])> {
    let (i, kind) = be_u16(i)?;
    let (i, data) = vector_u16(i)?;
    Ok((i, (kind, data)))
}

/// The server_name extension: a list holding exactly one host_name.
fn server_name(data: &[u8]) -> Result<&[u8], Malformed> {
    let (rest, list) = vector_u16(data).map_err(|_| Malformed::TlsServerNameList)?;
    if !rest.is_empty() {
        return Err(Malformed::TlsServerNameList);
    }
    let (rest, (kind, name)) =
        parse_tls_extension_sni_hostname(list).map_err(|_| Malformed::TlsServerNameList)?;
    if !rest.is_empty() {
        return Err(match parse_tls_extension_sni_hostname(rest) {
            Ok(_) => Malformed::TlsMultipleServerNames,
            Err(_) => Malformed::TlsServerNameList,
        });
    }
    if kind != SNIType::HostName {
        return Err(Malformed::TlsServerNameType);
    }
    Ok(name)
}
