//! The transparent data path: iptables REDIRECT and TPROXY in the gateway
//! namespace, real TLS and HTTP servers, curl / openssl / rustls / raw-byte
//! clients in the client namespace.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{self, BANNER, Curl, ProxyProc, SClient, TestCa, TestServer, Topology, addr};

const NAMES: &[&str] = &["allowed.test", "denied.test", "*.wild.test"];

fn config(listen: &str, extra: &str) -> String {
    format!(
        r#"
policy_files = ["policies/*.json"]
{extra}
[listen]
{listen}

[detect]
timeout_ms = 800

[upstream]
deny_private = false

[[devboxes]]
id = "dbx_1"
account = "acct_1"
addresses = ["10.77.1.2", "fd77:1::2"]
network_policy_id = "np_1"
"#
    )
}

const REDIRECT: &str = r#"transparent = ["0.0.0.0:15001", "[::]:15001"]"#;
const TPROXY: &str = r#"tproxy = ["0.0.0.0:15002", "[::]:15002"]"#;

const POLICY: &str = r#"{"id":"np_1","name":"p","egress":{"allowed_hostnames":["allowed.test","*.wild.test"],
  "allowed_cidrs":[{"cidr":"10.77.2.2/32","ports":[{"port":2222},{"port":7000}]},{"cidr":"fd77:2::2/128","ports":[{"port":2222}]}]}}"#;

struct Setup {
    topo: Topology,
    ca: TestCa,
    proxy: ProxyProc,
}

fn setup(listen: &str, extra: &str, policy: &str) -> Setup {
    let topo = Topology::new().unwrap();
    let ca = TestCa::new().unwrap();
    if listen.contains("tproxy") {
        topo.tproxy(15002, 1).unwrap();
    } else {
        topo.redirect(15001).unwrap();
    }
    let proxy = ProxyProc::start(
        &topo.gateway,
        &config(listen, extra),
        &[("np_1.json", policy)],
    )
    .unwrap();
    Setup { topo, ca, proxy }
}

fn curl_https(s: &Setup, name: &str, v6: bool) -> support::CmdOutput {
    Curl::new(&format!("https://{name}/"))
        .resolve(name, 443, Topology::server_ip(v6))
        .cacert(s.ca.pem_path())
        .run(&s.topo.client)
        .unwrap()
}

fn tls_allow_and_deny(listen: &str) {
    if !support::require_root() {
        return;
    }
    let s = setup(listen, "", POLICY);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    for v6 in [false, true] {
        let ok = curl_https(&s, "allowed.test", v6);
        assert!(ok.success(), "{ok}\n{}", s.proxy.logs());
        assert_eq!(ok.stdout.trim(), "sni=allowed.test");
        let wild = curl_https(&s, "x.wild.test", v6);
        assert!(wild.success(), "{wild}");
        let denied = curl_https(&s, "denied.test", v6);
        assert!(!denied.success(), "{denied}");
        assert!(
            denied.stderr.contains("access denied") || denied.stderr.contains("alert"),
            "{denied}"
        );
    }
    assert_eq!(
        server.accepted(),
        4,
        "denied connections never reach the server"
    );
    assert!(
        s.proxy.logs().contains("reason=\"no_match\"")
            || s.proxy.logs().contains("reason=no_match"),
        "{}",
        s.proxy.logs()
    );
}

#[test]
fn redirect_tls_allows_by_sni_and_denies_with_an_alert() {
    tls_allow_and_deny(REDIRECT);
}

#[test]
fn tproxy_tls_allows_by_sni_and_denies_with_an_alert() {
    tls_allow_and_deny(TPROXY);
}

#[test]
fn openssl_and_rustls_clients_through_redirect() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let out = SClient::new(Topology::server_addr(true, 443), s.ca.pem_path())
        .servername("allowed.test")
        .http_get("allowed.test")
        .run(&s.topo.client)
        .unwrap();
    assert!(out.stdout.contains("sni=allowed.test"), "{out}");
    let cfg = s.ca.client_config().unwrap();
    let body = s
        .topo
        .client
        .run(support::rustls_get(
            cfg.clone(),
            Topology::server_addr(false, 443),
            "a.wild.test",
        ))
        .unwrap();
    assert!(body.contains("sni=a.wild.test"), "{body}");
    let denied = s.topo.client.run(support::rustls_get(
        cfg,
        Topology::server_addr(false, 443),
        "denied.test",
    ));
    assert!(denied.is_err());
    assert_eq!(server.accepted(), 2);
}

