//! The test network itself, without the proxy: the routed path from the client
//! namespace through the gateway reaches real servers (curl over IPv4 and IPv6,
//! an in-process rustls client), and the gateway's interception rules deliver
//! connections the way the proxy will receive them (REDIRECT with
//! `SO_ORIGINAL_DST`, TPROXY with the original destination as local address).
//! If these fail, every other e2e failure is noise.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use crate::support::{self, Curl, SClient, TestCa, TestServer, Topology, WAIT, sockets};

const TLS_NAMES: &[&str] = &["allowed.test", "denied.test", "*.wild.test"];

#[test]
fn routed_path_reaches_tls_server_by_name() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    let ca = TestCa::new().unwrap();
    let server = TestServer::tls(&topo.server, 443, ca.server_config(TLS_NAMES).unwrap()).unwrap();

    for (name, ip) in [
        ("allowed.test", Topology::server_ip(false)),
        ("a.wild.test", Topology::server_ip(true)),
    ] {
        let out = Curl::new(&format!("https://{name}/"))
            .resolve(name, 443, ip)
            .cacert(ca.pem_path())
            .run(&topo.client)
            .unwrap();
        assert!(out.success(), "curl {name} via {ip}: {out}");
        assert_eq!(out.stdout, format!("sni={name}\n"), "curl {name} via {ip}");
    }

    let s_client = SClient::new(Topology::server_addr(true, 443), ca.pem_path())
        .servername("denied.test")
        .http_get("denied.test")
        .run(&topo.client)
        .unwrap();
    assert!(s_client.success(), "openssl s_client: {s_client}");
    assert!(s_client.stdout.contains("sni=denied.test"), "{s_client}");

    let config = ca.client_config().unwrap();
    let target = Topology::server_addr(false, 443);
    let response = topo
        .client
        .run(support::rustls_get(config, target, "denied.test"))
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nsni=denied.test\n"),
        "{response}"
    );

    assert_eq!(server.accepted(), 4);
    let names = server.names();
    assert_eq!(
        names,
        ["allowed.test", "a.wild.test", "denied.test", "denied.test"]
    );
}

#[test]
fn nothing_routes_beyond_the_topology() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    // A routed connection reaches the server's kernel, which refuses port 443.
    let refused = topo
        .client
        .enter(|| sockets::connect(Topology::server_addr(false, 443), WAIT));
    let err = refused.expect_err("connected to a port nobody listens on");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    // The gateway, the only namespace with two links, has no route elsewhere
    // (TEST-NET-1, 2001:db8::/32); a client's packets there die at the gateway.
    // (Not asked over IPv6 from the client: Linux treats ICMPv6 "no route" as a
    // soft error and keeps the SYN trying for a second.)
    let outside: [SocketAddr; 2] = [
        "192.0.2.1:443".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    ];
    let tries = [
        (&topo.gateway, outside[0]),
        (&topo.gateway, outside[1]),
        (&topo.client, outside[0]),
    ];
    for (ns, target) in tries {
        let err = ns.enter(|| sockets::connect(target, WAIT)).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::NetworkUnreachable,
            "{} to {target}: {err}",
            ns.name()
        );
    }
}

/// Listens on `port` in the gateway (with `bind`), connects from the client
/// to the server's port 443 and accepts what the rules deliver: (the
/// client's target, the client's stream, the accepted stream).
fn intercept(
    topo: &Topology,
    v6: bool,
    port: u16,
    bind: fn(SocketAddr) -> std::io::Result<TcpListener>,
) -> (SocketAddr, TcpStream, TcpStream) {
    let any: SocketAddr = if v6 {
        format!("[::]:{port}")
    } else {
        format!("0.0.0.0:{port}")
    }
    .parse()
    .unwrap();
    let listener = topo.gateway.enter(|| bind(any)).unwrap();
    let target = Topology::server_addr(v6, 443);
    let client = topo
        .client
        .enter(|| sockets::connect(target, WAIT))
        .unwrap();
    let (stream, peer) = sockets::accept_within(&listener, WAIT).unwrap();
    assert_eq!(peer.ip(), Topology::client_ip(v6));
    (target, client, stream)
}

#[test]
fn redirect_delivers_connection_with_original_destination() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    topo.redirect(15001).unwrap();
    let server = TestServer::echo(&topo.server, 443).unwrap();

    for v6 in [false, true] {
        let (target, mut client, mut stream) = intercept(&topo, v6, 15001, sockets::bind);
        assert_eq!(sockets::original_dst(&stream).unwrap(), target);
        assert_ne!(
            stream.local_addr().unwrap(),
            target,
            "REDIRECT rewrites the destination"
        );
        round_trip(&mut client, &mut stream);
    }
    assert_eq!(
        server.accepted(),
        0,
        "intercepted connections never reach the server"
    );
}

#[test]
fn tproxy_delivers_connection_to_original_destination() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    topo.tproxy(15002, 1).unwrap();
    let server = TestServer::echo(&topo.server, 443).unwrap();

    for v6 in [false, true] {
        let (target, mut client, mut stream) =
            intercept(&topo, v6, 15002, sockets::bind_transparent);
        assert_eq!(stream.local_addr().unwrap(), target);
        round_trip(&mut client, &mut stream);
    }
    assert_eq!(
        server.accepted(),
        0,
        "intercepted connections never reach the server"
    );
}

/// Bytes flow both ways between the client and the intercepting listener.
fn round_trip(client: &mut std::net::TcpStream, accepted: &mut std::net::TcpStream) {
    accepted.set_read_timeout(Some(WAIT)).unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    accepted.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}
