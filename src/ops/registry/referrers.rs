//! An image's attestation files (`out/attestations/<id>/`) travelling with it: pushed to a
//! registry or written to an OCI layout as a referrer of the image manifest
//! (`oci::referrers`), found again by pull and import, checked against trusted keys before a
//! pulled image's layers are put in place, and installed beside the image without overwriting
//! what the host has.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::fsutil::{self, IoContext};
use crate::hash::Sha256;
use crate::image::ImageManifest;
use crate::layout::{Attestation, OutDir, SBOM_FILE};
use crate::oci::client::{Registry, RegistryError, SubjectSupport};
use crate::oci::oci_layout::{IndexEntry, LayoutDir};
use crate::oci::referrers::{
    self, AttestationFile, AttestationKind, Attestations, ATTESTATIONS_ARTIFACT_TYPE, EMPTY_CONFIG,
    INDEX_MEDIA_TYPE, MAX_ATTESTATION_BYTES, MAX_ATTESTATION_TOTAL,
};
use crate::oci::{MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES};
use crate::ops::error::Error;
use crate::trust::TrustedKeys;

/// The kind of attestation file `name` (its media type's), when nodeforge writes files of
/// that name: `layout` spells the names, `oci` the media types.
pub(crate) fn kind_of(name: &str) -> Option<AttestationKind> {
    Some(match Attestation::parse(name)? {
        Attestation::Sbom => AttestationKind::Spdx,
        Attestation::ImageSignature(_) | Attestation::Provenance(_) => AttestationKind::Dsse,
        Attestation::RoothashSignature(_) => AttestationKind::Pkcs7,
    })
}

/// The attestation files of image `id` on this host, with their digests and paths (files of
/// names nodeforge does not write are left out).
pub(crate) fn local(out: &OutDir, id: &str) -> Result<Vec<(AttestationFile, PathBuf)>, Error> {
    let mut v = Vec::new();
    for p in out.attestation_files(id) {
        let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if kind_of(&name).is_none() {
            continue;
        }
        // Published as they are: a private key dropped here (a signing key saved in the wrong
        // place) must not reach a registry or a layout.
        if let Some(offset) = crate::secrets::find_private_key_in_file(&p).at("cannot read", &p)? {
            return Err(Error::PrivateKeyInAttestations {
                image: id.to_string(),
                file: p,
                offset,
            });
        }
        let (digest, size) = Sha256::of_file(&p).at("cannot read", &p)?;
        v.push((AttestationFile { name, digest, size }, p));
    }
    Ok(v)
}

/// How a registry lists an image's referrers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersVia {
    /// Its referrers API (it answered the manifest's push with `OCI-Subject`).
    Api,
    /// The referrers tag `sha256-<hex>` nodeforge keeps (distribution 2.8 and other registries
    /// without the API).
    Tag,
}

/// What push did with an image's attestation files.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationPush {
    /// `sha256:<hex>` of the attestation manifest (a referrer of the image manifest).
    pub manifest_digest: String,
    /// The files it lists, by name.
    pub files: Vec<String>,
    /// Blobs sent now (the files, and the empty config): 0 when pushed before.
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    pub referrers: ReferrersVia,
    /// The referrers tag, when this push added the manifest to it.
    pub referrers_tag_updated: Option<String>,
}

