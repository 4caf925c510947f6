//! A node's long-lived key pair, its self-signed certificate, and the [`NodeId`] derived from
//! the public key.
//!
//! The certificate is only a container for the public key: nobody signs it but its owner, and
//! nothing in Baton trusts it for more than "the holder of this key". What makes an id
//! unforgeable is that a peer's id is always *computed* from the key it proves possession of
//! during the TLS handshake, never taken from what the peer says.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

use ring::digest;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::TransportError;
use crate::raft::NodeId;

/// The subject name written into every Baton certificate. It carries no meaning: peers are
/// identified by their key, not by names.
const CERT_SUBJECT_NAME: &str = "baton.node";

/// Label mixed into the derivation of the QUIC stateless-reset key from the node's private key.
const RESET_KEY_LABEL: &[u8] = b"baton stateless reset key v1";
/// Label mixed into the derivation of the connection-id validation key.
const CID_KEY_LABEL: &[u8] = b"baton connection id key v1";

/// A node's key pair and self-signed certificate.
///
/// Clone it to rebind a transport with the same identity (for example after a restart).
#[derive(Clone)]
pub struct Identity {
    key_pkcs8_der: Vec<u8>,
    cert_der: CertificateDer<'static>,
    spki_sha256: [u8; 32],
    node_id: NodeId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &format_args!("{:016x}", self.node_id))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// Generates a fresh ECDSA P-256 key pair and a self-signed certificate for it.
    pub fn generate() -> Result<Identity, TransportError> {
        let key = rcgen::KeyPair::generate().map_err(identity_error)?;
        Self::from_key_pair(&key)
    }

    /// Loads the key stored at `path` (PKCS#8 PEM), or generates one and stores it there
    /// (created with mode 0600 on Unix, written to a temporary file and renamed into place so
    /// a crash never leaves half a key).
    pub fn load_or_generate(path: &Path) -> Result<Identity, TransportError> {
        match fs::read_to_string(path) {
            Ok(pem) => {
                let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| {
                    TransportError::Identity(format!("key file {}: {e}", path.display()))
                })?;
                Self::from_key_pair(&key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate().map_err(identity_error)?;
                write_key_file(path, &key.serialize_pem())?;
                Self::from_key_pair(&key)
            }
            Err(source) => Err(TransportError::Io {
                context: "reading the identity key file",
                source,
            }),
        }
    }

    /// Builds an identity from a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Identity, TransportError> {
        let key = rcgen::KeyPair::try_from(der).map_err(identity_error)?;
        Self::from_key_pair(&key)
    }

    fn from_key_pair(key: &rcgen::KeyPair) -> Result<Identity, TransportError> {
        let params = rcgen::CertificateParams::new(vec![CERT_SUBJECT_NAME.to_string()])
            .map_err(identity_error)?;
        let cert = params.self_signed(key).map_err(identity_error)?;
        let cert_der = cert.der().clone();
        // Derive the id the same way a peer will, from the certificate bytes, so both sides
        // can never disagree about it.
        let (node_id, spki_sha256) = node_id_of_cert(&cert_der).map_err(|e| {
            TransportError::Identity(format!("own certificate does not parse: {e}"))
        })?;
        Ok(Identity {
            key_pkcs8_der: key.serialize_der(),
            cert_der,
            spki_sha256,
            node_id,
        })
    }

    /// This node's id: the first 8 bytes (big-endian) of SHA-256 over the certificate's
    /// SubjectPublicKeyInfo.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The DER certificate presented in TLS.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// SHA-256 of the SubjectPublicKeyInfo; the join proof binds it.
    pub(crate) fn spki_sha256(&self) -> [u8; 32] {
        self.spki_sha256
    }

    pub(crate) fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8_der.clone()))
    }

    /// A key for QUIC stateless resets that is stable across restarts of the same identity, so
    /// that a restarted node resets its peers' stale connections at once instead of leaving
    /// them to the idle timeout.
    pub(crate) fn stateless_reset_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.derive(RESET_KEY_LABEL))
    }

    /// A key for the connection ids this node issues, stable across restarts: a restarted
    /// node must recognise its predecessor's connection ids as its own, or it drops their
    /// packets instead of answering them with a stateless reset.
    pub(crate) fn connection_id_key(&self) -> u64 {
        let derived = self.derive(CID_KEY_LABEL);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&derived[..8]);
        u64::from_le_bytes(bytes)
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(label);
        ctx.update(&self.key_pkcs8_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

fn identity_error(e: rcgen::Error) -> TransportError {
    TransportError::Identity(e.to_string())
}

fn write_key_file(path: &Path, pem: &str) -> Result<(), TransportError> {
    let io = |context: &'static str| move |source| TransportError::Io { context, source };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).map_err(io("creating the identity directory"))?;
        }
    }
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(io("creating the identity key file"))?;
    file.write_all(pem.as_bytes())
        .map_err(io("writing the identity key file"))?;
    file.sync_all()
        .map_err(io("syncing the identity key file"))?;
    fs::rename(&tmp, path).map_err(io("renaming the identity key file"))?;
    Ok(())
}

/// Why a peer certificate could not yield a node id.
#[derive(Debug, thiserror::Error)]
#[error("certificate does not parse: {0}")]
pub struct CertParseError(String);

/// Derives a node id (and the SPKI hash it comes from) from a DER certificate.
pub fn node_id_of_cert(cert: &CertificateDer<'_>) -> Result<(NodeId, [u8; 32]), CertParseError> {
    let parsed =
        webpki::EndEntityCert::try_from(cert).map_err(|e| CertParseError(format!("{e:?}")))?;
    let spki = parsed.subject_public_key_info();
    let hash = digest::digest(&digest::SHA256, spki.as_ref());
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(hash.as_ref());
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&spki_sha256[..8]);
    Ok((NodeId::from_be_bytes(id_bytes), spki_sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identities_have_distinct_ids() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.node_id(), b.node_id());
    }

    #[test]
    fn id_is_derived_from_the_key_not_the_certificate() {
        let a = Identity::generate().unwrap();
        let again = Identity::from_pkcs8_der(&a.key_pkcs8_der).unwrap();
        assert_eq!(a.node_id(), again.node_id());
        assert_eq!(a.spki_sha256(), again.spki_sha256());
    }

    #[test]
    fn load_or_generate_persists_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("node.key");
        let first = Identity::load_or_generate(&path).unwrap();
        let second = Identity::load_or_generate(&path).unwrap();
        assert_eq!(first.node_id(), second.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file must not be readable by others");
        }
    }

    #[test]
    fn corrupt_key_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            Identity::load_or_generate(&path),
            Err(TransportError::Identity(_))
        ));
    }
}
