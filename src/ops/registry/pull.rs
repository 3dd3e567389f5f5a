//! `nodeforge pull REF`: a node image from an OCI registry into `out/`, on a host that has no
//! manifest, lockfile or store of its own. The tag resolves to a manifest digest; the record
//! (the manifest's config) is checked against its id; each layer the host lacks is downloaded
//! blob by blob, each blob verified by its digest (kept in `out/pulls/` when interrupted, resumed
//! with `Range`), and checked against the root hash the record pins before it is put in
//! `out/layers/`. Then [`verify_pulled`] checks the whole image, and only then is a generation
//! recorded and `current` switched.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::push::{BlobReport, BlobStatus};
use super::referrers::{self, Fetched, PulledAttestations, RegistrySource};
use crate::fsutil;
use crate::generations;
use crate::image::verity::StreamingBlocks;
use crate::image::{self, ImageManifest, LayerRecord, LayerRef, LAYER_FORMAT};
use crate::layout::{self, OutDir, IMAGE_RECORD, LAYER_RECORD};
use crate::oci::client::{BlobObserver, ClientOptions, Registry, Transfer};
use crate::oci::{self, Digested, NodeArtifact, OciError, Reference};
use crate::ops::error::Error;
use crate::ops::steps::materialize::{
    check_layer_verity, check_streamed_verity, materialize, read_image_manifest, read_layer_record,
    usable_layer, verity_params,
};
use crate::ops::steps::parallel_map;
use crate::progress::{Progress, Reporting, Unit};
use crate::trust::TrustedKeys;

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub out: PathBuf,
    /// `REGISTRY/REPOSITORY:TAG` or `REGISTRY/REPOSITORY@sha256:…`.
    pub reference: String,
    pub client: ClientOptions,
    /// Trusted keys: with any, the image must be signed by one of them.
    pub keys: TrustedKeys,
    /// The node the image must be (`--node`); without it, the tag says (`<node>`,
    /// `<node>-gen<N>`; an image id or a digest names the image itself).
    pub node: Option<String>,
    /// Switch to an image older than the node's current one (`--allow-downgrade`).
    pub allow_downgrade: bool,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
    /// Blobs downloaded at a time (`--jobs`).
    pub jobs: usize,
}

/// Blobs a pull or an import moves at a time, unless told otherwise.
pub const DEFAULT_JOBS: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub registry: String,
    pub repository: String,
    /// What was asked for (the tag, or the digest).
    pub reference: String,
    /// `sha256:<hex>` of the manifest the reference resolved to.
    pub manifest_digest: String,
    pub node: String,
    pub image_id: String,
    pub generation: u32,
    /// A generation was recorded and `current` switched to it (false: the node was on this
    /// image already).
    pub switched: bool,
    pub blobs: Vec<BlobReport>,
    /// Blob bytes received (the manifest not counted).
    pub bytes_downloaded: u64,
    /// The manifest's size.
    pub manifest_bytes: u64,
    /// Its attestation files (referrers of its manifest), checked and installed.
    pub attestations: PulledAttestations,
}

/// The image record from a manifest's config: checked against its id, the id the manifest
/// says, the tag when the tag is an image id, and a node name that is safe as a path.
pub(crate) fn read_record(
    what: &str,
    bytes: &[u8],
    art: &NodeArtifact,
    tag: Option<&str>,
) -> Result<ImageManifest, Error> {
    let wrong = |reason: String| OciError::NotNodeImage {
        what: what.to_string(),
        reason,
    };
    let m: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| wrong(format!("its config is not an image record: {e}")))?;
    m.check()
        .map_err(|e| wrong(format!("its image record is not what its id says: {e}")))?;
    if art.image_id() != Some(m.id.as_str()) {
        return Err(wrong(format!(
            "its manifest says image {}, its record is image {}",
            art.image_id().unwrap_or("(none)"),
            m.id
        ))
        .into());
    }
    if let Some(t) = tag.filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())) {
        if t != m.id {
            return Err(wrong(format!("tag {t} holds image {}", m.id)).into());
        }
    }
    crate::manifest::NodeName::new(&m.node).map_err(|e| wrong(format!("its node name: {e}")))?;
    // Recorded in the node's generation and shown by `history`: nothing but what nodeforge
    // pushes (a lockfile's id, or `unknown` for an image pulled without one).
    if let Some(id) = art.lock_id().filter(|id| !valid_lock_id(id)) {
        let shown: String = id.escape_debug().take(80).collect();
        return Err(wrong(format!(
            "its manifest names lock id `{shown}`, not blake3:<64 hex digits>"
        ))
        .into());
    }
    Ok(m)
}

