//! TLS for clients (feature `tls`): rustls with the `ring` provider, ALPN offering `h2`
//! then `http/1.1`.
//!
//! ```no_run
//! use netflix_zuul::tls::TlsConfig;
//! # fn main() -> netflix_zuul::Result<()> {
//! let tls = TlsConfig::from_pem(&std::fs::read("cert.pem").unwrap(), &std::fs::read("key.pem").unwrap())?;
//! # let _ = tls;
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use std::sync::Arc;
use tokio_rustls::rustls;

/// A server certificate and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &self.server.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// A configuration [`Error`] when the PEM holds no certificate or key, or rustls
    /// refuses them.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self> {
        let certs = rustls_pemfile::certs(&mut &cert_chain[..])
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config("the certificate PEM does not parse").with_cause(e))?;
        if certs.is_empty() {
            return Err(Error::config("the certificate PEM holds no certificate"));
        }
        let key = rustls_pemfile::private_key(&mut &key[..])
            .map_err(|e| Error::config("the key PEM does not parse").with_cause(e))?
            .ok_or_else(|| Error::config("the key PEM holds no private key"))?;
        #[allow(
            deprecated,
            reason = "ring keeps the build free of cmake and NASM; post-quantum key exchange would need aws-lc-rs"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("TLS versions").with_cause(e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::config("rustls refused the certificate or key").with_cause(e))?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            server: Arc::new(server),
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }
}
