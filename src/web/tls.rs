//! TLS with rustls: the server configuration `--web.config.file` asks for, and the handshake of
//! each connection, done on the connection's own thread within its read deadline (a client that
//! never finishes a handshake holds only that thread, and only until the deadline).

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use crate::web::client_certs::{allowed_san, AllowedSans, UnverifiedClientCert};
use crate::web::http1::{close_after_answer, Transport};
use crate::web::socket::Stream;
use crate::web::x509::not_after;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Which client certificates are asked for, and whether they are checked against
/// `client_ca_file` (Go's `tls.ClientAuthType`, by exporter-toolkit's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`
    None,
    /// `RequestClientCert`: asked for, not required, not verified.
    Request,
    /// `RequireAnyClientCert`: required, not verified.
    RequireAny,
    /// `VerifyClientCertIfGiven`
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`
    Require,
}

/// The TLS part of the web configuration, with paths resolved.
pub struct Settings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    /// `client_allowed_sans`: a verified client certificate must hold one of them.
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// `cipher_suites` by Go's names: the TLS 1.2 suites offered, in this order.
    pub cipher_suites: Option<Vec<String>>,
    /// `curve_preferences` by Go's names: the key exchange groups, in this order.
    pub curve_preferences: Option<Vec<String>>,
}

/// Go's names of the TLS 1.2 suites rustls has with ring.
const TLS12_SUITES: [(&str, rustls::CipherSuite); 8] = {
    use rustls::CipherSuite as S;
    [
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
};

/// Go's names of the TLS 1.3 suites, which Go's `cipher_suites` cannot choose: accepted and
/// without effect, as in exporter-toolkit.
const TLS13_SUITE_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Go's names of the key exchange groups rustls has with ring.
const GROUPS: [(&str, rustls::NamedGroup); 3] = [
    ("X25519", rustls::NamedGroup::X25519),
    ("CurveP256", rustls::NamedGroup::secp256r1),
    ("CurveP384", rustls::NamedGroup::secp384r1),
];

/// ring's provider with the suites and groups the settings name, in their order; a name rustls
/// lacks (a CBC suite, `CurveP521`) is an error that names it.
fn provider(settings: &Settings) -> Result<rustls::crypto::CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &settings.cipher_suites {
        let mut tls12 = Vec::new();
        for name in names {
            if TLS13_SUITE_NAMES.contains(&name.as_str()) {
                continue;
            }
            let Some((_, id)) = TLS12_SUITES.iter().find(|(go, _)| go == name) else {
                return Err(format!("cipher_suites: {name} is not one rustls has"));
            };
            let suite = provider.cipher_suites.iter().find(|s| s.suite() == *id);
            tls12.extend(suite.copied());
        }
        let tls13 = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied();
        provider.cipher_suites = tls13.chain(tls12).collect();
    }
    if let Some(names) = &settings.curve_preferences {
        let mut groups = Vec::new();
        for name in names {
            let Some((_, id)) = GROUPS.iter().find(|(go, _)| go == name) else {
                return Err(format!("curve_preferences: {name} is not one rustls has"));
            };
            let group = provider.kx_groups.iter().find(|g| g.name() == *id);
            groups.extend(group.copied());
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// The server configuration: ring's algorithms (TLS 1.3 and 1.2 with AES-GCM and
/// ChaCha20-Poly1305, X25519, P-256 and P-384 key exchange, ECDSA, Ed25519 and RSA
/// certificates), narrowed and ordered by `cipher_suites` and `curve_preferences`; the versions
/// from `min_version` to `max_version` as exporter-toolkit serves them (TLS 1.2 to 1.3 by
/// default); client certificates as `client_auth_type` and `client_allowed_sans` ask; and
/// HTTP/1.1 as the only ALPN protocol.
/// Returns with it when its certificates expire ([`Expiries`]).
pub fn server_config(settings: &Settings) -> Result<(ServerConfig, Expiries), String> {
    let provider = Arc::new(provider(settings)?);
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
    let mut expiries: Expiries = certificates
        .first()
        .and_then(|leaf| not_after(leaf))
        .map(|time| ("server", time))
        .into_iter()
        .collect();
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| format!("{}: {e}", settings.key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let verifier: Option<Arc<dyn ClientCertVerifier>> =
        match (&settings.client_ca_file, settings.client_auth) {
            (_, ClientAuth::None) => None,
            (_, ClientAuth::Request | ClientAuth::RequireAny) => {
                Some(Arc::new(UnverifiedClientCert {
                    provider: Arc::clone(&provider),
                    mandatory: settings.client_auth == ClientAuth::RequireAny,
                }))
            }
            (Some(ca_file), ClientAuth::VerifyIfGiven | ClientAuth::Require) => {
                let mut roots = RootCertStore::empty();
                let authorities = read_certificates(ca_file)?;
                let earliest = authorities.iter().filter_map(|ca| not_after(ca)).min();
                expiries.extend(earliest.map(|time| ("client_ca", time)));
                for certificate in authorities {
                    roots
                        .add(certificate)
                        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                );
                let verifier = if settings.client_auth == ClientAuth::VerifyIfGiven {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                Some(verifier.build().map_err(|e| e.to_string())?)
            }
            (None, _) => {
                return Err("client_ca_file is required to verify client certificates".into())
            }
        };
    let verifier = match (verifier, &settings.client_allowed_sans) {
        (Some(inner), Some(entries)) => {
            let allowed = entries
                .iter()
                .map(|e| allowed_san(e))
                .collect::<Result<_, _>>()?;
            Some(Arc::new(AllowedSans { inner, allowed }) as Arc<dyn ClientCertVerifier>)
        }
        (None, Some(_)) => {
            return Err(
                "client_allowed_sans needs a client_auth_type that asks for certificates".into(),
            )
        }
        (verifier, None) => verifier,
    };
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates, key)
        .map_err(|e| format!("{}: {e}", settings.cert_file.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, expiries))
}

/// When the certificates of a TLS configuration expire, in Unix seconds: the served one
/// (`server`) and the earliest of the client CA file's (`client_ca`), for
/// `k8s_exporter_tls_certificate_expiry_timestamp_seconds`.
pub type Expiries = Vec<(&'static str, i64)>;

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
pub struct TlsStream(StreamOwned<ServerConnection, Stream>);

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
    fn socket(&self) -> &Stream {
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
    mut socket: Stream,
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
    // The first byte tells a TLS ClientHello (0x16) from a plain-HTTP request line; it is
    // handed to the TLS connection below, as if it had not been read.
    let mut first = [0u8; 1];
    let read = socket.read(&mut first).map_err(|e| failed(&e))?;
    if read == 1 && first[0].is_ascii_uppercase() {
        socket
            .set_write_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| failed(&e))?;
        let _ = socket.write_all(PLAIN_HTTP_ANSWER);
        close_after_answer(&socket);
        return Err(HandshakeError::PlainHttp);
    }
    let mut connection = ServerConnection::new(Arc::clone(config)).map_err(|e| failed(&e))?;
    connection
        .read_tls(&mut &first[..read])
        .map_err(|e| failed(&e))?;
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