#[test]
fn plain_http_allows_by_host_and_denies_with_403() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let server = TestServer::http(&s.topo.server, 80).unwrap();
    let ok = Curl::new("http://allowed.test/")
        .resolve("allowed.test", 80, Topology::server_ip(false))
        .run(&s.topo.client)
        .unwrap();
    assert_eq!(ok.stdout.trim(), "host=allowed.test", "{ok}");
    let denied = Curl::new("http://denied.test/")
        .resolve("denied.test", 80, Topology::server_ip(true))
        .arg("-i")
        .run(&s.topo.client)
        .unwrap();
    assert!(denied.stdout.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(
        denied
            .stdout
            .contains("denied.test denied by network policy np_1"),
        "{denied}"
    );
    assert_eq!(server.accepted(), 1);
}

/// Raw bytes from the client namespace; returns what came back (until close or 3 s).
fn raw_exchange(
    s: &Setup,
    dest: SocketAddr,
    chunks: Vec<Vec<u8>>,
    gap: Duration,
    half_close: bool,
) -> (Vec<u8>, bool) {
    s.topo.client.enter(move || {
        let Ok(mut c) = TcpStream::connect_timeout(&dest, Duration::from_secs(3)) else {
            return (Vec::new(), true);
        };
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        for chunk in chunks {
            if c.write_all(&chunk).is_err() {
                break;
            }
            std::thread::sleep(gap);
        }
        if half_close {
            let _ = c.shutdown(Shutdown::Write);
        }
        let mut got = Vec::new();
        let reset = match c.read_to_end(&mut got) {
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        (got, reset)
    })
}

#[test]
fn server_first_protocol_through_a_cidr_rule_is_relayed_at_once() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let _banner = TestServer::banner(&s.topo.server, 2222).unwrap();
    for v6 in [false, true] {
        let dest = Topology::server_addr(v6, 2222);
        let got = s.topo.client.enter(move || {
            let mut c = TcpStream::connect_timeout(&dest, Duration::from_secs(3)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = vec![0u8; BANNER.len()];
            c.read_exact(&mut buf).map(|_| buf)
        });
        assert_eq!(
            got.unwrap(),
            BANNER,
            "banner before any client byte (v6={v6})"
        );
    }
}

#[test]
fn half_close_passes_the_fin_and_the_answer_still_comes_back() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let _echo = TestServer::echo(&s.topo.server, 7000).unwrap();
    let payload = vec![b'x'; 300_000];
    let (got, reset) = raw_exchange(
        &s,
        Topology::server_addr(false, 7000),
        vec![payload.clone()],
        Duration::ZERO,
        true,
    );
    assert!(!reset);
    assert_eq!(got.len(), payload.len());
}

#[test]
fn unnamed_protocols_without_a_cidr_rule_are_reset() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let echo = TestServer::echo(&s.topo.server, 7001).unwrap();
    let (got, _) = raw_exchange(
        &s,
        Topology::server_addr(false, 7001),
        vec![b"SSH-2.0-client\r\n".to_vec()],
        Duration::ZERO,
        false,
    );
    assert!(got.is_empty());
    // An HTTP/2 prior-knowledge preface has no name either.
    let (got, _) = raw_exchange(
        &s,
        Topology::server_addr(false, 7001),
        vec![b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()],
        Duration::ZERO,
        false,
    );
    assert!(got.is_empty());
    assert_eq!(echo.accepted(), 0);
}

#[test]
fn a_hello_trickled_in_small_segments_is_reassembled() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let hello = s.ca.client_hello("allowed.test");
    let chunks: Vec<Vec<u8>> = hello.chunks(7).map(<[u8]>::to_vec).collect();
    let (got, _) = raw_exchange(
        &s,
        Topology::server_addr(false, 443),
        chunks,
        Duration::from_millis(2),
        false,
    );
    assert_eq!(got.first(), Some(&22), "a ServerHello came back: {got:?}");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn slow_and_silent_clients_are_cut_off_at_the_detection_deadline() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let hello = s.ca.client_hello("allowed.test");
    let started = Instant::now();
    let chunks: Vec<Vec<u8>> = hello.chunks(20).map(<[u8]>::to_vec).collect();
    let (got, _) = raw_exchange(
        &s,
        Topology::server_addr(false, 443),
        chunks,
        Duration::from_millis(100),
        false,
    );
    assert!(
        got.is_empty(),
        "a trickled hello past the deadline is denied"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    let (got, _) = raw_exchange(
        &s,
        Topology::server_addr(false, 443),
        vec![],
        Duration::ZERO,
        false,
    );
    assert!(got.is_empty());
    assert_eq!(server.accepted(), 0);
    assert!(
        s.proxy.logs().contains("detect_timeout"),
        "{}",
        s.proxy.logs()
    );
}