/// A lock id as generations record it: `blake3:<64 lowercase hex>`, or `unknown`.
fn valid_lock_id(id: &str) -> bool {
    id == UNKNOWN_LOCK_ID
        || id.strip_prefix("blake3:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The lock id recorded for an image whose manifest names none.
const UNKNOWN_LOCK_ID: &str = "unknown";

/// The record `out/layers/<id>/layer.json` holds for layer `l` of image `m`: exactly what
/// `build` writes, so a pulled layer is the builder's, byte for byte.
fn layer_record(m: &ImageManifest, l: &LayerRef) -> Result<LayerRecord, Error> {
    let verity = l.verity.clone().ok_or_else(|| OciError::NotNodeImage {
        what: format!("image {}", m.id),
        reason: format!("its record pins no root hash for its {} layer", l.role),
    })?;
    Ok(LayerRecord {
        format: LAYER_FORMAT,
        id: l.id.clone(),
        role: l.role,
        name: l.name.clone(),
        arch: m.arch.clone(),
        entries: image::layer_entries(&m.entries, l.role),
        verity,
    })
}

/// Where the blobs of an image come from: a registry (pull) or an OCI layout (import).
pub(crate) trait BlobSource: Sync {
    /// Put blob `d` into `partial` (resuming what it holds, where the source can), checked
    /// against its digest as its bytes are written, which `observer` sees too (from the first
    /// byte); what moved.
    fn fetch(
        &self,
        d: &Digested,
        partial: &std::path::Path,
        bar: &Progress,
        observer: &mut dyn BlobObserver,
    ) -> Result<Transfer, Error>;

    /// Whether what a failed run left in `out/pulls/` is worth keeping for the next one (a
    /// registry's downloads are resumed; a layout's blobs are copied again, so its copies go).
    fn resumable(&self) -> bool {
        true
    }
}

/// A registry's repository as a blob source (as it is the source of attestations).
impl BlobSource for RegistrySource<'_> {
    fn fetch(
        &self,
        d: &Digested,
        partial: &std::path::Path,
        bar: &Progress,
        observer: &mut dyn BlobObserver,
    ) -> Result<Transfer, Error> {
        Ok(self.registry.download_blob(
            self.repository,
            &d.digest,
            d.size,
            partial,
            bar,
            observer,
        )?)
    }
}

pub fn pull(opts: &PullOptions) -> Result<PullReport, Error> {
    let r = Reference::parse(&opts.reference)?;
    let registry = Registry::new(&r.registry, &opts.client)?;
    let repo = r.repository.as_str();
    let what = format!("{r}");
    let (manifest, manifest_digest) = registry.get_manifest(repo, &r.reference())?;
    let art = oci::read_manifest(&what, &manifest)?;
    // The record of an image this host holds is not downloaded again: the whole record it
    // loads to here is taken when it has the digest and size the manifest names (the id only
    // finds the file).
    let out = OutDir::new(&opts.out);
    let held = art
        .image_id()
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|id| out.image(id).join(IMAGE_RECORD))
        .filter(|p| p.is_file())
        .and_then(|p| read_image_manifest(&out, &p).ok())
        .map(|m| m.to_json())
        .filter(|b| b.len() as u64 == art.config.1 && crate::hash::Sha256::of(b) == art.config.0);
    let record_held = held.is_some();
    let record = match held {
        Some(b) => b,
        None => registry.get_blob(repo, &art.config.0, oci::MAX_CONFIG_BYTES)?,
    };
    let m = read_record(&what, &record, &art, r.tag.as_deref())?;
    // Before anything but the manifest and the record is downloaded.
    check_node(&what, r.tag.as_deref(), opts.node.as_deref(), &m)?;
    let source = RegistrySource {
        registry: &registry,
        repository: repo,
    };
    let attestations = referrers::fetch(&source, &what, &m, &manifest_digest)?;
    let done = install(
        &OutDir::new(&opts.out),
        &what,
        &art,
        &m,
        &source,
        Admission {
            fetched: &attestations,
            keys: &opts.keys,
            allow_downgrade: opts.allow_downgrade,
        },
        Moving {
            progress: opts.progress.clone(),
            jobs: opts.jobs,
        },
    )?;
    let mut done = done;
    if record_held {
        for b in done
            .blobs
            .iter_mut()
            .filter(|b| b.kind == oci::BlobKind::Record)
        {
            b.status = BlobStatus::Present;
            b.transferred = 0;
        }
    }
    Ok(PullReport {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        reference: r.reference(),
        manifest_digest: format!("sha256:{manifest_digest}"),
        node: m.node.clone(),
        image_id: m.id.clone(),
        generation: done.generation,
        switched: done.switched,
        bytes_downloaded: done.blobs.iter().map(|b| b.transferred).sum(),
        blobs: done.blobs,
        manifest_bytes: manifest.len() as u64,
        attestations: done.attestations,
    })
}

