//! What vouches for an image, on disk: the SBOM written beside it, its signatures, and the
//! check of those signatures against trusted keys. Shared by build, sign, sbom, verify, show,
//! rollback and gc (a copy of an image carries the same files: `referrers.rs`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::Digest as _;

use crate::fsutil::{self, IoContext};
use crate::hash::Blake3;
use crate::image::{ImageManifest, Kind};
use crate::layout::{OutDir, SBOM_FILE};
use crate::ops::error::Error;
use crate::sbom::{self, FileDigests};
use crate::store::Store;
use crate::trust::{self, PrivateKey, PublicKey, SignatureCheck, SignedFile, TrustedKeys};

/// Digests already computed in this run: image files by content address, layer files (shared
/// by many images: one payload for every node) by path.
#[derive(Debug, Default)]
pub(crate) struct DigestCache {
    files: std::sync::Mutex<BTreeMap<Blake3, FileDigests>>,
    layer_files: std::sync::Mutex<BTreeMap<PathBuf, String>>,
    /// Layers (ids) found to be what their entries make from the store.
    checked_layers: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// What earlier runs checked, by the files' stat keys (`verified`); empty for `verify`.
    verified: crate::verified::Verified,
}

impl DigestCache {
    /// A cache that also answers from, and adds to, `out`'s record of checked files.
    pub(crate) fn remembering(out: &OutDir) -> Self {
        Self {
            verified: crate::verified::Verified::load(&out.verified()),
            ..Self::default()
        }
    }

    /// Write what this run checked into the record (a failure only costs re-hashing later).
    pub(crate) fn save(&self) {
        let _ = self.verified.save();
    }

    /// How many checks the record answered, and how many read the files.
    pub(crate) fn stats(&self) -> crate::verified::VerifiedStats {
        self.verified.stats()
    }

    /// The record of checked files this cache answers from.
    pub(crate) fn verified(&self) -> &crate::verified::Verified {
        &self.verified
    }
}

/// What a layer check vouches for: signing needs the layer rebuilt from the store; publishing
/// (push, export) accepts a layer the store lacks the files of (pulled here, pushed on) once
/// its EROFS file, hash tree and root hash file agree with the root hash its record pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vouch {
    Sign,
    Publish,
}

/// The files a layer check reads, besides the store: its record and its three files.
fn layer_paths(dir: &Path, rec_name: &str) -> Vec<PathBuf> {
    let mut v = vec![dir.join(crate::layout::LAYER_RECORD)];
    v.extend(
        crate::layout::layer_files(rec_name)
            .iter()
            .map(|f| dir.join(f)),
    );
    v
}