#[test]
fn connections_to_the_proxy_itself_are_denied_not_looped() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let own = SocketAddr::new(addr::GW_CLIENT_V4.into(), 15001);
    let (got, _) = raw_exchange(
        &s,
        own,
        vec![b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n".to_vec()],
        Duration::ZERO,
        false,
    );
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 403"));
    assert!(
        s.proxy.wait_for_log("loop", support::WAIT),
        "{}",
        s.proxy.logs()
    );
}

#[test]
fn deny_private_blocks_name_allowed_private_upstreams_unless_a_cidr_rule_allows() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    let ca = TestCa::new().unwrap();
    topo.redirect(15001).unwrap();
    let cfg = config(REDIRECT, "").replace("deny_private = false", "deny_private = true");
    let policy = r#"{"id":"np_1","egress":{"allowed_hostnames":["allowed.test"],"allowed_cidrs":[{"cidr":"fd77:2::2/128","ports":[{"port":443}]}]}}"#;
    let proxy = ProxyProc::start(&topo.gateway, &cfg, &[("np_1.json", policy)]).unwrap();
    let server = TestServer::tls(&topo.server, 443, ca.server_config(NAMES).unwrap()).unwrap();
    let s = Setup { topo, ca, proxy };
    assert!(
        !curl_https(&s, "allowed.test", false).success(),
        "10.77.2.2 is private"
    );
    assert!(
        curl_https(&s, "allowed.test", true).success(),
        "the CIDR rule allows fd77:2::2:443"
    );
    assert_eq!(server.accepted(), 1);
    assert!(s.proxy.logs().contains("private_upstream"));
}

#[test]
fn unknown_sources_are_denied_by_default() {
    if !support::require_root() {
        return;
    }
    let policy = POLICY;
    let s = setup(REDIRECT, "", policy);
    let _ = s.proxy.dir();
    let cfg = config(REDIRECT, "").replace("\"10.77.1.2\", ", "");
    let topo = Topology::new().unwrap();
    topo.redirect(15001).unwrap();
    let proxy = ProxyProc::start(&topo.gateway, &cfg, &[("np_1.json", policy)]).unwrap();
    let _server = TestServer::tls(&topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let s2 = Setup {
        topo,
        ca: TestCa::new().unwrap(),
        proxy,
    };
    let out = Curl::new("https://allowed.test/")
        .resolve("allowed.test", 443, Topology::server_ip(false))
        .cacert(s.ca.pem_path())
        .run(&s2.topo.client)
        .unwrap();
    assert!(!out.success());
    assert!(s2.proxy.logs().contains("unknown_source_denied"));
}

#[test]
fn deny_tls_reset_answers_a_denied_hello_with_a_reset() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "[deny]\ntls = \"reset\"\n", POLICY);
    let hello = s.ca.client_hello("denied.test");
    let (got, reset) = raw_exchange(
        &s,
        Topology::server_addr(false, 443),
        vec![hello],
        Duration::ZERO,
        false,
    );
    assert!(got.is_empty() && reset, "{got:?}");
}

