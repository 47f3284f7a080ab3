//! TLS cases: captured hellos, hellos split across records, and crafted
//! malformed variants built from the captures by [`Hello`].

use super::*;

const SNI: u16 = 0;
const PADDING: u16 = 21;
const ECH: u16 = 0xfe0d;

/// A one-record captured ClientHello taken apart, to rebuild edited copies.
#[derive(Clone)]
struct Hello {
    record_version: [u8; 2],
    fixed: Vec<u8>,
    exts: Vec<(u16, Vec<u8>)>,
}

impl Hello {
    fn parse(record: &[u8]) -> Self {
        assert_eq!(record[0], 22);
        let body = &record[9..];
        let mut pos = 2 + 32;
        pos += 1 + body[pos] as usize;
        pos += 2 + u16::from_be_bytes([body[pos], body[pos + 1]]) as usize;
        pos += 1 + body[pos] as usize;
        let (fixed, mut block) = (body[..pos].to_vec(), &body[pos + 2..]);
        let mut exts = Vec::new();
        while !block.is_empty() {
            let kind = u16::from_be_bytes([block[0], block[1]]);
            let len = u16::from_be_bytes([block[2], block[3]]) as usize;
            exts.push((kind, block[4..4 + len].to_vec()));
            block = &block[4 + len..];
        }
        let record_version = [record[1], record[2]];
        Self {
            record_version,
            fixed,
            exts,
        }
    }

    fn with(mut self, kind: u16, data: Vec<u8>) -> Self {
        self.exts.push((kind, data));
        self
    }

    fn replace(mut self, kind: u16, data: Vec<u8>) -> Self {
        let slot = self.exts.iter_mut().find(|(k, _)| *k == kind).unwrap();
        slot.1 = data;
        self
    }

    /// The handshake message: type, u24 length, body.
    fn message(&self) -> Vec<u8> {
        let mut block = Vec::new();
        for (kind, data) in &self.exts {
            block.extend_from_slice(&kind.to_be_bytes());
            block.extend_from_slice(&(data.len() as u16).to_be_bytes());
            block.extend_from_slice(data);
        }
        let mut body = self.fixed.clone();
        body.extend_from_slice(&(block.len() as u16).to_be_bytes());
        body.extend_from_slice(&block);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    fn record(&self) -> Vec<u8> {
        records(self.record_version, &self.message(), &[])
    }
}

/// Handshake bytes cut into records at the given offsets.
fn records(version: [u8; 2], msg: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&msg.len()]) {
        out.extend_from_slice(&[22, version[0], version[1]]);
        out.extend_from_slice(&((end - start) as u16).to_be_bytes());
        out.extend_from_slice(&msg[start..end]);
        start = end;
    }
    out
}

/// A server_name extension body holding these (name_type, name) entries.
fn sni(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, name) in entries {
        list.push(*kind);
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    data
}

fn tls(sni: Option<ObservedName>, ech: bool) -> Detection {
    Detection::Done(Detected::Tls {
        sni,
        ech,
        record_version: 0x0301,
    })
}

fn reject(m: Malformed) -> Detection {
    Detection::Reject(m)
}

#[test]
fn captured_hellos_name_their_server() {
    assert_eq!(detect(OPENSSL_SNI), tls(name("www.example.com"), false));
    assert_eq!(detect(OPENSSL_NOSNI), tls(None, false));
    assert_eq!(
        detect(OPENSSL_FFDHE8192),
        tls(name("www.example.com"), false)
    );
    assert_eq!(detect(CURL_SNI), tls(name("example.com"), false));
    assert_eq!(detect(PQ_MLKEM), tls(name("example.com"), false));
    assert_eq!(
        crate::detect::tls::parse_client_hello(CURL_SNI),
        detect(CURL_SNI)
    );
}

#[test]
fn ech_outer_hello_is_matched_on_its_outer_name() {
    assert_eq!(detect(ECH_OUTER), tls(name("www.example.com"), true));
    let twice = Hello::parse(ECH_OUTER).with(ECH, vec![0, 0, 1, 0, 1, 7, 0, 0, 0, 1, 0]);
    assert_eq!(detect(&twice.record()), reject(Malformed::TlsDuplicateEch));
}

#[test]
fn rebuilding_a_capture_is_byte_exact() {
    for fixture in TLS_FIXTURES {
        assert_eq!(Hello::parse(fixture).record(), fixture);
    }
}

#[test]
fn hello_split_at_every_boundary_is_reassembled() {
    for fixture in [OPENSSL_SNI, CURL_SNI, ECH_OUTER] {
        let hello = Hello::parse(fixture);
        let (msg, want) = (hello.message(), detect(fixture));
        for cut in 1..msg.len() {
            let split = records(hello.record_version, &msg, &[cut]);
            assert_eq!(check_all_prefixes(&split), want, "cut at {cut}");
        }
    }
}

