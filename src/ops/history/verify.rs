//! `nodeforge verify`, for CI: the lockfile is intact and fresh, every store object hashes to its
//! address, every image holds exactly what its `manifest.json` lists, and (with `--rebuild`)
//! every node is rendered again from the manifest, lockfile and templates, and every current
//! image rebuilt elsewhere and compared byte for byte. Every failure is
//! reported, not just the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::generations;
use crate::hash::Blake3;
use crate::image::{self, ImageManifest, Kind, FLAT_FORMAT};
use crate::layout::{self, OutDir, IMAGE_RECORD};
use crate::ops::error::Error;
use crate::ops::steps::images::{generation_manifest, recorded_manifest};
use crate::ops::steps::materialize::{
    check_layer, materialize, read_image_manifest, read_layer_record,
};
use crate::ops::steps::{check_lock, parallel_map, LockCheck};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    pub out: PathBuf,
    pub rebuild: bool,
    pub jobs: usize,
    /// Hash store objects memory-mapped, as `b3sum` does (fast; a store file truncated by
    /// another process during the run would end it with SIGBUS). `false` reads them instead.
    pub mmap: bool,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
    /// Take templates from a tree outside the manifest's directory (refused unless asked for).
    pub allow_outside_templates: bool,
    /// `--key`/`--trusted-keys`: when any, every image a node is on or can be rolled back to
    /// must carry a valid signature by one of them.
    pub trusted: crate::trust::TrustedKeys,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub failures: Vec<String>,
    pub lockfile_ok: bool,
    pub objects_checked: usize,
    pub object_bytes: u64,
    pub images_checked: usize,
    /// Layers checked, each once however many images share it.
    pub layers_checked: usize,
    /// Of those, the layers whose EROFS file could not be made again because the store lacks
    /// their files (pulled from a registry): checked against the root hash their record pins,
    /// their hash tree and root hash file only. Not a failure.
    pub layers_root_hash_only: Vec<String>,
    /// What could not be checked here and why (no manifest on a host that pulls its images; an
    /// image whose files the store lacks, not rebuilt). Not failures.
    pub notes: Vec<String>,
    /// Nodes whose chain from `current` to their image was checked.
    pub nodes_checked: usize,
    /// Nodes of the manifest with no current image in `out/` (not a failure: said so that CI
    /// can tell a node was never built).
    pub unbuilt: Vec<String>,
    pub images_rebuilt: usize,
    /// Of those, the images whose entry list the manifest, lockfile and templates render to now
    /// (the others are the nodes in `drift`, or nodes the manifest no longer lists).
    pub images_from_inputs: usize,
    /// Nodes whose current image is not what the inputs build now (a rollback, or other
    /// inputs): not a failure, said so that CI can tell.
    pub drift: Vec<String>,
    /// Time spent re-hashing store objects, and checking images (for throughput figures).
    pub objects_ms: u64,
    pub images_ms: u64,
    pub elapsed_ms: u64,
    /// Who signed what: each image of a generation (current or a rollback target), its
    /// signatures, and the trusted keys that validly signed it (`signed_by`; always empty when
    /// no key is given).
    pub signatures: Vec<ImageTrust>,
}

/// An image that nodes are on or can be rolled back to, and who vouches for it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageTrust {
    /// The generations holding it (`node@N`).
    pub used_by: Vec<String>,
    #[serde(flatten)]
    pub status: crate::ops::steps::SignatureStatus,
}

/// Re-hash one object against its address.
fn check_object(addr: Option<Blake3>, path: &Path, mmap: bool) -> (u64, Option<String>) {
    let Some(addr) = addr else {
        return (
            0,
            Some(format!(
                "{}: not a store object (its path is not a blake3 address)",
                path.display()
            )),
        );
    };
    let hashed = if mmap {
        Blake3::of_file_mapped(path)
    } else {
        Blake3::of_file(path)
    };
    match hashed {
        Ok((actual, size)) if actual == addr => (size, None),
        Ok((actual, size)) => (
            size,
            Some(format!(
                "store object {} is corrupt: it hashes to {actual}",
                path.display()
            )),
        ),
        Err(e) => (
            0,
            Some(format!("cannot read store object {}: {e}", path.display())),
        ),
    }
}

