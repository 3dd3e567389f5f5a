//! `nodeforge key generate PATH`: a new Ed25519 signing key, `PATH` (PKCS#8 PEM, mode 0600) and
//! `PATH.pub` (SPKI PEM), never where an image or the output directory could carry it away.

use std::path::PathBuf;

use serde::Serialize;

use super::Error;
use crate::fsutil::{self, resolved, AtomicFile, IoContext};
use crate::trust::PrivateKey;

#[derive(Debug, Clone)]
pub struct KeyGenOptions {
    pub path: PathBuf,
    pub manifest: PathBuf,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    /// sha256 of the public key's DER SubjectPublicKeyInfo, lowercase hex.
    pub keyid: String,
}

pub fn key_generate(opts: &KeyGenOptions) -> Result<KeyReport, Error> {
    let private = &opts.path;
    let mut public = private.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    let dir = match private.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let where_ = resolved(&private.clone());
    // A private key inside out/ (images, attestations, a mirror export of it) or a template
    // tree (rendered into every node's image) would be published with what it signs.
    let mut forbidden = vec![(resolved(&opts.out), "the output directory")];
    if let Ok(m) = crate::manifest::Manifest::load(&opts.manifest) {
        forbidden.push((resolved(&m.templates), "the template tree"));
    }
    for (root, what) in &forbidden {
        if where_.starts_with(root) {
            return Err(Error::Usage(format!(
                "{}: a private key must not be written inside {what} {}: it would end up in images or be published with them; write it elsewhere (e.g. ~/.config/nodeforge/)",
                private.display(),
                root.display()
            )));
        }
    }
    for p in [private, &public] {
        if p.exists() {
            return Err(Error::Usage(format!(
                "{}: exists already; a key is never overwritten (remove it first, or choose another path)",
                p.display()
            )));
        }
    }
    let key = PrivateKey::generate()?;
    let pem = key.to_pem()?;
    let pubkey = key.public();
    // The private key: created 0600 in its directory, renamed in only if nothing is there.
    let mut tmp = AtomicFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, pem.as_bytes()).at("cannot write", tmp.path())?;
    if !tmp.commit_new(private, 0o600)? {
        return Err(Error::Usage(format!(
            "{}: appeared while the key was made; nothing was overwritten",
            private.display()
        )));
    }
    fsutil::write_atomic(&public, pubkey.to_pem()?.as_bytes(), 0o644)?;
    Ok(KeyReport {
        private_key: private.clone(),
        public_key: public,
        keyid: pubkey.keyid().to_string(),
    })
}
