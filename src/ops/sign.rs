//! `nodeforge sign [NODE|ID]... --key KEY`: sign images (every node's current one by default)
//! with an Ed25519 key: a DSSE envelope over an in-toto Statement naming the image id, each
//! layer's root hash and the SBOM's sha256, beside the image in `out/attestations/<id>/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{attest, Error};
use crate::generations;
use crate::layout::OutDir;
use crate::trust::PrivateKey;

#[derive(Debug, Clone)]
pub struct SignOptions {
    pub manifest: PathBuf,
    pub out: PathBuf,
    /// Images: NODE, NODE@GEN or an image id (prefix). Empty: every node's current image.
    pub images: Vec<String>,
    pub key: PathBuf,
    /// The lockfile, for the manifest hash in the provenance (when the image was built from it).
    pub lockfile: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    pub keyid: String,
    pub signed: Vec<SignedImage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignedImage {
    pub image_id: String,
    pub node: String,
    pub signature: PathBuf,
    pub sbom: PathBuf,
    /// Its SLSA provenance, signed by the same key.
    pub provenance: PathBuf,
}

pub fn sign(opts: &SignOptions) -> Result<SignReport, Error> {
    let key = PrivateKey::read(&opts.key)?;
    let refs: Vec<String> = if opts.images.is_empty() {
        generations::nodes(&opts.out)
            .into_iter()
            .filter(|n| generations::current(&opts.out, n).is_some())
            .collect()
    } else {
        opts.images.clone()
    };
    if refs.is_empty() {
        return Err(Error::Usage(format!(
            "{} holds no built node to sign: run `nodeforge build` first, or name images",
            opts.out.display()
        )));
    }
    // Every image found (and its record checked) before anything is signed.
    let mut images = Vec::new();
    for r in &refs {
        let m = super::resolve_image(&opts.manifest, &opts.out, r)?;
        if !images
            .iter()
            .any(|x: &crate::image::ImageManifest| x.id == m.id)
        {
            images.push(m);
        }
    }
    sign_images(&opts.out, &images, &key, &opts.lockfile)
}

/// Sign each of `images` (records with their root hashes) with `key`.
pub(crate) fn sign_images(
    out: &Path,
    images: &[crate::image::ImageManifest],
    key: &PrivateKey,
    lockfile: &Path,
) -> Result<SignReport, Error> {
    let layout = OutDir::new(out);
    let store = super::open_store(&layout)?;
    let cache = attest::DigestCache::default();
    let mut signed = Vec::new();
    for m in images {
        if m.layers.is_empty() {
            return Err(Error::FlatImage {
                image: m.id.clone(),
                node: m.node.clone(),
            });
        }
        let (signature, provenance) = attest::sign_image(
            &layout,
            &store,
            m,
            key,
            &cache,
            attest::BuiltFrom {
                lock_id: None,
                lockfile: Some(lockfile),
            },
        )?;
        signed.push(SignedImage {
            image_id: m.id.clone(),
            node: m.node.clone(),
            signature,
            provenance,
            sbom: layout.sbom(&m.id),
        });
    }
    Ok(SignReport {
        keyid: key.public().keyid().to_string(),
        signed,
    })
}
