//! `nodeforge push REGISTRY/REPOSITORY`: each node's current image to an OCI registry, as the
//! artifact `oci::image_blobs` and `oci::image_manifest` describe. A blob the repository has is
//! not sent again (HEAD first; mounted from `--mount-from` repositories where the registry can),
//! so six nodes send their shared payload once; each node's manifest is tagged with the node's
//! name, `<node>-gen<N>` and the image id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::generations;
use crate::hash::Sha256;
use crate::layout::{OutDir, IMAGE_RECORD};
use crate::oci::client::{ClientOptions, Registry, Upload};
use crate::oci::{self, BlobKind, Digested, Reference};
use crate::ops::error::Error;
use crate::ops::steps::images::recorded_manifest;
use crate::ops::steps::materialize::materialize;
use crate::ops::steps::nodes::KnownNodes;
use crate::progress::Unit;
use crate::verified::VerifiedStats;

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub manifest: PathBuf,
    pub out: PathBuf,
    /// `REGISTRY/REPOSITORY`.
    pub target: String,
    /// The nodes to push (none: every node with a current image).
    pub nodes: Vec<String>,
    /// Repositories of the same registry to mount blobs from before uploading them.
    pub mount_from: Vec<String>,
    pub client: ClientOptions,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
}

/// How a blob got where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobStatus {
    /// push: its bytes were sent.
    Uploaded,
    /// push: the repository had it; pull: the host had it (its layer was in `out/layers/`).
    Present,
    /// push: the registry mounted it from another repository.
    Mounted,
    /// pull: its bytes were received.
    Downloaded,
    /// pull: part of it was there from an interrupted pull; the rest was received.
    Resumed,
}

/// One blob of an image, pushed or pulled.
#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub kind: BlobKind,
    /// The layer it belongs to (none for the image record).
    pub layer_id: Option<String>,
    pub status: BlobStatus,
    /// Bytes moved over the network for it.
    pub transferred: u64,
}

