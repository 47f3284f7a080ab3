//! Fuzz target for `egress_proxy::detect`: no panic on any input, and the
//! answer does not depend on how the bytes arrive.
//!
//! Invariants checked on every input (capped at `MAX_DETECT_BYTES`):
//! - feeding a `Detector` the input in chunks gives, at every chunk end, what
//!   `detect` gives on that prefix from scratch; once an answer is `Done` or
//!   `Reject` it never changes as bytes are added;
//! - a `Done(Http)` head ends with CRLFCRLF inside the input;
//! - a name is never empty nor longer than 253 bytes.

#![no_main]

use egress_proxy::detect::{Detected, Detection, Detector, MAX_DETECT_BYTES, MAX_NAME_LEN, detect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| run(data));

fn run(data: &[u8]) {
    let data = data.get(..MAX_DETECT_BYTES).unwrap_or(data);
    let whole = detect(data);
    check(data, whole);

    // Chunk sizes come from the first byte so that the fuzzer explores them.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut detector = Detector::new();
    let mut settled = None;
    let mut end = 0;
    while end < data.len() {
        end = (end + step).min(data.len());
        let fed = detector.feed(&data[..end]);
        assert_eq!(fed, detect(&data[..end]), "chunked at {step}, end {end}");
        if let Some(previous) = settled {
            assert_eq!(fed, previous, "an answer changed as bytes arrived");
        } else if fed != Detection::Incomplete {
            settled = Some(fed);
        }
    }
    assert_eq!(detector.feed(data), whole);
}

fn check(data: &[u8], detection: Detection) {
    let name = match detection {
        Detection::Done(Detected::Tls { sni, .. }) => sni,
        Detection::Done(Detected::Http { host, head_len, .. }) => {
            assert!(data[..head_len].ends_with(b"\r\n\r\n"));
            host
        }
        Detection::Done(Detected::Unknown) | Detection::Incomplete | Detection::Reject(_) => None,
    };
    if let Some(name) = name {
        assert!((1..=MAX_NAME_LEN).contains(&name.as_str().len()));
    }
}
