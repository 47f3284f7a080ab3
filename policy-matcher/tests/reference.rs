//! The compiled matcher held against a naive reference (a loop over every
//! pattern) on generated patterns and names: IDN, trailing dots, mixed case,
//! deep subdomains.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};

use policy_matcher::name::{NameBuf, Observed, observe};
use policy_matcher::{
    Compiled, DevboxBinding, EgressRules, Inputs, NetworkPolicy, Pattern, Platform, Query, Reason,
    Verdict,
};
use proptest::prelude::*;

const LABELS: &[&str] = &[
    "a",
    "b",
    "Co",
    "npmjs",
    "bücher",
    "xn--bcher-kva",
    "x-y",
    "mirrors",
    "_srv",
];

fn name_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(LABELS), 1..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(labels, upper, dot)| {
            let mut n = labels.join(".");
            if upper {
                n = n.to_uppercase();
            }
            if dot {
                n.push('.');
            }
            n
        })
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    (name_strategy(), any::<bool>()).prop_map(|(n, wild)| if wild { format!("*.{n}") } else { n })
}

fn compile(patterns: &[String]) -> Compiled {
    let policy = NetworkPolicy {
        id: "np".into(),
        name: String::new(),
        description: None,
        egress: EgressRules {
            allowed_hostnames: patterns.to_vec(),
            ..EgressRules::default()
        },
        create_time_ms: 0,
        update_time_ms: 0,
    };
    let inputs = Inputs {
        policies: vec![policy.validate("").unwrap()],
        devboxes: vec![DevboxBinding {
            id: "d".into(),
            account: "a".into(),
            addresses: vec!["10.0.0.1/32".parse().unwrap()],
            network_policy_id: Some("np".into()),
            ..DevboxBinding::default()
        }],
        blueprints: vec![],
        platform: Platform::default(),
        unknown_source: Verdict::Deny,
    };
    Compiled::compile(&inputs).unwrap().0
}

fn reference(patterns: &[Pattern], raw: &str) -> bool {
    let mut buf = NameBuf::new();
    match observe(raw, &mut buf) {
        Observed::Name(n) => patterns.iter().any(|p| p.matches(n)),
        _ => false,
    }
}

proptest! {
    #[test]
    fn compiled_matches_reference(
        patterns in prop::collection::vec(pattern_strategy(), 0..12),
        names in prop::collection::vec(name_strategy(), 1..12),
    ) {
        let compiled = compile(&patterns);
        let parsed: Vec<Pattern> = patterns.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        let source: IpAddr = "10.0.0.1".parse().unwrap();
        let dest: SocketAddr = "192.0.2.1:443".parse().unwrap();
        // Also try names built from the patterns themselves, and subdomains of them.
        let derived = parsed.iter().flat_map(|p| [p.name().to_owned(), format!("deep.x.{}", p.name())]);
        for name in names.into_iter().chain(derived) {
            let d = compiled.decide(&Query { source, dest, name: Some(&name) });
            let got = d.reason == Reason::Hostname;
            prop_assert_eq!(got, reference(&parsed, &name), "name {:?} patterns {:?}", name, patterns);
        }
    }
}