#[test]
fn idle_relays_are_closed_after_the_idle_timeout() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "[limits]\nidle_timeout_ms = 400\n", POLICY);
    let _echo = TestServer::echo(&s.topo.server, 7000).unwrap();
    let dest = Topology::server_addr(false, 7000);
    let (echoed, waited) = s.topo.client.enter(move || {
        let mut c = TcpStream::connect_timeout(&dest, Duration::from_secs(3)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        (b[0], started.elapsed())
    });
    assert_eq!(echoed, b'x');
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

const ECH_HELLO: &[u8] = include_bytes!("../../proxy/src/detect/testdata/ech_outer.bin");

#[test]
fn ech_hellos_match_on_the_outer_name_or_are_denied_when_configured() {
    if !support::require_root() {
        return;
    }
    let policy = r#"{"id":"np_1","egress":{"allowed_hostnames":["www.example.com"]}}"#;
    for relayed in [true, false] {
        let topo = Topology::new().unwrap();
        topo.redirect(15001).unwrap();
        let mut cfg = config(REDIRECT, "");
        if !relayed {
            cfg = cfg.replace(
                "[detect]\ntimeout_ms = 800",
                "[detect]\ntimeout_ms = 800\nech = \"deny\"",
            );
        }
        let proxy = ProxyProc::start(&topo.gateway, &cfg, &[("np_1.json", policy)]).unwrap();
        let server = TestServer::echo(&topo.server, 443).unwrap();
        let s = Setup {
            topo,
            ca: TestCa::new().unwrap(),
            proxy,
        };
        let (got, _) = raw_exchange(
            &s,
            Topology::server_addr(false, 443),
            vec![ECH_HELLO.to_vec()],
            Duration::ZERO,
            true,
        );
        if relayed {
            assert_eq!(
                got, ECH_HELLO,
                "relayed byte for byte to the (echo) upstream"
            );
        } else {
            assert_eq!(got.first(), Some(&21), "an alert: {got:?}");
            assert_eq!(server.accepted(), 0);
            assert!(s.proxy.logs().contains("ech_denied"));
        }
    }
}

#[test]
fn upstream_sockets_carry_the_configured_mark() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    topo.redirect(15001).unwrap();
    let cfg =
        config(REDIRECT, "").replace("deny_private = false", "deny_private = false\nmark = 66");
    let proxy = ProxyProc::start(&topo.gateway, &cfg, &[("np_1.json", POLICY)]).unwrap();
    topo.iptables(&[
        "-A", "OUTPUT", "-p", "tcp", "--dport", "7000", "-m", "mark", "--mark", "66", "-j",
        "ACCEPT",
    ])
    .unwrap();
    let _echo = TestServer::echo(&topo.server, 7000).unwrap();
    let ca = TestCa::new().unwrap();
    let s = Setup { topo, ca, proxy };
    let (got, _) = raw_exchange(
        &s,
        Topology::server_addr(false, 7000),
        vec![b"hi".to_vec()],
        Duration::ZERO,
        true,
    );
    assert_eq!(got, b"hi");
    let out = s
        .topo
        .gateway
        .output(
            "iptables",
            &["-L", "OUTPUT", "-v", "-n", "-x"],
            None,
            support::WAIT,
        )
        .unwrap();
    let packets: u64 = out
        .stdout
        .lines()
        .find(|l| l.contains("mark match 0x42"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(packets > 0, "{}", out.stdout);
}

#[test]
fn dial_resolve_uses_the_names_own_address_not_the_clients_destination() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    topo.redirect(15001).unwrap();
    let _hosts = support::HostsFile::new(&topo.gateway, "10.77.2.2 allowed.test\n");
    let cfg = config(REDIRECT, "").replace(
        "deny_private = false",
        "deny_private = false\ndial = \"resolve\"",
    );
    let proxy = ProxyProc::start(&topo.gateway, &cfg, &[("np_1.json", POLICY)]).unwrap();
    let ca = TestCa::new().unwrap();
    let server = TestServer::tls(&topo.server, 443, ca.server_config(NAMES).unwrap()).unwrap();
    let s = Setup { topo, ca, proxy };
    // The client aims at 10.77.2.99 (nothing there); the proxy dials allowed.test's address.
    let out = Curl::new("https://allowed.test/")
        .resolve("allowed.test", 443, "10.77.2.99".parse().unwrap())
        .cacert(s.ca.pem_path())
        .run(&s.topo.client)
        .unwrap();
    assert_eq!(
        out.stdout.trim(),
        "sni=allowed.test",
        "{out}\n{}",
        s.proxy.logs()
    );
    assert_eq!(server.accepted(), 1);
}

#[test]
fn a_thousand_trickling_clients_do_not_stall_a_normal_one() {
    if !support::require_root() {
        return;
    }
    let s = setup(REDIRECT, "", POLICY);
    let _server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let dest = Topology::server_addr(false, 443);
    let slow: Vec<TcpStream> = s.topo.client.enter(move || {
        (0..1000)
            .filter_map(|_| {
                let mut c = TcpStream::connect_timeout(&dest, Duration::from_secs(3)).ok()?;
                c.write_all(&[22]).ok()?;
                Some(c)
            })
            .collect()
    });
    assert!(slow.len() >= 990, "held {}", slow.len());
    let started = Instant::now();
    let ok = curl_https(&s, "allowed.test", false);
    assert!(ok.success(), "{ok}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served in {:?}",
        started.elapsed()
    );
    drop(slow);
}
