//! Client certificates as exporter-toolkit's `client_auth_type` and `client_allowed_sans` treat
//! them, for what rustls's own verifier does not cover:
//!
//! - `RequestClientCert` and `RequireAnyClientCert`, Go's modes that ask for a certificate (or
//!   require one) and do not verify it: [`UnverifiedClientCert`]. The client still proves it
//!   holds the certificate's key (the handshake signature is checked), but anyone can make such
//!   a certificate; these modes are weaker than `VerifyClientCertIfGiven` and
//!   `RequireAndVerifyClientCert`, and documented so.
//! - `client_allowed_sans`: a certificate that verifies against `client_ca_file` is still
//!   refused unless one of its subject alternative names is listed: [`AllowedSans`]. DNS names
//!   and IP addresses are compared, as rustls-webpki matches a server's name.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// Accepts any client certificate whose key signs the handshake; offered, and `mandatory` for
/// `RequireAnyClientCert`.
#[derive(Debug)]
pub struct UnverifiedClientCert {
    pub provider: Arc<CryptoProvider>,
    pub mandatory: bool,
}

impl ClientCertVerifier for UnverifiedClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A verifier whose verified certificates must also hold one of `allowed` among their subject
/// alternative names.
#[derive(Debug)]
pub struct AllowedSans {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub allowed: Vec<ServerName<'static>>,
}

/// An entry of `client_allowed_sans` as the name it matches; an error for kinds rustls-webpki
/// cannot match (e-mail addresses, URIs).
pub fn allowed_san(entry: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(entry.to_owned()).map_err(|_| {
        format!(
            "client_allowed_sans: {entry:?} is neither a DNS name nor an IP address, the kinds \
             compared here"
        )
    })
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let certificate = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| Error::General(format!("client certificate: {e}")))?;
        let allowed = self
            .allowed
            .iter()
            .any(|name| certificate.verify_is_valid_for_subject_name(name).is_ok());
        if allowed {
            Ok(verified)
        } else {
            Err(Error::General(
                "client certificate holds none of client_allowed_sans".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_sans_are_dns_names_and_ip_addresses() {
        assert!(allowed_san("prometheus.monitoring.svc").is_ok());
        assert!(allowed_san("10.0.0.1").is_ok());
        assert!(allowed_san("::1").is_ok());
        for entry in ["ops@example.com", "spiffe://cluster/ns/monitoring", ""] {
            let error = allowed_san(entry).unwrap_err();
            assert!(error.contains(entry) && !error.contains('\n'), "{error}");
        }
    }
}
