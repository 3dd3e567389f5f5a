//! Per-node history. Every build that changes a node's image adds a generation; `current` is one
//! symlink, switched by a single atomic rename, so an interrupted switch leaves the old or the new
//! pointer, never none.
//!
//! ```text
//! out/nodes/<node>/generations/<n>/generation.json   number, image id, lock-id, build time (metadata only)
//! out/nodes/<node>/generations/<n>/manifest.json     the image's record, to rebuild it after gc
//! out/nodes/<node>/generations/<n>/image             -> ../../../../images/<id>
//! out/nodes/<node>/current                           -> generations/<n>/image
//! ```
//!
//! The record is kept as `out/` keeps every image record (format 3, [`crate::image::StoredRecord`]):
//! without its entries, which the records of its layers (`out/layers/<id>/layer.json`, kept by gc
//! while any kept generation names them) hold; usually a hard link to the image directory's.
//! Records an older nodeforge kept whole (format 2) are read alike.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError, IoContext};
use crate::layout::OutDir;

/// One generation of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub number: u32,
    pub image_id: String,
    pub lock_id: String,
    /// Seconds since the epoch when it was built. Metadata only: never part of an image.
    pub built_at_unix: u64,
    /// The same instant, RFC 3339 in UTC.
    pub built_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{}: not a generation record: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("node `{node}` has no generations yet: run `nodeforge build` first")]
    NoGenerations { node: String },
    #[error("node `{node}` has no generation before {current}{}", same_image(same, *current))]
    NoPrevious {
        node: String,
        current: u32,
        /// The earlier generations that hold the current generation's image.
        same: Vec<u32>,
    },
    #[error(
        "`--to {to}` is neither a generation of node `{node}` nor the start of an image id it had"
    )]
    NoSuchImage { node: String, to: String },
    #[error("`{prefix}` is ambiguous for node `{node}`: it starts {}", candidates.join(", "))]
    Ambiguous {
        node: String,
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("`--to {to}` is ambiguous for node `{node}`: generation {number} (image {generation_image}), or image {prefix_image} (generation {prefix_generation}), whose id starts with `{to}`")]
    NumberOrPrefix {
        node: String,
        to: String,
        number: u32,
        generation_image: String,
        prefix_image: String,
        prefix_generation: u32,
    },
    #[error("`--to {to}` names node `{named}`, not `{node}`")]
    OtherNode {
        node: String,
        named: String,
        to: String,
    },
    #[error("node `{node}` has no generation {number}: {node} has {}", match existing.as_slice() {
        [] => "none".to_string(),
        [one] => format!("generation {one}"),
        many => format!("generations {}", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    })]
    NoSuchGeneration {
        node: String,
        number: u32,
        /// The generations it has.
        existing: Vec<u32>,
    },
}

fn gens_dir(out: &Path, node: &str) -> PathBuf {
    OutDir::new(out).generations(node)
}

/// Nodes that have a directory under `out/nodes/`, sorted.
pub fn nodes(out: &Path) -> Vec<String> {
    OutDir::new(out).node_names()
}

/// Every generation of a node, oldest first.
pub fn list(out: &Path, node: &str) -> Result<Vec<Generation>, GenerationError> {
    let mut gens = Vec::new();
    for e in crate::fsutil::entries(gens_dir(out, node)) {
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        gens.push(read_record(&e.path().join("generation.json"), n)?);
    }
    gens.sort_by_key(|g| g.number);
    Ok(gens)
}

/// The newest generation number of a node, from the numbered directories' names alone (no
/// record read: a build needs only this and its current generation, however long the history).
pub fn newest(out: &Path, node: &str) -> Option<u32> {
    crate::fsutil::entries(gens_dir(out, node))
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .max()
}

/// Generation `number` of a node, read from its record (checked to be that generation's).
pub fn read(out: &Path, node: &str, number: u32) -> Result<Generation, GenerationError> {
    read_record(
        &generation_dir(out, node, number).join("generation.json"),
        number,
    )
}

