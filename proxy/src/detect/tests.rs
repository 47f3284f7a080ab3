//! Tests of detection: dispatch, incremental feeding, every prefix of every fixture.
//!
//! Fixtures in `testdata/` come from real clients (openssl s_client, curl) via
//! `testdata/make.sh`; `tls` and `http` hold the per-protocol cases.

use super::*;

mod http;
mod tls;

pub(super) const OPENSSL_SNI: &[u8] = include_bytes!("testdata/openssl_sni.bin");
pub(super) const OPENSSL_NOSNI: &[u8] = include_bytes!("testdata/openssl_nosni.bin");
pub(super) const OPENSSL_FFDHE8192: &[u8] = include_bytes!("testdata/openssl_ffdhe8192.bin");
pub(super) const CURL_SNI: &[u8] = include_bytes!("testdata/curl_sni.bin");
pub(super) const PQ_MLKEM: &[u8] = include_bytes!("testdata/pq_mlkem.bin");
pub(super) const ECH_OUTER: &[u8] = include_bytes!("testdata/ech_outer.bin");
pub(super) const CURL_GET: &[u8] = include_bytes!("testdata/curl_get.txt");
pub(super) const CURL_ABSOLUTE: &[u8] = include_bytes!("testdata/curl_absolute.txt");
pub(super) const CURL_CONNECT: &[u8] = include_bytes!("testdata/curl_connect.txt");

pub(super) const TLS_FIXTURES: [&[u8]; 6] = [
    OPENSSL_SNI,
    OPENSSL_NOSNI,
    OPENSSL_FFDHE8192,
    CURL_SNI,
    PQ_MLKEM,
    ECH_OUTER,
];
pub(super) const HTTP_FIXTURES: [&[u8]; 3] = [CURL_GET, CURL_ABSOLUTE, CURL_CONNECT];

pub(super) fn name(s: &str) -> Option<ObservedName> {
    Some(ObservedName::new(s.as_bytes()).unwrap())
}

/// Every strict prefix is `Incomplete`, from scratch and fed byte by byte; the
/// whole input gives the same answer both ways.
pub(super) fn check_all_prefixes(input: &[u8]) -> Detection {
    let mut detector = Detector::new();
    for end in 0..input.len() {
        let prefix = &input[..end];
        assert_eq!(
            detect(prefix),
            Detection::Incomplete,
            "prefix of {end} bytes"
        );
        assert_eq!(
            detector.feed(prefix),
            Detection::Incomplete,
            "fed {end} bytes"
        );
    }
    let whole = detect(input);
    assert_eq!(detector.feed(input), whole);
    whole
}

#[test]
fn every_prefix_of_every_fixture_is_incomplete() {
    for fixture in TLS_FIXTURES.iter().chain(&HTTP_FIXTURES) {
        assert!(matches!(check_all_prefixes(fixture), Detection::Done(_)));
    }
}

/// The fuzz target's invariant (`proxy/fuzz`), deterministically: every byte of
/// every fixture changed in turn; no panic, and the answer fed in chunks is the
/// answer from scratch, already at the first chunk that settles it.
#[test]
fn mutated_fixtures_do_not_depend_on_chunking() {
    for fixture in TLS_FIXTURES.iter().chain(&HTTP_FIXTURES) {
        for i in 0..fixture.len() {
            let mut input = fixture.to_vec();
            input[i] = input[i].wrapping_add(1 + (i % 251) as u8);
            let whole = detect(&input);
            let step = 1 + i % 61;
            let mut detector = Detector::new();
            let ends = (step..input.len()).step_by(step).chain([input.len()]);
            let mut settled = false;
            for end in ends {
                let fed = detector.feed(&input[..end]);
                if !settled && fed != Detection::Incomplete {
                    assert_eq!(fed, whole, "byte {i} changed, settled at {end}");
                    settled = true;
                }
            }
            assert_eq!(detector.feed(&input), whole, "byte {i} changed");
        }
    }
}

#[test]
fn fixtures_are_real_sizes() {
    assert_eq!(CURL_SNI.len(), 517, "curl pads its hello to 512 bytes");
    assert!(
        PQ_MLKEM.len() > 1500,
        "a post-quantum key share exceeds one MSS"
    );
    assert!(OPENSSL_FFDHE8192.len() > 1024);
}

#[test]
fn dispatch_by_first_bytes() {
    assert_eq!(detect(b""), Detection::Incomplete);
    assert_eq!(detect(b"\x16"), Detection::Incomplete);
    assert_eq!(detect(b"G"), Detection::Incomplete);
    assert_eq!(detect(b"PROPF"), Detection::Incomplete);
    assert_eq!(detect(b"GET"), Detection::Incomplete);
    assert_eq!(detect(b"GET /"), Detection::Incomplete);
}

#[test]
fn unnamed_protocols_are_unknown() {
    let unknown = Detection::Done(Detected::Unknown);
    assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), unknown);
    assert_eq!(detect(b"PRI"), unknown, "no method starts with PRI");
    // SSLv2-compatible ClientHello: 2-byte length with the high bit, type 1.
    assert_eq!(
        detect(b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"),
        unknown
    );
    assert_eq!(detect(b"SSH-2.0-OpenSSH_9.6 Ubuntu\r\n"), unknown);
    assert_eq!(
        detect(b"get / HTTP/1.1\r\n\r\n"),
        unknown,
        "methods are case-sensitive"
    );
    assert_eq!(detect(b"\r\nGET / HTTP/1.1\r\n\r\n"), unknown);
    assert_eq!(detect(b"\x00"), unknown);
}

#[test]
fn garbage_before_a_hello_is_unknown() {
    let mut input = b"xx".to_vec();
    input.extend_from_slice(OPENSSL_SNI);
    assert_eq!(detect(&input), Detection::Done(Detected::Unknown));
    let mut input = vec![0u8];
    input.extend_from_slice(CURL_SNI);
    assert_eq!(detect(&input), Detection::Done(Detected::Unknown));
}

#[test]
fn detector_keeps_its_answer() {
    let mut detector = Detector::new();
    let done = detector.feed(CURL_GET);
    assert!(matches!(done, Detection::Done(Detected::Http { .. })));
    let mut more = CURL_GET.to_vec();
    more.extend_from_slice(b"body bytes");
    assert_eq!(detector.feed(&more), done);
}

#[test]
fn incomplete_at_the_cap_is_too_large() {
    let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    head.resize(MAX_DETECT_BYTES - 1, b'a');
    assert_eq!(detect(&head), Detection::Incomplete);
    head.push(b'a');
    assert_eq!(detect(&head), Detection::Reject(Malformed::TooLarge));
}

#[test]
fn malformed_labels_are_snake_case() {
    let all = [
        Malformed::TooLarge,
        Malformed::TlsDuplicateServerName,
        Malformed::HttpSyntax(httparse::Error::HeaderName),
        Malformed::AuthorityHostMismatch,
    ];
    for m in all {
        let label = m.as_str();
        assert!(
            label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{label}"
        );
        let text = m.to_string();
        assert!(
            !text.ends_with('.') && text.starts_with(|c: char| c.is_lowercase()),
            "{text}"
        );
    }
}