/// What decides whether [`install`] takes an image: its fetched attestation files, the trusted
/// keys, and whether it may be older than the node's current image.
pub(crate) struct Admission<'a> {
    pub fetched: &'a Fetched,
    pub keys: &'a TrustedKeys,
    pub allow_downgrade: bool,
}

/// How [`install`] moves blobs: drawing progress or not, and how many at a time.
#[derive(Debug, Clone)]
pub(crate) struct Moving {
    pub progress: Reporting,
    pub jobs: usize,
}

/// What [`install`] did.
pub(crate) struct Installed {
    pub blobs: Vec<BlobReport>,
    pub attestations: PulledAttestations,
    pub generation: u32,
    pub switched: bool,
}

/// Put image `m` (its record already checked, read from `art`'s config) into `out`: its
/// signatures checked against the trusted keys (`trust`: its fetched attestation files and the
/// keys) before anything else, each layer the host lacks fetched from `source` and checked
/// before it is put in place, then [`verify_pulled`], then its attestation files installed, a
/// generation recorded and `current` switched.
pub(crate) fn install(
    out: &OutDir,
    what: &str,
    art: &NodeArtifact,
    m: &ImageManifest,
    source: &dyn BlobSource,
    trust: Admission<'_>,
    moving: Moving,
) -> Result<Installed, Error> {
    let blobs = art.blobs_of(what, m)?;
    // First: an image the trusted keys did not sign gets no layer and no generation; nor does
    // one older than the node's current image.
    let (attestations, attestation_files) =
        referrers::check(out, what, m, trust.fetched, trust.keys)?;
    check_same_record(out, what, m)?;
    check_blob_sizes(what, m, &blobs, trust.keys.is_empty())?;
    if !trust.allow_downgrade {
        check_not_older(out, what, m, attestations.freshness.as_ref(), trust.keys)?;
    }
    // Held (shared) to the end: gc waits for the pull, concurrent pulls and builds do not.
    let store = crate::ops::steps::open_store(out)?;
    fsutil::create_dir_all(&out.pulls())?;
    fsutil::create_dir_all(&out.layers())?;
    let mut checked = BTreeSet::new();
    let wanted = claim_layers(out, what, m, &blobs, trust.keys.is_empty(), &mut checked)?;
    let downloads = download(out, m, &wanted, source, moving);
    if !source.resumable() && downloads.iter().any(Result::is_err) {
        // Nothing of a failed import stays behind, the blobs copied beside the failure included.
        for d in wanted.iter().flatten().flat_map(|w| &w.parts) {
            let _ = std::fs::remove_file(out.pull_partial(&d.digest.to_hex()));
        }
    }
    let mut reports = Vec::new();
    for d in blobs
        .iter()
        .filter(|d| d.blob.kind == oci::BlobKind::Record)
    {
        reports.push(BlobReport::new(d, BlobStatus::Downloaded, d.size));
    }
    // In the image's order, the first failure (of any download, then of any check) decides.
    let mut downloads = downloads.into_iter();
    for (l, want) in m.layers.iter().zip(&wanted) {
        let Some(want) = want else {
            reports.extend(
                blobs
                    .iter()
                    .filter(|d| d.blob.layer_id.as_ref() == Some(&l.id))
                    .map(|d| BlobReport::new(d, BlobStatus::Present, 0)),
            );
            continue;
        };
        let mut level0 = None;
        let mut tree_digest = None;
        // `downloads` holds the wanted layers' parts in this order.
        for (d, got) in want.parts.iter().zip(downloads.by_ref()) {
            let (t, seen) = got?;
            if let Some(seen) = seen {
                level0 = Some(seen);
            }
            if matches!(d.blob.kind, oci::BlobKind::Verity(_)) {
                tree_digest = Some(d.digest);
            }
            let status = if t.resumed_from > 0 {
                BlobStatus::Resumed
            } else {
                BlobStatus::Downloaded
            };
            reports.push(BlobReport::new(d, status, t.received));
        }
        let dir = out.layer(&l.id);
        if dir.exists() {
            fsutil::remove_dir_aside(&dir)?;
        }
        let rec = &want.record;
        let tmp = fsutil::temp_dir_in(&out.layers())?;
        for d in &want.parts {
            fsutil::rename_into(
                &out.pull_partial(&d.digest.to_hex()),
                &tmp.path().join(&d.blob.file_name),
            )?;
        }
        let [_, _, roothash] = layout::layer_files(&l.name);
        fsutil::write_new(
            &tmp.path().join(roothash),
            format!("{}\n", rec.verity.root_hash).as_bytes(),
            0o444,
        )?;
        fsutil::write_new(&tmp.path().join(LAYER_RECORD), &rec.to_json(), 0o444)?;
        // Before it is put in place: its EROFS file is what the record's root hash pins
        // (hashed as it arrived, not read again).
        let fails = match (&want.params, level0, tree_digest) {
            (Ok(params), Some((level0, size)), Some(tree)) => {
                check_streamed_verity(rec, params, level0, size, &tree)
            }
            (Err(e), _, _) => vec![format!("layer {}: its verity parameters: {e}", l.id)],
            // `blobs_of` gives each layer both blobs; read them if that ever changes.
            _ => check_layer_verity(tmp.path(), rec),
        };
        if !fails.is_empty() {
            return Err(Error::PulledLayer {
                reference: what.to_string(),
                layer: l.id.clone(),
                fails,
            });
        }
        fsutil::commit_dir(tmp, &dir, |d| {
            usable_layer(d, &l.name, l.verity.as_ref()).is_some()
        })?;
        checked.insert(l.id.clone());
    }

    verify_pulled(out, what, m, &checked)?;

    referrers::install(&attestation_files)?;
    let (dir, full, _) = materialize(out, &store, m)?;
    let lock_id = art.lock_id().unwrap_or(UNKNOWN_LOCK_ID).to_string();
    let (generation, switched) = generations::record_from(
        out.root(),
        &m.node,
        &m.id,
        &lock_id,
        &full.to_stored_json(),
        Some(&dir.join(IMAGE_RECORD)),
    )?;
    Ok(Installed {
        blobs: reports,
        attestations,
        generation,
        switched,
    })
}

