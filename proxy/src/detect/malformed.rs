//! [`Malformed`]: why a connection's first bytes are refused.
//!
//! Every variant is a deny. [`Malformed::as_str`] is a stable snake_case label
//! for metrics and the audit log; it never carries client bytes.

use super::name::NameError;

/// First bytes that are refused because their meaning is ambiguous or broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The hello or head did not complete within [`super::MAX_DETECT_BYTES`],
    /// or a handshake message is longer than [`super::MAX_HELLO_LEN`].
    #[error("first bytes exceed the detection cap")]
    TooLarge,

    /// A record before the end of the hello is not a handshake record.
    #[error("tls record before the end of the hello is not a handshake record")]
    TlsRecordType,
    /// A record version is not 0x0301..=0x0304.
    #[error("tls record version is not 3.1 to 3.4")]
    TlsRecordVersion,
    /// A record is empty or longer than 2^14 bytes.
    #[error("tls record length is 0 or over 16384")]
    TlsRecordLength,
    /// The first handshake message is not a ClientHello.
    #[error("tls handshake message is not a client hello")]
    TlsNotClientHello,
    /// Version, random, session id, cipher suites or compression methods are malformed.
    #[error("tls client hello fields are malformed")]
    TlsHelloFields,
    /// The extensions block length disagrees with the hello, or an extension overruns it.
    #[error("tls client hello extensions are malformed")]
    TlsExtensions,
    /// Bytes after the extensions, or handshake bytes after the ClientHello.
    #[error("tls client hello has trailing bytes")]
    TlsTrailingData,
    /// More than one server_name extension.
    #[error("tls client hello has more than one server_name extension")]
    TlsDuplicateServerName,
    /// More than one encrypted_client_hello extension.
    #[error("tls client hello has more than one encrypted_client_hello extension")]
    TlsDuplicateEch,
    /// The server_name list is empty or its lengths are inconsistent.
    #[error("tls server_name list is malformed")]
    TlsServerNameList,
    /// The server_name list holds more than one name.
    #[error("tls server_name list holds more than one name")]
    TlsMultipleServerNames,
    /// The only server_name entry is not of type host_name.
    #[error("tls server_name entry is not a host_name")]
    TlsServerNameType,
    /// The host_name is empty.
    #[error("tls server name is empty")]
    TlsServerNameEmpty,
    /// The host_name is longer than 253 bytes.
    #[error("tls server name is longer than 253 bytes")]
    TlsServerNameTooLong,
    /// The host_name holds a byte outside `[A-Za-z0-9._-]` (NUL, space, non-ASCII, ...).
    #[error("tls server name holds a byte outside [A-Za-z0-9._-]")]
    TlsServerNameInvalidByte,

    /// httparse refused the head (this covers obs-fold and NUL in a header).
    #[error("http head is malformed: {0}")]
    HttpSyntax(httparse::Error),
    /// A line of the head ends with LF alone.
    #[error("http head has a bare line feed")]
    HttpBareLineFeed,
    /// The request target is not a form this method may use.
    #[error("http request target form is not allowed")]
    HttpTarget,
    /// The authority of an absolute-form or CONNECT target is malformed.
    #[error("http request target authority is malformed")]
    HttpTargetAuthority,
    /// The target's authority and Host name different hosts or ports.
    #[error("http request target authority differs from host")]
    AuthorityHostMismatch,
    /// More than one Host header.
    #[error("http head has more than one host header")]
    HttpDuplicateHost,
    /// The Host value is empty.
    #[error("http host is empty")]
    HttpHostEmpty,
    /// The Host value carries userinfo (`@`).
    #[error("http host carries userinfo")]
    HttpHostUserinfo,
    /// The Host value holds a space or a tab.
    #[error("http host holds whitespace")]
    HttpHostWhitespace,
    /// The Host name is longer than 253 bytes.
    #[error("http host is longer than 253 bytes")]
    HttpHostTooLong,
    /// The Host value holds a byte outside a name, an IPv4 or a bracketed IPv6 literal.
    #[error("http host holds a byte outside [A-Za-z0-9._-]")]
    HttpHostInvalidByte,
    /// The Host port is empty, not a number, 0, or over 65535.
    #[error("http host port is invalid")]
    HttpHostPort,
}

// === impl Malformed ===

impl Malformed {
    /// Stable snake_case label for metrics and the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::TlsRecordType => "tls_record_type",
            Self::TlsRecordVersion => "tls_record_version",
            Self::TlsRecordLength => "tls_record_length",
            Self::TlsNotClientHello => "tls_not_client_hello",
            Self::TlsHelloFields => "tls_hello_fields",
            Self::TlsExtensions => "tls_extensions",
            Self::TlsTrailingData => "tls_trailing_data",
            Self::TlsDuplicateServerName => "tls_duplicate_server_name",
            Self::TlsDuplicateEch => "tls_duplicate_ech",
            Self::TlsServerNameList => "tls_server_name_list",
            Self::TlsMultipleServerNames => "tls_multiple_server_names",
            Self::TlsServerNameType => "tls_server_name_type",
            Self::TlsServerNameEmpty => "tls_server_name_empty",
            Self::TlsServerNameTooLong => "tls_server_name_too_long",
            Self::TlsServerNameInvalidByte => "tls_server_name_invalid_byte",
            Self::HttpSyntax(_) => "http_syntax",
            Self::HttpBareLineFeed => "http_bare_line_feed",
            Self::HttpTarget => "http_target",
            Self::HttpTargetAuthority => "http_target_authority",
            Self::AuthorityHostMismatch => "http_authority_host_mismatch",
            Self::HttpDuplicateHost => "http_duplicate_host",
            Self::HttpHostEmpty => "http_host_empty",
            Self::HttpHostUserinfo => "http_host_userinfo",
            Self::HttpHostWhitespace => "http_host_whitespace",
            Self::HttpHostTooLong => "http_host_too_long",
            Self::HttpHostInvalidByte => "http_host_invalid_byte",
            Self::HttpHostPort => "http_host_port",
        }
    }

    pub(crate) fn from_sni(e: NameError) -> Self {
        match e {
            NameError::Empty => Self::TlsServerNameEmpty,
            NameError::TooLong => Self::TlsServerNameTooLong,
            NameError::InvalidByte => Self::TlsServerNameInvalidByte,
        }
    }

    pub(crate) fn from_host(e: NameError) -> Self {
        match e {
            NameError::Empty => Self::HttpHostEmpty,
            NameError::TooLong => Self::HttpHostTooLong,
            NameError::InvalidByte => Self::HttpHostInvalidByte,
        }
    }
}