/// Push the attestation files `files` of image `image_id`, whose manifest is `subject`
/// (`subject_size` bytes), as a referrer of it; `None` when it has none.
pub(crate) fn push(
    registry: &Registry,
    repository: &str,
    image_id: &str,
    subject: &Sha256,
    subject_size: u64,
    files: &[(AttestationFile, PathBuf)],
) -> Result<Option<AttestationPush>, Error> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut report = AttestationPush {
        manifest_digest: String::new(),
        files: files.iter().map(|(f, _)| f.name.clone()).collect(),
        blobs_uploaded: 0,
        bytes_uploaded: 0,
        referrers: ReferrersVia::Api,
        referrers_tag_updated: None,
    };
    let mut blobs: Vec<Vec<u8>> = vec![EMPTY_CONFIG.to_vec()];
    for (f, p) in files {
        let bytes = std::fs::read(p).at("cannot read", p)?;
        if Sha256::of(&bytes) != f.digest {
            return Err(Error::ChangedWhileSending {
                path: p.clone(),
                doing: "pushed",
                again: "push",
            });
        }
        blobs.push(bytes);
    }
    for b in &blobs {
        if registry.put_blob_bytes(repository, b)? {
            report.blobs_uploaded += 1;
            report.bytes_uploaded += b.len() as u64;
        }
    }
    let list: Vec<AttestationFile> = files.iter().map(|(f, _)| f.clone()).collect();
    let manifest =
        referrers::attestation_manifest(image_id, subject, subject_size, &list, &kind_of)?;
    let digest = Sha256::of(&manifest);
    report.manifest_digest = format!("sha256:{digest}");
    let support = registry.put_manifest_as(
        repository,
        &format!("sha256:{digest}"),
        MANIFEST_MEDIA_TYPE,
        &manifest,
    )?;
    if support == SubjectSupport::Fallback {
        report.referrers = ReferrersVia::Tag;
        let tag = referrers::referrers_tag(subject);
        let old = match registry.get_manifest(repository, &tag) {
            Ok((bytes, _)) => Some(bytes),
            Err(RegistryError::ManifestUnknown { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(index) =
            referrers::add_referrer(old.as_deref(), image_id, &digest, manifest.len() as u64)?
        {
            registry.put_manifest_as(repository, &tag, INDEX_MEDIA_TYPE, &index)?;
            report.referrers_tag_updated = Some(tag);
        }
    }
    Ok(Some(report))
}

/// Write the attestation manifest of image `image_id` (manifest `subject`, `subject_size`
/// bytes) and its files into an OCI layout; the index entry that lists it, and how many blobs
/// and bytes were written. `None` when the image has no attestation files.
pub(crate) fn export(
    layout: &LayoutDir,
    image_id: &str,
    subject: &Sha256,
    subject_size: u64,
    files: &[(AttestationFile, PathBuf)],
) -> Result<Option<(IndexEntry, usize, u64)>, Error> {
    if files.is_empty() {
        return Ok(None);
    }
    let (mut written, mut bytes) = (0, 0);
    let mut put = |digest: &Sha256, data: &[u8]| -> Result<(), Error> {
        let dest = layout.blob(digest);
        if !dest.is_file() {
            fsutil::write_atomic(&dest, data, 0o444)?;
            written += 1;
            bytes += data.len() as u64;
        }
        Ok(())
    };
    put(&Sha256::of(EMPTY_CONFIG), EMPTY_CONFIG)?;
    for (f, p) in files {
        let data = std::fs::read(p).at("cannot read", p)?;
        if Sha256::of(&data) != f.digest {
            return Err(Error::ChangedWhileSending {
                path: p.clone(),
                doing: "exported",
                again: "export",
            });
        }
        put(&f.digest, &data)?;
    }
    let list: Vec<AttestationFile> = files.iter().map(|(f, _)| f.clone()).collect();
    let manifest =
        referrers::attestation_manifest(image_id, subject, subject_size, &list, &kind_of)?;
    let digest = Sha256::of(&manifest);
    put(&digest, &manifest)?;
    Ok(Some((
        IndexEntry {
            tag: String::new(),
            digest,
            size: manifest.len() as u64,
            node: None,
            image_id: Some(image_id.to_string()),
            artifact_type: Some(ATTESTATIONS_ARTIFACT_TYPE.to_string()),
        },
        written,
        bytes,
    )))
}

/// The most attestation manifests of one image a pull reads (the newest).
const MAX_REFERRERS: usize = 64;

/// The most attestation files of one image a pull or import takes, over all its manifests.
const MAX_ATTESTATION_FILES: usize = 128;

/// An image's attestation files as fetched from a registry or layout, each checked against its
/// digest.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// The attestation manifests found (`sha256:<hex>`), newest first.
    pub manifests: Vec<String>,
    /// The files by name, merged over the manifests.
    pub files: BTreeMap<String, (AttestationFile, Vec<u8>)>,
    /// Names two manifests gave other bytes (the newest manifest's were taken).
    pub conflicts: Vec<String>,
}

/// Where the attestation manifests and files of an image come from.
pub(crate) trait ManifestSource {
    /// The referrers of manifest `subject` nodeforge wrote, oldest first.
    fn referrers(&self, subject: &Sha256) -> Result<Vec<Sha256>, Error>;
    /// Manifest `digest`, checked against its digest.
    fn manifest(&self, digest: &Sha256) -> Result<Vec<u8>, Error>;
    /// Blob `digest`, whole (at most `limit` bytes), checked against its digest.
    fn blob(&self, digest: &Sha256, limit: u64) -> Result<Vec<u8>, Error>;
}

/// A registry's repository.
pub(crate) struct RegistrySource<'a> {
    pub registry: &'a Registry,
    pub repository: &'a str,
}