#[test]
fn hello_in_one_byte_records_is_reassembled() {
    let hello = Hello::parse(CURL_SNI);
    let msg = hello.message();
    let cuts: Vec<usize> = (1..msg.len()).collect();
    let tiny = records(hello.record_version, &msg, &cuts);
    assert_eq!(detect(&tiny), tls(name("example.com"), false));
}

#[test]
fn post_quantum_hello_over_several_segments() {
    let mut detector = Detector::new();
    let segments: Vec<usize> = (1460..PQ_MLKEM.len()).step_by(1460).collect();
    for &end in &segments {
        assert_eq!(detector.feed(&PQ_MLKEM[..end]), Detection::Incomplete);
    }
    assert_eq!(detector.feed(PQ_MLKEM), tls(name("example.com"), false));
}

#[test]
fn large_padding_across_records_up_to_the_cap() {
    let hello = Hello::parse(CURL_SNI).replace(PADDING, vec![0; 15_000]);
    let msg = hello.message();
    let cuts: Vec<usize> = (4096..msg.len()).step_by(4096).collect();
    let split = records(hello.record_version, &msg, &cuts);
    assert_eq!(detect(&split), tls(name("example.com"), false));

    let huge = Hello::parse(CURL_SNI).replace(PADDING, vec![0; MAX_HELLO_LEN]);
    let split = records(huge.record_version, &huge.message(), &[16_000]);
    // Refused on the handshake header, before the rest arrives.
    assert_eq!(detect(&split[..9]), reject(Malformed::TooLarge));
}

#[test]
fn tiny_records_past_the_cap_are_too_large() {
    let hello = Hello::parse(CURL_SNI).replace(PADDING, vec![0; 5_000]);
    let msg = hello.message();
    let cuts: Vec<usize> = (1..msg.len()).collect();
    let tiny = records(hello.record_version, &msg, &cuts);
    assert_eq!(detect(&tiny[..MAX_DETECT_BYTES - 1]), Detection::Incomplete);
    assert_eq!(
        detect(&tiny[..MAX_DETECT_BYTES]),
        reject(Malformed::TooLarge)
    );
}

