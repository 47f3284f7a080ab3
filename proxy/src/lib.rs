//! egress-proxy: enforces per-devbox network policies on outbound TCP.
//!
//! One pipeline serves every listener ([`pipeline`]): [`detect`] reads the
//! first bytes of a connection, [`decide`] asks the compiled policy (the
//! `policy-matcher` crate), and [`act`] relays or denies. [`config`] turns
//! files into a validated [`config::Config`] and a compiled state; [`cli`]
//! serves `validate` and `check`, [`run`] the proxy itself.

pub mod act;
pub mod admin;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod decide;
pub mod detect;
pub mod first_bytes;
pub mod listen;
pub mod metrics;
pub mod pipeline;
pub mod recheck;
pub mod reload;
pub mod run;
pub mod shared;
pub mod store;
pub mod suggest;
pub mod sys;
pub mod target;
pub mod track;
pub mod upstream;
