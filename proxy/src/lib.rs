//! egress-proxy: enforces per-devbox network policies on outbound TCP.
//!
//! One pipeline serves every listener: [`detect`] reads the first bytes of a
//! connection, `decide` asks the compiled policy (the `policy-matcher` crate),
//! and `act` relays or denies.

pub mod detect;
