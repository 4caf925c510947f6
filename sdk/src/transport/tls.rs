//! rustls configuration: mutual TLS 1.3 between self-signed certificates, where the verifiers
//! check the handshake signatures properly (with ring) and derive the peer's node id from its
//! key instead of trusting any authority.
//!
//! The dialer passes the node id it expects as the TLS server name (`n<16 hex>.baton`); the
//! server-certificate verifier refuses a certificate whose key does not hash to that id, so a
//! wrong identity fails the handshake before any application byte is exchanged. A dial without
//! an expectation (bootstrap by address) uses [`ANY_PEER_SERVER_NAME`].

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::identity::{node_id_of_cert, Identity};
use super::TransportError;
use crate::raft::NodeId;

/// TLS server name used when dialing an address without knowing who is there.
pub const ANY_PEER_SERVER_NAME: &str = "any.baton";

/// The TLS server name that makes the dialer insist on `id`.
pub fn server_name_for(id: NodeId) -> String {
    format!("n{id:016x}.baton")
}

fn expected_id(server_name: &ServerName<'_>) -> Option<NodeId> {
    let ServerName::DnsName(name) = server_name else {
        return None;
    };
    let hex = name.as_ref().strip_prefix('n')?.strip_suffix(".baton")?;
    if hex.len() != 16 {
        return None;
    }
    NodeId::from_str_radix(hex, 16).ok()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies peers by key: any well-formed certificate is accepted as a container for a key,
/// the handshake signature must verify under that key, and the id derived from the key must be
/// the one the dialer expected (when it expected one).
#[derive(Debug)]
struct PeerKeyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerKeyVerifier {
    fn new(provider: &CryptoProvider) -> Self {
        PeerKeyVerifier {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

fn peer_id_or_bad_cert(cert: &CertificateDer<'_>) -> Result<NodeId, rustls::Error> {
    node_id_of_cert(cert)
        .map(|(id, _)| id)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

impl ServerCertVerifier for PeerKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = peer_id_or_bad_cert(end_entity)?;
        if let Some(expected) = expected_id(server_name) {
            if expected != actual {
                tracing::warn!(
                    expected = format_args!("{expected:016x}"),
                    actual = format_args!("{actual:016x}"),
                    "refusing peer: its certificate key is not the node id we dialed"
                );
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PeerKeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        peer_id_or_bad_cert(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// rustls client config presenting `identity` and verifying the server by key.
pub fn client_config(
    identity: &Identity,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TransportError> {
    let provider = provider();
    let verifier = Arc::new(PeerKeyVerifier::new(&provider));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![identity.certificate_der().clone()],
            identity.private_key_der(),
        )
        .map_err(TransportError::Tls)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// rustls server config presenting `identity`, requiring a client certificate, and taking
/// the first of `alpns` that the client offers.
pub fn server_config(
    identity: &Identity,
    alpns: Vec<Vec<u8>>,
) -> Result<rustls::ServerConfig, TransportError> {
    let provider = provider();
    let verifier = Arc::new(PeerKeyVerifier::new(&provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![identity.certificate_der().clone()],
            identity.private_key_der(),
        )
        .map_err(TransportError::Tls)?;
    config.alpn_protocols = alpns;
    Ok(config)
}

/// The ALPN a connection's TLS handshake settled on.
pub fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    let data = conn.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    data.protocol
}

/// The node id of the peer on an established connection, from the certificate it proved.
pub fn peer_node_id(conn: &quinn::Connection) -> Option<(NodeId, [u8; 32])> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = certs.first()?;
    node_id_of_cert(leaf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_id_round_trips_through_the_server_name() {
        let id: NodeId = 0x0123_4567_89ab_cdef;
        let name = ServerName::try_from(server_name_for(id)).unwrap();
        assert_eq!(expected_id(&name), Some(id));
        let any = ServerName::try_from(ANY_PEER_SERVER_NAME).unwrap();
        assert_eq!(expected_id(&any), None);
    }
}
