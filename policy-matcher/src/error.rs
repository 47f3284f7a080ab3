//! Validation issues: where a policy or binding input is wrong, and why.
//!
//! Every issue names its file (when known), its path inside the document
//! (`[2].egress.allowed_hostnames[3]`), the offending value and the reason, so an
//! operator can fix the input without guessing. Validation collects every issue
//! instead of stopping at the first.

use std::fmt;

/// How bad an issue is: errors refuse the input, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The input is refused; the last good state stays in force.
    Error,
    /// The input is accepted; the issue is reported (e.g. a dangling policy id,
    /// which denies at run time).
    Warning,
}

/// One problem found while validating or compiling inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file the value came from (empty when it came from elsewhere).
    pub file: String,
    /// The path of the value inside that file, e.g. `[0].egress.allowed_hostnames[3]`.
    pub path: String,
    /// The offending value, as given.
    pub value: String,
    /// Why it is wrong, in lower case, without a final period.
    pub reason: String,
    /// Whether the issue refuses the input.
    pub severity: Severity,
}

/// Every issue found in one input; at least one is an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in policy input", self.errors().count())]
pub struct Issues(pub Vec<Issue>);

// === impl Issue ===

impl Issue {
    /// An error at `path` about `value`.
    pub fn error(
        path: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            file: String::new(),
            path: path.into(),
            value: value.into(),
            reason: reason.into(),
            severity: Severity::Error,
        }
    }

    /// A warning at `path` about `value`.
    pub fn warning(
        path: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, value, reason)
        }
    }

    /// The same issue, attributed to `file`.
    #[must_use]
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_owned();
        self
    }

    /// Whether this issue refuses the input.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: ")?;
        if !self.file.is_empty() {
            write!(f, "{}: ", self.file)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        if !self.value.is_empty() {
            write!(f, "{:?}: ", self.value)?;
        }
        f.write_str(&self.reason)
    }
}

// === impl Issues ===

impl Issues {
    /// The issues that refuse the input.
    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.0.iter().filter(|i| i.is_error())
    }
}
