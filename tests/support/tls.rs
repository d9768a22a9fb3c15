//! TLS for the tests: a CA of their own with server and client certificates, and a client that
//! asks over TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{parse_response, Exporter, HttpResponse};

/// A CA, a server certificate for 127.0.0.1 (ECDSA P-384) and a client certificate (P-256), as
/// PEM files in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The CA, to issue more certificates (a rotated server certificate).
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // rcgen names every certificate alike by default; OpenSSL then takes a leaf whose issuer
        // is its own name for self-signed.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "k8s_exporter test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let (server_cert, server_key) = leaf(
            &issuer,
            vec!["127.0.0.1".into(), "localhost".into()],
            &rcgen::PKCS_ECDSA_P384_SHA384,
        );
        let (client_cert, client_key) = leaf(
            &issuer,
            vec!["prometheus-client".into()],
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Pki {
            ca: write("ca.crt", &ca_cert.pem()),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            issuer,
        }
    }

    /// A new server certificate and key from the same CA, written over the old ones, as
    /// cert-manager rotates them.
    /// The new certificate expires at [`ROTATED_NOT_AFTER`].
    pub fn rotate_server_certificate(&self) {
        let (cert, key) = leaf_until(
            &self.issuer,
            vec!["127.0.0.1".into(), "localhost".into()],
            &rcgen::PKCS_ECDSA_P256_SHA256,
            Some(ROTATED_NOT_AFTER),
        );
        std::fs::write(&self.server_key, key).unwrap();
        std::fs::write(&self.server_cert, cert).unwrap();
    }

    /// A TLS client trusting our CA, presenting the client certificate if `with_cert`.
    pub fn client(&self, with_cert: bool) -> Arc<rustls::ClientConfig> {
        let identity = (&*self.client_cert, &*self.client_key);
        self.client_presenting(with_cert.then_some(identity))
    }

    /// A client certificate and key for `name` (its one DNS subject alternative name), issued
    /// by our CA or, if not `from_ca`, by itself; written in `dir`.
    pub fn client_identity(&self, dir: &Path, name: &str, from_ca: bool) -> (PathBuf, PathBuf) {
        let (cert, key) = if from_ca {
            leaf(
                &self.issuer,
                vec![name.into()],
                &rcgen::PKCS_ECDSA_P256_SHA256,
            )
        } else {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        (cert_path, key_path)
    }

    /// A TLS client trusting our CA, presenting `identity` (certificate and key files).
    pub fn client_presenting(&self, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

/// A certificate and key for `names`, issued by `issuer`, as PEM.
pub fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: Vec<String>,
    algorithm: &'static rcgen::SignatureAlgorithm,
) -> (String, String) {
    leaf_until(issuer, names, algorithm, None)
}

/// When a certificate from rcgen expires unless told otherwise: 4096-01-01, in Unix seconds.
pub const DEFAULT_NOT_AFTER: f64 = 67_090_118_400.0;
/// When a rotated server certificate expires: 2031-05-17.
pub const ROTATED_NOT_AFTER: (i32, u8, u8) = (2031, 5, 17);
pub const ROTATED_NOT_AFTER_SECONDS: f64 = 1_936_742_400.0;

/// [`leaf`], expiring on `not_after` (year, month, day) when given.
fn leaf_until(
    issuer: &Issuer<'static, KeyPair>,
    names: Vec<String>,
    algorithm: &'static rcgen::SignatureAlgorithm,
    not_after: Option<(i32, u8, u8)>,
) -> (String, String) {
    let key = KeyPair::generate_for(algorithm).unwrap();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    if let Some((year, month, day)) = not_after {
        params.not_after = rcgen::date_time_ymd(year, month, day);
    }
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// One request over TLS with `Connection: close`; `Err` if the handshake or the read fails.
pub fn https_get(
    exporter: &Exporter,
    client: &Arc<rustls::ClientConfig>,
    path: &str,
    authorization: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let socket = TcpStream::connect(&exporter.address)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server closes without close_notify after `Connection: close`; what came is whole.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(parse_response(&raw))
}
