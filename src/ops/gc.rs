//! `nodeforge gc`: remove what nothing needs. Roots are every generation kept (the newest
//! `--keep-generations N` of each node, and always the current one) and every lockfile under
//! `lockfiles/`. The store is held exclusively, so a concurrent build waits (and gc waits for it).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::history::generation_manifest;
use super::Error;
use crate::extract::ExtractRecord;
use crate::generations;
use crate::hash::Blake3;
use crate::layout::OutDir;
use crate::lock::Lockfile;

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub out: PathBuf,
    /// Lockfiles whose artifacts are roots (every `*.lock` here).
    pub lockfiles: PathBuf,
    /// Keep this many newest generations per node (the current one always); None keeps all.
    pub keep_generations: Option<u32>,
    pub dry_run: bool,
    /// Draw a spinner (only ever on a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub removed_generations: Vec<String>,
    pub removed_images: Vec<String>,
    /// Layers no kept image uses (a payload stays while any kept generation uses it).
    pub removed_layers: Vec<String>,
    pub removed_objects: usize,
    pub removed_other: usize,
    pub freed_bytes: u64,
    pub kept_generations: usize,
    pub kept_images: usize,
    pub kept_layers: usize,
    pub kept_objects: usize,
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
        let entries: Vec<_> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
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
        super::open_store_read_only(&layout, true)?
    } else {
        super::open_store_exclusive(&layout)?
    };
    let mut r = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    // Counts what has been looked at (generations, images, layers, objects).
    let bar = super::progress_bar(opts.progress, super::Progress::Spinner, 0, "gc");
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
                live_manifests.push(generation_manifest(out, &node, g.number)?);
                r.kept_generations += 1;
            } else {
                remove(&generations::generation_dir(out, &node, g.number), &mut r)?;
                r.removed_generations.push(format!("{node}@{}", g.number));
            }
        }
    }

    // 2. Live objects: every file of a kept image, every locked artifact and what it installs.
    let mut live: BTreeSet<Blake3> = BTreeSet::new();
    let mut live_images = BTreeSet::new();
    let mut live_layers = BTreeSet::new();
    for m in &live_manifests {
        live.extend(m.entries.iter().filter_map(|e| e.blake3));
        live_images.insert(m.id.clone());
        live_layers.extend(m.layers.iter().map(|l| l.id.clone()));
    }
    let index = store.index_entries();
    let mut locked = BTreeSet::new();
    for e in std::fs::read_dir(&opts.lockfiles)
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "lock") {
            let lock = Lockfile::load(&e.path())?;
            locked.extend(
                lock.artifacts
                    .iter()
                    .filter_map(crate::lock::LockEntry::sha256),
            );
        }
    }
    for (sha, b, _, _) in &index {
        if locked.contains(sha) {
            live.insert(*b);
        }
    }
    let records = store.records("extract");
    for (_, path) in &records {
        if let Some(rec) = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ExtractRecord>(&b).ok())
        {
            if live.contains(&rec.artifact) {
                live.extend(rec.files.iter().map(|f| f.blake3));
            }
        }
    }

    // 3. Sweep: images and layers first, then what they are made of, so that a gc killed
    // midway never leaves a layer whose store objects are gone.
    for e in std::fs::read_dir(layout.images())
        .into_iter()
        .flatten()
        .flatten()
    {
        bar.inc(1);
        let name = e.file_name().to_string_lossy().into_owned();
        if live_images.contains(&name) {
            r.kept_images += 1;
        } else {
            remove(&e.path(), &mut r)?;
            if !name.starts_with('.') {
                r.removed_images.push(name);
            }
        }
    }
    for e in std::fs::read_dir(layout.layers())
        .into_iter()
        .flatten()
        .flatten()
    {
        bar.inc(1);
        let name = e.file_name().to_string_lossy().into_owned();
        if live_layers.contains(&name) {
            r.kept_layers += 1;
        } else {
            remove(&e.path(), &mut r)?;
            if !name.starts_with('.') {
                r.removed_layers.push(name);
            }
        }
    }
    for (addr, path) in store.objects() {
        bar.inc(1);
        if addr.is_some_and(|a| live.contains(&a)) {
            r.kept_objects += 1;
        } else {
            remove(&path, &mut r)?;
            r.removed_objects += 1;
        }
    }
    for (sha, b, _, path) in &index {
        if !live.contains(b) {
            remove(path, &mut r)?;
            let lock = store.root().join("locks").join(format!("{sha}.lock"));
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
            .is_some_and(|rec| live.contains(&rec.artifact));
        if !keep {
            remove(path, &mut r)?;
            r.removed_other += 1;
        }
    }
    // Cached verity digests of objects that are gone (any salt).
    for e in std::fs::read_dir(store.root())
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("verity-") {
            let kind = e.file_name().to_string_lossy().into_owned();
            for (key, path) in store.records(&kind) {
                if !live.contains(&key) {
                    remove(&path, &mut r)?;
                    r.removed_other += 1;
                }
            }
        }
    }
    // Downloads interrupted by a killed fetch, of artifacts no lockfile pins any more (those
    // still locked stay, for the next fetch to resume).
    for (sha, path) in store.partials() {
        if !locked.contains(&sha) {
            remove(&path, &mut r)?;
            r.removed_other += 1;
        }
    }
    // The whole-root images' shared tar prefixes: nothing writes or reads them any more.
    let legacy = layout.legacy_cache().join("tar-prefix");
    if legacy.exists() {
        remove(&legacy, &mut r)?;
        r.removed_other += 1;
    }
    bar.finish_and_clear();
    Ok(r)
}
