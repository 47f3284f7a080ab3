//! Detection of the protocol and the observed name from a connection's first bytes.
