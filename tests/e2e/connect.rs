//! The explicit proxy: CONNECT tunnels and absolute-form HTTP on the
//! `connect` listener, with names resolved through the gateway namespace's
//! own hosts file (tests never use DNS).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{
    self, BANNER, Curl, HostsFile, ProxyProc, TestCa, TestServer, Topology, addr,
};

const NAMES: &[&str] = &[
    "allowed.test",
    "denied.test",
    "xn--bcher-kva.test",
    "private.test",
];

const POLICY: &str = r#"{"id":"np_1","egress":{"allowed_hostnames":["allowed.test","bücher.test","metadata.test"],
  "allowed_cidrs":[{"cidr":"10.77.2.2/32","ports":[{"port":2222}]}]}}"#;

struct Setup {
    topo: Topology,
    ca: TestCa,
    proxy: ProxyProc,
    _hosts: HostsFile,
}

fn setup(deny_private: bool) -> Setup {
    let topo = Topology::new().unwrap();
    let ca = TestCa::new().unwrap();
    let hosts = HostsFile::new(
        &topo.gateway,
        "10.77.2.2 allowed.test denied.test xn--bcher-kva.test\nfd77:2::2 allowed6.test\n169.254.169.254 metadata.test\n",
    );
    let config = format!(
        r#"
policy_files = ["policies/*.json"]
[listen]
connect = ["10.77.1.1:3128", "[fd77:1::1]:3128"]
[detect]
timeout_ms = 1000
[upstream]
deny_private = {deny_private}
connect_timeout_ms = 1000
[[devboxes]]
id = "dbx_1"
account = "acct_1"
addresses = ["10.77.1.2", "fd77:1::2"]
network_policy_id = "np_1"
"#
    );
    let proxy = ProxyProc::start(&topo.gateway, &config, &[("np_1.json", POLICY)]).unwrap();
    Setup {
        topo,
        ca,
        proxy,
        _hosts: hosts,
    }
}

const PROXY_V4: &str = "http://10.77.1.1:3128";

fn curl(s: &Setup, url: &str, proxy: &str) -> support::CmdOutput {
    Curl::new(url)
        .proxy(proxy)
        .cacert(s.ca.pem_path())
        .run(&s.topo.client)
        .unwrap()
}

