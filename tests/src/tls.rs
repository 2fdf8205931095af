//! A throwaway test CA and a server certificate for `127.0.0.1` and `localhost`, made
//! with `rcgen` and written to a temporary directory (deleted on drop).
//!
//! Serve https with [`TestCa::cert_file`] / [`TestCa::key_file`] (e.g.
//! `OidcProvider::start_with_args(&ca.provider_args())`), and trust
//! [`TestCa::ca_file`]: `SSL_CERT_FILE` or `HttpConfig::extra_ca_file` for Tessera,
//! `REQUESTS_CA_BUNDLE` for Python's requests (MSAL Python),
//! `ScriptedBrowser::trusting` for the scripted browser.
//!
//! The certificates follow what strict verifiers (rustls/webpki, Python 3.13's
//! `VERIFY_X509_STRICT`) demand: a CA with critical basic constraints and key usage, a
//! leaf with subject alternative names, key identifiers and `serverAuth`. Keys are
//! ECDSA P-256, valid from a day before their making to two days after.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA and a leaf certificate signed by it, in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes a fresh CA and a leaf certificate for `127.0.0.1` / `localhost`.
    pub fn generate() -> Result<TestCa, String> {
        let fail = |e: rcgen::Error| format!("cannot make the test CA: {e}");
        let now = time::OffsetDateTime::now_utc();
        let (not_before, not_after) =
            (now - time::Duration::days(1), now + time::Duration::days(2));

        let ca_key = KeyPair::generate().map_err(fail)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.distinguished_name
            .push(DnType::CommonName, "Tessera test CA (throwaway)");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (ca.not_before, ca.not_after) = (not_before, not_after);
        let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().map_err(fail)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(fail)?;
        leaf.subject_alt_names
            .insert(0, SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        (leaf.not_before, leaf.not_after) = (not_before, not_after);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(fail)?;

        let dir = tempfile::Builder::new()
            .prefix("tessera-test-ca-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let d = dir.path();
        for (name, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("leaf.pem", leaf_cert.pem()),
            ("leaf.key", leaf_key.serialize_pem()),
        ] {
            std::fs::write(d.join(name), pem).map_err(|e| format!("cannot write {name}: {e}"))?;
        }
        Ok(TestCa { dir })
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate for `127.0.0.1` and `localhost` (PEM).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("leaf.pem")
    }

    /// The server certificate's private key (PEM, unencrypted).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("leaf.key")
    }

    /// `--tls-cert <cert> --tls-key <key>` for `tests/oidc-provider/server.mjs`.
    pub fn provider_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert_file().display().to_string(),
            "--tls-key".into(),
            self.key_file().display().to_string(),
        ]
    }
}

impl TestCa {
    /// A rustls server configuration presenting [`Self::cert_file`] (ring, the provider
    /// the workspace already builds).
    pub fn server_config(
        &self,
    ) -> Result<std::sync::Arc<tokio_rustls::rustls::ServerConfig>, String> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(self.cert_file())
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read the test certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_file(self.key_file())
            .map_err(|e| format!("cannot read the test key: {e}"))?;
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(
            std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the test certificate is refused: {e}"))?;
        Ok(std::sync::Arc::new(config))
    }

    /// An https listener on `127.0.0.1` (a free port) for `axum::serve`.
    pub async fn https_listener(&self) -> Result<TlsListener, String> {
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| e.to_string())?;
        Ok(TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(self.server_config()?),
        })
    }
}

/// A TCP listener whose connections are TLS: `axum::serve(listener, router)` serves https.
/// A connection whose handshake fails (or takes over 10 s) is dropped.
pub struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
