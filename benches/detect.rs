//! Criterion benches for first-bytes detection (`cargo bench --bench detect`).
//!
//! Inputs are the captured fixtures of `proxy/src/detect/testdata/`: curl's
//! 517-byte hello, the 1557-byte post-quantum (X25519MLKEM768) hello, the curl
//! hello split into two records inside server_name (the reassembly path), the
//! PQ hello fed as three TCP segments, and curl's HTTP heads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use egress_proxy::detect::{Detected, Detection, Detector, detect};

const CURL_SNI: &[u8] = include_bytes!("../proxy/src/detect/testdata/curl_sni.bin");
const PQ_MLKEM: &[u8] = include_bytes!("../proxy/src/detect/testdata/pq_mlkem.bin");
const CURL_GET: &[u8] = include_bytes!("../proxy/src/detect/testdata/curl_get.txt");
const CURL_ABSOLUTE: &[u8] = include_bytes!("../proxy/src/detect/testdata/curl_absolute.txt");

/// A browser-sized head: about 600 bytes, a dozen headers.
const BROWSER_GET: &[u8] = b"GET /search?q=egress+proxy HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; consent=yes\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: none\r\n\
Priority: u=0, i\r\n\r\n";

/// The hello's handshake message cut into two records at `cut`.
fn split_hello(record: &[u8], cut: usize) -> Vec<u8> {
    let msg = &record[5..];
    let mut out = Vec::new();
    for part in [&msg[..cut], &msg[cut..]] {
        out.extend_from_slice(&record[..3]);
        out.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn expect_done(input: &[u8]) {
    let detection = detect(input);
    assert!(
        matches!(
            detection,
            Detection::Done(
                Detected::Tls { sni: Some(_), .. } | Detected::Http { host: Some(_), .. }
            )
        ),
        "{detection:?}"
    );
}

fn one_shot(c: &mut Criterion) {
    // Cut after the first 4 bytes of "example.com": curl sends server_name first.
    let at = CURL_SNI
        .windows(11)
        .position(|w| w == b"example.com")
        .unwrap()
        - 5
        + 4;
    let split = split_hello(CURL_SNI, at);
    let inputs: [(&str, &[u8]); 5] = [
        ("tls_hello_517b", CURL_SNI),
        ("tls_hello_pq_1557b", PQ_MLKEM),
        ("tls_hello_split_records", &split),
        ("http_head_curl", CURL_GET),
        ("http_head_browser", BROWSER_GET),
    ];
    let mut group = c.benchmark_group("detect");
    for (name, input) in inputs {
        expect_done(input);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| detect(black_box(input))));
    }
    expect_done(CURL_ABSOLUTE);
    group.throughput(Throughput::Bytes(CURL_ABSOLUTE.len() as u64));
    group.bench_function("http_head_absolute_form", |b| {
        b.iter(|| detect(black_box(CURL_ABSOLUTE)))
    });
    group.finish();
}

fn segments(c: &mut Criterion) {
    let cuts = [1460, 2920.min(PQ_MLKEM.len()), PQ_MLKEM.len()];
    let mut group = c.benchmark_group("detector");
    group.throughput(Throughput::Bytes(PQ_MLKEM.len() as u64));
    group.bench_function("tls_hello_pq_in_1460b_segments", |b| {
        b.iter(|| {
            let mut detector = Detector::new();
            let mut last = Detection::Incomplete;
            for end in cuts {
                last = detector.feed(black_box(&PQ_MLKEM[..end]));
            }
            assert!(matches!(last, Detection::Done(_)));
            last
        })
    });
    group.finish();
}

criterion_group!(benches, one_shot, segments);
criterion_main!(benches);
