//! HTTP/1.x cases: captured curl heads, and every Host ambiguity that must be a deny.

use super::*;

fn http(host: &str, port: Option<u16>, absolute_form: bool, head: &[u8]) -> Detection {
    Detection::Done(Detected::Http {
        host: name(host),
        port,
        absolute_form,
        head_len: head.len(),
    })
}

fn reject(m: Malformed) -> Detection {
    Detection::Reject(m)
}

/// `GET / HTTP/1.1` with these header lines.
fn get(headers: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\n{headers}\r\n").into_bytes()
}

#[test]
fn captured_curl_heads() {
    assert_eq!(detect(CURL_GET), http("example.com", None, false, CURL_GET));
    let absolute = http("example.com", Some(8080), true, CURL_ABSOLUTE);
    assert_eq!(detect(CURL_ABSOLUTE), absolute);
    assert_eq!(
        detect(CURL_CONNECT),
        http("example.com", Some(443), false, CURL_CONNECT)
    );
    assert_eq!(
        crate::detect::http::parse_request_head(CURL_GET),
        detect(CURL_GET)
    );
}

#[test]
fn head_len_excludes_the_body() {
    let mut input = b"POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\n".to_vec();
    let head_len = input.len();
    input.extend_from_slice(b"abc");
    assert_eq!(
        detect(&input),
        http("a.example", None, false, &input[..head_len])
    );
}

#[test]
fn host_forms() {
    let head = get("Host: example.com:8443\r\n");
    assert_eq!(detect(&head), http("example.com", Some(8443), false, &head));
    let head = get("Host: 10.1.2.3\r\n");
    assert_eq!(detect(&head), http("10.1.2.3", None, false, &head));
    let head = get("Host: [fd00::2]:8080\r\n");
    let Detection::Done(Detected::Http {
        host: Some(host),
        port,
        ..
    }) = detect(&head)
    else {
        panic!("{:?}", detect(&head));
    };
    assert_eq!((host.as_str(), port), ("fd00::2", Some(8080)));
    assert_eq!(host.ip(), Some("fd00::2".parse().unwrap()));
    let head = get("host:   Example.COM  \r\n");
    assert_eq!(detect(&head), http("Example.COM", None, false, &head));
}

#[test]
fn no_host_means_no_name() {
    let head = b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n";
    let want = Detected::Http {
        host: None,
        port: None,
        absolute_form: false,
        head_len: head.len(),
    };
    assert_eq!(detect(head), Detection::Done(want));
    let head = b"OPTIONS * HTTP/1.1\r\n\r\n";
    let want = Detected::Http {
        host: None,
        port: None,
        absolute_form: false,
        head_len: head.len(),
    };
    assert_eq!(detect(head), Detection::Done(want));
}

#[test]
fn ambiguous_hosts_are_rejected() {
    let cases = [
        (
            "Host: a.com\r\nHost: b.com\r\n",
            Malformed::HttpDuplicateHost,
        ),
        (
            "Host: a.com\r\nhOsT: a.com\r\n",
            Malformed::HttpDuplicateHost,
        ),
        ("Host: user@evil.com\r\n", Malformed::HttpHostUserinfo),
        ("Host: a.com@evil.com\r\n", Malformed::HttpHostUserinfo),
        ("Host: a.com evil.com\r\n", Malformed::HttpHostWhitespace),
        ("Host: a.com\tevil.com\r\n", Malformed::HttpHostWhitespace),
        ("Host: \r\n", Malformed::HttpHostEmpty),
        ("Host: a.com:\r\n", Malformed::HttpHostPort),
        ("Host: a.com:0\r\n", Malformed::HttpHostPort),
        ("Host: a.com:65536\r\n", Malformed::HttpHostPort),
        ("Host: a.com:80x\r\n", Malformed::HttpHostPort),
        ("Host: a.com:+80\r\n", Malformed::HttpHostPort),
        ("Host: a.com:1:2\r\n", Malformed::HttpHostInvalidByte),
        ("Host: fd00::2\r\n", Malformed::HttpHostInvalidByte),
        ("Host: [fd00::zz]\r\n", Malformed::HttpHostInvalidByte),
        ("Host: [fd00::2]x\r\n", Malformed::HttpHostInvalidByte),
        ("Host: [fd00::2\r\n", Malformed::HttpHostInvalidByte),
        ("Host: a.com/\r\n", Malformed::HttpHostInvalidByte),
        ("Host: é.com\r\n", Malformed::HttpHostInvalidByte),
    ];
    for (headers, want) in cases {
        assert_eq!(detect(&get(headers)), reject(want), "{headers:?}");
    }
    let long = format!("Host: {}\r\n", "a".repeat(254));
    assert_eq!(detect(&get(&long)), reject(Malformed::HttpHostTooLong));
}

