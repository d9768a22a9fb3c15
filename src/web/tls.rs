//! TLS with rustls: the server configuration `--web.config.file` asks for, and the handshake of
//! each connection, done on the connection's own thread within its read deadline (a client that
//! never finishes a handshake holds only that thread, and only until the deadline).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use crate::web::http1::{close_after_answer, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Which client certificates are asked for and checked against `client_ca_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    VerifyIfGiven,
    Require,
}

/// The TLS part of the web configuration, with paths resolved.
pub struct Settings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// ring's algorithms, less those no current client needs: TLS 1.3 with AES-GCM (every Go,
/// OpenSSL 1.1.1+ and browser client offers it, and CPUs have instructions for it), X25519 or
/// P-256 key exchange, and P-256, Ed25519 or RSA client certificates. Built from the parts
/// rather than by trimming ring's default provider, because anything that provider names is
/// linked into the binary, which must stay within 2 MiB: ChaCha20, P-384 and TLS 1.2 together
/// would add about 130 KB to it.
fn crypto_provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    use rustls::SignatureScheme as Scheme;
    use webpki::ring as algorithm;
    static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
        all: &[
            algorithm::ECDSA_P256_SHA256,
            algorithm::ED25519,
            algorithm::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            algorithm::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            algorithm::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            algorithm::RSA_PKCS1_2048_8192_SHA256,
            algorithm::RSA_PKCS1_2048_8192_SHA384,
            algorithm::RSA_PKCS1_2048_8192_SHA512,
        ],
        mapping: &[
            (
                Scheme::ECDSA_NISTP256_SHA256,
                &[algorithm::ECDSA_P256_SHA256],
            ),
            (Scheme::ED25519, &[algorithm::ED25519]),
            (
                Scheme::RSA_PSS_SHA512,
                &[algorithm::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                Scheme::RSA_PSS_SHA384,
                &[algorithm::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                Scheme::RSA_PSS_SHA256,
                &[algorithm::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                Scheme::RSA_PKCS1_SHA512,
                &[algorithm::RSA_PKCS1_2048_8192_SHA512],
            ),
            (
                Scheme::RSA_PKCS1_SHA384,
                &[algorithm::RSA_PKCS1_2048_8192_SHA384],
            ),
            (
                Scheme::RSA_PKCS1_SHA256,
                &[algorithm::RSA_PKCS1_2048_8192_SHA256],
            ),
        ],
    };
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &SystemRandom,
        key_provider: &KeyLoader,
    }
}

/// The operating system's randomness, through ring.
#[derive(Debug)]
struct SystemRandom;

impl rustls::crypto::SecureRandom for SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

/// Loads the server's key (RSA, ECDSA or Ed25519) with ring.
#[derive(Debug)]
struct KeyLoader;

impl rustls::crypto::KeyProvider for KeyLoader {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_supported_type(&key)
    }
}

pub fn server_config(settings: &Settings) -> Result<ServerConfig, String> {
    let provider = Arc::new(crypto_provider());
    if settings.min_version > settings.max_version {
        return Err("min_version is above max_version".into());
    }
    if settings.max_version < TlsVersion::Tls13 {
        return Err("max_version TLS12 is not supported; only TLS 1.3 is served".into());
    }
    let versions = [&rustls::version::TLS13];
    let certificates = read_certificates(&settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| format!("{}: {e}", settings.key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match (&settings.client_ca_file, settings.client_auth) {
        (Some(ca_file), ClientAuth::VerifyIfGiven | ClientAuth::Require) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca_file)? {
                roots
                    .add(certificate)
                    .map_err(|e| format!("{}: {e}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if settings.client_auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates, key)
        .map_err(|e| format!("{}: {e}", settings.cert_file.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certificates(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certificates)
}

/// A TLS connection once its handshake is done.
pub struct TlsStream(StreamOwned<ServerConnection, TcpStream>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    /// A streamed chunk's size line, bytes and CRLF go into one TLS record this way.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for TlsStream {
    fn socket(&self) -> &TcpStream {
        &self.0.sock
    }
}

/// Why a TLS connection could not start.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client spoke plain HTTP; it has been told so, as Go's servers tell it.
    PlainHttp,
    /// The handshake failed (bad or missing client certificate, no common version, a broken
    /// message) or did not finish before the deadline.
    Failed(String),
}

/// The answer Go's TLS servers give a plain-HTTP request, which curl and browsers show.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Runs the server side of the handshake on `socket` before `deadline`.
pub fn accept(
    config: &Arc<ServerConfig>,
    mut socket: TcpStream,
    deadline: Instant,
) -> Result<TlsStream, HandshakeError> {
    let failed = |e: &dyn std::fmt::Display| HandshakeError::Failed(e.to_string());
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| HandshakeError::Failed("handshake not finished in time".into()))
    };
    socket
        .set_read_timeout(Some(left()?))
        .map_err(|e| failed(&e))?;
    let mut first = [0u8; 1];
    if socket.peek(&mut first).map_err(|e| failed(&e))? == 1 && first[0].is_ascii_uppercase() {
        socket
            .set_write_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| failed(&e))?;
        let _ = socket.write_all(PLAIN_HTTP_ANSWER);
        close_after_answer(&socket);
        return Err(HandshakeError::PlainHttp);
    }
    let mut connection = ServerConnection::new(Arc::clone(config)).map_err(|e| failed(&e))?;
    while connection.is_handshaking() {
        let left = left()?;
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| failed(&e))?;
        socket
            .set_write_timeout(Some(left))
            .map_err(|e| failed(&e))?;
        connection
            .complete_io(&mut socket)
            .map_err(|e| failed(&e))?;
    }
    Ok(TlsStream(StreamOwned::new(connection, socket)))
}
