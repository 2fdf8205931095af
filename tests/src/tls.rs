//! A throwaway test CA and a server certificate for `127.0.0.1` and `localhost`, made
//! with the `openssl` command line tool in a temporary directory (deleted on drop).
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
//! ECDSA P-256 (fast to make), valid for two days from their making.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a leaf certificate signed by it, in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
}

const CA_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = Tessera test CA (throwaway)
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";

const LEAF_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = 127.0.0.1
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!("cannot run openssl (needed to make a test CA; apt-get install openssl): {e}")
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestCa {
    /// Makes a fresh CA and a leaf certificate for `127.0.0.1` / `localhost`.
    pub fn generate() -> Result<TestCa, String> {
        let dir = tempfile::Builder::new()
            .prefix("tessera-test-ca-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let d = dir.path();
        std::fs::write(d.join("ca.cnf"), CA_CONFIG).map_err(|e| e.to_string())?;
        std::fs::write(d.join("leaf.cnf"), LEAF_CONFIG).map_err(|e| e.to_string())?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca_args = vec!["req", "-x509", "-config", "ca.cnf"];
        ca_args.extend(ec);
        ca_args.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
        openssl(d, &ca_args)?;
        let mut csr_args = vec!["req", "-new", "-config", "leaf.cnf"];
        csr_args.extend(ec);
        csr_args.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
        openssl(d, &csr_args)?;
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "leaf.cnf",
                "-extensions",
                "leaf",
                "-out",
                "leaf.pem",
            ],
        )?;
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