/// Refuse to vouch for (sign, push, export) a layer that is not what its entries make from the
/// store, or (`Vouch::Publish`, a layer the store lacks the files of) not what the root hash its
/// record pins says: a planted EROFS file with its own hash tree and edited records would
/// otherwise be signed or sent as it is. The image record's verity parameters must be the
/// layer record's. Remembered (`out/verified-v1.json`) only by the stat keys of every file the
/// check read, so any write to one of them makes the next run check again.
pub(crate) fn check_layers(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    cache: &DigestCache,
    vouch: Vouch,
) -> Result<(), Error> {
    let verb = match vouch {
        Vouch::Sign => "sign",
        Vouch::Publish => "publish",
    };
    for l in &m.layers {
        let dir = out.layer(&l.id);
        let pinned = crate::ops::steps::materialize::read_layer_record(&dir)
            .ok()
            .is_some_and(|rec| l.verity.as_ref() == Some(&rec.verity));
        if !pinned {
            return Err(Error::LayersNotVouched {
                verb,
                image: m.id.to_string(),
                reason: format!(
                    "its record does not pin the dm-verity parameters its {} layer's record gives (layers/{}): run `nodeforge verify`",
                    l.role, l.id
                ),
            });
        }
        if cache.checked_layers.lock().is_ok_and(|c| c.contains(&l.id)) {
            continue;
        }
        // Remembered: the layer's files and every store object it is made of have the keys
        // they had when a run checked the layer the same way.
        let mut paths = layer_paths(&dir, &l.name);
        paths.extend(
            crate::image::layer_entries(&m.entries, l.role)
                .iter()
                .filter(|e| e.kind == Kind::File)
                .filter_map(|e| e.blake3)
                .map(|b| store.object_path(&b)),
        );
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        // A layer checked against its root hash only is remembered under another name: it
        // does not answer for signing.
        let name = match vouch {
            Vouch::Sign => format!("layer:{}", l.id),
            Vouch::Publish => format!("layer-published:{}", l.id),
        };
        if cache.verified.get(&name, &refs).is_some() {
            if let Ok(mut c) = cache.checked_layers.lock() {
                c.insert(l.id.clone());
            }
            continue;
        }
        let before = crate::verified::Verified::keys(&refs);
        let check = crate::ops::steps::materialize::check_layer(store, &dir, false);
        let mut fails = check.fails;
        if fails.is_empty() && !check.rebuilt && vouch == Vouch::Sign {
            // Pulled, not built here: only its root hash could be checked, and a signature
            // vouches for what the inputs make.
            fails.push(format!(
                "layer {}: the store lacks its files, so it cannot be rebuilt and compared (sign images where they are built)",
                l.id
            ));
        }
        if !fails.is_empty() {
            return Err(Error::LayersNotVouched {
                verb,
                image: m.id.to_string(),
                reason: format!(
                    "{}: run `nodeforge verify`, and rebuild it (`nodeforge rollback` or `build`) from the store",
                    fails.join("; ")
                ),
            });
        }
        cache.verified.put(&name, &refs, &before, BTreeMap::new());
        if let Ok(mut c) = cache.checked_layers.lock() {
            c.insert(l.id.clone());
        }
    }
    Ok(())
}

