//! Proof that detection does not touch the heap: a counting global allocator
//! wraps the system one, and every fixture (one-record and split hellos, HTTP
//! heads, byte-by-byte feeding) is detected with the count held at zero.

// A `GlobalAlloc` cannot be written without `unsafe`; this one only forwards.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use egress_proxy::detect::{Detected, Detection, Detector, detect};

struct Counting;

thread_local! {
    /// Allocations made by this thread; the test harness's other threads don't count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// thread-local counter is const-initialised and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FIXTURES: [&[u8]; 9] = [
    include_bytes!("../src/detect/testdata/openssl_sni.bin"),
    include_bytes!("../src/detect/testdata/openssl_nosni.bin"),
    include_bytes!("../src/detect/testdata/openssl_ffdhe8192.bin"),
    include_bytes!("../src/detect/testdata/curl_sni.bin"),
    include_bytes!("../src/detect/testdata/pq_mlkem.bin"),
    include_bytes!("../src/detect/testdata/ech_outer.bin"),
    include_bytes!("../src/detect/testdata/curl_get.txt"),
    include_bytes!("../src/detect/testdata/curl_absolute.txt"),
    include_bytes!("../src/detect/testdata/curl_connect.txt"),
];

fn allocations_in(f: impl FnOnce() -> Detection) -> (Detection, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let detection = f();
    (detection, ALLOCATIONS.with(Cell::get) - before)
}

/// The hello's handshake message cut into two records at `cut`.
fn split_hello(record: &[u8], cut: usize) -> Vec<u8> {
    let msg = &record[5..];
    let mut out = Vec::new();
    for part in [&msg[..cut], &msg[cut..]] {
        out.extend_from_slice(&record[..3]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn detection_does_not_allocate() {
    let (_, n) = allocations_in(|| {
        std::hint::black_box(vec![0u8; 16]);
        Detection::Incomplete
    });
    assert_eq!(n, 1, "the counter sees this thread's allocations");
    let mut inputs: Vec<Vec<u8>> = FIXTURES.iter().map(|f| f.to_vec()).collect();
    inputs.push(split_hello(FIXTURES[3], 100));
    inputs.push(split_hello(FIXTURES[4], 1000));
    for input in &inputs {
        let (detection, n) = allocations_in(|| detect(input));
        assert!(matches!(
            detection,
            Detection::Done(Detected::Tls { .. } | Detected::Http { .. })
        ));
        assert_eq!(n, 0, "detect allocated on {detection:?}");

        let (detection, n) = allocations_in(|| {
            let mut detector = Detector::new();
            (1..=input.len()).fold(Detection::Incomplete, |_, end| detector.feed(&input[..end]))
        });
        assert!(matches!(detection, Detection::Done(_)));
        assert_eq!(n, 0, "byte-by-byte feeding allocated on {detection:?}");
    }
}