/// The generation record at `path`, which must be generation `number`'s.
fn read_record(path: &Path, number: u32) -> Result<Generation, GenerationError> {
    let path = path.to_path_buf();
    let bytes = std::fs::read(&path).at("cannot read", &path)?;
    let g: Generation = serde_json::from_slice(&bytes).map_err(|e| GenerationError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if g.number != number {
        return Err(GenerationError::Corrupt {
            path,
            message: format!("it says generation {} in directory {number}", g.number),
        });
    }
    Ok(g)
}

/// The generation `current` points at, if any.
pub fn current(out: &Path, node: &str) -> Option<u32> {
    let target = std::fs::read_link(OutDir::new(out).current(node)).ok()?;
    let mut parts = target
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    match (
        parts.next().as_deref(),
        parts.next(),
        parts.next().as_deref(),
    ) {
        // Exactly `generations/<n>/image`: nothing before, after or in between.
        (Some("generations"), Some(n), Some("image")) => {
            n.parse().ok().filter(|n| target == current_target(*n))
        }
        _ => None,
    }
}

/// The directory of a generation.
pub fn generation_dir(out: &Path, node: &str, number: u32) -> PathBuf {
    gens_dir(out, node).join(number.to_string())
}

/// Record a new generation for `image_id` (unless it is already current) and switch to it.
/// Returns the generation number and whether a new one was made.
pub fn record(
    out: &Path,
    node: &str,
    image_id: &str,
    lock_id: &str,
    manifest_json: &[u8],
) -> Result<(u32, bool), GenerationError> {
    record_from(out, node, image_id, lock_id, manifest_json, None)
}

/// [`record`], with the generation's `manifest.json` hard-linked from `same_bytes` (the image's
/// own record, holding exactly `manifest_json`) where the filesystem allows: a thousand nodes
/// keep one copy of each record, and the generation's survives gc of the image all the same.
pub fn record_from(
    out: &Path,
    node: &str,
    image_id: &str,
    lock_id: &str,
    manifest_json: &[u8],
    same_bytes: Option<&Path>,
) -> Result<(u32, bool), GenerationError> {
    match stage_record(out, node, image_id, lock_id, manifest_json, same_bytes)? {
        Staged::Unchanged(cur) => Ok((cur, false)),
        Staged::New(g) => g.publish(fsutil::Durability::Each),
    }
}

/// What [`stage_record`] found: the image is current already, or a new generation waits in a
/// temporary directory.
#[derive(Debug)]
pub enum Staged {
    /// `current` is this image through and through: nothing to write.
    Unchanged(u32),
    New(Box<StagedGeneration>),
}

/// A generation written into a temporary directory beside the others, to be numbered for good
/// and put in place under the node's lock by [`publish`](Self::publish).
#[derive(Debug)]
pub struct StagedGeneration {
    out: PathBuf,
    node: String,
    dir: PathBuf,
    tmp: tempfile::TempDir,
    generation: Generation,
    manifest_json: Vec<u8>,
}

/// The generation `current` points at when the whole chain says it is `image_id`: `current` →
/// this generation, whose record names this image, whose `image` link points at it, whose
/// record is `manifest_json`.
/// Only the current generation's record is read (not every generation's): a build's cost does
/// not grow with the node's history. A damaged record is an error; a missing one (`current`
/// dangling) is not this image.
fn unchanged(
    out: &Path,
    node: &str,
    image_id: &str,
    manifest_json: &[u8],
) -> Result<Option<u32>, GenerationError> {
    let Some(cur) = current(out, node) else {
        return Ok(None);
    };
    let g = match read(out, node, cur) {
        Ok(g) => g,
        Err(GenerationError::Fs(e)) if e.source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(
        (g.image_id == image_id && chain_intact(out, node, cur, image_id, manifest_json))
            .then_some(cur),
    )
}

/// [`record_from`]'s first half: unless the image is current already, write the node's next
/// generation into a temporary directory, to be made durable with whatever else the caller
/// staged (one `syncfs`) and then [`published`](StagedGeneration::publish). No lock is held
/// in between (a build stages many nodes, and two builds must not wait on each other's nodes):
/// `publish` takes the node's lock and checks again.
pub fn stage_record(
    out: &Path,
    node: &str,
    image_id: &str,
    lock_id: &str,
    manifest_json: &[u8],
    same_bytes: Option<&Path>,
) -> Result<Staged, GenerationError> {
    if let Some(cur) = unchanged(out, node, image_id, manifest_json)? {
        return Ok(Staged::Unchanged(cur));
    }
    let dir = gens_dir(out, node);
    fsutil::create_dir_all(&dir)?;
    let (built_at_unix, built_at) = now();
    let number = next_number(out, node, &dir)?;
    let generation = Generation {
        number,
        image_id: image_id.to_string(),
        lock_id: lock_id.to_string(),
        built_at_unix,
        built_at,
    };
    let tmp = generation_tmp(&dir, &generation, manifest_json, same_bytes)?;
    Ok(Staged::New(Box::new(StagedGeneration {
        out: out.to_path_buf(),
        node: node.to_string(),
        dir,
        tmp,
        generation,
        manifest_json: manifest_json.to_vec(),
    })))
}

/// The number after the node's newest generation (1 for the first).
fn next_number(out: &Path, node: &str, dir: &Path) -> Result<u32, GenerationError> {
    match newest(out, node) {
        None => Ok(1),
        Some(n) => n.checked_add(1).ok_or_else(|| numbers_full(dir)),
    }
}

fn numbers_full(dir: &Path) -> GenerationError {
    GenerationError::Corrupt {
        path: dir.to_path_buf(),
        message: "generation numbers have reached their limit (4294967295)".to_string(),
    }
}

/// A temporary directory in `dir` holding generation `g`: its `generation.json`, the image's
/// record (hard-linked from `same_bytes` when that holds the same bytes), the `image` link.
fn generation_tmp(
    dir: &Path,
    g: &Generation,
    manifest_json: &[u8],
    same_bytes: Option<&Path>,
) -> Result<tempfile::TempDir, GenerationError> {
    let tmp = fsutil::temp_dir_in(dir)?;
    let mut json = serde_json::to_vec_pretty(g).unwrap_or_default();
    json.push(b'\n');
    fsutil::write_new(&tmp.path().join("generation.json"), &json, 0o644)?;
    let record = tmp.path().join(crate::image::IMAGE_RECORD);
    let linked = same_bytes.is_some_and(|src| {
        std::fs::read(src).is_ok_and(|b| b == manifest_json)
            && std::fs::hard_link(src, &record).is_ok()
    });
    if !linked {
        fsutil::write_new(&record, manifest_json, 0o444)?;
    }
    let link = tmp.path().join("image");
    std::os::unix::fs::symlink(image_link_target(&g.image_id), &link)
        .at("cannot create a symlink at", &link)?;
    Ok(tmp)
}

impl StagedGeneration {
    /// Under the node's lock: unless a concurrent build made the image current meanwhile (then
    /// nothing is recorded), rename the generation into place under the next free number and
    /// switch `current` to it. Returns the generation and whether one was recorded. With
    /// [`fsutil::Durability::Batched`] the caller has synced the staged files and syncs the
    /// renames after; a generation whose number was taken meanwhile is written and synced anew.
    pub fn publish(
        self: Box<Self>,
        durability: fsutil::Durability,
    ) -> Result<(u32, bool), GenerationError> {
        let Self {
            out,
            node,
            dir,
            tmp,
            mut generation,
            manifest_json,
        } = *self;
        // Held until the switch: a concurrent build of the same image waits, then finds it
        // current and records nothing.
        let _lock = fsutil::lock_exclusive(&OutDir::new(&out).generations_lock(&node))?;
        if let Some(cur) = unchanged(&out, &node, &generation.image_id, &manifest_json)? {
            return Ok((cur, false));
        }
        let next = next_number(&out, &node, &dir)?;
        // The staged directory holds the number it was staged with.
        let mut tmp = (next == generation.number).then_some(tmp);
        generation.number = next;
        loop {
            let (staged, d) = match tmp.take() {
                Some(t) => (t, durability),
                // Another number: written anew, and synced now (the caller's sync did not see it).
                None => (
                    generation_tmp(&dir, &generation, &manifest_json, None)?,
                    fsutil::Durability::Each,
                ),
            };
            let target = dir.join(generation.number.to_string());
            if fsutil::publish_dir_new_with(staged, &target, d)? {
                break;
            }
            generation.number = generation
                .number
                .checked_add(1)
                .ok_or_else(|| numbers_full(&dir))?;
        }
        switch_locked(&out, &node, generation.number, durability)?;
        Ok((generation.number, true))
    }
}

/// Where a generation's `image` link must point for image `image_id`.
pub fn image_link_target(image_id: &str) -> PathBuf {
    Path::new("../../../../images").join(image_id)
}

/// Where `current` must point for generation `number`.
pub fn current_target(number: u32) -> PathBuf {
    Path::new("generations")
        .join(number.to_string())
        .join("image")
}

/// Whether generation `number` of `node` is image `image_id` through and through: its `image`
/// link points at that image and its record holds `manifest_json`.
fn chain_intact(out: &Path, node: &str, number: u32, image_id: &str, manifest_json: &[u8]) -> bool {
    let dir = generation_dir(out, node, number);
    std::fs::read_link(dir.join("image")).is_ok_and(|t| t == image_link_target(image_id))
        && std::fs::read(dir.join(crate::image::IMAGE_RECORD))
            .is_ok_and(|b| same_record(&b, manifest_json))
}

/// Whether a generation's record file holding `have` is the record `want` (as `out/` keeps
/// records now): the same bytes, or the whole record an older nodeforge kept that says the same
/// (its entries are what its layers' ids cover), so that a build after an upgrade does not
/// record an unchanged image again.
fn same_record(have: &[u8], want: &[u8]) -> bool {
    use crate::image::OnDisk;
    have == want
        || matches!(
            (OnDisk::parse(have), OnDisk::parse(want)),
            (Ok(OnDisk::Whole(w)), Ok(OnDisk::Stored(s)))
                if w.check().is_ok() && w.stored().as_ref() == Some(&s)
        )
}

/// Point `current` at generation `number`: one atomic rename, under the node's generations
/// lock.
pub fn switch(out: &Path, node: &str, number: u32) -> Result<(), GenerationError> {
    let dir = gens_dir(out, node);
    if !dir.is_dir() {
        return Err(GenerationError::NoGenerations {
            node: node.to_string(),
        });
    }
    let _lock = fsutil::lock_exclusive(&OutDir::new(out).generations_lock(node))?;
    switch_locked(out, node, number, fsutil::Durability::Each)
}

/// [`switch`], with the lock already held.
fn switch_locked(
    out: &Path,
    node: &str,
    number: u32,
    durability: fsutil::Durability,
) -> Result<(), GenerationError> {
    if !generation_dir(out, node, number)
        .join("generation.json")
        .is_file()
    {
        return Err(GenerationError::NoSuchGeneration {
            node: node.to_string(),
            number,
            existing: list(out, node)?.iter().map(|g| g.number).collect(),
        });
    }
    let current = OutDir::new(out).current(node);
    let target = current_target(number);
    if std::fs::read_link(&current).is_ok_and(|t| t == target) {
        return Ok(());
    }
    fsutil::replace_symlink_with(&current, &target, durability)?;
    Ok(())
}

/// Where a rollback goes, and the generations it passed over on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub generation: Generation,
    /// Generations between the target and the current one, newest first, passed over because
    /// they hold the current generation's image (a rollback to them would change nothing).
    pub skipped: Vec<u32>,
}

/// The generation to roll back to. Without `to`: the newest one before the current one whose
/// image differs from the current one's. With `to`: `NODE@N` or `@N` (generation N), a number
/// (generation N, unless it is also the start of an image id: then both readings are named and
/// refused), or an image id (prefix) — the newest generation holding that image.
pub fn target(out: &Path, node: &str, to: Option<&str>) -> Result<Target, GenerationError> {
    let gens = list(out, node)?;
    if gens.is_empty() {
        return Err(GenerationError::NoGenerations {
            node: node.to_string(),
        });
    }
    let Some(to) = to else {
        let cur = current(out, node).unwrap_or(u32::MAX);
        let cur_image = gens.iter().find(|g| g.number == cur).map(|g| &g.image_id);
        let mut skipped = Vec::new();
        for g in gens.iter().rev().filter(|g| g.number < cur) {
            if Some(&g.image_id) == cur_image {
                skipped.push(g.number);
                continue;
            }
            return Ok(Target {
                generation: g.clone(),
                skipped,
            });
        }
        skipped.reverse();
        return Err(GenerationError::NoPrevious {
            node: node.to_string(),
            current: cur,
            same: skipped,
        });
    };
    let by_number = |n: u32| {
        gens.iter().find(|g| g.number == n).cloned().ok_or_else(|| {
            GenerationError::NoSuchGeneration {
                node: node.to_string(),
                number: n,
                existing: gens.iter().map(|g| g.number).collect(),
            }
        })
    };
    let exact = |generation: Generation| Target {
        generation,
        skipped: Vec::new(),
    };
    // `NODE@N` (as `show` and `diff` take it) or `@N`.
    if let Some((named, n)) = to.split_once('@') {
        if !named.is_empty() && named != node {
            return Err(GenerationError::OtherNode {
                node: node.to_string(),
                named: named.to_string(),
                to: to.to_string(),
            });
        }
        let Ok(n) = n.parse::<u32>() else {
            return Err(GenerationError::NoSuchImage {
                node: node.to_string(),
                to: to.to_string(),
            });
        };
        return by_number(n).map(exact);
    }
    let mut ids: Vec<&str> = gens
        .iter()
        .map(|g| g.image_id.as_str())
        .filter(|id| !to.is_empty() && id.starts_with(to))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let newest_with = |id: &str| gens.iter().rev().find(|g| g.image_id == id).cloned();
    let number = to
        .parse::<u32>()
        .ok()
        .filter(|_| to.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| gens.iter().find(|g| g.number == n).cloned());
    match (number, ids.as_slice()) {
        (Some(g), []) => Ok(exact(g)),
        (Some(g), [id, ..]) => {
            let p = newest_with(id);
            Err(GenerationError::NumberOrPrefix {
                node: node.to_string(),
                to: to.to_string(),
                number: g.number,
                generation_image: short(&g.image_id),
                prefix_image: short(id),
                prefix_generation: p.map_or(0, |p| p.number),
            })
        }
        (None, []) => Err(GenerationError::NoSuchImage {
            node: node.to_string(),
            to: to.to_string(),
        }),
        (None, [id]) => newest_with(id)
            .map(exact)
            .ok_or(GenerationError::NoSuchImage {
                node: node.to_string(),
                to: to.to_string(),
            }),
        (None, many) => Err(GenerationError::Ambiguous {
            node: node.to_string(),
            prefix: to.to_string(),
            candidates: many.iter().map(|id| short(id)).collect(),
        }),
    }
}

/// An image id's first 16 characters, as messages name it.
fn short(id: &str) -> String {
    id.chars().take(16).collect()
}

/// What [`GenerationError::NoPrevious`] says of the earlier generations that hold the current
/// image: nothing when there are none.
fn same_image(same: &[u32], current: u32) -> String {
    match same {
        [] => String::new(),
        [one] => {
            format!(" with another image (generation {one} holds the same image as {current})")
        }
        many => format!(
            " with another image (generations {} hold the same image as {current})",
            join_numbers(many)
        ),
    }
}

fn join_numbers(n: &[u32]) -> String {
    n.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Remove a generation's directory (gc). The current generation is never removed.
pub fn remove(out: &Path, node: &str, number: u32) -> Result<(), GenerationError> {
    if current(out, node) == Some(number) {
        return Ok(());
    }
    let dir = generation_dir(out, node, number);
    std::fs::remove_dir_all(&dir).at("cannot remove", &dir)?;
    Ok(())
}

/// Now, as (unix seconds, RFC 3339 UTC). The only place nodeforge reads the clock.
fn now() -> (u64, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs, rfc3339(secs))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn a_record_reads_the_current_generation_and_numbers_after_the_newest() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path();
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        record(out, "n", &a, "l", b"{}").expect("r");
        record(out, "n", &b, "l", b"{}").expect("r");
        switch(out, "n", 1).expect("switch");
        // An older generation's record is not read by a build (list still refuses it).
        let old = generation_dir(out, "n", 2).join("generation.json");
        std::fs::write(&old, b"not json").expect("write");
        assert_eq!(record(out, "n", &a, "l", b"{}").expect("r"), (1, false));
        assert_eq!(newest(out, "n"), Some(2));
        assert_eq!(record(out, "n", &c, "l", b"{}").expect("r"), (3, true));
        assert!(matches!(
            list(out, "n"),
            Err(GenerationError::Corrupt { .. })
        ));
        // The current generation's record damaged: refused, as before.
        let cur = generation_dir(out, "n", 3).join("generation.json");
        std::fs::write(&cur, b"not json").expect("write");
        assert!(matches!(
            record(out, "n", &c, "l", b"{}"),
            Err(GenerationError::Corrupt { .. })
        ));
    }

    #[test]
    fn record_switch_and_target() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(record(out, "n", &a, "l", b"{}").expect("r"), (1, true));
        assert_eq!(
            record(out, "n", &a, "l", b"{}").expect("r"),
            (1, false),
            "same image: no new generation"
        );
        assert_eq!(record(out, "n", &b, "l", b"{}").expect("r"), (2, true));
        assert_eq!(current(out, "n"), Some(2));
        assert_eq!(target(out, "n", None).expect("t").generation.number, 1);
        switch(out, "n", 1).expect("switch");
        assert!(matches!(
            target(out, "n", None),
            Err(GenerationError::NoPrevious { .. })
        ));
        assert_eq!(
            target(out, "n", Some("bb")).expect("t").generation.number,
            2
        );
        assert!(matches!(
            target(out, "n", Some("c")),
            Err(GenerationError::NoSuchImage { .. })
        ));
        assert_eq!(
            std::fs::read_link(out.join("nodes/n/current")).expect("link"),
            PathBuf::from("generations/1/image")
        );
    }

    /// Generations 1 (a), 2 (b), 3 (b again, a build after a rollback to 1), current 3.
    fn a_b_b() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path();
        let (a, b) = ("a".repeat(64), "2".repeat(64));
        record(out, "n", &a, "l", b"{}").expect("r");
        record(out, "n", &b, "l", b"{}").expect("r");
        switch(out, "n", 1).expect("switch");
        assert_eq!(record(out, "n", &b, "l", b"{}").expect("r"), (3, true));
        (dir, a, b)
    }

    #[test]
    fn rollback_skips_generations_with_the_current_image() {
        let (dir, _, _) = a_b_b();
        let out = dir.path();
        let t = target(out, "n", None).expect("t");
        assert_eq!((t.generation.number, t.skipped), (1, vec![2]));
        switch(out, "n", 2).expect("switch");
        let t = target(out, "n", None).expect("t");
        assert_eq!((t.generation.number, t.skipped), (1, vec![]));
        // On 3 with 2 the same and 1 gone: nothing to go back to, and the message says why.
        switch(out, "n", 3).expect("switch");
        std::fs::remove_dir_all(generation_dir(out, "n", 1)).expect("rm");
        let e = target(out, "n", None).expect_err("none");
        assert_eq!(
            e.to_string(),
            "node `n` has no generation before 3 with another image (generation 2 holds the same image as 3)"
        );
    }

    #[test]
    fn to_takes_generation_numbers_and_ids_and_refuses_both_at_once() {
        let (dir, a, b) = a_b_b();
        let out = dir.path();
        let n = |to: &str| target(out, "n", Some(to)).map(|t| t.generation.number);
        assert_eq!(n("@1").expect("@1"), 1);
        assert_eq!(n("n@2").expect("n@2"), 2);
        assert_eq!(n("1").expect("1: no id starts with 1"), 1);
        assert_eq!(n(&a[..4]).expect("prefix"), 1);
        assert_eq!(n(&b[..4]).expect("prefix: the newest with it"), 3);
        // `2` is generation 2 and the start of image 2222…: both readings, refused.
        assert_eq!(
            n("2").expect_err("ambiguous").to_string(),
            "`--to 2` is ambiguous for node `n`: generation 2 (image 2222222222222222), or image 2222222222222222 (generation 3), whose id starts with `2`"
        );
        assert_eq!(
            n("m@2").expect_err("other node").to_string(),
            "`--to m@2` names node `m`, not `n`"
        );
        assert_eq!(
            n("@7").expect_err("no 7").to_string(),
            "node `n` has no generation 7: n has generations 1, 2, 3"
        );
        assert_eq!(
            n("zzz").expect_err("nothing").to_string(),
            "`--to zzz` is neither a generation of node `n` nor the start of an image id it had"
        );
    }

    /// Builds of one image at once: one generation, whoever comes first; the others find it
    /// current under the lock.
    #[test]
    fn concurrent_records_of_one_image_make_one_generation() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().to_path_buf();
        record(&out, "n", &"a".repeat(64), "l", b"{}").expect("r");
        let b = "b".repeat(64);
        let made: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| record(&out, "n", &b, "l", b"{}").expect("r").1))
                .collect();
            hs.into_iter().map(|h| h.join().expect("join")).collect()
        });
        assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");
        let numbers: Vec<u32> = list(&out, "n")
            .expect("list")
            .iter()
            .map(|g| g.number)
            .collect();
        assert_eq!(numbers, vec![1, 2]);
        assert_eq!(current(&out, "n"), Some(2));
    }
}
