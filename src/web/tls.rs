//! TLS with rustls: the server configuration `--web.config.file` asks for, and the handshake of
//! each connection, done on the connection's own thread within its read deadline (a client that
//! never finishes a handshake holds only that thread, and only until the deadline).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The server configuration: ring's default algorithms (TLS 1.3 and 1.2 with AES-GCM and
/// ChaCha20-Poly1305, X25519, P-256 and P-384 key exchange, ECDSA, Ed25519 and RSA
/// certificates), the versions from `min_version` to `max_version` as exporter-toolkit serves
/// them (TLS 1.2 to 1.3 by default), and HTTP/1.1 as the only ALPN protocol.
pub fn server_config(settings: &Settings) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if settings.min_version > settings.max_version {
        return Err("min_version is above max_version".into());
    }
    let versions: Vec<_> = [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(version, _)| (settings.min_version..=settings.max_version).contains(version))
    .map(|(_, supported)| supported)
    .collect();
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