/// A layer in `out/layers/` that `build` would take as it is: its EROFS file, hash tree and root
/// hash file must still agree with the root hash its record pins, or a damaged layer would be
/// reported "up to date". Remembered (`layer-intact:<id>`) by the stat keys of the layer's
/// files, so an unchanged layer costs four stats; any write to one of them moves its key and the
/// next build hashes it again. A layer that is not there (or whose record does not read) is
/// not checked: the build writes it.
pub(crate) fn check_layer_intact(out: &OutDir, id: &str, cache: &DigestCache) -> Result<(), Error> {
    let dir = out.layer(id);
    let Ok(rec) = crate::ops::steps::materialize::read_layer_record(&dir) else {
        return Ok(());
    };
    let paths = layer_paths(&dir, &rec.name);
    if !paths.iter().all(|p| p.is_file()) {
        return Ok(());
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let name = format!("layer-intact:{id}");
    if cache.checked_layers.lock().is_ok_and(|c| c.contains(id))
        || cache.verified.get(&name, &refs).is_some()
    {
        return Ok(());
    }
    let before = crate::verified::Verified::keys(&refs);
    let fails = crate::ops::steps::materialize::check_layer_verity(&dir, &rec);
    if !fails.is_empty() {
        let [raw, _, _] = crate::layout::layer_files(&rec.name);
        return Err(Error::damaged(
            &dir.join(raw),
            format!(
                "the layer is damaged ({}{}); build neither takes it as it is nor writes over it",
                fails[0],
                match fails.len() {
                    1 => String::new(),
                    2 => ", and 1 more problem".to_string(),
                    n => format!(", and {} more problems", n - 1),
                }
            ),
        ));
    }
    cache.verified.put(&name, &refs, &before, BTreeMap::new());
    Ok(())
}

/// The version nodeforge records in what it writes.
pub(crate) const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether an image is signed, and by whom.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureStatus {
    pub image_id: String,
    /// Trusted keys (ids) with a valid signature on exactly this image; empty: not trusted.
    pub signed_by: Vec<String>,
    /// Every signature file found beside the image, as checked.
    pub signatures: Vec<SignatureCheck>,
}

impl SignatureStatus {
    pub fn trusted(&self) -> bool {
        !self.signed_by.is_empty()
    }

    /// Why the image is not trusted, in one phrase.
    pub fn why_not(&self) -> String {
        if self.signatures.is_empty() {
            return "it is not signed".into();
        }
        let each: Vec<String> = self
            .signatures
            .iter()
            .map(|s| {
                let name = s
                    .file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match &s.mismatch {
                    Some(m) => format!("{name}: {m}"),
                    None => format!(
                        "{name}: signed by key {}, not a trusted key",
                        s.keyids.join(", ")
                    ),
                }
            })
            .collect();
        format!("no valid signature by a trusted key ({})", each.join("; "))
    }
}

/// Whether image `m` (its record as the caller trusts it: a generation's, or the image
/// directory's) is validly signed by one of `keys`, and by which. Every signature file in the
/// image's attestation directory is checked; an empty `keys` trusts nobody.
pub fn image_signatures(out: &Path, m: &ImageManifest, keys: &TrustedKeys) -> SignatureStatus {
    let layout = OutDir::new(out);
    let envelopes: Vec<(PathBuf, Vec<u8>)> = layout
        .image_signatures(&m.id)
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    let sbom = crate::hash::Sha256::of_file(&layout.sbom(&m.id))
        .ok()
        .map(|(s, _)| s.to_hex());
    signature_status(m, &envelopes, sbom.as_deref(), keys)
}

/// The signature envelopes `envelopes` (file, bytes) of image `m` checked against `keys`, the
/// SBOM's sha256 being `sbom`: who signed it, and each file's verdict.
pub(crate) fn signature_status(
    m: &ImageManifest,
    envelopes: &[(PathBuf, Vec<u8>)],
    sbom: Option<&str>,
    keys: &TrustedKeys,
) -> SignatureStatus {
    let signatures = trust::check_signatures(m, envelopes, sbom, &keys.keys);
    let mut signed_by: Vec<String> = signatures
        .iter()
        .filter(|s| s.mismatch.is_none())
        .flat_map(|s| s.trusted_by.iter().cloned())
        .collect();
    signed_by.sort();
    signed_by.dedup();
    SignatureStatus {
        image_id: m.id.clone(),
        signed_by,
        signatures,
    }
}

/// Every file that vouches for image `id` (signatures, SBOM, provenance), sorted: what a copy
/// of the image carries with it.
pub fn attestation_files(out: &Path, id: &str) -> Vec<PathBuf> {
    OutDir::new(out).attestation_files(id)
}

/// The sha1 and sha256 of every file of `m`, from the store.
/// `cache` keeps them across the images of one run (a payload layer is shared by many nodes).
pub(crate) fn file_digests(
    store: &Store,
    m: &ImageManifest,
    cache: &DigestCache,
) -> Result<BTreeMap<Blake3, FileDigests>, Error> {
    let mut out = BTreeMap::new();
    for b in m
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter_map(|e| e.blake3)
    {
        if out.contains_key(&b) {
            continue;
        }
        if let Some(d) = cache.files.lock().ok().and_then(|c| c.get(&b).cloned()) {
            out.insert(b, d);
            continue;
        }
        let path = store.object_path(&b);
        let name = format!("object:{b}");
        let remembered = cache.verified.get(&name, &[&path]).and_then(|f| {
            Some(FileDigests {
                sha1: f.get("sha1")?.clone(),
                sha256: f.get("sha256")?.clone(),
            })
        });
        let d = match remembered {
            Some(d) => d,
            None => {
                let before = crate::verified::Verified::keys(&[&path]);
                let mut f = std::fs::File::open(&path).at("cannot open store object", &path)?;
                let (mut s1, mut s256, mut s3) = (
                    sha1::Sha1::new(),
                    sha2::Sha256::new(),
                    blake3::Hasher::new(),
                );
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).at("cannot read", &path)?;
                    if n == 0 {
                        break;
                    }
                    s1.update(&buf[..n]);
                    s256.update(&buf[..n]);
                    s3.update(&buf[..n]);
                }
                // Read anyway: the object must be its address before its digests are vouched for.
                let got = Blake3::from_bytes(*s3.finalize().as_bytes());
                if got != b {
                    return Err(Error::DamagedObject {
                        path: path.clone(),
                        actual: got.to_string(),
                    });
                }
                let d = FileDigests {
                    sha1: hex::encode(s1.finalize()),
                    sha256: hex::encode(s256.finalize()),
                };
                cache.verified.put(
                    &name,
                    &[&path],
                    &before,
                    BTreeMap::from([
                        ("sha1".to_string(), d.sha1.clone()),
                        ("sha256".to_string(), d.sha256.clone()),
                    ]),
                );
                d
            }
        };
        if let Ok(mut c) = cache.files.lock() {
            c.insert(b, d.clone());
        }
        out.insert(b, d);
    }
    Ok(out)
}

