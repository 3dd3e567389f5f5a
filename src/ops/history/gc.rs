//! `nodeforge gc`: remove what nothing needs. Roots are every generation kept (the newest
//! `--keep-generations N` of each node, and always the current one) and every lockfile under
//! `lockfiles/`. The store is held exclusively, so a concurrent build waits (and gc waits for it).
//!
//! In phases: the generations to keep (the others removed), the live set (what they and the
//! lockfiles need: each kept record is read, reduced to its object addresses and layer ids, and
//! dropped, so memory follows what is kept, not the records' size), then one sweep per kind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// Why a store object is live: the first reason found, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    /// A file of a kept image.
    Image,
    /// A locked artifact, pinned by the lockfile of this index (in `LiveSet::lockfiles`).
    Locked(usize),
    /// Installed by a locked artifact (its extraction record).
    Installed,
}

/// What the kept generations and the lockfiles need.
struct LiveSet {
    objects: BTreeMap<Blake3, Reason>,
    /// Kept images and layers, each with the kept generations (`node@N`) that use it.
    images: BTreeMap<String, Vec<String>>,
    layers: BTreeMap<String, Vec<String>>,
    /// Each locked artifact, with the index of the first lockfile (by name) that pins it.
    locked: BTreeMap<crate::hash::Sha256, usize>,
    lockfiles: Vec<PathBuf>,
}