#[test]
fn bytes_after_the_hello_are_left_alone() {
    let mut input = CURL_SNI.to_vec();
    input.extend_from_slice(b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x02hi");
    assert_eq!(detect(&input), tls(name("example.com"), false));
}

#[test]
fn server_name_must_hold_one_host_name() {
    let base = Hello::parse(CURL_SNI);
    let two_exts = base.clone().with(SNI, sni(&[(0, b"evil.com")]));
    assert_eq!(
        detect(&two_exts.record()),
        reject(Malformed::TlsDuplicateServerName)
    );
    type Entries<'a> = &'a [(u8, &'a [u8])];
    let cases: [(Entries<'_>, Malformed); 5] = [
        (
            &[(0, b"example.com"), (0, b"evil.com")],
            Malformed::TlsMultipleServerNames,
        ),
        (&[(1, b"example.com")], Malformed::TlsServerNameType),
        (&[(0, b"")], Malformed::TlsServerNameEmpty),
        (
            &[(0, b"evil.com\0.example.com")],
            Malformed::TlsServerNameInvalidByte,
        ),
        (&[(0, &[b'a'; 254])], Malformed::TlsServerNameTooLong),
    ];
    for (entries, want) in cases {
        let hello = base.clone().replace(SNI, sni(entries));
        assert_eq!(detect(&hello.record()), reject(want), "{entries:?}");
    }
    for bytes in ["ex ample.com", "exämple.com", "ex/ample.com"] {
        let hello = base.clone().replace(SNI, sni(&[(0, bytes.as_bytes())]));
        assert_eq!(
            detect(&hello.record()),
            reject(Malformed::TlsServerNameInvalidByte)
        );
    }
    let longest = [b'a'; 253];
    let hello = base.clone().replace(SNI, sni(&[(0, &longest)]));
    assert!(matches!(detect(&hello.record()), Detection::Done(_)));
}

#[test]
fn malformed_server_name_lists_are_rejected() {
    let base = Hello::parse(CURL_SNI);
    let mut trailing_entry = sni(&[(0, b"example.com")]);
    trailing_entry[..2].copy_from_slice(&15u16.to_be_bytes()); // list claims one byte more...
    trailing_entry.push(0); // ...which holds half an entry
    let mut trailing_ext = sni(&[(0, b"example.com")]);
    trailing_ext.push(0);
    let lists = [
        vec![],
        vec![0, 0],
        trailing_entry,
        trailing_ext,
        vec![0, 4, 0, 0, 9, b'a'],
    ];
    for data in lists {
        let hello = base.clone().replace(SNI, data.clone());
        assert_eq!(
            detect(&hello.record()),
            reject(Malformed::TlsServerNameList),
            "{data:?}"
        );
    }
}

#[test]
fn only_a_client_hello_is_accepted() {
    assert_eq!(
        detect(b"\x16\x03\x03\x00\x04\x02"),
        reject(Malformed::TlsNotClientHello)
    );
    let mut msg = Hello::parse(CURL_SNI).message();
    msg[0] = 2;
    // Refused on the type byte, before the rest of the record arrives.
    let split = records([3, 1], &msg, &[1]);
    assert_eq!(detect(&split), reject(Malformed::TlsNotClientHello));
}

#[test]
fn bad_record_headers_are_rejected() {
    let cases: [(&[u8], Malformed); 7] = [
        (b"\x16\x02", Malformed::TlsRecordVersion),
        (b"\x16\x03\x00", Malformed::TlsRecordVersion),
        (b"\x16\x03\x05", Malformed::TlsRecordVersion),
        (b"\x16\x03\x01\x00\x00", Malformed::TlsRecordLength),
        (b"\x16\x03\x01\x40\x01", Malformed::TlsRecordLength),
        (b"\x16\x03\x01\xff\xff", Malformed::TlsRecordLength),
        (b"\x17\x03\x01\x00\x01", Malformed::TlsRecordType),
    ];
    for (input, want) in cases {
        assert_eq!(
            crate::detect::tls::parse_client_hello(input),
            reject(want),
            "{input:?}"
        );
    }
}

#[test]
fn non_handshake_record_inside_the_hello_is_rejected() {
    let hello = Hello::parse(CURL_SNI);
    let msg = hello.message();
    let mut input = records([3, 1], &msg[..100], &[]);
    input.extend_from_slice(b"\x14\x03\x03\x00\x01\x01");
    input.extend_from_slice(&records([3, 1], &msg[100..], &[]));
    assert_eq!(detect(&input), reject(Malformed::TlsRecordType));
}

#[test]
fn inconsistent_lengths_are_rejected() {
    let record = Hello::parse(CURL_SNI).record();
    let body_len = |r: &mut Vec<u8>, delta: i32| {
        let len = u32::from_be_bytes([0, r[6], r[7], r[8]]) as i32 + delta;
        r[6..9].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    };
    // Handshake shorter than the record: bytes after the hello in its record.
    let mut short = record.clone();
    body_len(&mut short, -1);
    assert_eq!(detect(&short), reject(Malformed::TlsTrailingData));
    // Handshake longer than the record: waits for a next record that is not one.
    let mut long = record.clone();
    body_len(&mut long, 1);
    assert_eq!(detect(&long), Detection::Incomplete);
    long.extend_from_slice(b"\x17\x03\x03\x00\x01\x00");
    assert_eq!(detect(&long), reject(Malformed::TlsRecordType));
}

#[test]
fn malformed_hello_fields_are_rejected() {
    let hello = Hello::parse(CURL_SNI);
    let ext_len_at = hello.fixed.len();
    type Edit = fn(&mut Vec<u8>, usize);
    let cases: [(Edit, Malformed); 4] = [
        (|b, _| b[34] = 33, Malformed::TlsHelloFields), // session id over 32
        (|b, _| b[0] = 2, Malformed::TlsHelloFields),   // legacy_version 2.x
        (|b, at| b[at + 1] += 1, Malformed::TlsExtensions), // block overruns the hello
        (|b, at| b[at + 1] -= 1, Malformed::TlsTrailingData), // block ends early
    ];
    for (i, (edit, want)) in cases.into_iter().enumerate() {
        let mut msg = hello.message();
        let mut body = msg.split_off(4);
        edit(&mut body, ext_len_at);
        msg.extend_from_slice(&body);
        assert_eq!(
            detect(&records([3, 1], &msg, &[])),
            reject(want),
            "case {i}"
        );
    }
}

#[test]
fn extensions_block_shorter_than_the_hello_leaves_trailing_bytes() {
    let mut hello = Hello::parse(OPENSSL_NOSNI);
    hello.exts.clear();
    let mut msg = hello.message();
    msg.push(0);
    msg[3] += 1;
    assert_eq!(
        detect(&records([3, 1], &msg, &[])),
        reject(Malformed::TlsTrailingData)
    );
}

#[test]
fn hello_without_extensions_has_no_name() {
    let hello = Hello::parse(OPENSSL_SNI);
    let mut msg = hello.message();
    msg.truncate(4 + hello.fixed.len());
    let len = (msg.len() - 4) as u32;
    msg[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
    assert_eq!(detect(&records([3, 3], &msg, &[])), {
        Detection::Done(Detected::Tls {
            sni: None,
            ech: false,
            record_version: 0x0303,
        })
    });
}
