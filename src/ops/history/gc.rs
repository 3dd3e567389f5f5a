//! `nodeforge gc`: remove what nothing needs. Roots are every generation kept (the newest
//! `--keep-generations N` of each node, and always the current one) and every lockfile under
//! `lockfiles/`. The store is held exclusively, so a concurrent build waits (and gc waits for it).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::extract::ExtractRecord;
use crate::generations;
use crate::hash::Blake3;
use crate::layout::OutDir;
use crate::lock::Lockfile;
use crate::ops::error::Error;
use crate::ops::steps::images::recorded_manifest;

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub out: PathBuf,
    /// Lockfiles whose artifacts are roots (every `*.lock` here).
    pub lockfiles: PathBuf,
    /// Keep this many newest generations per node (the current one always); None keeps all.
    pub keep_generations: Option<u32>,
    pub dry_run: bool,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub removed_generations: Vec<String>,
    pub removed_images: Vec<String>,
    /// Attestation directories (SBOM, signatures) of images no kept generation uses.
    pub removed_attestations: Vec<String>,
    /// Layers no kept image uses (a payload stays while any kept generation uses it).
    pub removed_layers: Vec<String>,
    pub removed_objects: usize,
    pub removed_other: usize,
    pub freed_bytes: u64,
    pub kept_generations: usize,
    pub kept_images: usize,
    pub kept_layers: usize,
    pub kept_objects: usize,
    /// Why each kept thing is kept.
    pub kept_reasons: KeptReasons,
}

/// Why gc keeps what it keeps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeptReasons {
    /// Each kept generation (`node@N`), oldest first per node, and why.
    pub generations: Vec<KeptGeneration>,
    /// Each kept image, with the kept generations that use it.
    pub images: Vec<KeptBy>,
    /// Each kept layer, with the kept generations that use it.
    pub layers: Vec<KeptBy>,
    /// Kept store objects counted by reason (the first that applies, in this order: used by a
    /// kept image, a locked artifact in a lockfile, installed by a locked artifact).
    pub objects: Vec<KeptCount>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeptGeneration {
    pub generation: String,
    /// `current`, `among the newest N`, or `kept: no --keep-generations`.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeptBy {
    pub id: String,
    /// The kept generations (`node@N`) that use it.
    pub used_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeptCount {
    pub reason: String,
    pub count: usize,
}

/// The bytes that removing `p` frees. Image directories hold hard links to their layers' files,
/// so a file counts once, when its last link goes: `links` counts, per inode, the links this gc
/// removes (a dry run removes none, so it compares that count with the link count).
fn size_of_tree(p: &Path, links: &mut HashMap<(u64, u64), u64>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        let entries: Vec<_> = crate::fsutil::entries(p).map(|e| e.path()).collect();
        entries.iter().map(|e| size_of_tree(e, links)).sum()
    } else {
        let seen = links.entry((meta.dev(), meta.ino())).or_insert(0);
        *seen += 1;
        if *seen >= meta.nlink() {
            meta.len()
        } else {
            0
        }
    }
}