/// The SBOM of `m` in `format` with creation time `created`.
pub(crate) fn render_sbom(
    store: &Store,
    m: &ImageManifest,
    format: sbom::Format,
    created: &str,
    cache: &DigestCache,
) -> Result<Vec<u8>, Error> {
    crate::ops::steps::materialize::check_objects(store, m)?;
    let digests = file_digests(store, m, cache)?;
    sbom::render(m, &digests, format, created, TOOL_VERSION)
        .map_err(|e| Error::Internal(format!("the SBOM of image {}: {e}", m.id)))
}

/// Make sure `out/attestations/<id>/sbom.spdx.json` holds the image's SBOM (SPDX, created at the
/// epoch: a function of the image alone); returns its name and sha256. `rewrite`: check an
/// existing file against a fresh one (before signing it) instead of taking it as it is.
pub(crate) fn ensure_sbom(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    rewrite: bool,
    cache: &DigestCache,
) -> Result<SignedFile, Error> {
    let path = out.sbom(&m.id);
    if !rewrite {
        if let Ok((sha, _)) = crate::hash::Sha256::of_file(&path) {
            return Ok(SignedFile {
                name: SBOM_FILE.into(),
                sha256: sha.to_hex(),
            });
        }
    }
    let bytes = render_sbom(store, m, sbom::Format::SpdxJson, sbom::EPOCH, cache)?;
    if std::fs::read(&path).ok().as_ref() != Some(&bytes) {
        fsutil::write_atomic_via(&out.attestations(), &path, &bytes, 0o644)?;
    }
    Ok(SignedFile {
        name: SBOM_FILE.into(),
        sha256: crate::hash::Sha256::of(&bytes).to_hex(),
    })
}

/// [`ensure_sbom`] in a batch: the SBOM to write, in a temporary file beside its place, when
/// it is missing (or, `rewrite`, differs from a fresh one); `None` when the file is right.
/// Commit it with `AtomicFile::commit_batched` once the caller's `syncfs` has made it durable.
pub(crate) fn stage_sbom(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    rewrite: bool,
    cache: &DigestCache,
) -> Result<Option<(fsutil::AtomicFile, PathBuf)>, Error> {
    use std::io::Write;
    let path = out.sbom(&m.id);
    if !rewrite && path.is_file() {
        return Ok(None);
    }
    let bytes = render_sbom(store, m, sbom::Format::SpdxJson, sbom::EPOCH, cache)?;
    if std::fs::read(&path).ok().as_ref() == Some(&bytes) {
        return Ok(None);
    }
    let dir = path
        .parent()
        .map_or_else(|| out.root().to_path_buf(), Path::to_path_buf);
    // The temporary file waits in attestations/ itself, where a killed run's are cleaned.
    fsutil::create_dir_all(&dir)?;
    let mut tmp = fsutil::AtomicFile::new_in(&out.attestations())?;
    tmp.write_all(&bytes)
        .map_err(|e| fsutil::FsError::new("cannot write", tmp.path(), e))?;
    Ok(Some((tmp, path)))
}

