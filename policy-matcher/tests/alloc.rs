//! A decision allocates nothing: counted with a global allocator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use policy_matcher::{
    Compiled, DevboxBinding, Inputs, NetworkPolicy, Pattern, Platform, Query, Verdict,
};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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

#[test]
fn decisions_allocate_nothing() {
    let policy: NetworkPolicy = serde_json::from_str(
        r#"{"id":"np","egress":{"allowed_hostnames":["github.com","*.npmjs.org"],
            "allowed_cidrs":[{"cidr":"10.12.0.0/16","ports":[{"port":443}]}],
            "allow_agent_gateway":true,"allow_devbox_to_devbox":true}}"#,
    )
    .unwrap();
    let inputs = Inputs {
        policies: vec![policy.validate("").unwrap()],
        devboxes: vec![DevboxBinding {
            id: "d".into(),
            account: "a".into(),
            addresses: vec!["10.0.0.0/24".parse().unwrap()],
            network_policy_id: Some("np".into()),
            tunnel_keys: vec!["k1".into()],
            ..DevboxBinding::default()
        }],
        blueprints: vec![],
        platform: Platform {
            agent_gateway: vec![Pattern::parse("gw.example").unwrap()],
            tunnel_domain: Some("tunnel.example".into()),
            ..Platform::default()
        },
        unknown_source: Verdict::Deny,
    };
    let (c, _) = Compiled::compile(&inputs).unwrap();
    let source: IpAddr = "10.0.0.7".parse().unwrap();
    let queries: Vec<(SocketAddr, Option<&str>)> = vec![
        ("93.184.216.34:443".parse().unwrap(), Some("GitHub.com.")),
        (
            "93.184.216.34:443".parse().unwrap(),
            Some("a.b.registry.npmjs.org"),
        ),
        (
            "93.184.216.34:443".parse().unwrap(),
            Some("nope.example.org"),
        ),
        ("10.12.1.1:443".parse().unwrap(), None),
        ("93.184.216.34:443".parse().unwrap(), Some("gw.example")),
        (
            "93.184.216.34:443".parse().unwrap(),
            Some("8080-k1.tunnel.example"),
        ),
        ("93.184.216.34:443".parse().unwrap(), Some("[::1]")),
    ];
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut allowed = 0;
    for (dest, name) in &queries {
        let d = c.decide(&Query {
            source,
            dest: *dest,
            name: *name,
        });
        allowed += usize::from(d.verdict == Verdict::Allow);
        let _ = c.decide_at_accept(source, *dest);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(allowed, 5);
    assert_eq!(after - before, 0, "decisions allocated");
}
