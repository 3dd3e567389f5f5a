//! systemd's signed dm-verity root hashes: `<NAME>.roothash.p7s`, a detached PKCS#7 (CMS)
//! SignedData in DER over the root hash as lowercase hex **without** a trailing newline (the
//! string the kernel's dm-verity gets as its root hash argument, and what systemd's userspace
//! check hashes). `systemd-sysext`/`systemd-dissect` find it beside `<NAME>.raw` and have the
//! kernel check it against its keyring (or, since v253, userspace against `/etc/verity.d/`).
//! The same form as `openssl smime -sign -binary -noattr -nocerts -outform DER` except that the
//! content-type and message-digest attributes are signed (CMS's builder always adds them; the
//! kernel and OpenSSL both accept that form). No signing time: the same key and root hash
//! give the same bytes (RSA PKCS#1 v1.5 and RFC 6979 ECDSA are deterministic).

use std::path::{Path, PathBuf};

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::IssuerAndSerialNumber;
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::{Decode, DecodePem, Encode};
use sha2::Digest as _;
use spki::{AlgorithmIdentifierOwned, EncodePublicKey};
use x509_cert::Certificate;

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("{} is not the key of certificate {}: their public keys differ", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make the PKCS#7 signature: {0}")]
    Sign(String),
}

enum Key {
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    P256(p256::ecdsa::SigningKey),
}

/// An X.509 certificate and its private key (RSA or ECDSA P-256, PEM: PKCS#8, PKCS#1 or SEC1).
pub struct X509Signer {
    cert: Certificate,
    key: Key,
}

fn read(path: &Path) -> Result<String, X509Error> {
    std::fs::read_to_string(path).map_err(|source| X509Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl X509Signer {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, X509Error> {
        let parse = |path: &Path, reason: String| X509Error::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let cert = Certificate::from_pem(read(cert_path)?.as_bytes())
            .map_err(|e| parse(cert_path, format!("not a PEM X.509 certificate: {e}")))?;
        let text = zeroize::Zeroizing::new(read(key_path)?);
        let key = {
            use p256::pkcs8::DecodePrivateKey as _;
            use rsa::pkcs1::DecodeRsaPrivateKey as _;
            if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(&text) {
                Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k)))
            } else if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_pem(&text) {
                Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k)))
            } else if let Ok(k) = p256::SecretKey::from_pkcs8_pem(&text) {
                Key::P256(k.into())
            } else if let Ok(k) = p256::SecretKey::from_sec1_pem(&text) {
                Key::P256(k.into())
            } else {
                return Err(parse(
                    key_path,
                    "not an unencrypted PEM RSA or ECDSA P-256 private key (PKCS#8, PKCS#1 or SEC1)"
                        .into(),
                ));
            }
        };
        let public = match &key {
            Key::Rsa(k) => rsa::RsaPublicKey::from((**k).as_ref()).to_public_key_der(),
            Key::P256(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(|e| parse(key_path, e.to_string()))?;
        let cert_public = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| parse(cert_path, e.to_string()))?;
        if public.as_bytes() != cert_public.as_slice() {
            return Err(X509Error::Mismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        Ok(Self { cert, key })
    }

    /// The detached PKCS#7 signature (DER) of `root_hash` (lowercase hex, no newline).
    pub fn sign_root_hash(&self, root_hash: &str) -> Result<Vec<u8>, X509Error> {
        let fail = |e: &dyn std::fmt::Display| X509Error::Sign(e.to_string());
        let digest = sha2::Sha256::digest(root_hash.as_bytes());
        let content = EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: None,
        };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.cert.tbs_certificate.issuer.clone(),
            serial_number: self.cert.tbs_certificate.serial_number.clone(),
        });
        let sha256 = AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_256,
            parameters: None,
        };
        let mut builder = SignedDataBuilder::new(&content);
        builder
            .add_digest_algorithm(sha256.clone())
            .map_err(|e| fail(&e))?;
        match &self.key {
            Key::Rsa(k) => {
                let si = SignerInfoBuilder::new(&**k, sid, sha256, &content, Some(&digest))
                    .map_err(|e| fail(&e))?;
                builder
                    .add_signer_info::<_, rsa::pkcs1v15::Signature>(si)
                    .map_err(|e| fail(&e))?;
            }
            Key::P256(k) => {
                let si = SignerInfoBuilder::new(k, sid, sha256, &content, Some(&digest))
                    .map_err(|e| fail(&e))?;
                builder
                    .add_signer_info::<_, p256::ecdsa::DerSignature>(si)
                    .map_err(|e| fail(&e))?;
            }
        }
        let info = builder.build().map_err(|e| fail(&e))?;
        let der = info.to_der().map_err(|e| fail(&e))?;
        // Round trip: what we write must parse as CMS.
        cms::content_info::ContentInfo::from_der(&der).map_err(|e| fail(&e))?;
        Ok(der)
    }
}
