//! Criterion benches for the policy decision (`cargo bench --bench matcher`).
//!
//! One decision = source lookup + name lookup + CIDR lookup, with 10, 10k and
//! 1M hostname patterns and 100k bound devboxes. The 1M/10 ratio is the
//! O(labels) proof. Compiling 1M patterns is timed, and the heap it takes is
//! measured with a counting allocator and printed per pattern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use policy_matcher::{
    Compiled, DevboxBinding, EgressRules, Inputs, NetworkPolicy, Platform, Query, Verdict,
};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DEVBOXES: u32 = 100_000;

fn patterns(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 3 {
            0 => format!("host{i}.svc{}.example.com", i % 97),
            1 => format!("*.team{i}.corp{}.io", i % 89),
            _ => format!("api{i}.vendor{}.net", i % 83),
        })
        .collect()
}

fn policy(id: &str, hostnames: Vec<String>) -> NetworkPolicy {
    let cidrs = serde_json::from_str(
        r#"[{"cidr":"10.12.0.0/16","ports":[{"port":443}]},{"cidr":"172.20.0.0/14"}]"#,
    )
    .unwrap();
    NetworkPolicy {
        id: id.into(),
        name: id.into(),
        description: None,
        egress: EgressRules {
            allowed_hostnames: hostnames,
            allowed_cidrs: cidrs,
            ..EgressRules::default()
        },
        create_time_ms: 0,
        update_time_ms: 0,
    }
}

fn source(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A40_0000 + i))
}

fn inputs(n: usize) -> Inputs {
    let mut policies = vec![policy("np_big", patterns(n)).validate("").unwrap()];
    for p in 0..99 {
        policies.push(
            policy(
                &format!("np_{p}"),
                vec![format!("svc{p}.example.org"), "*.github.com".into()],
            )
            .validate("")
            .unwrap(),
        );
    }
    let devboxes = (0..DEVBOXES)
        .map(|i| DevboxBinding {
            id: format!("dbx_{i}"),
            account: format!("acct_{}", i % 1000),
            addresses: vec![ipnet::IpNet::from(source(i))],
            network_policy_id: Some(if i % 2 == 0 {
                "np_big".into()
            } else {
                format!("np_{}", i % 99)
            }),
            ..DevboxBinding::default()
        })
        .collect();
    Inputs {
        policies,
        devboxes,
        blueprints: vec![],
        platform: Platform::default(),
        unknown_source: Verdict::Deny,
    }
}

fn queries(n: usize) -> Vec<(IpAddr, SocketAddr, Option<String>)> {
    let web: SocketAddr = "93.184.216.34:443".parse().unwrap();
    let mut q = Vec::new();
    for k in 0..64usize {
        let i = (k * 7919) % n;
        let src = source(((k as u32) * 2 * 7) % DEVBOXES);
        let name = match (k % 4, i % 3) {
            (0, 0) => format!("host{i}.svc{}.example.com", i % 97),
            (0, 1) => format!("a.b.team{i}.corp{}.io", i % 89),
            (0, _) => format!("api{i}.vendor{}.net", i % 83),
            (1, _) => format!("deep.x.y.nomatch{k}.example.com"),
            (2, _) => String::from("github.com"),
            _ => format!("HOST{i}.Svc{}.Example.COM.", i % 97),
        };
        let dest = if k % 4 == 1 {
            "10.12.7.7:443".parse().unwrap()
        } else {
            web
        };
        q.push((src, dest, Some(name)));
    }
    q
}

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 10_000, 1_000_000] {
        let before = LIVE.load(Ordering::Relaxed);
        let started = Instant::now();
        let inputs = inputs(n);
        let (compiled, _) = Compiled::compile(&inputs).unwrap();
        let elapsed = started.elapsed();
        drop(inputs);
        let heap = LIVE.load(Ordering::Relaxed).saturating_sub(before);
        eprintln!(
            "compile n={n}: {:.3} s for {n} patterns + 100k devboxes; compiled heap {} MiB",
            elapsed.as_secs_f64(),
            heap >> 20
        );
        let qs = queries(n);
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let (src, dest, name) = &qs[i % qs.len()];
                i += 1;
                let d = compiled.decide(&Query {
                    source: *src,
                    dest: *dest,
                    name: name.as_deref(),
                });
                black_box(d.verdict)
            })
        });
    }
    group.finish();
}

fn bench_compile_patterns(c: &mut Criterion) {
    let n = 1_000_000;
    let hostnames = patterns(n);
    let heap_of = |hostnames: &[String]| {
        let inputs = Inputs {
            policies: vec![policy("np_big", hostnames.to_vec()).validate("").unwrap()],
            devboxes: vec![],
            blueprints: vec![],
            platform: Platform::default(),
            unknown_source: Verdict::Deny,
        };
        let before = LIVE.load(Ordering::Relaxed);
        let started = Instant::now();
        let compiled = Compiled::compile(&inputs).unwrap();
        let t = started.elapsed();
        let heap = LIVE.load(Ordering::Relaxed).saturating_sub(before);
        // The compiled state keeps a copy of the validated rules (for views
        // and reloads); report the matcher's own share separately.
        drop(compiled);
        (t, heap)
    };
    let (t, heap) = heap_of(&hostnames);
    eprintln!(
        "compile 1M patterns: {:.3} s, compiled heap {:.1} bytes/pattern (incl. the kept normalised copy)",
        t.as_secs_f64(),
        heap as f64 / n as f64
    );
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("1M_patterns", |b| {
        b.iter(|| {
            let inputs = Inputs {
                policies: vec![policy("np_big", hostnames.clone()).validate("").unwrap()],
                devboxes: vec![],
                blueprints: vec![],
                platform: Platform::default(),
                unknown_source: Verdict::Deny,
            };
            black_box(Compiled::compile(&inputs).unwrap().0.policy_count())
        })
    });
    group.finish();
}

fn bench_observe(c: &mut Criterion) {
    let names = [
        "a.b.team1234.corp56.io",
        "HOST99.Svc5.Example.COM.",
        "github.com",
    ];
    let mut i = 0usize;
    c.bench_function("observe_name", |b| {
        b.iter(|| {
            let mut buf = policy_matcher::name::NameBuf::new();
            let n = names[i % names.len()];
            i += 1;
            black_box(matches!(
                policy_matcher::name::observe(black_box(n), &mut buf),
                policy_matcher::name::Observed::Name(_)
            ))
        })
    });
}

criterion_group!(benches, bench_observe, bench_decide, bench_compile_patterns);
criterion_main!(benches);