impl ManifestSource for RegistrySource<'_> {
    fn referrers(&self, subject: &Sha256) -> Result<Vec<Sha256>, Error> {
        let what = format!("{}/{}", self.registry.host, self.repository);
        let list = match self.registry.referrers(self.repository, subject)? {
            Some(b) => b,
            None => match self
                .registry
                .get_manifest(self.repository, &referrers::referrers_tag(subject))
            {
                Ok((b, _)) => b,
                Err(RegistryError::ManifestUnknown { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            },
        };
        Ok(referrers::read_referrers(&what, &list)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.artifact_type.as_deref() == Some(ATTESTATIONS_ARTIFACT_TYPE))
            .map(|r| r.digest)
            .collect())
    }

    fn manifest(&self, digest: &Sha256) -> Result<Vec<u8>, Error> {
        Ok(self
            .registry
            .get_manifest(self.repository, &format!("sha256:{digest}"))?
            .0)
    }

    fn blob(&self, digest: &Sha256, limit: u64) -> Result<Vec<u8>, Error> {
        Ok(self.registry.get_blob(self.repository, digest, limit)?)
    }
}

/// Fetch the attestation files of image `m`, whose manifest is `subject`, from `source`
/// (`what` names it in errors).
pub(crate) fn fetch(
    source: &dyn ManifestSource,
    what: &str,
    m: &ImageManifest,
    subject: &Sha256,
) -> Result<Fetched, Error> {
    let mut lists: Vec<Attestations> = Vec::new();
    let mut fetched = Fetched::default();
    let mut digests = source.referrers(subject)?;
    digests.reverse();
    digests.dedup();
    // The newest ones: a registry listing thousands would otherwise have each fetched.
    digests.truncate(MAX_REFERRERS);
    for d in digests {
        let bytes = source.manifest(&d)?;
        let a = referrers::read_attestations(what, &bytes, &kind_of)?;
        // A referrer of another manifest, or of another image, vouches for nothing here.
        if a.subject != *subject || a.image_id.as_deref().is_some_and(|i| i != m.id) {
            continue;
        }
        fetched.manifests.push(format!("sha256:{d}"));
        lists.push(a);
    }
    let (files, conflicts) = referrers::merge(&lists);
    if files.len() > MAX_ATTESTATION_FILES {
        return Err(crate::oci::OciError::NotNodeImage {
            what: what.to_string(),
            reason: format!(
                "its attestation manifests list {} files, more than the {MAX_ATTESTATION_FILES} nodeforge takes for one image (an SBOM, and a signature and provenance per key, a signed root hash per layer)",
                files.len()
            ),
        }
        .into());
    }
    let total = files.iter().map(|f| f.size).fold(0, u64::saturating_add);
    if total > MAX_ATTESTATION_TOTAL {
        return Err(crate::oci::OciError::NotNodeImage {
            what: what.to_string(),
            reason: format!(
                "its attestation manifests list {} files of {total} bytes in all, more than the {MAX_ATTESTATION_TOTAL} bytes nodeforge takes for one image",
                files.len()
            ),
        }
        .into());
    }
    fetched.conflicts = conflicts;
    for f in files {
        let bytes = source.blob(&f.digest, MAX_ATTESTATION_BYTES.min(f.size))?;
        fetched.files.insert(f.name.clone(), (f, bytes));
    }
    Ok(fetched)
}

