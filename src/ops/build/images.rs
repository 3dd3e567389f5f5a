//! `nodeforge build`: one immutable, layered image per node. The lock is enforced and missing
//! artifacts fetched; each artifact is extracted once into the store; templates are rendered per
//! node; the entries are split into a payload layer (`/usr`, `/opt`: one per binary set, written
//! once and shared by every node that uses it) and a config layer (`/etc`, per node); each layer
//! is written once into `out/layers/<id>/`, the image record into `out/images/<id>/`, and
//! `out/nodes/<node>/current` is switched atomically.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::fetch::fetch_checked;
use super::lock::{complete_loaded, LockCompletion};
use super::FetchOptions;
use crate::fetch::FetchConfig;
use crate::generations;
use crate::image::{ImageManifest, Role};
use crate::layout::{self, OutDir};
use crate::manifest::{Arch, Manifest, Node};
use crate::ops::error::Error;
use crate::ops::steps::materialize::{ensure_layer_with, stage_image, Materialized, StagedImage};
use crate::ops::steps::parallel_map;
use crate::ops::steps::render::{render_images, select_nodes};
use crate::progress::Unit;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    pub out: PathBuf,
    /// Build only these nodes (all when empty).
    pub nodes: Vec<String>,
    pub fetch: FetchConfig,
    pub jobs: usize,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
    /// Take templates from a tree outside the manifest's directory (refused unless asked for).
    pub allow_outside_templates: bool,
    /// `--locked`: refuse to complete the lockfile (resolve missing or unresolved entries).
    pub locked: bool,
    /// Build a manifest that breaks the version skew policy (warned about instead).
    pub allow_skew: bool,
    /// `--sign KEY`: sign every node's image with this private key (PKCS#8 PEM).
    pub sign: Option<PathBuf>,
    /// `--x509-cert/--x509-key`: also write each layer's systemd `<NAME>.roothash.p7s`.
    pub x509: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// A new image was written.
    Built,
    /// The image already existed (built before, or by another node); `current` now points to it.
    Reused,
    /// Nothing changed: `current` already pointed to this image.
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeBuild {
    pub node: String,
    pub image_id: String,
    pub generation: u32,
    pub status: NodeStatus,
    pub image_dir: PathBuf,
    pub manifest_json: PathBuf,
    /// The layers, bottom to top: what a VM attaches.
    pub layers: Vec<LayerBuild>,
    pub entries: usize,
    /// The node had been rolled back to this generation, and this build moved it forward.
    pub rolled_back_to: Option<u32>,
    /// The image's SBOM (SPDX 2.3 JSON), beside it in `out/attestations/<id>/`.
    pub sbom: PathBuf,
    /// `--sign`: the image's signature by that key.
    pub signature: Option<PathBuf>,
}

/// One layer of a built image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerBuild {
    pub role: Role,
    pub id: String,
    /// Written by this build (false: it was there already, e.g. the payload another node shares).
    pub written: bool,
    /// `<NAME>.raw`: the EROFS file.
    pub raw: PathBuf,
    /// `<NAME>.verity`: its dm-verity hash tree.
    pub verity: PathBuf,
    /// dm-verity root hash: what an operator pins.
    pub root_hash: String,
    /// Size of the EROFS file.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub lock_id: String,
    pub nodes: Vec<NodeBuild>,
    pub fetched: usize,
    pub elapsed_ms: u64,
    /// Entries resolved and written to the lockfile before building.
    pub lock: LockCompletion,
    /// Things that do not stop a build but are likely mistakes: a `vars` key no template reads,
    /// a mirror serving other bytes than the lockfile pins.
    pub warnings: Vec<String>,
    /// Store objects and layers whose check was remembered (`out/verified-v1.json`: their stat
    /// keys had not moved) or done again by reading them.
    pub verified: crate::verified::VerifiedStats,
}

impl BuildReport {
    pub fn all_unchanged(&self) -> bool {
        self.nodes.iter().all(|n| n.status == NodeStatus::Unchanged)
    }
}