/// Check a layered image directory: its record against its id, and each link against the layer
/// it names (whose root hash the record pins).
pub(super) fn check_image(out: &OutDir, dir: &Path) -> Vec<String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let raw: Option<serde_json::Value> = std::fs::read(dir.join(IMAGE_RECORD))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if raw.as_ref().and_then(|v| v["format"].as_u64()) == Some(u64::from(FLAT_FORMAT)) {
        return check_flat_image(dir);
    }
    let m = match read_image_manifest(out, &dir.join(IMAGE_RECORD)) {
        Ok(m) => m,
        Err(e) => return vec![format!("image {name}: {e}")],
    };
    let mut fails = Vec::new();
    if m.id != name {
        fails.push(format!(
            "image {name}: its record says it is image {}",
            m.id
        ));
    }
    for l in &m.layers {
        for f in layout::layer_files(&l.name) {
            if !crate::ops::steps::materialize::same_inode(
                &dir.join(&f),
                &out.layer(&l.id).join(&f),
            ) {
                fails.push(format!(
                    "image {name}: {f} is not its {} layer's file (layers/{}/{f})",
                    l.role, l.id
                ));
            }
        }
        match (read_layer_record(&out.layer(&l.id)), &l.verity) {
            (Ok(rec), Some(v)) if rec.verity.root_hash != v.root_hash => fails.push(format!(
                "image {name}: it pins root hash {} for its {} layer, the layer's record says {}",
                v.root_hash, l.role, rec.verity.root_hash
            )),
            (Ok(rec), Some(v)) if rec.verity != *v => fails.push(format!(
                "image {name}: its dm-verity parameters for its {} layer are not the ones the layer's record gives",
                l.role
            )),
            (Ok(_), Some(_)) => {}
            (Ok(_), None) => fails.push(format!(
                "image {name}: its record pins no root hash for its {} layer",
                l.role
            )),
            (Err(e), _) => fails.push(format!("image {name}: its {} layer: {e}", l.role)),
        }
    }
    fails
}

/// Check every node's chain: `current` points at one of its generations the way the layout says,
/// each generation's `image` link points at the image its record names, and the image directory's
/// record pins the same layers and root hashes as the generation's (which `build` wrote and
/// nothing else may change). Returns the failures and the nodes that have a current image.
fn check_nodes(out: &OutDir) -> (Vec<String>, Vec<String>) {
    let mut fails = Vec::new();
    let mut built = Vec::new();
    for node in out.node_names() {
        let rel = |p: &Path| {
            p.strip_prefix(out.root())
                .unwrap_or(p)
                .display()
                .to_string()
        };
        let gens = match generations::list(out.root(), &node) {
            Ok(g) => g,
            Err(e) => {
                fails.push(format!("{node}: {e}"));
                continue;
            }
        };
        let current = out.current(&node);
        match std::fs::symlink_metadata(&current) {
            // A first build killed between recording and switching: not built yet.
            Err(_) => {}
            Ok(m) if !m.file_type().is_symlink() => fails.push(format!(
                "{}: not a symlink: it must point at generations/<n>/image",
                rel(&current)
            )),
            Ok(_) => match generations::current(out.root(), &node) {
                Some(n) if gens.iter().any(|g| g.number == n) => built.push(node.clone()),
                _ => fails.push(format!(
                    "{}: points to {}, not to generations/<n>/image of one of the node's generations ({})",
                    rel(&current),
                    std::fs::read_link(&current).map(|t| t.display().to_string()).unwrap_or_default(),
                    gens.iter().map(|g| g.number.to_string()).collect::<Vec<_>>().join(", ")
                )),
            },
        }
        for g in &gens {
            let dir = out.generation(&node, g.number);
            let link = dir.join("image");
            let want = generations::image_link_target(&g.image_id);
            match std::fs::read_link(&link) {
                Ok(t) if t == want => {}
                Ok(t) => fails.push(format!(
                    "{}: points to {}, but the generation is image {} ({} expected)",
                    rel(&link),
                    t.display(),
                    g.image_id,
                    want.display()
                )),
                Err(e) => fails.push(format!("{}: {e}", rel(&link))),
            }
            let gen_record = match recorded_manifest(out.root(), &node, g) {
                Ok(m) => m,
                Err(e) => {
                    fails.push(format!("{node}@{}: {e}", g.number));
                    continue;
                }
            };
            let image_record = out.image(&g.image_id).join(IMAGE_RECORD);
            if !image_record.exists() {
                continue; // collected by gc: rebuilt from the generation's record on rollback
            }
            match read_image_manifest(out, &image_record) {
                Ok(m) if m.layers == gen_record.layers && m.id == gen_record.id => {}
                Ok(m) => {
                    for (a, b) in gen_record.layers.iter().zip(&m.layers) {
                        if a != b {
                            let root = |l: &image::LayerRef| {
                                l.verity
                                    .as_ref()
                                    .map(|v| v.root_hash.clone())
                                    .unwrap_or_default()
                            };
                            fails.push(format!(
                                "{}: pins {} layer {} with root hash {}, but {node}@{}'s record pins {} with {}",
                                rel(&image_record),
                                b.role,
                                b.id,
                                root(b),
                                g.number,
                                a.id,
                                root(a)
                            ));
                        }
                    }
                    if m.layers.len() != gen_record.layers.len() || m.id != gen_record.id {
                        fails.push(format!(
                            "{}: is not the record {node}@{} holds for image {}",
                            rel(&image_record),
                            g.number,
                            g.image_id
                        ));
                    }
                }
                Err(e) => fails.push(e.to_string()),
            }
        }
    }
    (fails, built)
}