pub fn gc(opts: &GcOptions) -> Result<GcReport, Error> {
    let out = &opts.out;
    let layout = OutDir::new(out);
    let store = if opts.dry_run {
        crate::ops::steps::open_store_read_only(&layout, true)?
    } else {
        crate::ops::steps::open_store_exclusive(&layout)?
    };
    let mut r = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    // Counts what has been looked at (generations, images, layers, objects).
    let bar = opts.progress.start(crate::progress::Unit::Open, 0, "gc");
    bar.set_message("examined");
    let mut links = HashMap::new();
    let mut remove = |path: &Path, r: &mut GcReport| -> Result<u64, Error> {
        // A real run removes links as it goes, so each file is seen with its remaining count.
        let bytes = if opts.dry_run {
            size_of_tree(path, &mut links)
        } else {
            size_of_tree(path, &mut HashMap::new())
        };
        if !opts.dry_run {
            if path.is_dir() && !path.is_symlink() {
                // Renamed out of sight first (one atomic step), then deleted: a gc killed midway
                // leaves a temp directory that the next run removes, never a half-deleted
                // generation or image under its real name.
                crate::fsutil::remove_dir_aside(path)?;
            } else {
                std::fs::remove_file(path)
                    .map_err(|e| crate::fsutil::FsError::new("cannot remove", path, e))?;
            }
        }
        r.freed_bytes += bytes;
        Ok(bytes)
    };

    // 1. Generations to keep; the rest go.
    let mut live_manifests = Vec::new();
    for node in generations::nodes(out) {
        let gens = generations::list(out, &node)?;
        let current = generations::current(out, &node);
        let keep_from = opts
            .keep_generations
            .map_or(0, |n| gens.len().saturating_sub(n as usize));
        for (i, g) in gens.iter().enumerate() {
            bar.inc(1);
            if i >= keep_from || Some(g.number) == current {
                let name = format!("{node}@{}", g.number);
                let reason = match opts.keep_generations {
                    _ if Some(g.number) == current => "current".to_string(),
                    Some(n) => format!("among the newest {n}"),
                    None => "kept: no --keep-generations".to_string(),
                };
                r.kept_reasons.generations.push(KeptGeneration {
                    generation: name.clone(),
                    reason,
                });
                live_manifests.push((name, recorded_manifest(out, &node, g)?));
                r.kept_generations += 1;
            } else {
                remove(&generations::generation_dir(out, &node, g.number), &mut r)?;
                r.removed_generations.push(format!("{node}@{}", g.number));
            }
        }
    }

    // 2. Live objects: every file of a kept image, every locked artifact and what it installs.
    // Each live object with why (the first reason found).
    let mut live: BTreeMap<Blake3, String> = BTreeMap::new();
    let mut live_images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut live_layers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, m) in &live_manifests {
        for b in m.entries.iter().filter_map(|e| e.blake3) {
            live.entry(b)
                .or_insert_with(|| "used by a kept image".to_string());
        }
        live_images
            .entry(m.id.clone())
            .or_default()
            .push(name.clone());
        for l in &m.layers {
            live_layers
                .entry(l.id.clone())
                .or_default()
                .push(name.clone());
        }
    }
    let index = store.index_entries();
    // Each locked artifact, with the first lockfile (by name) that pins it.
    let mut locked = BTreeMap::new();
    let mut lockfiles: Vec<PathBuf> = crate::fsutil::entries(&opts.lockfiles)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lock"))
        .collect();
    lockfiles.sort();
    for path in &lockfiles {
        let lock = Lockfile::load(path)?;
        for sha in lock
            .artifacts
            .iter()
            .filter_map(crate::lock::LockEntry::sha256)
        {
            locked.entry(sha).or_insert_with(|| path.clone());
        }
    }
    for (sha, b, _, _) in &index {
        if let Some(path) = locked.get(sha) {
            live.entry(*b)
                .or_insert_with(|| format!("locked artifact in {}", path.display()));
        }
    }
    let records = store.records(crate::store::EXTRACT_RECORDS);
    for (_, path) in &records {
        if let Some(rec) = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ExtractRecord>(&b).ok())
        {
            if live.contains_key(&rec.artifact) {
                for f in &rec.files {
                    live.entry(f.blake3)
                        .or_insert_with(|| "installed by a locked artifact".to_string());
                }
            }
        }
    }

    // 3. Sweep: images and layers first, then what they are made of, so that a gc killed
    // midway never leaves a layer whose store objects are gone.
    for e in crate::fsutil::entries(layout.images()) {
        bar.inc(1);
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(users) = live_images.get(&name) {
            r.kept_images += 1;
            r.kept_reasons.images.push(KeptBy {
                id: name,
                used_by: users.clone(),
            });
        } else {
            remove(&e.path(), &mut r)?;
            if !name.starts_with('.') {
                r.removed_images.push(name);
            }
        }
    }
    // What vouches for an image goes with it, and stays with it.
    for e in crate::fsutil::entries(layout.attestations()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !live_images.contains_key(&name) {
            remove(&e.path(), &mut r)?;
            if !name.starts_with('.') {
                r.removed_attestations.push(name);
            }
        }
    }
    for e in crate::fsutil::entries(layout.layers()) {
        bar.inc(1);
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(users) = live_layers.get(&name) {
            r.kept_layers += 1;
            r.kept_reasons.layers.push(KeptBy {
                id: name,
                used_by: users.clone(),
            });
        } else {
            remove(&e.path(), &mut r)?;
            if !name.starts_with('.') {
                r.removed_layers.push(name);
            }
        }
    }
    r.removed_attestations.sort();
    r.kept_reasons.images.sort_by(|a, b| a.id.cmp(&b.id));
    r.kept_reasons.layers.sort_by(|a, b| a.id.cmp(&b.id));
    let mut object_reasons: Vec<KeptCount> = Vec::new();
    for (addr, path) in store.objects() {
        bar.inc(1);
        if let Some(reason) = addr.and_then(|a| live.get(&a)) {
            r.kept_objects += 1;
            match object_reasons.iter_mut().find(|k| k.reason == *reason) {
                Some(k) => k.count += 1,
                None => object_reasons.push(KeptCount {
                    reason: reason.clone(),
                    count: 1,
                }),
            }
        } else {
            remove(&path, &mut r)?;
            r.removed_objects += 1;
        }
    }
    // In the order the reasons are listed (images, lockfiles by name, installed).
    let rank = |k: &KeptCount| {
        if k.reason.starts_with("used by") {
            0
        } else if k.reason.starts_with("locked") {
            1
        } else {
            2
        }
    };
    object_reasons.sort_by(|a, b| (rank(a), &a.reason).cmp(&(rank(b), &b.reason)));
    r.kept_reasons.objects = object_reasons;
    for (sha, b, _, path) in &index {
        if !live.contains_key(b) {
            remove(path, &mut r)?;
            let lock = store.artifact_lock_path(sha);
            if lock.exists() {
                remove(&lock, &mut r)?;
            }
            r.removed_other += 1;
        }
    }
    for (_, path) in &records {
        let keep = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ExtractRecord>(&b).ok())
            .is_some_and(|rec| live.contains_key(&rec.artifact));
        if !keep {
            remove(path, &mut r)?;
            r.removed_other += 1;
        }
    }
    // Cached verity digests of objects that are gone (any salt).
    for e in crate::fsutil::entries(store.root()) {
        if crate::image::digests::is_kind(&e.file_name().to_string_lossy()) {
            let kind = e.file_name().to_string_lossy().into_owned();
            for (key, path) in store.records(&kind) {
                if !live.contains_key(&key) {
                    remove(&path, &mut r)?;
                    r.removed_other += 1;
                }
            }
        }
    }
    // Downloads interrupted by a killed fetch, of artifacts no lockfile pins any more (those
    // still locked stay, for the next fetch to resume).
    for (sha, path) in store.partials() {
        if !locked.contains_key(&sha) {
            remove(&path, &mut r)?;
            r.removed_other += 1;
        }
    }
    // Blobs of interrupted pulls (gc holds out/ alone: no pull is running to resume them).
    for e in crate::fsutil::entries(layout.pulls()) {
        remove(&e.path(), &mut r)?;
        r.removed_other += 1;
    }
    // The whole-root images' shared tar prefixes: nothing writes or reads them any more.
    let legacy = layout.legacy_tar_prefix();
    if legacy.exists() {
        remove(&legacy, &mut r)?;
        r.removed_other += 1;
    }
    bar.finish();
    Ok(r)
}