/// One output directory holds the nodes of one cluster: two clusters with a `worker1` each would
/// switch each other's `current`. The first build records the cluster's name; a build of another
/// cluster into the same directory is refused.
fn claim_for_cluster(out: &OutDir, manifest: &Manifest) -> Result<(), Error> {
    let marker = out.cluster_marker();
    match std::fs::read_to_string(&marker) {
        Ok(name) if name.trim_end() == manifest.name => Ok(()),
        Ok(name) => Err(Error::OtherCluster {
            out: out.root().to_path_buf(),
            theirs: name.trim_end().to_string(),
            ours: manifest.name.clone(),
        }),
        Err(_) => Ok(crate::fsutil::write_atomic(
            &marker,
            format!("{}\n", manifest.name).as_bytes(),
            0o644,
        )?),
    }
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport, Error> {
    let started = Instant::now();
    // The manifest and lockfile are read once. The skew policy first, against the lockfile as
    // it is (before it is completed).
    let loaded = Manifest::load(&opts.manifest)?;
    let lock = crate::lock::Lockfile::load(&opts.lockfile);
    let skew_warnings =
        crate::ops::steps::skew::check_skew(&loaded, lock.as_ref().ok(), opts.allow_skew)?;
    // The signing key is read first: a bad key fails before anything is built.
    let signers =
        crate::ops::steps::attestations::Signers::load(opts.sign.as_deref(), opts.x509.as_ref())?;
    let sign_key = signers.as_ref().and_then(|s| s.key.as_ref());
    let x509 = signers.as_ref().and_then(|s| s.x509.as_ref());
    let (checked, completion) = complete_loaded(
        loaded,
        lock?,
        &opts.lockfile,
        &opts.fetch,
        opts.jobs,
        opts.locked,
    )?;
    let manifest = &checked.manifest;
    let nodes = select_nodes(manifest, &opts.nodes)?;
    let store = crate::ops::steps::open_store(&OutDir::new(&opts.out))?;

    // Every artifact the selected nodes need must be locked, resolved and in the store.
    let arches: BTreeSet<&Arch> = nodes.iter().map(|n| &n.arch).collect();
    let fetch_opts = FetchOptions {
        manifest: opts.manifest.clone(),
        lockfile: opts.lockfile.clone(),
        out: opts.out.clone(),
        fetch: opts.fetch.clone(),
        jobs: opts.jobs,
        progress: opts.progress.clone(),
        locked: opts.locked,
    };
    let fetched = fetch_checked(&checked, &store, &fetch_opts)?;
    let fetch_warnings: Vec<String> = fetched
        .artifacts
        .iter()
        .flat_map(|a| a.warnings.iter().cloned())
        .collect();
    let failures = super::fetch::failure_list(
        fetched
            .failures()
            .into_iter()
            .filter(|f| arches.iter().any(|a| a.as_str() == f.arch)),
    );
    if !failures.is_empty() {
        return Err(Error::Fetch { failures });
    }

    let rendered = render_images(
        &store,
        &checked,
        &nodes,
        opts.jobs,
        opts.allow_outside_templates,
    );
    if rendered.is_err() {
        // What was rendered before the failure is kept, durable.
        store.sync()?;
    }
    let (images, render_warnings) = rendered?;
    let mut warnings = skew_warnings;
    warnings.extend(fetch_warnings);
    warnings.extend(render_warnings);

    // Shared layers first (each payload once, whoever needs it), then every node's own.
    let out = OutDir::new(&opts.out);
    claim_for_cluster(&out, manifest)?;
    let mut shared = BTreeSet::new();
    let mut first = Vec::new();
    for m in &images {
        if let Some(l) = m.layer(Role::Payload) {
            if shared.insert(l.id.clone()) {
                first.push(m);
            }
        }
    }
    let mut payload_written = BTreeSet::new();
    for m in first {
        // (ensure_layer checks the store holds every file when it has the layer to write.)
        let bytes = crate::image::layer_entries(&m.entries, Role::Payload)
            .iter()
            .filter(|e| e.kind == crate::image::Kind::File)
            .map(|e| e.size)
            .sum();
        let bar = opts.progress.start(Unit::Bytes, bytes, "payload");
        bar.set_message(&m.arch.to_string());
        let ensured = ensure_layer_with(&out, &store, m, Role::Payload, &bar);
        bar.finish();
        if ensured?.1 {
            payload_written.extend(m.layer(Role::Payload).map(|l| l.id.clone()));
        }
    }
    // Each node's layer, image and generation, several nodes at a time: the work is mostly
    // waiting for the disk (a syncfs per published directory), which overlaps well.
    let pairs: Vec<(&&Node, &ImageManifest)> = nodes.iter().zip(&images).collect();
    let bar = opts
        .progress
        .start(Unit::Items, pairs.len() as u64, "images");
    bar.set_message("nodes");
    let digests = crate::ops::steps::attestations::DigestCache::remembering(&out);
    let signing = sign_key.is_some() || x509.is_some();
    // The layers in place the images share are taken as they are: first checked to be intact
    // (remembered by stat keys: four stats each when unchanged).
    let mut seen = BTreeSet::new();
    let distinct: Vec<&crate::image::LayerRef> = images
        .iter()
        .flat_map(|m| &m.layers)
        .filter(|l| seen.insert(&l.id))
        .collect();
    for l in distinct.iter().filter(|l| !payload_written.contains(&l.id)) {
        crate::ops::steps::attestations::check_layer_intact(&out, &l.id, &digests)?;
    }
    // Staged: every node's missing layer, image directory, SBOM and generation, several nodes
    // at a time, in temporary directories and files (nothing in place yet).
    let staged = parallel_map(&pairs, opts.jobs.max(2), |(n, m)| {
        let r = stage_node(&out, &store, n, m, &checked.lock_id, signing, &digests);
        bar.inc(1);
        r
    });
    bar.finish();
    let staged: Vec<StagedNode> = staged.into_iter().collect::<Result<_, _>>()?;
    // Nodes rolled back to an older generation than their newest: named when this build moves
    // them forward again (only a node getting a new generation can be).
    let rolled_back: Vec<Option<u32>> = nodes
        .iter()
        .zip(&staged)
        .map(|(n, s)| {
            if !matches!(s.generation, generations::Staged::New(_)) {
                return None;
            }
            let cur = generations::current(&opts.out, n.name.as_str())?;
            let newest = generations::newest(&opts.out, n.name.as_str())?;
            (cur < newest).then_some(cur)
        })
        .collect();
    // Then one syncfs makes all of it durable (and the files rendered into the store), the renames put it in place in order (layers,
    // image, SBOM, generation, `current`), and a second syncfs makes the renames durable: two
    // syncs for the whole build instead of a syncfs per published directory and two fsyncs per
    // file.
    let pending = staged.iter().any(StagedNode::pending);
    if pending || store.unsynced() > 0 {
        crate::fsutil::sync_fs(&out.images())?;
        store.synced();
    }
    let outcomes: Vec<NodeOutcome> = staged
        .into_iter()
        .map(|s| s.publish(&out))
        .collect::<Result<_, _>>()?;
    if pending {
        crate::fsutil::sync_fs(&out.images())?;
        // The new image directories' hard links moved the ctime of their layers' files (the
        // shared payload's among them), checked above: their remembered keys follow, or the
        // next build would read the whole payload again.
        let files: Vec<PathBuf> = distinct
            .iter()
            .flat_map(|l| {
                let dir = out.layer(&l.id);
                layout::layer_files(&l.name).map(|f| dir.join(f))
            })
            .collect();
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        digests.verified().relinked(&refs);
    }
    // Signed once recorded: each image is complete, with its SBOM.
    if signing {
        let from = crate::ops::steps::attestations::BuiltFrom {
            lock_id: Some(&checked.lock_id),
            lockfile: Some(&opts.lockfile),
        };
        let signed = parallel_map(&outcomes, opts.jobs.max(2), |o| {
            let full = &o.image.full;
            if let Some(key) = sign_key {
                crate::ops::steps::attestations::sign_image(
                    &out, &store, full, key, &digests, from,
                )?;
            }
            if let Some(x) = x509 {
                crate::ops::steps::attestations::sign_roothashes(&out, &store, full, x, &digests)?;
            }
            Ok::<_, Error>(())
        });
        signed.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    digests.save();
    let mut report = Vec::new();
    for (((n, m), o), rolled_back) in nodes.iter().zip(&images).zip(outcomes).zip(rolled_back) {
        warnings.extend(o.sbom_warning.clone());
        report.push(o.report(&out, n, m, &mut payload_written, rolled_back, sign_key));
    }
    // The completed lockfile is written only by a build that succeeded.
    let mut completion = completion;
    completion.commit()?;
    Ok(BuildReport {
        lock_id: checked.lock_id.clone(),
        nodes: report,
        fetched: fetched.count(super::ArtifactStatus::Fetched),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        lock: completion,
        warnings,
        verified: digests.stats(),
    })
}

/// A node's outputs written into temporary directories and files: [`stage_node`], then one
/// `syncfs` for every node, then [`publish`](Self::publish).
struct StagedNode {
    image: StagedImage,
    /// The SBOM to put in place beside the image (none: the file is right already).
    sbom: Option<(crate::fsutil::AtomicFile, PathBuf)>,
    /// Why no SBOM was written (a read-only `out/`).
    sbom_warning: Option<String>,
    generation: generations::Staged,
}

/// What building one node did: its image (directory, record, what was written) and its
/// generation.
struct NodeOutcome {
    image: Materialized,
    generation: u32,
    /// A new generation was recorded (the image was not current).
    recorded: bool,
    sbom_warning: Option<String>,
}

/// Stage what node `n`'s image `m` lacks: its config layer (and a payload written meanwhile),
/// its image directory, its SBOM, its next generation (under the node's lock).
fn stage_node(
    out: &OutDir,
    store: &crate::store::Store,
    n: &Node,
    m: &ImageManifest,
    lock_id: &str,
    signing: bool,
    digests: &crate::ops::steps::attestations::DigestCache,
) -> Result<StagedNode, Error> {
    let image = stage_image(out, store, m)?;
    // The SBOM beside the image. A read-only out/ (a no-op build of a mounted copy made before
    // SBOMs existed) goes without one, said in a warning.
    let (sbom, sbom_warning) = match crate::ops::steps::attestations::stage_sbom(
        out,
        store,
        image.full(),
        image.pending(),
        digests,
    ) {
        Ok(s) => (s, None),
        Err(Error::Fs(e))
            if matches!(
                e.source.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) && !signing =>
        {
            (None, Some(format!("image {}: no SBOM written: {e}", m.id)))
        }
        Err(e) => return Err(e),
    };
    // The record as written, with each layer's root hash: what the generation keeps (in the
    // form `out/` keeps records, without the entries its layers' records hold).
    let generation = generations::stage_record(
        out.root(),
        n.name.as_str(),
        &m.id,
        lock_id,
        image.record(),
        Some(&image.record_path()),
    )?;
    Ok(StagedNode {
        image,
        sbom,
        sbom_warning,
        generation,
    })
}

impl StagedNode {
    fn pending(&self) -> bool {
        self.image.pending()
            || self.sbom.is_some()
            || matches!(self.generation, generations::Staged::New(_))
    }

    /// Rename everything staged into place (already durable: the build's syncfs), `current`
    /// last.
    fn publish(self, out: &OutDir) -> Result<NodeOutcome, Error> {
        let batched = crate::fsutil::Durability::Batched;
        let image = self.image.publish(out, batched)?;
        if let Some((tmp, path)) = self.sbom {
            tmp.commit_batched(&path, 0o644)?;
        }
        let (generation, recorded) = match self.generation {
            generations::Staged::Unchanged(cur) => (cur, false),
            generations::Staged::New(g) => g.publish(batched)?,
        };
        Ok(NodeOutcome {
            image,
            generation,
            recorded,
            sbom_warning: self.sbom_warning,
        })
    }
}

impl NodeOutcome {
    /// The node's line of the build report. A shared payload is reported as written by the
    /// first node that has it (taken out of `payload_written`).
    fn report(
        &self,
        out: &OutDir,
        n: &Node,
        m: &ImageManifest,
        payload_written: &mut BTreeSet<String>,
        rolled_back: Option<u32>,
        sign_key: Option<&crate::trust::PrivateKey>,
    ) -> NodeBuild {
        let layers = self
            .image
            .full
            .layers
            .iter()
            .map(|l| {
                let [raw, verity, _] = layout::layer_files(&l.name);
                let raw = out.layer(&l.id).join(raw);
                LayerBuild {
                    role: l.role,
                    id: l.id.clone(),
                    written: match l.role {
                        Role::Payload => payload_written.remove(&l.id),
                        Role::Config => self.image.layers_written.contains(&Role::Config),
                    },
                    bytes: std::fs::metadata(&raw).map(|m| m.len()).unwrap_or(0),
                    raw,
                    verity: out.layer(&l.id).join(verity),
                    root_hash: l
                        .verity
                        .as_ref()
                        .map(|v| v.root_hash.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        NodeBuild {
            node: n.name.to_string(),
            image_id: m.id.clone(),
            generation: self.generation,
            status: match (self.image.new, self.recorded) {
                (true, _) => NodeStatus::Built,
                (false, true) => NodeStatus::Reused,
                (false, false) => NodeStatus::Unchanged,
            },
            manifest_json: self.image.dir.join(layout::IMAGE_RECORD),
            image_dir: self.image.dir.clone(),
            layers,
            entries: m.entries.len(),
            rolled_back_to: rolled_back.filter(|&r| r != self.generation),
            sbom: out.sbom(&m.id),
            signature: sign_key.map(|k| out.image_signature(&m.id, k.public().keyid())),
        }
    }
}
