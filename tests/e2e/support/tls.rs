//! A throwaway certificate authority for one test: leaf certificates for any
//! DNS names (wildcards included) and IP addresses, rustls configs for servers
//! and clients, and the CA certificate as a PEM file for curl (`--cacert`) and
//! `openssl s_client` (`-CAfile`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tempfile::NamedTempFile;

/// A CA whose certificate only this test trusts.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    pem_file: NamedTempFile,
}

/// A leaf certificate (chain: leaf, CA) and its private key.
#[derive(Debug)]
pub(crate) struct Leaf {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

// === impl TestCa ===

impl TestCa {
    /// The first flight of a real rustls client for `name` (its ClientHello),
    /// to send as raw bytes.
    pub(crate) fn client_hello(&self, name: &str) -> Vec<u8> {
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn =
            rustls::ClientConnection::new(self.client_config().unwrap(), server_name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// A fresh CA (ECDSA P-256), its PEM written to a temporary file.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "egress-proxy e2e test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let mut pem_file = tempfile::Builder::new()
            .prefix("e2e-ca-")
            .suffix(".pem")
            .tempfile()?;
        pem_file.write_all(cert.pem().as_bytes())?;
        pem_file.flush()?;
        Ok(TestCa {
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
            pem_file,
        })
    }

    /// The CA certificate as a PEM file.
    pub(crate) fn pem_path(&self) -> &Path {
        self.pem_file.path()
    }

    /// The CA certificate.
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A server certificate for `names`: each is an IP address SAN if it parses
    /// as one, else a DNS name SAN (`*.wild.test` is a wildcard).
    pub(crate) fn leaf(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            chain: vec![cert.der().clone(), self.cert.clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        })
    }

    /// A rustls server config presenting a leaf for `names`, no ALPN (HTTP/1.1).
    pub(crate) fn server_config(&self, names: &[&str]) -> anyhow::Result<Arc<ServerConfig>> {
        let leaf = self.leaf(names)?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key)?;
        Ok(Arc::new(config))
    }

    /// A rustls client config that trusts this CA only.
    pub(crate) fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone())?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("pem_path", &self.pem_file.path())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