/// What reading a flat image's tar against its entry list found.
struct TarCheck {
    /// Members that differ from their entries, or that no entry lists.
    fails: Vec<String>,
    /// Why the tar could not be read to its end.
    unread: std::io::Result<()>,
    /// Listed entries the tar did not hold (or that were not reached).
    missing: Vec<String>,
}

/// Every member of a flat image's `image.tar.zst` against the entry list.
fn check_flat_tar(dir: &Path, name: &str, m: &ImageManifest) -> TarCheck {
    let mut fails = Vec::new();
    let mut want: BTreeMap<&str, &image::Entry> =
        m.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let tar_path = dir.join("image.tar.zst");
    let unread = (|| -> std::io::Result<()> {
        let f = std::fs::File::open(&tar_path)?;
        let mut ar = tar::Archive::new(zstd::stream::read::Decoder::new(f)?);
        for member in ar.entries()? {
            let mut member = member?;
            let path = format!(
                "/{}",
                member.path()?.display().to_string().trim_end_matches('/')
            );
            let Some(e) = want.remove(path.as_str()) else {
                fails.push(format!(
                    "image {name}: the tar holds {path}, which manifest.json does not list"
                ));
                continue;
            };
            let h = member.header();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink,
                _ => Kind::File,
            };
            let mode = h.mode()?;
            if kind != e.kind || mode != e.mode || h.uid()? != 0 || h.gid()? != 0 {
                fails.push(format!("image {name}: {path} has type/mode/owner {kind:?} {mode:o}, manifest.json says {:?} {:o}", e.kind, e.mode));
            }
            match kind {
                Kind::File => {
                    let (got, size) = Blake3::of_reader(&mut member)?;
                    if Some(got) != e.blake3 || size != e.size {
                        fails.push(format!("image {name}: {path} in image.tar.zst hashes to {got} ({size} bytes), manifest.json says {} ({} bytes)", e.blake3.map(|b| b.to_hex()).unwrap_or_default(), e.size));
                    }
                }
                Kind::Symlink => {
                    let target = member.link_name()?.map(|t| t.display().to_string());
                    if target != e.target {
                        fails.push(format!("image {name}: symlink {path} points to {target:?}, manifest.json says {:?}", e.target));
                    }
                }
                Kind::Dir => {}
            }
        }
        Ok(())
    })();
    TarCheck {
        fails,
        unread,
        missing: want.into_keys().map(str::to_string).collect(),
    }
}

