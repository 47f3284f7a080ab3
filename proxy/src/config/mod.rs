//! Configuration: TOML file → [`raw::RawConfig`] → validated [`Config`] and
//! the compiled policy state.
//!
//! Loading never half-succeeds: it returns every issue found (file, key path,
//! value, reason) or a complete [`Loaded`]. Relative paths resolve against the
//! config file's directory.

mod load;
mod policy_files;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use load::{EMBEDDED_DEFAULT, Loaded, load_file, load_str};
pub use policy_matcher::{Issue, Severity};

/// Enforce the policy, or only report what would be denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Denials are enforced.
    Enforce,
    /// Denials are logged and counted as `would_deny`, and allowed.
    Report,
}

/// What to do with open connections that a policy change would now deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPolicyChange {
    /// Close them.
    Close,
    /// Keep them.
    Keep,
}

/// How an allowed connection's upstream address is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dial {
    /// The intercepted connection's original destination.
    OriginalDst,
    /// The observed name's own addresses.
    Resolve,
}

/// How a denied TLS connection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsDeny {
    /// A fatal `access_denied` alert, then close.
    Alert,
    /// A TCP reset.
    Reset,
}

/// What to do with a ClientHello carrying Encrypted Client Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchAction {
    /// Match on the outer SNI.
    Allow,
    /// Deny it.
    Deny,
}

/// Listener addresses; an empty list (or no admin) opens nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listen {
    /// iptables REDIRECT targets (SO_ORIGINAL_DST).
    pub transparent: Vec<SocketAddr>,
    /// iptables TPROXY targets (IP_TRANSPARENT).
    pub tproxy: Vec<SocketAddr>,
    /// Explicit HTTP proxy (CONNECT and absolute-form).
    pub connect: Vec<SocketAddr>,
    /// Metrics, health and the /v1 API.
    pub admin: Option<SocketAddr>,
}

/// Upstream dialling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// How the upstream address is chosen.
    pub dial: Dial,
    /// Deny name-allowed upstreams in private, loopback, link-local and
    /// metadata ranges unless a CIDR rule allows them.
    pub deny_private: bool,
    /// SO_MARK for the proxy's own upstream sockets.
    pub mark: Option<u32>,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
}

/// First-bytes detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detect {
    /// How long a client may take to send a complete hello or request head.
    pub timeout: Duration,
    /// ECH handling.
    pub ech: EchAction,
}

/// Resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, all listeners.
    pub max_connections: usize,
    /// Connections still in detection at once.
    pub max_detecting: usize,
    /// A relay with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// How long SIGTERM waits for open connections.
    pub drain_timeout: Duration,
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// A file, or standard output when `None`.
    pub path: Option<PathBuf>,
    /// Bounded queue length; overflow is counted, never waited for.
    pub queue: usize,
}

/// One API bearer token (by hash) and its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The account the token acts for.
    pub account: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
}

/// The policy API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The embedded database's directory.
    pub state_dir: PathBuf,
    /// Policies one account may hold.
    pub max_policies_per_account: usize,
    /// Accepted tokens.
    pub tokens: Vec<ApiToken>,
}

/// The validated settings (everything but the policy state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The config file, when loaded from one.
    pub file: Option<PathBuf>,
    /// Enforce or report.
    pub mode: Mode,
    /// Open connections that a policy change would deny.
    pub on_policy_change: OnPolicyChange,
    /// Policy files matched by `policy_files` (resolved paths).
    pub policy_files: Vec<PathBuf>,
    /// Directories the `policy_files` patterns look in (watched for reloads).
    pub policy_dirs: Vec<PathBuf>,
    /// Listeners.
    pub listen: Listen,
    /// Upstream dialling.
    pub upstream: Upstream,
    /// Detection.
    pub detect: Detect,
    /// Deny action for TLS.
    pub deny_tls: TlsDeny,
    /// Limits.
    pub limits: Limits,
    /// Audit log.
    pub audit: Audit,
    /// Policy API.
    pub api: Api,
}
