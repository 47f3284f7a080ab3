//! End-to-end tests: one test binary, real sockets, real TLS, real iptables, in
//! network namespaces built per test by `support`. Every test starts with
//! `if !support::require_root() { return; }`; under `CI=true` that fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(
    dead_code,
    unused_imports,
    reason = "the support API serves every test module; not each uses every helper"
)]
mod support;

mod api;
mod connect;
mod ops;
mod smoke;
mod transparent;
