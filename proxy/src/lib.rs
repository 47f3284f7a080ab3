//! egress-proxy: enforces per-devbox network policies on outbound TCP.
//!
//! One pipeline serves every listener: [`detect`] reads the first bytes of a
//! connection, `decide` asks the compiled policy (the `policy-matcher` crate),
//! and `act` relays or denies. [`config`] turns files into a validated
//! [`config::Config`] and a compiled state; [`cli`] serves `validate` and
//! `check`.

pub mod cli;
pub mod config;
pub mod detect;
pub mod run;
