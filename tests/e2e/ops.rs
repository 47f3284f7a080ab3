//! Operations: the audit log and report mode, `audit suggest`, hot reload
//! (a good edit flips a decision within a second, a broken one is refused),
//! open relays closed by a policy change, and SIGTERM draining a relay.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{self, Curl, ProxyProc, TestCa, TestServer, Topology};

const NAMES: &[&str] = &["allowed.test", "denied.test"];

fn config(extra: &str) -> String {
    format!(
        r#"
policy_files = ["policies/*.json"]
{extra}
[listen]
transparent = ["0.0.0.0:15001", "[::]:15001"]
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

const ALLOW_ALLOWED: &str = r#"{"id":"np_1","egress":{"allowed_hostnames":["allowed.test"],"allowed_cidrs":[{"cidr":"10.77.2.2/32","ports":[{"port":7000}]}]}}"#;

fn curl_ok(topo: &Topology, ca: &TestCa, name: &str) -> bool {
    Curl::new(&format!("https://{name}/"))
        .resolve(name, 443, Topology::server_ip(false))
        .cacert(ca.pem_path())
        .max_time(Duration::from_secs(2))
        .run(&topo.client)
        .unwrap()
        .success()
}

fn audit_lines(proxy: &ProxyProc) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(proxy.dir().path().join("audit.log")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A REDIRECT topology with a TLS server for `NAMES` and a proxy on `cfg`.
struct TlsSetup {
    topo: Topology,
    ca: TestCa,
    _server: TestServer,
    proxy: ProxyProc,
}

fn tls_setup(cfg: &str) -> TlsSetup {
    let topo = Topology::new().unwrap();
    let ca = TestCa::new().unwrap();
    topo.redirect(15001).unwrap();
    let server = TestServer::tls(&topo.server, 443, ca.server_config(NAMES).unwrap()).unwrap();
    let proxy = ProxyProc::start(&topo.gateway, cfg, &[("np_1.json", ALLOW_ALLOWED)]).unwrap();
    TlsSetup {
        topo,
        ca,
        _server: server,
        proxy,
    }
}

#[test]
fn report_mode_allows_and_audits_a_would_be_deny() {
    if !support::require_root() {
        return;
    }
    let cfg = config("mode = \"report\"\n[audit]\npath = \"audit.log\"\n");
    let TlsSetup {
        topo,
        ca,
        proxy,
        _server,
    } = tls_setup(&cfg);
    assert!(curl_ok(&topo, &ca, "allowed.test"));
    assert!(
        curl_ok(&topo, &ca, "denied.test"),
        "report mode relays a would-be deny"
    );
    assert!(
        support::wait_until(support::WAIT, || audit_lines(&proxy).len() == 2),
        "{}",
        proxy.logs()
    );
    let lines = audit_lines(&proxy);
    let by_name = |n: &str| lines.iter().find(|l| l["name"] == n).unwrap().clone();
    let allowed = by_name("allowed.test");
    assert_eq!(
        (allowed["verdict"].as_str(), allowed["reason"].as_str()),
        (Some("allow"), Some("hostname"))
    );
    let denied = by_name("denied.test");
    assert_eq!(
        (denied["verdict"].as_str(), denied["mode"].as_str()),
        (Some("would_deny"), Some("report"))
    );
    for l in [&allowed, &denied] {
        assert_eq!(l["devbox"], "dbx_1");
        assert_eq!(l["policy"], "np_1");
        assert_eq!(l["protocol"], "tls");
        assert!(
            l["bytes_up"].as_u64().unwrap() > 0 && l["bytes_down"].as_u64().unwrap() > 0,
            "{l}"
        );
        assert!(l["dest"].as_str().unwrap().ends_with(":443"));
    }
    let log = proxy.dir().path().join("audit.log");
    let suggest = std::process::Command::new(support::proxy::proxy_binary().unwrap())
        .args(["audit", "suggest", "--log"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&suggest.stdout).trim(),
        "dbx_1\t1\tdenied.test"
    );
}

#[test]
fn a_policy_edit_applies_within_a_second_and_a_broken_one_is_refused() {
    if !support::require_root() {
        return;
    }
    let TlsSetup {
        topo,
        ca,
        proxy,
        _server,
    } = tls_setup(&config(""));
    assert!(!curl_ok(&topo, &ca, "denied.test"));
    let edited = ALLOW_ALLOWED.replace("[\"allowed.test\"]", "[\"allowed.test\",\"denied.test\"]");
    let written = Instant::now();
    proxy.dir().write("policies/np_1.json", &edited).unwrap();
    assert!(
        proxy.wait_for_log("reloaded", Duration::from_secs(1)),
        "{}",
        proxy.logs()
    );
    let applied = written.elapsed();
    assert!(
        applied < Duration::from_secs(1),
        "applied after {applied:?}"
    );
    assert!(curl_ok(&topo, &ca, "denied.test"));
    proxy
        .dir()
        .write(
            "policies/np_1.json",
            r#"{"id":"np_1","egress":{"allowed_hostnames":["*"]}}"#,
        )
        .unwrap();
    assert!(
        proxy.wait_for_log("reload refused", Duration::from_secs(2)),
        "{}",
        proxy.logs()
    );
    assert!(
        proxy
            .logs()
            .contains("np_1.json: egress.allowed_hostnames[0]"),
        "{}",
        proxy.logs()
    );
    assert!(
        curl_ok(&topo, &ca, "denied.test"),
        "the last good state stays in force"
    );
    assert!(!curl_ok(&topo, &ca, "other.test"));
}

fn open_echo(topo: &Topology) -> TcpStream {
    let dest = Topology::server_addr(false, 7000);
    let c = topo
        .client
        .enter(move || TcpStream::connect_timeout(&dest, Duration::from_secs(3)).unwrap());
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c
}

fn echo_once(c: &mut TcpStream) -> std::io::Result<()> {
    c.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

#[test]
fn a_policy_change_closes_open_relays_it_now_denies() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    topo.redirect(15001).unwrap();
    let _echo = TestServer::echo(&topo.server, 7000).unwrap();
    let proxy =
        ProxyProc::start(&topo.gateway, &config(""), &[("np_1.json", ALLOW_ALLOWED)]).unwrap();
    let mut c = open_echo(&topo);
    echo_once(&mut c).unwrap();
    proxy
        .dir()
        .write(
            "policies/np_1.json",
            r#"{"id":"np_1","egress":{"allowed_hostnames":["allowed.test"]}}"#,
        )
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let closed = matches!(c.read(&mut buf), Ok(0) | Err(_));
    assert!(
        closed && started.elapsed() < Duration::from_secs(2),
        "{}",
        proxy.logs()
    );
    assert!(
        proxy
            .logs()
            .contains("policy change denies an open connection")
    );
}

#[test]
fn sigterm_drains_an_open_relay_then_exits() {
    if !support::require_root() {
        return;
    }
    let topo = Topology::new().unwrap();
    topo.redirect(15001).unwrap();
    let _echo = TestServer::echo(&topo.server, 7000).unwrap();
    let mut proxy =
        ProxyProc::start(&topo.gateway, &config(""), &[("np_1.json", ALLOW_ALLOWED)]).unwrap();
    let mut c = open_echo(&topo);
    echo_once(&mut c).unwrap();
    let pid = proxy.pid().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(proxy.wait_for_log("draining", support::WAIT));
    echo_once(&mut c).expect("the open relay still works while draining");
    assert!(
        proxy.wait_exit(Duration::from_millis(300)).is_none(),
        "still draining"
    );
    c.shutdown(Shutdown::Both).unwrap();
    drop(c);
    let status = proxy.wait_exit(support::WAIT).expect("exits once drained");
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_reopens_the_audit_log_for_rotation() {
    if !support::require_root() {
        return;
    }
    let cfg = config("[audit]\npath = \"audit.log\"\n");
    let TlsSetup {
        topo,
        ca,
        proxy,
        _server,
    } = tls_setup(&cfg);
    assert!(curl_ok(&topo, &ca, "allowed.test"));
    assert!(support::wait_until(support::WAIT, || audit_lines(&proxy)
        .len()
        == 1));
    let dir = proxy.dir().path().to_path_buf();
    std::fs::rename(dir.join("audit.log"), dir.join("audit.log.1")).unwrap();
    let pid = proxy.pid().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(
        proxy.wait_for_log("reloaded", support::WAIT),
        "SIGHUP also reloads: {}",
        proxy.logs()
    );
    assert!(!curl_ok(&topo, &ca, "denied.test"));
    assert!(
        support::wait_until(support::WAIT, || audit_lines(&proxy).len() == 1),
        "a new file after rotation"
    );
    assert_eq!(audit_lines(&proxy)[0]["name"], "denied.test");
    let rotated = std::fs::read_to_string(dir.join("audit.log.1")).unwrap();
    assert_eq!(rotated.lines().count(), 1);
}

/// The value of one sample line in a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l.as_bytes().get(series.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn scrape(topo: &Topology, path: &str) -> (bool, String) {
    let out = Curl::new(&format!("http://127.0.0.1:9901{path}"))
        .run(&topo.gateway)
        .unwrap();
    (out.success(), out.stdout)
}

#[test]
fn metrics_count_what_was_sent_and_health_endpoints_answer() {
    if !support::require_root() {
        return;
    }
    let cfg = config("").replace("[listen]\n", "[listen]\nadmin = \"127.0.0.1:9901\"\n");
    let TlsSetup {
        topo,
        ca,
        proxy,
        _server,
    } = tls_setup(&cfg);
    for _ in 0..3 {
        assert!(curl_ok(&topo, &ca, "allowed.test"));
    }
    for _ in 0..2 {
        assert!(!curl_ok(&topo, &ca, "denied.test"));
    }
    let dest = Topology::server_addr(false, 443);
    topo.client.enter(move || {
        let mut c = TcpStream::connect_timeout(&dest, Duration::from_secs(3)).unwrap();
        c.write_all(b"SSH-2.0-x\r\n").unwrap();
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    });
    proxy
        .dir()
        .write("policies/np_1.json", "{ not json")
        .unwrap();
    assert!(proxy.wait_for_log("reload refused", support::WAIT));
    let base = "egress_proxy_connections_total{listener=\"transparent\",protocol=";
    let expect = [
        (
            format!("{base}\"tls\",reason=\"hostname\",verdict=\"allow\"}}"),
            3.0,
        ),
        (
            format!("{base}\"tls\",reason=\"no_match\",verdict=\"deny\"}}"),
            2.0,
        ),
        (
            format!("{base}\"unknown\",reason=\"no_match\",verdict=\"deny\"}}"),
            1.0,
        ),
        (
            "egress_proxy_config_reloads_total{result=\"error\"}".to_owned(),
            1.0,
        ),
        ("egress_proxy_policies_loaded".to_owned(), 1.0),
        ("egress_proxy_devboxes_loaded".to_owned(), 1.0),
        (
            "egress_proxy_connections_active{listener=\"transparent\"}".to_owned(),
            0.0,
        ),
    ];
    let mut page = String::new();
    let settled = support::wait_until(support::WAIT, || {
        page = scrape(&topo, "/metrics").1;
        expect
            .iter()
            .all(|(series, want)| sample(&page, series) == Some(*want))
    });
    assert!(settled, "{page}");
    assert!(
        sample(
            &page,
            "egress_proxy_relayed_bytes_total{direction=\"down\"}"
        )
        .unwrap()
            > 0.0
    );
    assert!(page.contains("egress_proxy_decision_duration_seconds_bucket"));
    let detections = sample(
        &page,
        "egress_proxy_detection_duration_seconds_count{protocol=\"tls\"}",
    );
    assert_eq!(detections, Some(5.0), "{page}");
    assert!(!page.contains("allowed.test"), "no host names in labels");
    assert!(scrape(&topo, "/healthz").0);
    assert!(scrape(&topo, "/readyz").0);
}