/// Attestation files to write: where, their bytes, and whether they replace the host's file
/// of that name (which a trusted signature did not cover; see [`check`]).
pub(crate) type ToInstall = Vec<(PathBuf, Vec<u8>, bool)>;

/// Reads a blob of a layout, whole (at most so many bytes), checked against its digest.
pub(crate) type ReadBlob<'a> = dyn Fn(&Sha256, u64) -> Result<Vec<u8>, Error> + 'a;

/// What became of a pulled attestation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileStatus {
    /// Written beside the image.
    Installed,
    /// The host had it, byte for byte.
    Present,
    /// The host has a file of that name with other bytes: kept, the pulled one left out.
    KeptLocal,
    /// The host had a file of that name with other bytes, which no trusted signature covered;
    /// the pulled one (covered by a trusted key's signature) replaced it.
    Replaced,
}

#[derive(Debug, Clone, Serialize)]
pub struct PulledFile {
    pub name: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    pub status: FileStatus,
}

/// An image's attestations as a pull or import found, checked and installed them.
#[derive(Debug, Clone, Serialize)]
pub struct PulledAttestations {
    /// The attestation manifests found (`sha256:<hex>`), newest first.
    pub manifests: Vec<String>,
    pub files: Vec<PulledFile>,
    /// Names two attestation manifests gave other bytes (the newest one's were taken).
    pub conflicts: Vec<String>,
    /// Key ids of the image signatures over exactly this image (checked against trusted keys
    /// only when `trust_checked`).
    pub signature_keys: Vec<String>,
    /// Trusted keys were given, and the image was accepted by them.
    pub trust_checked: bool,
    /// The trusted keys with a valid signature on it (empty without trusted keys).
    pub signed_by: Vec<String>,
    /// What orders it among its node's images, as a trusted key signed it (null without
    /// trusted keys, or when the signature predates it).
    pub freshness: Option<crate::trust::Freshness>,
}

