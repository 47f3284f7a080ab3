//! policy-matcher: Runloop-style network policies, validated and compiled
//! into an immutable state that decides a connection without I/O, without
//! allocation, and in O(labels) of the observed name.
//!
//! - [`model`]: the `NetworkPolicy` object (serde) and its validation.
//! - [`pattern`], [`name`]: hostname patterns and name normalisation.
//! - [`compile`]: [`Compiled::compile`] and [`Compiled::decide`].
//! - [`binding`]: devboxes and blueprints, the source-address bindings.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

pub mod binding;
pub mod compile;
pub mod decision;
pub mod error;
pub mod hostset;
mod link;
pub mod model;
pub mod name;
pub mod pattern;
pub mod prefix;

pub use binding::{BindingKind, BlueprintBinding, DevboxBinding};
pub use compile::{Compiled, Inputs, Platform};
pub use decision::{Decision, Query, Reason, Rule, Verdict};
pub use error::{Issue, Issues, Severity};
pub use model::{
    CidrRule, CidrSpec, EgressRules, NetworkPolicy, PortRange, PortSpec, Protocol, Rules,
    ValidPolicy, parse_network,
};
pub use pattern::{Pattern, PatternError};