/// Sign image `m` (a record with its layers' root hashes) with `key`: its SBOM made sure of,
/// the statement signed, the envelope written to `attestations/<id>/image.<keyid>.dsse.json`
/// (replacing that key's earlier signature), and its provenance signed beside it. Returns the
/// signature file and the provenance file.
pub(crate) fn sign_image(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    key: &PrivateKey,
    cache: &DigestCache,
    from: BuiltFrom<'_>,
) -> Result<(PathBuf, PathBuf), Error> {
    crate::ops::steps::materialize::materialize(out, store, m)?;
    check_layers(out, store, m, cache, Vouch::Sign)?;
    let provenance = sign_provenance(out, store, m, key, from, cache)?;
    let sbom = ensure_sbom(out, store, m, true, cache)?;
    let statement =
        trust::image_statement(m, Some(sbom), freshness(out, m)).map_err(Error::Usage)?;
    let env = trust::Envelope::sign(trust::dsse::IN_TOTO, &trust::to_payload(&statement), key);
    let path = out.image_signature(&m.id, key.public().keyid());
    fsutil::write_atomic_via(&out.attestations(), &path, &env.to_json(), 0o644)?;
    Ok((path, provenance))
}

/// What orders image `m` among its node's images on this host, for its signature: the newest
/// generation of the node that is this image (none: the host never recorded it as one).
pub(crate) fn freshness(out: &OutDir, m: &ImageManifest) -> Option<trust::Freshness> {
    let gens = crate::generations::list(out.root(), &m.node).ok()?;
    gens.iter()
        .rev()
        .find(|g| g.image_id == m.id)
        .map(|g| trust::Freshness {
            generation: g.number,
            lock_id: g.lock_id.clone(),
            built_at_unix: g.built_at_unix,
        })
}

/// The newest freshness a trusted key signed for the image `status` describes (none without
/// trusted keys, or when no trusted signature carries one).
pub(crate) fn trusted_freshness(status: &SignatureStatus) -> Option<trust::Freshness> {
    status
        .signatures
        .iter()
        .filter(|c| c.mismatch.is_none() && !c.trusted_by.is_empty())
        .filter_map(|c| c.freshness.clone())
        .reduce(|a, b| if a.older_than(&b) { b } else { a })
}

/// Which lockfile an image was built from, for its provenance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuiltFrom<'a> {
    /// The lock-id (`blake3:…`) when the caller knows it (build); else that of the newest
    /// generation holding the image.
    pub lock_id: Option<&'a str>,
    /// The lockfile at hand: its manifest hash is recorded when its lock-id is the image's.
    pub lockfile: Option<&'a Path>,
}

