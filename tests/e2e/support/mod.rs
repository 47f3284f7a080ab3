//! Shared machinery for the end-to-end tests: everything a test needs to build a
//! private network, run real clients and servers in it, and start the proxy.
//!
//! - [`netns`]: one network namespace, running processes and in-process Rust in it.
//! - [`topology`]: the three-namespace network (client devbox, gateway, server).
//! - [`firewall`]: iptables REDIRECT / TPROXY rules on the gateway.
//! - [`tls`]: a throwaway CA ([`TestCa`]) and rustls configs.
//! - [`servers`]: TLS, HTTP, echo and banner servers that count connections.
//! - [`sockets`]: hand-made listeners and clients (REDIRECT, TPROXY, raw bytes).
//! - [`clients`]: curl, `openssl s_client` and a rustls client.
//! - [`proxy`]: the `egress-proxy` binary as a child process ([`ProxyProc`]).
//!
//! This module itself holds the gate every test starts with ([`require_root`]) and
//! the only way tests wait ([`wait_until`]): a condition polled against a deadline.

use std::time::{Duration, Instant};

pub(crate) mod clients;
pub(crate) mod firewall;
pub(crate) mod hosts;
pub(crate) mod netns;
pub(crate) mod proxy;
pub(crate) mod servers;
pub(crate) mod sockets;
pub(crate) mod tls;
pub(crate) mod topology;

pub(crate) use clients::{Curl, SClient, rustls_get};
pub(crate) use hosts::HostsFile;
pub(crate) use netns::{CmdOutput, Netns, NsTask};
pub(crate) use proxy::{ProxyDir, ProxyProc};
pub(crate) use servers::{BANNER, TestServer};
pub(crate) use tls::TestCa;
pub(crate) use topology::{Topology, addr};

/// The bound on any single wait in the support code: long enough for a loaded
/// 2-core CI machine, short enough that a broken test fails quickly.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Whether this test can build network namespaces.
///
/// Call it first: `if !support::require_root() { return; }`. When the process is
/// not root or `ip netns` does not work, a test run under `CI=true` panics (a test
/// that needs namespaces must fail in CI, never skip); elsewhere it prints a note
/// and returns `false` so the test returns early.
pub(crate) fn require_root() -> bool {
    match topology::netns_usable() {
        Ok(()) => true,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and this e2e test needs root and `ip netns`: {why}")
        }
        Err(why) => {
            eprintln!(
                "e2e test not run here (needs root and `ip netns`; under CI=true it fails instead): {why}"
            );
            false
        }
    }
}

/// Polls `cond` until it returns true or `timeout` passes; returns whether it held.
///
/// Sleeps between polls start at 5 ms and grow to 50 ms, so a fast condition is
/// seen quickly and a slow one does not spin. The poll count is bounded by the
/// timeout.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