/// A layer this pull downloads: its blobs, the record it gets, its verity parameters, and the
/// lock that makes this process the one downloading it.
struct Wanted<'a> {
    parts: Vec<&'a Digested>,
    record: LayerRecord,
    params: Result<crate::image::verity::VerityParams, String>,
    _lock: std::fs::File,
}

/// For each layer of `m` (in its order), `None` when the host has it (checked against the
/// root hash; added to `checked`), else what to download, holding the layer's pull lock: one
/// process downloads a layer at a time, the others wait and find it in place. Locks are taken
/// in the order of the layers' ids, so that two pulls never wait for each other. A sound layer
/// the host has under another record is refused for an `unsigned` image (the host's copy wins).
fn claim_layers<'a>(
    out: &OutDir,
    what: &str,
    m: &ImageManifest,
    blobs: &'a [Digested],
    unsigned: bool,
    checked: &mut BTreeSet<String>,
) -> Result<Vec<Option<Wanted<'a>>>, Error> {
    let mut order: Vec<usize> = (0..m.layers.len()).collect();
    order.sort_by(|a, b| m.layers[*a].id.cmp(&m.layers[*b].id));
    let mut wanted: Vec<Option<Wanted<'a>>> = (0..m.layers.len()).map(|_| None).collect();
    for i in order {
        let l = &m.layers[i];
        let dir = out.layer(&l.id);
        // A layer the host has is not downloaded again, once it is checked against the root
        // hash; a damaged one is set aside and downloaded.
        let record = layer_record(m, l)?;
        let present = |dir: &std::path::Path| {
            usable_layer(dir, &l.name, l.verity.as_ref())
                .is_some_and(|rec| rec == record && check_layer_verity(dir, &rec).is_empty())
        };
        if present(&dir) {
            checked.insert(l.id.clone());
            continue;
        }
        let lock = fsutil::lock_exclusive(&out.pull_lock(&l.id))?;
        if present(&dir) {
            checked.insert(l.id.clone());
            continue;
        }
        if dir.exists() {
            // A sound layer whose record says something else than this image implies (another
            // arch, other verity parameters) is another image's: an image without a trusted
            // signature does not change it (the host's copy wins); one a trusted key signed
            // does, its record being vouched for.
            let other = usable_layer(&dir, &l.name, None)
                .filter(|rec| *rec != record && check_layer_verity(&dir, rec).is_empty());
            if let (Some(rec), true) = (other, unsigned) {
                return Err(Error::LayerConflict {
                    what: what.to_string(),
                    layer: l.id.clone(),
                    why: format!(
                        "it says arch {} and root hash {}, image {}'s record implies arch {} and root hash {}",
                        crate::term::escape(&rec.arch),
                        rec.verity.root_hash,
                        m.id,
                        crate::term::escape(&record.arch),
                        record.verity.root_hash
                    ),
                });
            }
        }
        let params = verity_params(&record.verity, &record.id).map_err(|e| e.to_string());
        wanted[i] = Some(Wanted {
            parts: blobs
                .iter()
                .filter(|d| d.blob.layer_id.as_ref() == Some(&l.id))
                .collect(),
            record,
            params,
            _lock: lock,
        });
    }
    Ok(wanted)
}