/// The trust check of a pulled image, before any of its layers is put in place: with trusted
/// keys, one of them must have signed exactly image `m` (its id and layers' root hashes, and the
/// SBOM it names), judged by the attestation files the host will have (its own, and the pulled
/// ones of names it lacks). Returns what to install and what to report.
pub(crate) fn check(
    out: &OutDir,
    what: &str,
    m: &ImageManifest,
    fetched: &Fetched,
    keys: &TrustedKeys,
) -> Result<(PulledAttestations, ToInstall), Error> {
    let mut files = Vec::new();
    let mut install = Vec::new();
    // What the attestation directory will hold: the host's files win.
    let mut effective: BTreeMap<String, (PathBuf, Vec<u8>)> = BTreeMap::new();
    for p in out.attestation_files(&m.id) {
        if let (Some(name), Ok(bytes)) = (
            p.file_name().and_then(|n| n.to_str()).map(str::to_string),
            std::fs::read(&p),
        ) {
            effective.insert(name, (p, bytes));
        }
    }
    for (name, (f, bytes)) in &fetched.files {
        let path = out.attestation_file(&m.id, name).ok_or_else(|| {
            Error::Internal(format!("attestation file name `{name}` passed unchecked"))
        })?;
        let status = match effective.get(name) {
            Some((_, have)) if have == bytes => FileStatus::Present,
            Some(_) => FileStatus::KeptLocal,
            None => {
                effective.insert(name.clone(), (path.clone(), bytes.clone()));
                install.push((path, bytes.clone(), false));
                FileStatus::Installed
            }
        };
        files.push(PulledFile {
            name: name.clone(),
            digest: format!("sha256:{}", f.digest),
            size: f.size,
            status,
        });
    }
    let judge = |effective: &BTreeMap<String, (PathBuf, Vec<u8>)>| {
        let envelopes: Vec<(PathBuf, Vec<u8>)> = effective
            .iter()
            .filter(|(n, _)| crate::layout::is_image_signature(n))
            .map(|(_, (p, b))| (p.clone(), b.clone()))
            .collect();
        let sbom = effective
            .get(SBOM_FILE)
            .map(|(_, b)| Sha256::of(b).to_hex());
        crate::ops::steps::attestations::signature_status(m, &envelopes, sbom.as_deref(), keys)
    };
    let mut status = judge(&effective);
    // The host's copy wins only when it is itself trusted: a file an unsigned pull or import
    // put here (a junk SBOM) must not make every later genuine, signed copy fail. When the
    // host's files do not make the image trusted and the pulled ones do, the pulled ones
    // replace them.
    if !keys.is_empty() && !status.trusted() {
        let mut theirs = effective.clone();
        let mut replaced = Vec::new();
        for (name, (_, bytes)) in &fetched.files {
            if let Some((path, have)) = theirs.get_mut(name) {
                if have != bytes {
                    have.clone_from(bytes);
                    replaced.push((name.clone(), path.clone(), bytes.clone()));
                }
            }
        }
        let with_theirs = judge(&theirs);
        if !replaced.is_empty() && with_theirs.trusted() {
            status = with_theirs;
            for (name, path, bytes) in replaced {
                if let Some(f) = files.iter_mut().find(|f| f.name == name) {
                    f.status = FileStatus::Replaced;
                }
                install.push((path, bytes, true));
            }
        }
    }
    let mut signature_keys: Vec<String> = status
        .signatures
        .iter()
        .filter(|c| c.mismatch.is_none())
        .flat_map(|c| c.keyids.iter().cloned())
        .collect();
    signature_keys.sort();
    signature_keys.dedup();
    if !keys.is_empty() && !status.trusted() {
        return Err(Error::UntrustedCopy {
            what: what.to_string(),
            image: m.id.clone(),
            reason: status.why_not(),
            keys: keys.keys.iter().map(|k| k.keyid().to_string()).collect(),
        });
    }
    let freshness = crate::ops::steps::attestations::trusted_freshness(&status);
    let signed_by = status.signed_by;
    Ok((
        PulledAttestations {
            manifests: fetched.manifests.clone(),
            files,
            conflicts: fetched.conflicts.clone(),
            signature_keys,
            trust_checked: !keys.is_empty(),
            signed_by,
            freshness,
        },
        install,
    ))
}

/// Write the checked attestation files beside their image, each atomically and (unless it
/// replaces an untrusted file, see [`check`]) never over a file of that name: one that appeared since the check (another pull, a `sign`) is left as it
/// is, in one step (no window between looking and renaming in which it could be replaced).
pub(crate) fn install(files: &ToInstall) -> Result<(), Error> {
    for (path, bytes, replace) in files {
        // Temporary files wait in attestations/ itself, where a killed run's are cleaned.
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let scratch = dir.parent().unwrap_or(dir);
        if *replace {
            fsutil::write_atomic_via(scratch, path, bytes, 0o644)?;
            continue;
        }
        fsutil::create_dir_all(dir)?;
        let mut tmp = fsutil::AtomicFile::new_in(scratch)?;
        std::io::Write::write_all(&mut tmp, bytes).at("cannot write", tmp.path())?;
        tmp.commit_new(path, 0o644)?;
    }
    Ok(())
}

/// An OCI layout as a source of attestations: the manifests its `index.json` lists with
/// nodeforge's attestations artifactType.
pub(crate) struct LayoutSource<'a> {
    pub index: &'a [IndexEntry],
    /// A blob of the layout, whole, checked against its digest.
    pub read: &'a ReadBlob<'a>,
}

