//! The act step: relay an allowed connection, or deny it.

pub mod deny;
pub mod relay;