/// Sends `request` to the proxy from the client namespace; returns all that comes back.
fn raw(s: &Setup, request: Vec<u8>, then: Option<Vec<u8>>) -> Vec<u8> {
    let proxy = SocketAddr::new(addr::GW_CLIENT_V4.into(), 3128);
    s.topo.client.enter(move || {
        let mut c = TcpStream::connect_timeout(&proxy, Duration::from_secs(3)).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        c.write_all(&request).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        if let Some(more) = then {
            // Wait for the proxy's answer before sending what follows.
            if let Ok(n) = c.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            let _ = c.write_all(&more);
        }
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn connect_allows_by_authority_and_denies_with_403() {
    if !support::require_root() {
        return;
    }
    let s = setup(false);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let ok = curl(&s, "https://allowed.test/", PROXY_V4);
    assert_eq!(
        ok.stdout.trim(),
        "sni=allowed.test",
        "{ok}\n{}",
        s.proxy.logs()
    );
    let v6 = curl(&s, "https://allowed.test/", "http://[fd77:1::1]:3128");
    assert!(v6.success(), "IPv6 client: {v6}");
    let denied = curl(&s, "https://denied.test/", PROXY_V4);
    assert!(!denied.success());
    assert!(denied.stderr.contains("403"), "{denied}");
    assert_eq!(server.accepted(), 2, "a denied name is never dialled");
    assert!(s.proxy.logs().contains("no_match"));
}

#[test]
fn connect_to_ip_literals_needs_a_cidr_rule() {
    if !support::require_root() {
        return;
    }
    let s = setup(false);
    let _banner = TestServer::banner(&s.topo.server, 2222).unwrap();
    let got = raw(
        &s,
        b"CONNECT 10.77.2.2:2222 HTTP/1.1\r\nHost: 10.77.2.2:2222\r\n\r\n".to_vec(),
        None,
    );
    let got = text(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.ends_with(std::str::from_utf8(BANNER).unwrap()),
        "server-first through CONNECT: {got:?}"
    );
    let denied = text(&raw(
        &s,
        b"CONNECT 10.77.2.2:443 HTTP/1.1\r\n\r\n".to_vec(),
        None,
    ));
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(
        denied.contains("Connection: close") || denied.contains("connection: close"),
        "{denied}"
    );
}

#[test]
fn an_inner_name_that_differs_from_the_authority_closes_the_tunnel() {
    if !support::require_root() {
        return;
    }
    let s = setup(false);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    let _http = TestServer::http(&s.topo.server, 80).unwrap();
    let hello = s.ca.client_hello("denied.test");
    let got = raw(
        &s,
        b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n".to_vec(),
        Some(hello),
    );
    assert!(text(&got).starts_with("HTTP/1.1 200"));
    let after = got.split(|_| false).next().unwrap();
    assert!(
        !after.windows(2).any(|w| w == [22, 3]),
        "no ServerHello came back"
    );
    assert!(server.names().iter().all(|n| n != "denied.test"));
    assert!(
        s.proxy.wait_for_log("name_mismatch", support::WAIT),
        "{}",
        s.proxy.logs()
    );
    // An inner HTTP Host naming another host is refused the same way.
    let got = raw(
        &s,
        b"CONNECT allowed.test:80 HTTP/1.1\r\n\r\n".to_vec(),
        Some(b"GET / HTTP/1.1\r\nHost: denied.test\r\n\r\n".to_vec()),
    );
    assert!(text(&got).contains("403"), "{}", text(&got));
}

#[test]
fn bad_authorities_are_400_and_idn_authorities_are_normalised() {
    if !support::require_root() {
        return;
    }
    let s = setup(false);
    let _server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    for bad in [
        "CONNECT allowed.test HTTP/1.1\r\n\r\n",
        "CONNECT user@allowed.test:443 HTTP/1.1\r\n\r\n",
        "CONNECT allowed.test:0 HTTP/1.1\r\n\r\n",
    ] {
        let got = text(&raw(&s, bad.as_bytes().to_vec(), None));
        assert!(got.starts_with("HTTP/1.1 400"), "{bad:?} -> {got}");
    }
    let idn = text(&raw(
        &s,
        b"CONNECT XN--BCHER-KVA.test.:443 HTTP/1.1\r\n\r\n".to_vec(),
        None,
    ));
    assert!(idn.starts_with("HTTP/1.1 200"), "{idn}");
    let mismatch = text(&raw(
        &s,
        b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: denied.test:443\r\n\r\n".to_vec(),
        None,
    ));
    assert!(mismatch.starts_with("HTTP/1.1 403"), "{mismatch}");
}

#[test]
fn absolute_form_is_decided_per_request_and_must_agree_with_host() {
    if !support::require_root() {
        return;
    }
    let s = setup(false);
    let server = TestServer::http(&s.topo.server, 80).unwrap();
    let ok = curl(&s, "http://allowed.test/", PROXY_V4);
    assert_eq!(
        ok.stdout.trim(),
        "host=allowed.test",
        "{ok}\n{}",
        s.proxy.logs()
    );
    let mismatch = text(&raw(
        &s,
        b"GET http://allowed.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n".to_vec(),
        None,
    ));
    assert!(mismatch.starts_with("HTTP/1.1 403"), "{mismatch}");
    let keepalive = text(&raw(
        &s,
        b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n".to_vec(),
        Some(b"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n".to_vec()),
    ));
    assert!(keepalive.starts_with("HTTP/1.1 200"), "{keepalive}");
    assert!(
        keepalive.contains("HTTP/1.1 403"),
        "the second request is decided on its own: {keepalive}"
    );
    assert_eq!(
        server.names(),
        vec!["allowed.test".to_owned(), "allowed.test".to_owned()]
    );
}

#[test]
fn names_resolving_to_private_addresses_are_denied() {
    if !support::require_root() {
        return;
    }
    let s = setup(true);
    let server = TestServer::tls(&s.topo.server, 443, s.ca.server_config(NAMES).unwrap()).unwrap();
    for name in ["metadata.test", "allowed.test"] {
        let got = text(&raw(
            &s,
            format!("CONNECT {name}:443 HTTP/1.1\r\n\r\n").into_bytes(),
            None,
        ));
        assert!(got.starts_with("HTTP/1.1 403"), "{name}: {got}");
    }
    assert_eq!(server.accepted(), 0);
    assert!(
        s.proxy.logs().contains("private_upstream"),
        "{}",
        s.proxy.logs()
    );
}