#[test]
fn nul_and_obs_fold_are_syntax_errors() {
    let nul = detect(&get("Host: a.com\0evil.com\r\n"));
    assert_eq!(
        nul,
        reject(Malformed::HttpSyntax(httparse::Error::HeaderValue))
    );
    let folded = detect(&get("Host: a.com\r\n evil.com\r\n"));
    assert_eq!(
        folded,
        reject(Malformed::HttpSyntax(httparse::Error::HeaderName))
    );
    let folded_other = detect(&get("X: 1\r\n\tHost: evil.com\r\nHost: a.com\r\n"));
    assert_eq!(
        folded_other,
        reject(Malformed::HttpSyntax(httparse::Error::HeaderName))
    );
    let space_before_colon = detect(&get("Host : evil.com\r\n"));
    assert_eq!(
        space_before_colon,
        reject(Malformed::HttpSyntax(httparse::Error::HeaderName))
    );
}

#[test]
fn bare_line_feeds_are_rejected() {
    let head = b"GET / HTTP/1.1\r\nHost: a.com\nHost: evil.com\r\n\r\n";
    assert_eq!(detect(head), reject(Malformed::HttpBareLineFeed));
    assert_eq!(
        detect(b"GET / HTTP/1.1\n\n"),
        reject(Malformed::HttpBareLineFeed)
    );
    assert_eq!(
        crate::detect::http::parse_request_head(b"\n"),
        reject(Malformed::HttpBareLineFeed)
    );
}

#[test]
fn absolute_form_must_agree_with_host() {
    let agree = [
        ("http://a.com/x", "a.com", None),
        ("http://A.com:80/x", "a.COM", Some(80)),
        ("http://a.com/x", "a.com:80", None),
        ("http://a.com:8080?q", "a.com:8080", Some(8080)),
        ("HTTPS://a.com/", "a.com:443", None),
        ("http://[::1]:81/", "[::1]:81", Some(81)),
    ];
    for (target, host, port) in agree {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
        let Detection::Done(Detected::Http {
            port: got,
            absolute_form: true,
            ..
        }) = detect(&head)
        else {
            panic!("{target} {host}: {:?}", detect(&head));
        };
        assert_eq!(got, port, "{target} {host}");
    }
    let disagree = [
        ("http://evil.com/", "a.com"),
        ("http://a.com:8080/", "a.com"),
        ("http://a.com/", "a.com:8080"),
        ("https://a.com/", "a.com:80"),
        ("http://a.com./", "a.com"),
    ];
    for (target, host) in disagree {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
        assert_eq!(
            detect(&head),
            reject(Malformed::AuthorityHostMismatch),
            "{target} {host}"
        );
    }
}

#[test]
fn absolute_form_without_host_is_named_by_its_authority() {
    let head = b"GET http://a.com:81/ HTTP/1.0\r\n\r\n";
    assert_eq!(detect(head), http("a.com", Some(81), true, head));
}

#[test]
fn bad_targets_are_rejected() {
    let cases = [
        (
            "GET http://u@a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n",
            Malformed::HttpTargetAuthority,
        ),
        (
            "GET http:/// HTTP/1.1\r\n\r\n",
            Malformed::HttpTargetAuthority,
        ),
        ("GET ftp://a.com/ HTTP/1.1\r\n\r\n", Malformed::HttpTarget),
        ("GET a.com/ HTTP/1.1\r\n\r\n", Malformed::HttpTarget),
        ("GET * HTTP/1.1\r\n\r\n", Malformed::HttpTarget),
        (
            "CONNECT a.com HTTP/1.1\r\n\r\n",
            Malformed::HttpTargetAuthority,
        ),
        (
            "CONNECT evil.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n",
            Malformed::AuthorityHostMismatch,
        ),
        (
            "CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:8443\r\n\r\n",
            Malformed::AuthorityHostMismatch,
        ),
    ];
    for (head, want) in cases {
        assert_eq!(detect(head.as_bytes()), reject(want), "{head:?}");
    }
    let head = b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com\r\n\r\n";
    assert_eq!(detect(head), http("a.com", Some(443), false, head));
}

#[test]
fn broken_request_lines_are_syntax_errors() {
    for head in [
        "GET / HTTP/2.0\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET /\r\n\r\n",
    ] {
        assert!(
            matches!(
                detect(head.as_bytes()),
                Detection::Reject(Malformed::HttpSyntax(_))
            ),
            "{head:?}"
        );
    }
}

#[test]
fn too_many_headers_is_a_syntax_error() {
    let head = get(&"X: 1\r\n".repeat(101));
    let want = reject(Malformed::HttpSyntax(httparse::Error::TooManyHeaders));
    assert_eq!(detect(&head), want);
}
