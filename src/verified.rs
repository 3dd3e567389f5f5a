//! "Check once, remember safely": a record (`out/verified-v1.json`, [`crate::layout::OutDir::verified`])
//! of files already hashed and checked, keyed by what cannot change without the file changing —
//! device, inode, size, mtime and ctime in nanoseconds, as git's index and ccache key their
//! caches — so that `build`, `sign`, `sbom` and `provenance` re-read only files whose key moved.
//! `verify` never consults it: it is the full check.
//!
//! Why the key is enough: writing a file's bytes moves its mtime and ctime; replacing it
//! (rename, a new file) gives another inode; `touch -d` can put the mtime back but the kernel
//! sets ctime to the current time on every change, so only someone who can set the clock (root)
//! can forge it, and root can also rewrite the record. A write in the same timestamp granule as
//! the check could leave the key as it was: a file whose ctime is less than [`RACY`] before the
//! check is not remembered (git's "racily clean" rule), so it is hashed again next time.
//!
//! A hard link moves the ctime of the file it links (and nothing else): a build that links a
//! layer's files into a new image directory would otherwise make the next run read them again,
//! the whole shared payload after any one-node change. [`Verified::relinked`] lets the keys of
//! files this run checked follow such a move, when the inode, size and mtime are unchanged.
//!
//! The record is a cache: missing, unreadable or of another version it reads as empty; it is
//! written atomically (temp file and rename), merged with what is on disk just before, so two
//! runs at once lose at most each other's new entries (a re-hash, never a wrong answer). It holds
//! at most [`LIMIT`] entries; beyond that the ones this run did not use are dropped.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};

/// The record's kind, with its version: another kind reads as empty.
pub const KIND: &str = "nodeforge-verified-v1";

/// At most this many entries are kept.
pub const LIMIT: usize = 100_000;

/// A file changed less than this before it was checked is not remembered: a write in the same
/// timestamp granule would not move its key. Linux stamps files from its coarse clock (one tick,
/// at most 10 ms); a file system with whole-second stamps (its nanoseconds all zero) gets
/// [`RACY_COARSE`].
pub const RACY: Duration = Duration::from_millis(100);

/// [`RACY`] for a file whose stamps have no sub-second part.
pub const RACY_COARSE: Duration = Duration::from_secs(2);

/// What identifies a file's bytes without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    /// The key of the regular file at `path` (not following a symlink), None if it is not one.
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::symlink_metadata(path).ok()?;
        m.is_file().then(|| Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }

    /// Whether the file changed so recently that a write in the same granule could go unseen.
    pub(crate) fn racy(&self) -> bool {
        stamp_racy(self.ctime_ns)
    }

    /// Whether `now` is this key with only its ctime moved forward (what a hard link, a rename
    /// or a chmod does), its bytes' stamp (mtime) old enough that a write since would have moved
    /// it.
    fn only_ctime_moved(&self, now: &FileKey) -> bool {
        now.dev == self.dev
            && now.ino == self.ino
            && now.size == self.size
            && now.mtime_ns == self.mtime_ns
            && now.ctime_ns > self.ctime_ns
            && !stamp_racy(now.mtime_ns)
    }
}

/// Whether a file stamped at `stamp_ns` changed so recently that a write in the same timestamp
/// granule would leave the stamp as it is.
fn stamp_racy(stamp_ns: i128) -> bool {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let window = if stamp_ns % 1_000_000_000 == 0 {
        RACY_COARSE
    } else {
        RACY
    };
    now - stamp_ns < window.as_nanos() as i128
}

/// One remembered check: the keys of the files it read, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    keys: Vec<FileKey>,
    facts: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Disk {
    kind: String,
    entries: BTreeMap<String, Entry>,
}

/// The record, loaded once per run.
#[derive(Debug, Default)]
pub struct Verified {
    /// None: remember nothing, trust nothing (verify, or no output directory).
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Names this run looked up and found, or added.
    used: Mutex<std::collections::BTreeSet<String>>,
    added: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a run did with the record: for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerifiedStats {
    /// Checks answered from the record (files not read).
    pub remembered: u64,
    /// Checks done by reading the files (their key was new or had moved).
    pub rehashed: u64,
}

fn read_disk(path: &Path) -> BTreeMap<String, Entry> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Disk>(&b).ok())
        .filter(|d| d.kind == KIND)
        .map(|d| d.entries)
        .unwrap_or_default()
}

