//! TLS on the RocketMQ gRPC port: the client side (a tonic connector over rustls, used by
//! `orbitmq admin`, `orbitmq bench` and the client SDK), PEM loading, and, with the `broker`
//! feature, the server side ([`server`]: certificates, self-signed generation, modes).
//!
//! The official RocketMQ 5 clients connect over TLS by default and accept any server
//! certificate (Java's `InsecureTrustManagerFactory`, Go's `InsecureSkipVerify`), so a broker
//! serves TLS with a self-signed certificate unless told otherwise. [`ClientTls::AcceptAny`]
//! does the same here: the connection is encrypted and the handshake signatures are checked,
//! but nobody vouches for the server. [`ClientTls::Ca`] verifies the server against a CA.
//!
//! rustls runs over the `ring` provider, named explicitly, so a crate elsewhere in the build
//! that enables `aws-lc-rs` changes nothing here.

#[cfg(feature = "broker")]
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

/// The ALPN protocol gRPC runs on. grpc-java (netty) refuses a TLS connection that did not
/// agree on it.
pub const ALPN_H2: &[u8] = b"h2";

/// A TLS setup or certificate error.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM section of the expected kind, or a broken one.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (a key that does not match the certificate, an
    /// unsupported key type).
    #[error("{context}: {source}")]
    Config {
        /// What was being set up.
        context: String,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The self-signed certificate could not be generated.
    #[cfg(feature = "broker")]
    #[error("generating a self-signed certificate: {source}")]
    Generate {
        /// rcgen's reason.
        source: rcgen::Error,
    },
}

/// The crypto provider everything here uses: `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

/// Every certificate (`-----BEGIN CERTIFICATE-----`) in the PEM file `path`, in order (a
/// server's own certificate first, then its chain). None at all is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
            TlsError::Pem { path: path.to_owned(), reason: format!("invalid PEM: {e}") }
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) found".to_owned(),
        });
    }
    Ok(certs)
}

/// How a client connects.
#[derive(Debug, Clone)]
pub enum ClientTls {
    /// Plaintext HTTP/2.
    Off,
    /// TLS, accepting any server certificate (the official clients' default): encrypted, but
    /// open to an active man in the middle.
    AcceptAny,
    /// TLS, verifying the server against the CA certificates (or the self-signed server
    /// certificate itself) in this PEM file.
    Ca(PathBuf),
    /// TLS, verifying the server against these CA certificates (or the server's own
    /// self-signed certificate).
    Trust(Vec<CertificateDer<'static>>),
}

impl ClientTls {
    /// From a CLI's `--tls` and `--tls-ca`: the CA implies TLS.
    pub fn from_flags(tls: bool, ca: Option<PathBuf>) -> ClientTls {
        match ca {
            Some(ca) => ClientTls::Ca(ca),
            None if tls => ClientTls::AcceptAny,
            None => ClientTls::Off,
        }
    }

    /// The rustls configuration (ALPN `h2`), or `None` for plaintext.
    pub fn client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Config {
                context: "choosing TLS protocol versions".to_owned(),
                source,
            })?;
        let mut config = match self {
            ClientTls::Off => return Ok(None),
            ClientTls::AcceptAny => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
                .with_no_client_auth(),
            ClientTls::Ca(path) => {
                let roots = roots(load_certs(path)?, &format!("in {}", path.display()))?;
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            ClientTls::Trust(certs) => {
                builder.with_root_certificates(roots(certs.clone(), "given")?).with_no_client_auth()
            }
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// The URL scheme for an endpoint: `https` with TLS, `http` without.
    pub fn scheme(&self) -> &'static str {
        match self {
            ClientTls::Off => "http",
            _ => "https",
        }
    }
}

fn roots(
    certs: Vec<CertificateDer<'static>>,
    whence: &str,
) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| TlsError::Config {
            context: format!("using the certificate {whence} as a CA"),
            source,
        })?;
    }
    Ok(roots)
}

/// Connects `endpoint` over TLS with `config` (from [`ClientTls::client_config`]). The
/// certificate's name is checked against the endpoint's host (a DNS name or an IP address),
/// which is also sent as SNI when it is a name.
///
/// tonic's own `ClientTlsConfig` cannot accept any certificate, so the connection is made
/// here: TCP (`TCP_NODELAY`), then the rustls handshake, handed to tonic as its IO.
pub async fn connect(
    endpoint: &Endpoint,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    endpoint.connect_with_connector(connector(config)).await
}

/// Like [`connect`], connecting on first use instead of now.
pub fn connect_lazy(endpoint: &Endpoint, config: Arc<rustls::ClientConfig>) -> Channel {
    endpoint.connect_with_connector_lazy(connector(config))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TLS connection to the broker, as tonic's client reads and writes it.
pub type ClientIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// The tower service tonic calls for each new connection: TCP, then the rustls handshake.
fn connector(
    config: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    tonic::codegen::http::Uri,
    Response = ClientIo,
    Error = BoxError,
    Future = impl Future<Output = Result<ClientIo, BoxError>> + Send,
> + Send
+ 'static {
    let tls = tokio_rustls::TlsConnector::from(config);
    tower::service_fn(move |uri: tonic::codegen::http::Uri| {
        let tls = tls.clone();
        async move {
            let host = uri.host().ok_or_else(|| format!("no host in {uri}"))?;
            // An IPv6 host comes bracketed (`[::1]`).
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            Ok::<_, BoxError>(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// Accepts any server certificate, as the official clients do by default, but still checks
/// that the server holds the key of the certificate it showed (the handshake signatures), so
/// the session keys are really shared with whoever owns that certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
