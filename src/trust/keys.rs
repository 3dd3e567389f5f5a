//! Ed25519 signing keys in the standard PEM forms: the private key as PKCS#8 (`BEGIN PRIVATE
//! KEY`, what `openssl genpkey -algorithm ed25519` writes) and the public key as SPKI (`BEGIN
//! PUBLIC KEY`, `openssl pkey -pubout`). A key's id is the lowercase hex sha256 of its public
//! key's DER SubjectPublicKeyInfo: `openssl pkey -pubin -in KEY.pub -outform DER | sha256sum`.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

/// Why a key cannot be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read the key: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an Ed25519 {what} in PEM ({reason})", path.display())]
    Parse {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("no random bytes for a new key: {0}")]
    Random(String),
    #[error("cannot encode the key: {0}")]
    Encode(String),
}

/// A private key, read from or about to be written to a PKCS#8 PEM file.
pub struct PrivateKey {
    key: SigningKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, only whose it is.
        write!(f, "PrivateKey({})", self.public().keyid())
    }
}

/// A public key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    keyid: String,
}

impl PrivateKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Read a PKCS#8 PEM private key.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Parse {
            path: path.to_path_buf(),
            what: "private key (PKCS#8, BEGIN PRIVATE KEY)",
            reason: e.to_string(),
        })?;
        Ok(Self { key })
    }

    /// The PKCS#8 PEM text (zeroed when dropped): version 1, the seed alone, as `openssl
    /// genpkey` writes it (OpenSSL 3.0 cannot read version 2, which carries the public key too).
    pub fn to_pem(&self) -> Result<zeroize::Zeroizing<String>, KeyError> {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey::new(self.key.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl PublicKey {
    fn new(key: VerifyingKey) -> Self {
        let der = key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        Self {
            keyid: crate::hash::Sha256::of(&der).to_hex(),
            key,
        }
    }

    /// Read an SPKI PEM public key (`BEGIN PUBLIC KEY`).
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&text).map_err(|reason| KeyError::Parse {
            path: path.to_path_buf(),
            what: "public key (SPKI, BEGIN PUBLIC KEY)",
            reason,
        })
    }

    pub fn from_pem(text: &str) -> Result<Self, String> {
        VerifyingKey::from_public_key_pem(text)
            .map(Self::new)
            .map_err(|e| e.to_string())
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The key's id: lowercase hex sha256 of its DER SubjectPublicKeyInfo.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// Whether `signature` is this key's (strict Ed25519 verification).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok() && self.key.verify(message, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_keyid_is_the_spki_sha256() {
        let k = PrivateKey::generate().expect("key");
        let pem = k.to_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("k");
        std::fs::write(&p, pem.as_bytes()).expect("write");
        let back = PrivateKey::read(&p).expect("read");
        assert_eq!(back.public(), k.public());
        let pubpem = k.public().to_pem().expect("pem");
        assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let pubkey = PublicKey::from_pem(&pubpem).expect("public");
        assert_eq!(pubkey.keyid(), k.public().keyid());
        assert_eq!(pubkey.keyid().len(), 64);
        let sig = k.sign(b"m");
        assert!(pubkey.verify(b"m", &sig));
        assert!(!pubkey.verify(b"n", &sig));
        assert!(!PrivateKey::generate()
            .expect("key")
            .public()
            .verify(b"m", &sig));
    }
}