/// A flat image's `image.erofs` against its dm-verity tree and the root hash its record pins:
/// `Some(problem)` when they differ.
fn check_flat_verity(
    dir: &Path,
    m: &ImageManifest,
    v: &image::VerityInfo,
) -> std::io::Result<Option<String>> {
    let erofs = dir.join("image.erofs");
    let size = std::fs::metadata(&erofs)?.len();
    let params = image::verity::VerityParams {
        salt: hex::decode(&v.salt).map_err(std::io::Error::other)?,
        uuid: Blake3::parse(&m.id)
            .map(|id| image::verity::params_for(&id).uuid)
            .map_err(std::io::Error::other)?,
    };
    let mut tree = Vec::new();
    let mut data = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&erofs)?);
    let root = image::verity::write_verity(&mut data, size, &params, &mut tree)?;
    if root.to_hex() != v.root_hash {
        return Ok(Some(format!(
            "image.erofs hashes to verity root {root}, manifest.json pins {}",
            v.root_hash
        )));
    }
    if std::fs::read(dir.join("image.verity"))? != tree {
        return Ok(Some(
            "image.verity is not the hash tree of image.erofs".to_string(),
        ));
    }
    Ok(None)
}

/// Check a whole-root (format 1) image directory: its id, and every member of its tar against
/// the entry list.
fn check_flat_image(dir: &Path) -> Vec<String> {
    let mut fails = Vec::new();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m: ImageManifest = match std::fs::read(dir.join(crate::layout::IMAGE_RECORD))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => return vec![format!("image {name}: manifest.json is unreadable: {e}")],
    };
    let id = image::image_id(&m.entries).to_hex();
    if id != m.id || id != name {
        fails.push(format!(
            "image {name}: its entry list hashes to {id}, not to its id {}",
            m.id
        ));
    }
    let tar = check_flat_tar(dir, &name, &m);
    fails.extend(tar.fails);
    // image.erofs against its dm-verity tree and the root hash manifest.json pins.
    match &m.verity {
        None => fails.push(format!(
            "image {name}: manifest.json records no verity root hash"
        )),
        Some(v) => match check_flat_verity(dir, &m, v) {
            Ok(None) => {}
            Ok(Some(msg)) => fails.push(format!("image {name}: {msg}")),
            Err(e) => fails.push(format!(
                "image {name}: cannot check image.erofs/image.verity: {e}"
            )),
        },
    }
    match tar.unread {
        Err(e) => fails.push(format!(
            "image {name}: image.tar.zst cannot be read: {e} ({} listed entries after that point were not checked)",
            tar.missing.len()
        )),
        Ok(()) => {
            for path in tar.missing {
                fails.push(format!("image {name}: {path} is listed in manifest.json but missing from image.tar.zst"));
            }
        }
    }
    fails
}