impl Verified {
    /// The record at `path` (empty when absent, unreadable or of another kind).
    pub fn load(path: &Path) -> Self {
        Self {
            path: Some(path.to_path_buf()),
            entries: Mutex::new(read_disk(path)),
            ..Self::default()
        }
    }

    /// A record that remembers nothing: every check reads the files.
    pub fn none() -> Self {
        Self::default()
    }

    /// The facts checked for `name` when every file in `paths` still has the key it had then.
    pub fn get(&self, name: &str, paths: &[&Path]) -> Option<BTreeMap<String, String>> {
        self.path.as_ref()?;
        let found = self
            .entries
            .lock()
            .ok()
            .and_then(|e| e.get(name).cloned())
            .filter(|e| {
                e.keys.len() == paths.len()
                    && e.keys
                        .iter()
                        .zip(paths)
                        .all(|(k, p)| FileKey::of(p).as_ref() == Some(k))
            });
        match found {
            Some(e) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut u) = self.used.lock() {
                    u.insert(name.to_string());
                }
                Some(e.facts)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Remember that `name` was checked with `facts`, having read the files in `paths` whose keys
    /// were `before` when the check began: kept only if no key moved meanwhile and none is racy.
    pub fn put(
        &self,
        name: &str,
        paths: &[&Path],
        before: &[Option<FileKey>],
        facts: BTreeMap<String, String>,
    ) {
        if self.path.is_none() || before.len() != paths.len() {
            return;
        }
        let mut keys = Vec::with_capacity(paths.len());
        for (p, b) in paths.iter().zip(before) {
            match (FileKey::of(p), b) {
                (Some(now), Some(b)) if now == *b && !now.racy() => keys.push(now),
                _ => return,
            }
        }
        if let (Ok(mut e), Ok(mut u)) = (self.entries.lock(), self.used.lock()) {
            e.insert(name.to_string(), Entry { keys, facts });
            u.insert(name.to_string());
            self.added.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Files this run checked and then hard-linked itself (a build links a layer's files into
    /// every new image directory): a link moves the inode's ctime and nothing else, so without
    /// this the next run would read them all again (the shared payload: every byte of it, after
    /// any one-node change). The keys of every entry this run found or added (checked in this
    /// run, so true a moment before the link) follow the files in `paths` whose key moved in
    /// ctime alone, with the same inode, size and an mtime old enough that a write since would
    /// have moved it. What this cannot tell apart: someone with write access to `out/` who
    /// rewrites a file and puts its mtime back between this run's check and its link, a window
    /// of milliseconds; such a writer can edit this record too (see the module's limits).
    pub fn relinked(&self, paths: &[&Path]) {
        if self.path.is_none() {
            return;
        }
        let now: BTreeMap<(u64, u64), FileKey> = paths
            .iter()
            .filter_map(|p| FileKey::of(p))
            .map(|k| ((k.dev, k.ino), k))
            .collect();
        let (Ok(mut entries), Ok(used)) = (self.entries.lock(), self.used.lock()) else {
            return;
        };
        let mut moved = false;
        for name in used.iter() {
            let Some(e) = entries.get_mut(name) else {
                continue;
            };
            for k in &mut e.keys {
                if let Some(n) = now.get(&(k.dev, k.ino)).filter(|n| k.only_ctime_moved(n)) {
                    *k = *n;
                    moved = true;
                }
            }
        }
        if moved {
            self.added.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The keys of `paths` now, to pass to [`Verified::put`] after reading them.
    pub fn keys(paths: &[&Path]) -> Vec<Option<FileKey>> {
        paths.iter().map(|p| FileKey::of(p)).collect()
    }

    /// The sha256 and size of the file at `path`: remembered when its key has not moved since a
    /// run hashed it, else read (and remembered).
    pub fn sha256_of(&self, path: &Path) -> std::io::Result<(crate::hash::Sha256, u64)> {
        let name = format!("sha256:{}", path.display());
        let facts = self.get(&name, &[path]).and_then(|f| {
            Some((
                crate::hash::Sha256::parse(f.get("sha256")?).ok()?,
                f.get("size")?.parse().ok()?,
            ))
        });
        if let Some(h) = facts {
            return Ok(h);
        }
        let before = Self::keys(&[path]);
        let h = crate::hash::Sha256::of_file(path)?;
        self.put(
            &name,
            &[path],
            &before,
            BTreeMap::from([
                ("sha256".to_string(), h.0.to_hex()),
                ("size".to_string(), h.1.to_string()),
            ]),
        );
        Ok(h)
    }

    pub fn stats(&self) -> VerifiedStats {
        VerifiedStats {
            remembered: self.hits.load(Ordering::Relaxed),
            rehashed: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Write the record if this run added to it: merged over what is on disk now (another run's
    /// entries kept, ours win), bounded, atomically. A failure to write costs only re-hashing.
    pub fn save(&self) -> Result<(), FsError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.added.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let (Ok(ours), Ok(used)) = (self.entries.lock(), self.used.lock()) else {
            return Ok(());
        };
        let mut merged = read_disk(path);
        merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged.len() > LIMIT {
            merged.retain(|k, _| used.contains(k));
        }
        if merged.len() > LIMIT {
            let keep: Vec<String> = merged.keys().take(LIMIT).cloned().collect();
            merged.retain(|k, _| keep.binary_search(k).is_ok());
        }
        let disk = Disk {
            kind: KIND.to_string(),
            entries: merged,
        };
        let bytes = serde_json::to_vec(&disk).unwrap_or_default();
        if let Some(dir) = path.parent() {
            fsutil::create_dir_all(dir)?;
        }
        // Atomic, not fsynced: after a crash the record is the old one, the new one, or a file
        // that does not parse (empty: everything is read again). It only vouches for files made
        // durable before it is written.
        fsutil::write_atomic_unsynced(path, &bytes, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_file_is_remembered_until_its_key_moves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").expect("write");
        let rec = dir.path().join("verified.json");
        let facts = BTreeMap::from([("sha256".to_string(), "x".to_string())]);
        let v = Verified::load(&rec);
        // Just written: racy, not remembered.
        v.put("f", &[&file], &Verified::keys(&[&file]), facts.clone());
        assert_eq!(v.get("f", &[&file]), None);
        std::thread::sleep(RACY_COARSE + Duration::from_millis(100));
        v.put("f", &[&file], &Verified::keys(&[&file]), facts.clone());
        v.save().expect("save");
        let v = Verified::load(&rec);
        assert_eq!(v.get("f", &[&file]), Some(facts.clone()));
        assert_eq!(v.get("other", &[&file]), None);
        // Same size, mtime put back: ctime still moves.
        let mtime = std::fs::metadata(&file)
            .expect("meta")
            .modified()
            .expect("mtime");
        std::fs::write(&file, b"abd").expect("rewrite");
        let f = std::fs::File::options()
            .write(true)
            .open(&file)
            .expect("open");
        f.set_times(std::fs::FileTimes::new().set_modified(mtime))
            .expect("times");
        assert_eq!(v.get("f", &[&file]), None);
        assert_eq!(
            v.stats(),
            VerifiedStats {
                remembered: 1,
                rehashed: 2
            }
        );
        // Another kind (version) reads as empty.
        std::fs::write(&rec, br#"{"kind":"nodeforge-verified-v0","entries":{}}"#).expect("w");
        assert_eq!(Verified::load(&rec).get("f", &[&file]), None);
        // A record that remembers nothing.
        assert_eq!(Verified::none().get("f", &[&file]), None);
    }

    #[test]
    fn a_link_this_run_made_moves_the_key_and_nothing_else_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"abc").expect("write");
        std::fs::write(&b, b"xyz").expect("write");
        let rec = dir.path().join("verified.json");
        std::thread::sleep(RACY_COARSE + Duration::from_millis(100));
        let v = Verified::load(&rec);
        v.put("a", &[&a], &Verified::keys(&[&a]), BTreeMap::new());
        v.put("b", &[&b], &Verified::keys(&[&b]), BTreeMap::new());
        v.save().expect("save");
        // A later run checks `a` (found) and links it; `b` is linked too, but that run did not check it.
        let v = Verified::load(&rec);
        assert!(v.get("a", &[&a]).is_some());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::hard_link(&a, dir.path().join("a-link")).expect("link");
        std::fs::hard_link(&b, dir.path().join("b-link")).expect("link");
        v.relinked(&[&a, &b]);
        v.save().expect("save");
        let v = Verified::load(&rec);
        assert!(
            v.get("a", &[&a]).is_some(),
            "a linked after this run checked it"
        );
        assert_eq!(v.get("b", &[&b]), None, "b was not checked by that run");
        // Checked, then its bytes written: the mtime moved, the key does not follow.
        std::fs::write(&a, b"abd").expect("rewrite");
        v.relinked(&[&a]);
        assert_eq!(v.get("a", &[&a]), None);
    }
}