/// The provenance statement of image `m`: its files' sha256 (from its directory, written if
/// missing), the lock-id it was built from, and the manifest hash when the lockfile at hand is
/// that lock.
pub(crate) fn provenance_statement(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    from: BuiltFrom<'_>,
    cache: &DigestCache,
) -> Result<trust::Statement<serde_json::Value>, Error> {
    let (_, full, _) = crate::ops::steps::materialize::materialize(out, store, m)?;
    let mut files = BTreeMap::new();
    // The record as registries carry it (whole: `out/` keeps it without its entries), and each
    // layer's files (hard links to `layers/<id>/`, hashed once a run).
    files.insert(
        crate::layout::IMAGE_RECORD.to_string(),
        crate::hash::Sha256::of(&full.to_json()).to_hex(),
    );
    let mut paths = Vec::new();
    for l in &m.layers {
        for f in crate::layout::layer_files(&l.name) {
            paths.push((f.clone(), out.layer(&l.id).join(f)));
        }
    }
    for (name, p) in paths {
        let known = cache
            .layer_files
            .lock()
            .ok()
            .and_then(|c| c.get(&p).cloned());
        let sha = match known {
            Some(s) => s,
            None => {
                let (sha, _) = cache.verified.sha256_of(&p).at("cannot read", &p)?;
                let sha = sha.to_hex();
                if let Ok(mut c) = cache.layer_files.lock() {
                    c.insert(p.clone(), sha.clone());
                }
                sha
            }
        };
        files.insert(name, sha);
    }
    let lock_id = match from.lock_id {
        Some(l) => Some(l.to_string()),
        None => crate::generations::nodes(out.root())
            .into_iter()
            .filter_map(|n| crate::generations::list(out.root(), &n).ok())
            .flatten()
            .filter(|g| g.image_id == m.id)
            .max_by_key(|g| g.built_at_unix)
            .map(|g| g.lock_id),
    };
    let manifest_hash = from
        .lockfile
        .and_then(|p| crate::lock::Lockfile::load(p).ok())
        .filter(|l| {
            lock_id
                .as_deref()
                .is_some_and(|id| id.trim_start_matches("blake3:") == l.lock_id().to_hex())
        })
        .map(|l| format!("blake3:{}", l.manifest_hash));
    Ok(trust::provenance::statement(
        m,
        &trust::provenance::BuildInputs {
            files,
            lock_id,
            manifest_hash,
            tool_version: TOOL_VERSION.into(),
        },
    ))
}

/// Sign the provenance of image `m` with `key`, into
/// `attestations/<id>/provenance.<keyid>.dsse.json`.
pub(crate) fn sign_provenance(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    key: &PrivateKey,
    from: BuiltFrom<'_>,
    cache: &DigestCache,
) -> Result<PathBuf, Error> {
    let statement = provenance_statement(out, store, m, from, cache)?;
    let env = trust::Envelope::sign(trust::dsse::IN_TOTO, &trust::to_payload(&statement), key);
    let path = out.provenance(&m.id, key.public().keyid());
    fsutil::write_atomic_via(&out.attestations(), &path, &env.to_json(), 0o644)?;
    Ok(path)
}

/// Write systemd's signed root hash of each layer of `m` (`<NAME>.roothash.p7s`) with `signer`.
pub(crate) fn sign_roothashes(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    signer: &trust::pkcs7::X509Signer,
    cache: &DigestCache,
) -> Result<Vec<PathBuf>, Error> {
    crate::ops::steps::materialize::materialize(out, store, m)?;
    check_layers(out, store, m, cache, Vouch::Sign)?;
    let mut written = Vec::new();
    for l in &m.layers {
        let root = l.verity.as_ref().ok_or_else(|| Error::NoRootHash {
            image: m.id.to_string(),
            role: l.role.to_string(),
        })?;
        let der = signer.sign_root_hash(&root.root_hash)?;
        let path = out.roothash_signature(&m.id, &l.name);
        fsutil::write_atomic_via(&out.attestations(), &path, &der, 0o644)?;
        written.push(path);
    }
    Ok(written)
}

/// The error for an image that must be signed and is not.
pub(crate) fn untrusted(what: &str, status: &SignatureStatus, keys: &[PublicKey]) -> Error {
    Error::Untrusted {
        what: what.to_string(),
        image: status.image_id.clone(),
        reason: status.why_not(),
        keys: keys.iter().map(|k| k.keyid().to_string()).collect(),
    }
}

/// What signs: an Ed25519 key, an X.509 certificate and key, or both.
pub(crate) struct Signers {
    pub key: Option<PrivateKey>,
    pub x509: Option<crate::trust::pkcs7::X509Signer>,
}

impl Signers {
    pub(crate) fn load(
        key: Option<&Path>,
        x509: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Option<Self>, Error> {
        let key = key.map(PrivateKey::read).transpose()?;
        let x509 = x509
            .map(|(c, k)| crate::trust::pkcs7::X509Signer::load(c, k))
            .transpose()?;
        Ok((key.is_some() || x509.is_some()).then_some(Self { key, x509 }))
    }
}