/// Whether two files hold the same bytes (compared by blake3, so large layers are streamed).
/// Whether layer record `a` is the indented form an older nodeforge wrote of the record `b`
/// holds (the same schema, other whitespace).
fn indented_layer_record(a: &Path, b: &Path) -> bool {
    let rec = std::fs::read(b)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<image::LayerRecord>(&bytes).ok());
    rec.is_some_and(|r| std::fs::read(a).is_ok_and(|bytes| bytes == r.to_indented_json()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (Blake3::of_file(a), Blake3::of_file(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub fn verify(opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let started = Instant::now();
    let mut r = VerifyReport::default();

    // 1. The lockfile: intact (lock-id) and fresh (manifest inputs). A host that pulls its
    // images from a registry has no manifest: it checks what it holds.
    let checked = if !opts.manifest.exists() {
        r.notes.push(format!(
            "no manifest at {}: the lockfile is not checked and no image is rendered again from inputs",
            opts.manifest.display()
        ));
        None
    } else {
        match check_lock(&opts.manifest, &opts.lockfile) {
            Ok(c) => {
                r.lockfile_ok = true;
                Some(c)
            }
            Err(e) => {
                r.failures.push(e.to_string());
                None
            }
        }
    };
    let out = OutDir::new(&opts.out);
    let store = crate::ops::steps::open_store_read_only(&out, false)?;

    // 2. Every store object and index entry.
    let phase = Instant::now();
    check_store(&store, opts, &mut r);
    r.objects_ms = u64::try_from(phase.elapsed().as_millis()).unwrap_or(u64::MAX);

    // 3. Every image, layer and node chain.
    let phase = Instant::now();
    check_outputs(&store, &out, checked.as_ref(), opts, &mut r);
    r.images_ms = u64::try_from(phase.elapsed().as_millis()).unwrap_or(u64::MAX);

    // 4. Signatures: every image a node is on or can roll back to, against the trusted keys.
    check_signatures(&out, &opts.trusted, &mut r);

    // 5. --rebuild: the caches against the artifacts, every current image written again
    // elsewhere and compared byte for byte.
    if opts.rebuild {
        if let Some(c) = &checked {
            check_extraction(&store, c, opts.jobs, &mut r);
        }
        rebuild_and_compare(&store, &out, checked.as_ref(), opts, &mut r)?;
    }
    r.ok = r.failures.is_empty();
    r.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(r)
}

/// Each layered image of every generation (its record as the generation keeps it: what a
/// rollback switches to), with its signatures; with trusted keys, one failure per image that no
/// trusted key validly signed.
fn check_signatures(out: &OutDir, keys: &crate::trust::TrustedKeys, r: &mut VerifyReport) {
    let mut images: BTreeMap<String, (ImageManifest, Vec<String>)> = BTreeMap::new();
    for node in out.node_names() {
        let Ok(gens) = generations::list(out.root(), &node) else {
            continue; // reported by check_nodes
        };
        for g in &gens {
            let Ok(m) = recorded_manifest(out.root(), &node, g) else {
                continue; // reported by check_nodes
            };
            if m.layers.is_empty() {
                continue; // whole-root: never switched to
            }
            images
                .entry(m.id.clone())
                .or_insert_with(|| (m, Vec::new()))
                .1
                .push(format!("{node}@{}", g.number));
        }
    }
    for (_, (m, used_by)) in images {
        let status = crate::ops::steps::image_signatures(out.root(), &m, keys);
        if !keys.is_empty() && !status.trusted() {
            r.failures.push(format!(
                "image {} ({}): not signed by a trusted key: {}",
                m.id,
                used_by.join(", "),
                status.why_not()
            ));
        }
        r.signatures.push(ImageTrust { used_by, status });
    }
}

/// Every store object re-hashed against its address (in parallel), every sha256 index entry
/// against the object it names.
fn check_store(store: &Store, opts: &VerifyOptions, r: &mut VerifyReport) {
    let objects = store.objects();
    let total: u64 = objects
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = opts
        .progress
        .start(crate::progress::Unit::Bytes, total, "verify");
    // One object at a time: blake3 spreads each large object over every core itself.
    let results = parallel_map(&objects, 1, |(addr, path)| {
        let res = check_object(*addr, path, opts.mmap);
        bar.inc(res.0);
        res
    });
    bar.finish();
    for (size, fail) in results {
        r.objects_checked += 1;
        r.object_bytes += size;
        r.failures.extend(fail);
    }
    // Every index entry against the object it names: the object must be there and be the
    // artifact the sha256 says (an entry re-pointed at another object would feed builds, `show`
    // and `mirror export` the wrong bytes under upstream's name).
    let index = store.index_entries();
    let index_fails = parallel_map(&index, opts.jobs, |(sha, b, size, path)| {
        let Some(o) = store.object(b).filter(|o| o.size == *size) else {
            return Some(format!("the store index says artifact sha256 {sha} is object {b} ({size} bytes), which is missing"));
        };
        match crate::hash::Sha256::of_file(&o.path) {
            Ok((actual, _)) if actual == *sha => None,
            Ok((actual, _)) => Some(format!(
                "{}: says artifact sha256 {sha} is object {b}, whose sha256 is {actual}",
                path.display()
            )),
            Err(e) => Some(format!(
                "cannot read store object {}: {e}",
                o.path.display()
            )),
        }
    });
    r.failures.extend(index_fails.into_iter().flatten());
}

/// Every image against its record, every layer (once) against its entries, every node's chain
/// from `current` to its image, and the manifest's nodes that have none.
fn check_outputs(
    store: &Store,
    out: &OutDir,
    checked: Option<&LockCheck>,
    opts: &VerifyOptions,
    r: &mut VerifyReport,
) {
    let list_dir = |dir: PathBuf| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = crate::fsutil::entries(dir)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            })
            .collect();
        v.sort();
        v
    };
    let dirs = list_dir(out.images());
    let layers = list_dir(out.layers());
    let bar = opts.progress.start(
        crate::progress::Unit::Items,
        (dirs.len() + layers.len()) as u64,
        "verify",
    );
    bar.set_message("images and layers");
    let checked_images = parallel_map(&dirs, opts.jobs, |d| {
        let fails = check_image(out, d);
        bar.inc(1);
        fails
    });
    for fails in checked_images {
        r.images_checked += 1;
        r.failures.extend(fails);
    }
    // One layer at a time: hashing spreads each large file over every core itself.
    let checked_layers = parallel_map(&layers, 1, |d| {
        let check = check_layer(store, d, opts.mmap);
        bar.inc(1);
        check
    });
    bar.finish();
    for (check, dir) in checked_layers.into_iter().zip(&layers) {
        r.layers_checked += 1;
        if !check.rebuilt {
            r.layers_root_hash_only
                .extend(dir.file_name().map(|n| n.to_string_lossy().into_owned()));
        }
        r.failures.extend(check.fails);
    }

    // Every node's chain from `current` to its image, and the manifest's nodes that have none.
    let (node_fails, built) = check_nodes(out);
    r.failures.extend(node_fails);
    r.nodes_checked = built.len();
    if let Some(c) = checked {
        if !built.is_empty() {
            for n in c.manifest.nodes.keys() {
                if !built.iter().any(|b| b == n.as_str()) {
                    r.unbuilt.push(n.to_string());
                }
            }
        }
    }
}

/// Every extraction record against the artifact extracted again.
fn check_extraction(store: &Store, c: &LockCheck, jobs: usize, r: &mut VerifyReport) {
    let mut work = Vec::new();
    // The cluster's components and every group's: each (component, version, arch) once.
    let mut seen = std::collections::BTreeSet::new();
    for comp in c
        .manifest
        .component_sets()
        .flat_map(|s| s.values())
        .filter(|c| !c.install.is_empty())
    {
        for arch in &c.manifest.architectures {
            if !seen.insert((comp.name.clone(), comp.version.clone(), arch.clone())) {
                continue;
            }
            if let Some(e) = c.lock.entry(&comp.name, &comp.version, arch) {
                if let Some(sha) = e.sha256() {
                    if let Some(o) = store.lookup_sha256(&sha) {
                        work.push((e.label(), e.url.clone(), o, sha, comp.install.clone()));
                    }
                }
            }
        }
    }
    for res in parallel_map(&work, jobs, |(label, url, o, sha, rules)| {
        crate::extract::check_record(
            store,
            &crate::extract::Artifact {
                label,
                url,
                object: o,
                sha256: sha,
                rules,
            },
        )
    }) {
        match res {
            Ok(None) => {}
            Ok(Some(msg)) => r.failures.push(msg),
            Err(e) => r.failures.push(e.to_string()),
        }
    }
}

/// A node's current image against the one the inputs make now (`planned`): the same id with
/// another record is a failure, another id is drift.
fn compare_with_inputs(
    node: &str,
    m: &ImageManifest,
    planned: Option<&ImageManifest>,
    r: &mut VerifyReport,
) {
    // The same id is the same entry list (the id is its hash), so the rebuild below
    // is a rebuild of what the inputs make now.
    // The id covers the entries, not the provenance: the record is compared with the one
    // the inputs make (not with the image directory's, which is the same file by hard
    // link, so an edit in place would compare with itself).
    match planned {
        Some(p) if p.id == m.id => {
            r.images_from_inputs += 1;
            if let Some(why) = crate::ops::steps::images::record_differs(m, p, "what the inputs make") {
                r.failures.push(format!(
                    "{node}: the record of its current image {} is not the one the manifest, lockfile and templates make: {why}",
                    m.id
                ));
            }
        }
        Some(p) => r.drift.push(format!(
            "{node}: its current image {} is not what the manifest, lockfile and templates build now ({}): rolled back, or built from other inputs",
            m.id, p.id
        )),
        None => {}
    }
}

/// A node's current image written again from its record into `scratch_out` and compared file
/// by file with the one in `out`.
fn compare_rebuilt(
    node: &str,
    m: &ImageManifest,
    store: &Store,
    out: &OutDir,
    scratch_out: &OutDir,
    r: &mut VerifyReport,
) {
    match materialize(scratch_out, store, m) {
        Ok((_, rebuilt, _)) => {
            r.images_rebuilt += 1;
            let mut pairs = vec![(
                IMAGE_RECORD.to_string(),
                out.image(&m.id).join(IMAGE_RECORD),
                scratch_out.image(&m.id).join(IMAGE_RECORD),
            )];
            for l in &rebuilt.layers {
                for f in layout::layer_files(&l.name)
                    .into_iter()
                    .chain([layout::LAYER_RECORD.to_string()])
                {
                    pairs.push((
                        format!("{} layer's {f}", l.role),
                        out.layer(&l.id).join(&f),
                        scratch_out.layer(&l.id).join(&f),
                    ));
                }
            }
            for (what, a, b) in pairs {
                // A record an older nodeforge kept whole (format 2) is compared by what it
                // says; one kept as records are now, byte for byte.
                let whole = || {
                    std::fs::read(&a).is_ok_and(|bytes| {
                        matches!(image::OnDisk::parse(&bytes), Ok(image::OnDisk::Whole(_)))
                    })
                };
                let same = same_file(&a, &b)
                    || (what == IMAGE_RECORD
                        && whole()
                        && read_image_manifest(out, &a).ok().is_some_and(|x| {
                            read_image_manifest(scratch_out, &b).is_ok_and(|y| x == y)
                        }))
                    || (what.ends_with(layout::LAYER_RECORD) && indented_layer_record(&a, &b));
                if !same {
                    r.failures.push(format!(
                        "{node}: rebuilding image {} gives a different {what}",
                        m.id
                    ));
                }
            }
        }
        // Pulled from a registry: the store never held its files.
        Err(Error::MissingObjects { .. }) => r.notes.push(format!(
            "{node}: image {} is not rebuilt: the store lacks its files (pulled from a registry?); its layers are checked against their root hashes",
            m.id
        )),
        Err(e) => r
            .failures
            .push(format!("{node}: cannot rebuild image {}: {e}", m.id)),
    }
}

/// Every node's current image written again from its record into a scratch directory and
/// compared file by file; nodes whose image is not what the inputs build now are named in
/// `drift`.
fn rebuild_and_compare(
    store: &Store,
    out: &OutDir,
    checked: Option<&LockCheck>,
    opts: &VerifyOptions,
    r: &mut VerifyReport,
) -> Result<(), Error> {
    if generations::nodes(&opts.out).is_empty() {
        // Nothing to rebuild, and no scratch directory to make in an `out` that may not exist.
        return Ok(());
    }
    let scratch = tempfile::Builder::new()
        .prefix(".nodeforge-verify-")
        .tempdir_in(&opts.out)
        .map_err(|e| {
            crate::fsutil::FsError::new("cannot create a scratch directory in", &opts.out, e)
        })?;
    // What the manifest, lockfile and templates build now (the lockfile's failure, if any,
    // is reported above).
    let planned = match checked {
        Some(c) => {
            crate::ops::steps::render::render_all(store, c, opts.jobs, opts.allow_outside_templates)
                .unwrap_or_else(|e| {
                    r.failures.push(format!(
                        "cannot render the images from the manifest, lockfile and templates: {e}"
                    ));
                    BTreeMap::new()
                })
        }
        None => BTreeMap::new(),
    };
    for node in generations::nodes(&opts.out) {
        let Some(cur) = generations::current(&opts.out, &node) else {
            continue;
        };
        let m = match generation_manifest(&opts.out, &node, cur) {
            Ok(m) => m,
            Err(e) => {
                r.failures.push(format!("{node}: {e}"));
                continue;
            }
        };
        compare_with_inputs(&node, &m, planned.get(&node), r);
        compare_rebuilt(&node, &m, store, out, &OutDir::new(scratch.path()), r);
    }
    Ok(())
}
