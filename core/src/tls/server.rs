//! The broker's side of TLS: the modes (`off`, `optional`, `required`), the certificate it
//! serves (PEM files, or a self-signed one generated at start, as Apache's proxy does) and the
//! rustls configuration the listener's handshakes use (`broker::listener`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use super::{ALPN_H2, TlsError, load_certs, provider, read};

/// Whether the client port speaks TLS. In `optional` and `required`, each connection's first
/// byte tells a TLS `ClientHello` (0x16) from plaintext HTTP/2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext only; a TLS client fails its handshake.
    Off,
    /// TLS and plaintext on the same port (the official clients' default is TLS).
    #[default]
    Optional,
    /// TLS only: plaintext connections are closed as soon as their first byte shows it.
    Required,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(TlsMode::Off),
            "optional" => Ok(TlsMode::Optional),
            "required" => Ok(TlsMode::Required),
            other => {
                Err(format!("unknown TLS mode {other:?} (expected off, optional or required)"))
            }
        }
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Off => "off",
            TlsMode::Optional => "optional",
            TlsMode::Required => "required",
        })
    }
}

/// The certificate a broker serves and the rustls configuration around it (TLS 1.2 and 1.3,
/// ALPN `h2`, no client certificates). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    certificate: CertificateDer<'static>,
    self_signed: bool,
}

impl ServerTls {
    /// Serves the certificate chain in the PEM file `cert` (the server's own certificate
    /// first) with the private key in the PEM file `key` (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let chain = load_certs(cert)?;
        let pem = read(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
            path: key.to_owned(),
            reason: match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY) found"
                        .to_owned()
                }
                e => format!("invalid PEM: {e}"),
            },
        })?;
        let leaf = chain[0].clone();
        let config = server_config(chain, key_der).map_err(|source| TlsError::Config {
            context: format!("using {} with the key in {}", cert.display(), key.display()),
            source,
        })?;
        Ok(ServerTls { config, certificate: leaf, self_signed: false })
    }

    /// A new self-signed certificate (ECDSA P-256: a millisecond to generate, where an RSA key
    /// would take far longer) for `names`: DNS names and IP addresses, as the subject
    /// alternative names clients may check.
    pub fn self_signed(names: &[String]) -> Result<ServerTls, TlsError> {
        let generated = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|source| TlsError::Generate { source })?;
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
        let certificate = generated.cert.der().clone();
        let config = server_config(vec![certificate.clone()], key).map_err(|source| {
            TlsError::Config { context: "using the self-signed certificate".to_owned(), source }
        })?;
        Ok(ServerTls { config, certificate, self_signed: true })
    }

    /// The certificate served (the leaf of the chain): a client that trusts it (a self-signed
    /// one is its own CA) can verify the server.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// Whether the certificate was generated at start rather than loaded.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The rustls configuration handshakes run with.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The names a self-signed certificate for a server listening on `listen` carries, as Apache's
/// proxy chooses them: `localhost`, `127.0.0.1`, `::1`, the listen address when it is a
/// specific one, and the host name.
pub fn self_signed_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let ip = listen.ip().to_string();
    if !listen.ip().is_unspecified() && !names.contains(&ip) {
        names.push(ip);
    }
    let uname = rustix::system::uname();
    if let Ok(host) = uname.nodename().to_str()
        && !host.is_empty()
        && host.is_ascii()
        && !names.iter().any(|n| n == host)
    {
        names.push(host.to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [TlsMode::Off, TlsMode::Optional, TlsMode::Required] {
            assert_eq!(m.to_string().parse::<TlsMode>().unwrap(), m);
        }
        assert_eq!("REQUIRED".parse::<TlsMode>().unwrap(), TlsMode::Required);
        let e = "on".parse::<TlsMode>().unwrap_err();
        assert!(e.contains("off, optional or required"), "{e}");
        assert_eq!(TlsMode::default(), TlsMode::Optional);
    }

    #[test]
    fn self_signed_names_cover_loopback_the_listen_ip_and_the_host() {
        let names = self_signed_names("10.1.2.3:8081".parse().unwrap());
        for n in ["localhost", "127.0.0.1", "::1", "10.1.2.3"] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert!(names.len() >= 5, "the host name is missing: {names:?}");
        let names = self_signed_names("0.0.0.0:8081".parse().unwrap());
        assert!(!names.iter().any(|x| x == "0.0.0.0"), "{names:?}");
        let names = self_signed_names("127.0.0.2:8081".parse().unwrap());
        assert!(names.iter().any(|x| x == "127.0.0.2"), "{names:?}");
        let names = self_signed_names("127.0.0.1:8081".parse().unwrap());
        assert_eq!(names.iter().filter(|x| *x == "127.0.0.1").count(), 1, "{names:?}");
    }

    #[test]
    fn files_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = ServerTls::from_pem_files(&missing, &missing).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        // The certificate file given as the key holds no key.
        let e = ServerTls::from_pem_files(&cert, &cert).unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("no PEM private key"), "{e}");
        // The key file given as the certificate holds no certificate.
        let e = ServerTls::from_pem_files(&key, &key).unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("no PEM certificate"), "{e}");
        // A key that is not the certificate's.
        let other = rcgen::KeyPair::generate().unwrap();
        let other_key = dir.path().join("other.pem");
        std::fs::write(&other_key, other.serialize_pem()).unwrap();
        let e = ServerTls::from_pem_files(&cert, &other_key).unwrap_err().to_string();
        assert!(e.contains("other.pem"), "{e}");
        let tls = ServerTls::from_pem_files(&cert, &key).unwrap();
        assert_eq!(tls.certificate(), generated.cert.der());
        assert!(!tls.is_self_signed());
    }

    #[test]
    fn self_signed_is_fast_and_advertises_h2() {
        let t = std::time::Instant::now();
        let tls =
            ServerTls::self_signed(&self_signed_names("127.0.0.1:0".parse().unwrap())).unwrap();
        // ECDSA P-256 takes about a millisecond; RSA would blow the 100 ms start budget.
        assert!(t.elapsed() < std::time::Duration::from_millis(100), "{:?}", t.elapsed());
        assert!(tls.is_self_signed());
        assert_eq!(tls.config().alpn_protocols, vec![b"h2".to_vec()]);
    }
}