impl BlobReport {
    pub(crate) fn new(d: &Digested, status: BlobStatus, transferred: u64) -> Self {
        Self {
            digest: format!("sha256:{}", d.digest),
            size: d.size,
            media_type: d.blob.media_type.to_string(),
            kind: d.blob.kind,
            layer_id: d.blob.layer_id.clone(),
            status,
            transferred,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodePush {
    pub node: String,
    pub image_id: String,
    pub generation: u32,
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// `REGISTRY/REPOSITORY@sha256:<hex>`: what a host pulls to get exactly this image.
    pub reference: String,
    pub tags: Vec<String>,
    pub blobs: Vec<BlobReport>,
    /// Bytes sent for this node: its blobs' and its manifest (once per tag).
    pub bytes_sent: u64,
    /// Its attestation files (signatures, SBOM, provenance), pushed as a referrer of the
    /// manifest; none when the image has none.
    pub attestations: Option<super::referrers::AttestationPush>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub registry: String,
    pub repository: String,
    pub nodes: Vec<NodePush>,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    pub blobs_mounted: usize,
    /// Blob bytes sent (manifests not counted).
    pub bytes_uploaded: u64,
    /// Blobs whose sha256 was remembered (`out/verified-v1.json`) or hashed by reading them.
    pub verified: VerifiedStats,
}

/// The nodes to push or export: those named (checked), or every node with a current image.
pub(crate) fn nodes_with_images(
    manifest: &std::path::Path,
    out: &std::path::Path,
    named: &[String],
) -> Result<Vec<String>, Error> {
    let known = KnownNodes::read(manifest, out);
    let nodes: Vec<String> = if named.is_empty() {
        generations::nodes(out)
            .into_iter()
            .filter(|n| generations::current(out, n).is_some())
            .collect()
    } else {
        for n in named {
            known.check(n)?;
        }
        named.to_vec()
    };
    if nodes.is_empty() {
        return Err(Error::Usage(format!(
            "no node has an image in {}: run `nodeforge build` (or `nodeforge pull`) first",
            out.display()
        )));
    }
    Ok(nodes)
}

/// A node's current image, its files in place, with the blobs it consists of (digested) and the
/// lock id and generation it was recorded with.
pub(crate) struct LocalImage {
    pub node: String,
    pub generation: u32,
    pub lock_id: String,
    pub record: crate::image::ImageManifest,
    pub blobs: Vec<(Digested, PathBuf)>,
    /// Its attestation files, scanned for private keys before anything is sent.
    pub attestations: Vec<(crate::oci::referrers::AttestationFile, PathBuf)>,
    /// The whole (format-2) record, the blob sent as the image's config, written out for the
    /// send: `out/` keeps records without their entries. Removed when this is dropped.
    _record_file: tempfile::TempDir,
}

/// The current image of each of `nodes`, written again from the store if gc collected its
/// files, each blob hashed once however many nodes share it, and not at all when an earlier run
/// hashed the same file (`out/verified-v1.json`: its stat key has not moved). Also says how many
/// blobs' digests were remembered and how many were hashed.
pub(crate) fn local_images(
    out: &OutDir,
    nodes: &[String],
) -> Result<(Vec<LocalImage>, VerifiedStats), Error> {
    let store = crate::ops::steps::open_store(out)?;
    let cache = crate::ops::steps::attestations::DigestCache::remembering(out);
    let verified = cache.verified();
    let mut hashed: BTreeMap<PathBuf, (Sha256, u64)> = BTreeMap::new();
    let mut images = Vec::new();
    for node in nodes {
        let cur = generations::current(out.root(), node)
            .ok_or_else(|| generations::GenerationError::NoGenerations { node: node.clone() })?;
        let gens = generations::list(out.root(), node)?;
        let g = gens
            .iter()
            .find(|g| g.number == cur)
            .ok_or_else(|| generations::GenerationError::NoGenerations { node: node.clone() })?;
        let m = recorded_manifest(out.root(), node, g)?;
        let (_, full, _) = materialize(out, &store, &m)?;
        // What is sent is checked first: each layer against what its entries make from the
        // store (or, pulled here, against the root hash its record pins), whatever a no-op
        // `build` said of it.
        crate::ops::steps::attestations::check_layers(
            out,
            &store,
            &full,
            &cache,
            crate::ops::steps::attestations::Vouch::Publish,
        )?;
        // The record as registries carry it: whole, whatever form `out/` keeps it in.
        let record_bytes = full.to_json();
        // Beside the images, or (a read-only out/) in the system's temporary directory.
        let record_file = crate::fsutil::temp_dir_in(&out.images())
            .or_else(|_| crate::fsutil::temp_dir_in(&std::env::temp_dir()))?;
        let record_path = record_file.path().join(IMAGE_RECORD);
        crate::fsutil::write_new(&record_path, &record_bytes, 0o444)?;
        hashed.insert(
            record_path.clone(),
            (Sha256::of(&record_bytes), record_bytes.len() as u64),
        );
        let mut blobs = Vec::new();
        for blob in oci::image_blobs(&full)? {
            let path = match (&blob.kind, &blob.layer_id) {
                (BlobKind::Record, _) => record_path.clone(),
                (_, Some(id)) => out.layer(id).join(&blob.file_name),
                (_, None) => {
                    return Err(Error::Internal(format!(
                        "blob {} of image {} has no layer",
                        blob.file_name, full.id
                    )))
                }
            };
            let (digest, size) = match hashed.get(&path) {
                Some(h) => *h,
                None => {
                    let h = verified
                        .sha256_of(&path)
                        .map_err(|e| crate::fsutil::FsError::new("cannot read", &path, e))?;
                    hashed.insert(path.clone(), h);
                    h
                }
            };
            blobs.push((Digested { blob, digest, size }, path));
        }
        let attestations = super::referrers::local(out, &full.id)?;
        images.push(LocalImage {
            node: node.clone(),
            generation: g.number,
            lock_id: g.lock_id.clone(),
            record: full,
            blobs,
            attestations,
            _record_file: record_file,
        });
    }
    // A record not written costs only hashing again next time.
    cache.save();
    Ok((images, cache.stats()))
}

pub fn push(opts: &PushOptions) -> Result<PushReport, Error> {
    let target = Reference::parse(&opts.target)?;
    if target.tag.is_some() || target.digest.is_some() {
        return Err(Error::Usage(format!(
            "push to `{}` without a tag or digest: each node's image is tagged with the node's name, <node>-gen<N> and its image id",
            target.name()
        )));
    }
    let nodes = nodes_with_images(&opts.manifest, &opts.out, &opts.nodes)?;
    let out = OutDir::new(&opts.out);
    let (images, verified) = local_images(&out, &nodes)?;
    let registry = Registry::new(&target.registry, &opts.client)?;
    let repo = target.repository.as_str();
    let mut report = PushReport {
        registry: target.registry.clone(),
        repository: target.repository.clone(),
        nodes: Vec::new(),
        blobs_uploaded: 0,
        blobs_present: 0,
        blobs_mounted: 0,
        bytes_uploaded: 0,
        verified,
    };
    // Blobs this run has put in the repository already.
    let mut done: BTreeSet<Sha256> = BTreeSet::new();
    for image in images {
        let mut blobs = Vec::new();
        let mut bytes_sent = 0;
        for (d, path) in &image.blobs {
            let status = if done.contains(&d.digest) || registry.has_blob(repo, &d.digest)? {
                BlobStatus::Present
            } else {
                let mut status = None;
                for from in &opts.mount_from {
                    let bar = crate::progress::Progress::hidden();
                    if registry.put_blob(repo, &d.digest, path, d.size, Some(from), &bar)?
                        == Upload::Mounted
                    {
                        status = Some(BlobStatus::Mounted);
                        break;
                    }
                    // Not mountable from there: the session it opened is left to expire, and
                    // the next source (or the upload) opens its own.
                }
                match status {
                    Some(s) => s,
                    None => {
                        let bar = opts.progress.start(Unit::Bytes, d.size, "push");
                        bar.set_message(&format!("{} {}", image.node, d.blob.file_name));
                        let r = registry.put_blob(repo, &d.digest, path, d.size, None, &bar);
                        bar.finish();
                        r?;
                        BlobStatus::Uploaded
                    }
                }
            };
            let transferred = if status == BlobStatus::Uploaded {
                d.size
            } else {
                0
            };
            match status {
                BlobStatus::Uploaded => report.blobs_uploaded += 1,
                BlobStatus::Mounted => report.blobs_mounted += 1,
                _ => report.blobs_present += 1,
            }
            report.bytes_uploaded += transferred;
            bytes_sent += transferred;
            done.insert(d.digest);
            blobs.push(BlobReport::new(d, status, transferred));
        }
        let digested: Vec<Digested> = image.blobs.iter().map(|(d, _)| d.clone()).collect();
        let manifest = oci::image_manifest(&image.record, &image.lock_id, &digested)?;
        let digest = Sha256::of(&manifest);
        let tags = oci::tags_for(&image.node, image.generation, &image.record.id);
        for tag in &tags {
            if !oci::valid_tag(tag) {
                return Err(Error::Usage(format!(
                    "node `{}` cannot be a tag in a registry (tags are at most 128 letters, digits, `_`, `.`, `-`)",
                    image.node
                )));
            }
            // A tag that names this manifest already is left alone: a re-push of an unchanged
            // image sends nothing (a HEAD per tag).
            if registry.manifest_digest(repo, tag)? != Some(digest) {
                registry.put_manifest(repo, tag, &manifest)?;
                bytes_sent += manifest.len() as u64;
            }
        }
        let attestations = super::referrers::push(
            &registry,
            repo,
            &image.record.id,
            &digest,
            manifest.len() as u64,
            &image.attestations,
        )?;
        report.nodes.push(NodePush {
            node: image.node,
            image_id: image.record.id.clone(),
            generation: image.generation,
            manifest_digest: format!("sha256:{digest}"),
            reference: format!("{}@sha256:{digest}", target.name()),
            tags,
            blobs,
            bytes_sent,
            attestations,
        });
    }
    Ok(report)
}