impl ManifestSource for LayoutSource<'_> {
    fn referrers(&self, _subject: &Sha256) -> Result<Vec<Sha256>, Error> {
        // Which of them refers to the subject is in each manifest: `fetch` reads them.
        Ok(self
            .index
            .iter()
            .filter(|e| e.artifact_type.as_deref() == Some(ATTESTATIONS_ARTIFACT_TYPE))
            .map(|e| e.digest)
            .collect())
    }

    fn manifest(&self, digest: &Sha256) -> Result<Vec<u8>, Error> {
        (self.read)(digest, MAX_MANIFEST_BYTES)
    }

    fn blob(&self, digest: &Sha256, limit: u64) -> Result<Vec<u8>, Error> {
        (self.read)(digest, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry whose one attestation manifest lists `files` (names and sizes); counts the
    /// blobs asked for.
    struct Listing {
        manifest: Vec<u8>,
        blobs_asked: std::cell::Cell<usize>,
    }

    impl ManifestSource for Listing {
        fn referrers(&self, _subject: &Sha256) -> Result<Vec<Sha256>, Error> {
            Ok(vec![Sha256::of(&self.manifest)])
        }
        fn manifest(&self, _digest: &Sha256) -> Result<Vec<u8>, Error> {
            Ok(self.manifest.clone())
        }
        fn blob(&self, _digest: &Sha256, _limit: u64) -> Result<Vec<u8>, Error> {
            self.blobs_asked.set(self.blobs_asked.get() + 1);
            Err(Error::Usage("no blobs here".into()))
        }
    }

    /// An image with no layers, and the digest of a manifest its attestations refer to.
    fn image_and_subject() -> (ImageManifest, Sha256) {
        let m = ImageManifest {
            format: crate::image::IMAGE_FORMAT,
            id: "a".repeat(64),
            node: "worker1".into(),
            arch: "x86_64".into(),
            layers: Vec::new(),
            entries: Vec::new(),
            provenance: BTreeMap::new(),
            verity: None,
        };
        (m, Sha256::of(b"image manifest"))
    }

    impl Listing {
        /// A source listing `files` as `m`'s attestations, counting the blobs asked for.
        fn of(m: &ImageManifest, subject: &Sha256, files: &[AttestationFile]) -> Self {
            Listing {
                manifest: referrers::attestation_manifest(&m.id, subject, 100, files, &kind_of)
                    .expect("manifest"),
                blobs_asked: std::cell::Cell::new(0),
            }
        }
    }

    #[test]
    fn attestations_too_large_in_all_are_refused_before_any_is_downloaded() {
        let (m, subject) = image_and_subject();
        // Five files, each within the per-file limit, together over the total.
        let files: Vec<AttestationFile> = (0..5)
            .map(|i| AttestationFile {
                name: format!("image.k{i}.dsse.json"),
                digest: Sha256::of(format!("{i}").as_bytes()),
                size: MAX_ATTESTATION_BYTES,
            })
            .collect();
        let source = Listing::of(&m, &subject, &files);
        let err = fetch(&source, "reg/k:worker1", &m, &subject)
            .expect_err("too large")
            .to_string();
        assert!(err.contains("5 files of 335544320 bytes in all"), "{err}");
        assert_eq!(source.blobs_asked.get(), 0);
    }

    /// Issue 25: 8 manifests of 1024 files each installed 8,171 junk files. The files of one
    /// image are capped in number (as in bytes) before any is downloaded.
    #[test]
    fn attestation_files_per_image_are_capped_in_number_before_any_is_downloaded() {
        let (m, subject) = image_and_subject();
        let files: Vec<AttestationFile> = (0..1024)
            .map(|i| AttestationFile {
                name: format!("image.k{i}.dsse.json"),
                digest: Sha256::of(format!("{i}").as_bytes()),
                size: 1,
            })
            .collect();
        let source = Listing::of(&m, &subject, &files);
        let err = fetch(&source, "reg/k:worker1", &m, &subject)
            .expect_err("too many")
            .to_string();
        assert!(
            err.contains("list 1024 files, more than the 128 nodeforge takes for one image"),
            "{err}"
        );
        assert_eq!(source.blobs_asked.get(), 0);
    }
}