/// What one download gave: what moved, and for a layer's EROFS file the digests of its
/// blocks (level 0 of its dm-verity tree) and its size.
type Downloaded = Result<(Transfer, Option<(Vec<[u8; 32]>, u64)>), Error>;

/// Download every blob of the `wanted` layers into `out/pulls/`, `jobs` at a time, each hashed
/// (sha256, and an EROFS file's dm-verity blocks) as it arrives. Results in the layers' order,
/// whatever order the downloads finish in.
fn download(
    out: &OutDir,
    m: &ImageManifest,
    wanted: &[Option<Wanted<'_>>],
    source: &dyn BlobSource,
    moving: Moving,
) -> Vec<Downloaded> {
    let todo: Vec<(&Digested, Option<&[u8]>)> = wanted
        .iter()
        .flatten()
        .flat_map(|w| {
            let salt = w.params.as_ref().ok().map(|p| p.salt.as_slice());
            w.parts.iter().map(move |d| {
                let erofs = matches!(d.blob.kind, oci::BlobKind::Erofs(_));
                (*d, salt.filter(|_| erofs))
            })
        })
        .collect();
    let total = todo.iter().map(|(d, _)| d.size).sum();
    let bar = moving.progress.start(Unit::Bytes, total, "pull");
    bar.set_message(&m.node);
    let results = parallel_map(&todo, moving.jobs, |(d, salt)| -> Downloaded {
        let partial = out.pull_partial(&d.digest.to_hex());
        match salt {
            Some(salt) => {
                let mut blocks = Blocks(StreamingBlocks::new(salt));
                let t = source.fetch(d, &partial, &bar, &mut blocks)?;
                Ok((t, Some(blocks.0.finish())))
            }
            None => Ok((source.fetch(d, &partial, &bar, &mut ())?, None)),
        }
    });
    bar.finish();
    results
}

/// A layer's EROFS file's dm-verity block digests, as its bytes arrive.
struct Blocks(StreamingBlocks);

impl BlobObserver for Blocks {
    fn restart(&mut self) {
        self.0.restart();
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// The largest layer blob an image without a trusted signature may claim (no node image comes
/// near; its record, which says the size, is not vouched for).
const MAX_UNSIGNED_BLOB: u64 = 64 << 30;

/// Each layer blob's size is the one its record's verity parameters imply (the EROFS file
/// `data_blocks` blocks, the hash tree exactly what they make), before any byte of it is
/// written: a manifest's claim of a terabyte is refused, not downloaded. Without trusted keys
/// (the record unsigned), also at most `MAX_UNSIGNED_BLOB`.
fn check_blob_sizes(
    what: &str,
    m: &ImageManifest,
    blobs: &[Digested],
    unsigned: bool,
) -> Result<(), Error> {
    let wrong = |reason: String| -> Error {
        OciError::NotNodeImage {
            what: what.to_string(),
            reason,
        }
        .into()
    };
    for d in blobs {
        let role = match d.blob.kind {
            oci::BlobKind::Record => continue,
            oci::BlobKind::Erofs(r) | oci::BlobKind::Verity(r) => r,
        };
        let Some(v) = m.layer(role).and_then(|l| l.verity.as_ref()) else {
            return Err(wrong(format!(
                "its record pins no root hash for its {role} layer"
            )));
        };
        const BLOCK: u32 = image::verity::BLOCK as u32;
        if v.data_block_size != BLOCK || v.hash_block_size != BLOCK || v.hash_algorithm != "sha256"
        {
            return Err(wrong(format!(
                "its record gives its {role} layer dm-verity parameters nodeforge never writes ({} with {}/{}-byte blocks)",
                crate::term::escape(&v.hash_algorithm),
                v.data_block_size,
                v.hash_block_size
            )));
        }
        let expected = match d.blob.kind {
            oci::BlobKind::Erofs(_) => v.data_blocks.checked_mul(u64::from(BLOCK)),
            _ => image::verity::tree_size(v.data_blocks),
        };
        let Some(expected) = expected.filter(|e| *e > 0) else {
            return Err(wrong(format!(
                "its record says its {role} layer has {} data blocks",
                v.data_blocks
            )));
        };
        if d.size != expected {
            return Err(wrong(format!(
                "its manifest says the {} is {} bytes, its record's verity parameters make it {expected}; nothing was downloaded",
                d.blob.kind, d.size
            )));
        }
        if unsigned && expected > MAX_UNSIGNED_BLOB {
            return Err(wrong(format!(
                "its {} would be {expected} bytes, more than the {MAX_UNSIGNED_BLOB} an image without a trusted signature may have; nothing was downloaded",
                d.blob.kind
            )));
        }
    }
    Ok(())
}

/// A record the host holds (`manifest.json` bytes of any format) for image `m`'s id, as a whole
/// record to compare with `m`. One kept without its entries (format 3) takes `m`'s: its layers
/// hash to its id (checked), which is `m`'s, whose layers' ids cover exactly those entries; so
/// what is compared is everything else it says, without reading the layers pulled over.
fn held_record(bytes: &[u8], m: &ImageManifest) -> Option<ImageManifest> {
    match image::OnDisk::parse(bytes).ok()? {
        image::OnDisk::Whole(h) => Some(h),
        image::OnDisk::Stored(s) if s.id == m.id => {
            let lists = s
                .layers
                .iter()
                .map(|l| image::layer_entries(&m.entries, l.role))
                .collect();
            s.into_full(lists).ok()
        }
        image::OnDisk::Stored(_) => None,
    }
}

/// A record for an image id the host already holds (its image directory's, or a generation's
/// of any node) is never replaced by a different one: the id covers the layers, not the
/// provenance or the verity parameters, so a registry could otherwise rewrite what `show`, the
/// SBOM and the boot read for an image the host trusts. Compared by what the records say
/// (`trust::record_sha256`), not by their files' layout.
fn check_same_record(out: &OutDir, what: &str, m: &ImageManifest) -> Result<(), Error> {
    let want = crate::trust::record_sha256(m).map_err(Error::Internal)?;
    let mut held = vec![out.image(&m.id).join(IMAGE_RECORD)];
    for node in generations::nodes(out.root()) {
        for g in generations::list(out.root(), &node).unwrap_or_default() {
            if g.image_id == m.id {
                held.push(out.generation_record(&node, g.number));
            }
        }
    }
    for path in held {
        // Unreadable or not this image: not a record of it the host holds (damaged; `verify`
        // reports it).
        let Some(have) = std::fs::read(&path)
            .ok()
            .and_then(|b| held_record(&b, m))
            .filter(|h| h.id == m.id)
        else {
            continue;
        };
        let sha = crate::trust::record_sha256(&have).map_err(Error::Internal)?;
        if sha != want {
            let why = crate::ops::steps::images::record_differs(&have, m, "the copy")
                .unwrap_or_else(|| format!("record sha256 {sha}, the copy's {want}"));
            return Err(Error::RecordConflict {
                what: what.to_string(),
                image: m.id.clone(),
                why: format!("{}: {why}", path.display()),
            });
        }
    }
    Ok(())
}

/// The node a tag names: `<node>` or `<node>-gen<N>`, as push tags an image.
fn node_of_tag(tag: &str) -> &str {
    match tag.rsplit_once("-gen") {
        Some((node, n))
            if !node.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            node
        }
        _ => tag,
    }
}

/// Image `m` is the node the user asked for: `--node`'s, else the tag's (`<node>`,
/// `<node>-gen<N>`). A tag that is the image's id, or a digest, names the image itself. Without
/// this, a registry that points `worker1` at control0's (validly signed) image switches
/// control0 on a host that pulls `…:worker1`.
pub(crate) fn check_node(
    what: &str,
    tag: Option<&str>,
    node: Option<&str>,
    m: &ImageManifest,
) -> Result<(), Error> {
    let (named, expected) = match (node, tag) {
        (Some(n), _) => (format!("--node {n}"), n),
        (None, Some(t)) if t != m.id => (format!("the tag `{t}`"), node_of_tag(t)),
        _ => return Ok(()),
    };
    if expected == m.node {
        return Ok(());
    }
    Err(Error::NodeMismatch {
        what: what.to_string(),
        named,
        expected: expected.to_string(),
        node: m.node.clone(),
        image: m.id.clone(),
    })
}

/// Image `m` is not older than its node's current image on this host. Older is what the host
/// itself knows (the image is one of the node's generations before the current one), and, with
/// trusted keys, what they signed: the freshness (build time, then generation) in the
/// candidate's trusted signature against the current image's. Without trusted keys nothing a
/// registry says orders images, so only the host's own history counts.
fn check_not_older(
    out: &OutDir,
    what: &str,
    m: &ImageManifest,
    candidate: Option<&crate::trust::Freshness>,
    keys: &TrustedKeys,
) -> Result<(), Error> {
    let Some(cur) = generations::current(out.root(), &m.node) else {
        return Ok(());
    };
    let gens = generations::list(out.root(), &m.node)?;
    let Some(current) = gens.iter().find(|g| g.number == cur) else {
        return Ok(());
    };
    if current.image_id == m.id {
        return Ok(());
    }
    let older = |reason: String| {
        Err(Error::Downgrade {
            what: what.to_string(),
            node: m.node.clone(),
            image: m.id.clone(),
            current: current.image_id.clone(),
            reason,
        })
    };
    if let Some(newest) = gens
        .iter()
        .filter(|g| g.image_id == m.id)
        .map(|g| g.number)
        .max()
    {
        if newest < cur {
            return older(format!(
                "it is generation {newest} of {} on this host, before the current generation {cur}",
                m.node
            ));
        }
        // The host had it after the current one (the current one is a rollback).
        return Ok(());
    }
    if keys.is_empty() {
        return Ok(());
    }
    let Some(cur_record) = read_image_manifest(out, &out.generation_record(&m.node, cur))
        .ok()
        .filter(|r| r.id == current.image_id)
    else {
        return Ok(());
    };
    let status = crate::ops::steps::attestations::image_signatures(out.root(), &cur_record, keys);
    let Some(have) = crate::ops::steps::attestations::trusted_freshness(&status) else {
        return Ok(());
    };
    let at = |f: &crate::trust::Freshness| {
        format!(
            "generation {} built {}",
            f.generation,
            generations::rfc3339(f.built_at_unix)
        )
    };
    match candidate {
        Some(c) if c.older_than(&have) => older(format!(
            "a trusted key signed it as {}, the current one as {}",
            at(c),
            at(&have)
        )),
        Some(_) => Ok(()),
        None => older(format!(
            "its trusted signature says nothing of when it was built (made by an older nodeforge, or on a host without its generation), the current one's says {}: it cannot be told from an older image",
            at(&have)
        )),
    }
}

/// The one check between fetching an image and switching to it: every layer of `m` is in
/// `out/layers/`, its record is the one `m` implies and pins the root hash `m` pins, and its
/// EROFS file, hash tree and root hash file agree with that root hash (the layers in `checked`
/// were, by this pull, as it found or put them in place). Its signature was checked before any
/// layer was fetched (`referrers::check`, called first by [`install`]): the signed statement
/// names the image id and these root hashes, so together nothing unsigned is switched to.
fn verify_pulled(
    out: &OutDir,
    what: &str,
    m: &ImageManifest,
    checked: &BTreeSet<String>,
) -> Result<(), Error> {
    for l in &m.layers {
        let dir = out.layer(&l.id);
        let want = layer_record(m, l)?;
        let fails = match read_layer_record(&dir) {
            Ok(rec) if rec != want => vec![format!(
                "layer {}: its record in {} is not the one image {} implies (root hash {}, the image pins {})",
                l.id,
                dir.display(),
                m.id,
                rec.verity.root_hash,
                want.verity.root_hash
            )],
            Ok(_) if checked.contains(&l.id) => Vec::new(),
            Ok(rec) => check_layer_verity(&dir, &rec),
            Err(e) => vec![e.to_string()],
        };
        if !fails.is_empty() {
            return Err(Error::PulledLayer {
                reference: what.to_string(),
                layer: l.id.clone(),
                fails,
            });
        }
    }
    Ok(())
}