impl LiveSet {
    fn reason(&self, r: Reason) -> String {
        match r {
            Reason::Image => "used by a kept image".into(),
            Reason::Locked(i) => format!(
                "locked artifact in {}",
                self.lockfiles
                    .get(i)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            Reason::Installed => "installed by a locked artifact".into(),
        }
    }
}

/// Removes (or, in a dry run, only counts) what gc sweeps, adding the bytes freed.
struct Sweeper {
    dry_run: bool,
    /// Per inode, the links a dry run has counted as removed.
    links: HashMap<(u64, u64), u64>,
    r: GcReport,
}

impl Sweeper {
    fn remove(&mut self, path: &Path) -> Result<u64, Error> {
        // A real run removes links as it goes, so each file is seen with its remaining count.
        let bytes = if self.dry_run {
            size_of_tree(path, &mut self.links)
        } else {
            size_of_tree(path, &mut HashMap::new())
        };
        if !self.dry_run {
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
        self.r.freed_bytes += bytes;
        Ok(bytes)
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
    let mut sw = Sweeper {
        dry_run: opts.dry_run,
        links: HashMap::new(),
        r: GcReport {
            dry_run: opts.dry_run,
            ..GcReport::default()
        },
    };
    // Counts what has been looked at (generations, images, layers, objects).
    let bar = opts.progress.start(crate::progress::Unit::Open, 0, "gc");
    bar.set_message("examined");

    let mut live = keep_generations(opts, &mut sw, &bar)?;
    add_lockfiles(opts, &store, &mut live)?;
    // Images and layers first, then what they are made of, so that a gc killed midway never
    // leaves a layer whose store objects are gone.
    sweep_images(&layout, &live, &mut sw, &bar)?;
    sweep_layers(&layout, &live, &mut sw, &bar)?;
    sweep_objects(&store, &live, &mut sw, &bar)?;
    sweep_store_records(&store, &live, &mut sw)?;
    sweep_leftovers(&layout, &store, &live, &mut sw)?;
    bar.finish();
    Ok(sw.r)
}

/// Phase 1: the generations to keep (the others removed), and what each kept one needs: its
/// image, layers and files. Each record is read, reduced and dropped before the next.
fn keep_generations(
    opts: &GcOptions,
    sw: &mut Sweeper,
    bar: &crate::progress::Progress,
) -> Result<LiveSet, Error> {
    let out = &opts.out;
    let mut live = LiveSet {
        objects: BTreeMap::new(),
        images: BTreeMap::new(),
        layers: BTreeMap::new(),
        locked: BTreeMap::new(),
        lockfiles: Vec::new(),
    };
    for node in generations::nodes(out) {
        let gens = generations::list(out, &node)?;
        let current = generations::current(out, &node);
        let keep_from = opts
            .keep_generations
            .map_or(0, |n| gens.len().saturating_sub(n as usize));
        for (i, g) in gens.iter().enumerate() {
            bar.inc(1);
            let name = format!("{node}@{}", g.number);
            if !(i >= keep_from || Some(g.number) == current) {
                sw.remove(&generations::generation_dir(out, &node, g.number))?;
                sw.r.removed_generations.push(name);
                continue;
            }
            let reason = match opts.keep_generations {
                _ if Some(g.number) == current => "current".to_string(),
                Some(n) => format!("among the newest {n}"),
                None => "kept: no --keep-generations".to_string(),
            };
            sw.r.kept_reasons.generations.push(KeptGeneration {
                generation: name.clone(),
                reason,
            });
            sw.r.kept_generations += 1;
            // Read (and checked against its id) even when another kept generation is the same
            // image, so a damaged record stops gc as before; reduced to what it needs and
            // dropped before the next.
            let m = recorded_manifest(out, &node, g)?;
            let users = live.images.entry(m.id.clone()).or_default();
            users.push(name.clone());
            if users.len() == 1 {
                for b in m.entries.iter().filter_map(|e| e.blake3) {
                    live.objects.entry(b).or_insert(Reason::Image);
                }
            }
            for l in &m.layers {
                live.layers
                    .entry(l.id.clone())
                    .or_default()
                    .push(name.clone());
            }
        }
    }
    Ok(live)
}

/// Phase 2: every locked artifact (in any lockfile under `opts.lockfiles`) and what it installs.
fn add_lockfiles(
    opts: &GcOptions,
    store: &crate::store::Store,
    live: &mut LiveSet,
) -> Result<(), Error> {
    let mut lockfiles: Vec<PathBuf> = crate::fsutil::entries(&opts.lockfiles)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lock"))
        .collect();
    lockfiles.sort();
    for (i, path) in lockfiles.iter().enumerate() {
        let lock = Lockfile::load(path)?;
        for sha in lock
            .artifacts
            .iter()
            .filter_map(crate::lock::LockEntry::sha256)
        {
            live.locked.entry(sha).or_insert(i);
        }
    }
    live.lockfiles = lockfiles;
    for (sha, b, _, _) in store.index_entries() {
        if let Some(i) = live.locked.get(&sha) {
            live.objects.entry(b).or_insert(Reason::Locked(*i));
        }
    }
    for (_, path) in store.records(crate::store::EXTRACT_RECORDS) {
        if let Some(rec) = read_extract_record(&path) {
            if live.objects.contains_key(&rec.artifact) {
                for f in &rec.files {
                    live.objects.entry(f.blake3).or_insert(Reason::Installed);
                }
            }
        }
    }
    Ok(())
}

fn read_extract_record(path: &Path) -> Option<ExtractRecord> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ExtractRecord>(&b).ok())
}

/// Sweep: image directories no kept generation uses, and their attestations with them.
fn sweep_images(
    layout: &OutDir,
    live: &LiveSet,
    sw: &mut Sweeper,
    bar: &crate::progress::Progress,
) -> Result<(), Error> {
    for e in crate::fsutil::entries(layout.images()) {
        bar.inc(1);
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(users) = live.images.get(&name) {
            sw.r.kept_images += 1;
            sw.r.kept_reasons.images.push(KeptBy {
                id: name,
                used_by: users.clone(),
            });
        } else {
            sw.remove(&e.path())?;
            if !name.starts_with('.') {
                sw.r.removed_images.push(name);
            }
        }
    }
    // What vouches for an image goes with it, and stays with it.
    for e in crate::fsutil::entries(layout.attestations()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !live.images.contains_key(&name) {
            sw.remove(&e.path())?;
            if !name.starts_with('.') {
                sw.r.removed_attestations.push(name);
            }
        }
    }
    sw.r.removed_attestations.sort();
    sw.r.kept_reasons.images.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(())
}

/// Sweep: layers no kept image uses.
fn sweep_layers(
    layout: &OutDir,
    live: &LiveSet,
    sw: &mut Sweeper,
    bar: &crate::progress::Progress,
) -> Result<(), Error> {
    for e in crate::fsutil::entries(layout.layers()) {
        bar.inc(1);
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(users) = live.layers.get(&name) {
            sw.r.kept_layers += 1;
            sw.r.kept_reasons.layers.push(KeptBy {
                id: name,
                used_by: users.clone(),
            });
        } else {
            sw.remove(&e.path())?;
            if !name.starts_with('.') {
                sw.r.removed_layers.push(name);
            }
        }
    }
    sw.r.kept_reasons.layers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(())
}

/// Sweep: store objects nothing live needs; the kept ones counted by reason.
fn sweep_objects(
    store: &crate::store::Store,
    live: &LiveSet,
    sw: &mut Sweeper,
    bar: &crate::progress::Progress,
) -> Result<(), Error> {
    let mut counts: BTreeMap<Reason, usize> = BTreeMap::new();
    for (addr, path) in store.objects() {
        bar.inc(1);
        if let Some(reason) = addr.and_then(|a| live.objects.get(&a)) {
            sw.r.kept_objects += 1;
            *counts.entry(*reason).or_default() += 1;
        } else {
            sw.remove(&path)?;
            sw.r.removed_objects += 1;
        }
    }
    // In the order the reasons are listed (images, lockfiles by name, installed).
    sw.r.kept_reasons.objects = counts
        .into_iter()
        .map(|(reason, count)| KeptCount {
            reason: live.reason(reason),
            count,
        })
        .collect();
    Ok(())
}

/// Sweep: the store's sha256 index entries, extraction records and cached verity digests of
/// objects that are gone.
fn sweep_store_records(
    store: &crate::store::Store,
    live: &LiveSet,
    sw: &mut Sweeper,
) -> Result<(), Error> {
    for (sha, b, _, path) in store.index_entries() {
        if !live.objects.contains_key(&b) {
            sw.remove(&path)?;
            let lock = store.artifact_lock_path(&sha);
            if lock.exists() {
                sw.remove(&lock)?;
            }
            sw.r.removed_other += 1;
        }
    }
    for (_, path) in store.records(crate::store::EXTRACT_RECORDS) {
        let keep =
            read_extract_record(&path).is_some_and(|rec| live.objects.contains_key(&rec.artifact));
        if !keep {
            sw.remove(&path)?;
            sw.r.removed_other += 1;
        }
    }
    // Cached verity digests of objects that are gone (any salt).
    let kinds: BTreeSet<String> = crate::fsutil::entries(store.root())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|k| crate::image::digests::is_kind(k))
        .collect();
    for kind in kinds {
        for (key, path) in store.records(&kind) {
            if !live.objects.contains_key(&key) {
                sw.remove(&path)?;
                sw.r.removed_other += 1;
            }
        }
    }
    Ok(())
}

/// Sweep: downloads interrupted by a killed fetch of artifacts no lockfile pins any more (those
/// still locked stay, for the next fetch to resume), blobs of interrupted pulls (gc holds `out/`
/// alone: no pull is running to resume them), and the whole-root images' shared tar prefixes.
fn sweep_leftovers(
    layout: &OutDir,
    store: &crate::store::Store,
    live: &LiveSet,
    sw: &mut Sweeper,
) -> Result<(), Error> {
    for (sha, path) in store.partials() {
        if !live.locked.contains_key(&sha) {
            sw.remove(&path)?;
            sw.r.removed_other += 1;
        }
    }
    for e in crate::fsutil::entries(layout.pulls()) {
        sw.remove(&e.path())?;
        sw.r.removed_other += 1;
    }
    let legacy = layout.legacy_tar_prefix();
    if legacy.exists() {
        sw.remove(&legacy)?;
        sw.r.removed_other += 1;
    }
    Ok(())
}
