//! `nodeforge sign [NODE|ID]... --key KEY`: sign images (every node's current one by default)
//! with an Ed25519 key: a DSSE envelope over an in-toto Statement naming the image id, each
//! layer's root hash and the SBOM's sha256, beside the image in `out/attestations/<id>/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::generations;
use crate::layout::OutDir;
use crate::ops::error::Error;
use crate::ops::steps::attestations::{self as attest, Signers};

#[derive(Debug, Clone)]
pub struct SignOptions {
    pub manifest: PathBuf,
    pub out: PathBuf,
    /// Images: NODE, NODE@GEN or an image id (prefix). Empty: every node's current image.
    pub images: Vec<String>,
    /// The Ed25519 key for DSSE signatures and provenance.
    pub key: Option<PathBuf>,
    /// An X.509 certificate and its key (PEM) for systemd's `<NAME>.roothash.p7s`.
    pub x509: Option<(PathBuf, PathBuf)>,
    /// The lockfile, for the manifest hash in the provenance (when the image was built from it).
    pub lockfile: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// The Ed25519 key's id (null with only `--x509-cert`).
    pub keyid: Option<String>,
    pub signed: Vec<SignedImage>,
    /// Checks remembered (`out/verified-v1.json`) or done again by reading the files.
    pub verified: crate::verified::VerifiedStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignedImage {
    pub image_id: String,
    pub node: String,
    /// The DSSE image signature (null with only `--x509-cert`).
    pub signature: Option<PathBuf>,
    pub sbom: PathBuf,
    /// Its SLSA provenance, signed by the same key.
    pub provenance: Option<PathBuf>,
    /// systemd's `<NAME>.roothash.p7s` per layer (with `--x509-cert`).
    pub roothash_signatures: Vec<PathBuf>,
}

pub fn sign(opts: &SignOptions) -> Result<SignReport, Error> {
    let Some(signers) = Signers::load(opts.key.as_deref(), opts.x509.as_ref())? else {
        return Err(Error::Usage(
            "nothing to sign with: pass --key KEY (Ed25519), and/or --x509-cert CERT --x509-key KEY"
                .into(),
        ));
    };
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
        let m = crate::ops::steps::resolve_image(&opts.manifest, &opts.out, r)?;
        if !images
            .iter()
            .any(|x: &crate::image::ImageManifest| x.id == m.id)
        {
            images.push(m);
        }
    }
    check_from_inputs(opts, &images)?;
    sign_images(&opts.out, &images, &signers, &opts.lockfile)
}

/// Each record of `images` is what the manifest, lockfile, templates and store make for its
/// node now: its id and its provenance (which the id does not cover; a record edited in place
/// is also the generation's, by hard link, so no file on the host can be compared with it).
fn check_from_inputs(
    opts: &SignOptions,
    images: &[crate::image::ImageManifest],
) -> Result<(), Error> {
    let refuse = |m: &crate::image::ImageManifest, why: String| Error::NotFromInputs {
        image: m.id.clone(),
        node: m.node.clone(),
        why,
    };
    let checked = crate::ops::steps::check_lock(&opts.manifest, &opts.lockfile).map_err(|e| {
        images.first().map_or_else(
            || Error::Internal("no image to sign".into()),
            |m| {
                refuse(
                    m,
                    format!("its record cannot be checked against the inputs: {e}"),
                )
            },
        )
    })?;
    let layout = OutDir::new(&opts.out);
    let store = crate::ops::steps::open_store_read_only(&layout, false)?;
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let planned = crate::ops::steps::render::render_all(&store, &checked, jobs, false)?;
    for m in images {
        let why = match planned.get(&m.node) {
            Some(p) if p.id == m.id => {
                crate::ops::steps::images::record_differs(m, p, "what the inputs make")
            }
            // Another image of the node (a rollback target, signed again after a key rotation):
            // what it says each artifact file came from must be what the lockfile pins for
            // that sha256.
            _ => artifacts_against_lock(m, &checked.lock),
        };
        if let Some(why) = why {
            return Err(refuse(m, why));
        }
    }
    Ok(())
}

/// Sign each of `images` (records with their root hashes) with `key`.
pub(crate) fn sign_images(
    out: &Path,
    images: &[crate::image::ImageManifest],
    signers: &Signers,
    lockfile: &Path,
) -> Result<SignReport, Error> {
    let layout = OutDir::new(out);
    let store = crate::ops::steps::open_store(&layout)?;
    let cache = attest::DigestCache::remembering(&layout);
    let mut signed = Vec::new();
    for m in images {
        if m.layers.is_empty() {
            return Err(Error::FlatImage {
                image: m.id.clone(),
                node: m.node.clone(),
            });
        }
        let signed_one = signers
            .key
            .as_ref()
            .map(|key| {
                attest::sign_image(
                    &layout,
                    &store,
                    m,
                    key,
                    &cache,
                    attest::BuiltFrom {
                        lock_id: None,
                        lockfile: Some(lockfile),
                    },
                )
            })
            .transpose()?;
        let roothash_signatures = match &signers.x509 {
            Some(x) => attest::sign_roothashes(&layout, &store, m, x, &cache)?,
            None => Vec::new(),
        };
        if signed_one.is_none() {
            attest::ensure_sbom(&layout, &store, m, false, &cache)?;
        }
        let (signature, provenance) = signed_one.unzip();
        signed.push(SignedImage {
            image_id: m.id.clone(),
            node: m.node.clone(),
            signature,
            provenance,
            sbom: layout.sbom(&m.id),
            roothash_signatures,
        });
    }
    cache.save();
    Ok(SignReport {
        keyid: signers.key.as_ref().map(|k| k.public().keyid().to_string()),
        signed,
        verified: cache.stats(),
    })
}

/// Whether every artifact the record of `m` names as a file's origin is pinned by `lock` under
/// that sha256 with the same component, version and URL. For an image the inputs no longer make
/// (an older generation): its entries are covered by its id, its provenance only by this.
fn artifacts_against_lock(
    m: &crate::image::ImageManifest,
    lock: &crate::lock::Lockfile,
) -> Option<String> {
    let mut bad = Vec::new();
    for (path, p) in &m.provenance {
        let crate::image::Provenance::Artifact {
            component,
            version,
            url,
            sha256,
            ..
        } = p
        else {
            continue;
        };
        let pinned = lock.artifacts.iter().any(|e| {
            e.sha256().is_some_and(|s| s.to_hex() == *sha256)
                && e.component.as_str() == component
                && e.version == *version
                && e.url == *url
        });
        if !pinned {
            bad.push(format!(
                "{path}: {component} {version} from {url} (sha256 {}) is not pinned so by the lockfile",
                sha256.get(..12).unwrap_or(sha256)
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let more = bad.len().saturating_sub(3);
    let mut text = bad.into_iter().take(3).collect::<Vec<_>>().join("; ");
    if more > 0 {
        text.push_str(&format!(" (and {more} more)"));
    }
    Some(format!(
        "it is not what the inputs make now, and its provenance is not the lockfile's: {text}"
    ))
}
