//! The content-addressed store (`out/store/`). Objects are addressed by blake3 and never change:
//!
//! ```text
//! store/blake3/ab/cd/<rest of the hex>   an object, read-only
//! store/sha256/<hex>                     index: upstream sha256 → "<blake3> <size>"
//! store/tmp/                             downloads in progress (same filesystem: rename is atomic)
//! store/tmp/partial-<sha256>             an artifact's download, kept across runs to resume it
//! store/tmp/partial-<sha256>.validator   the server's ETag/Last-Modified for that download
//! store/locks/<sha256>.lock              one writer per artifact across processes
//! store/.lock                            held shared by every process; exclusive only to clean tmp/
//! store/extract/<blake3>                 what an artifact's extraction gave (record)
//! store/<kind>/<blake3>                  records other modules keep per object (the images' verity digests)
//! ```
//!
//! An object is written to `tmp/`, fsynced, then linked into place without replacing anything
//! (an existing object counts as success: same address, same bytes), and its directory fsynced.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, AtomicFile, FsError, IoContext};
use crate::hash::{Blake3, Sha256};

/// The record kind of what an artifact installs (`extract::installed`).
pub const EXTRACT_RECORDS: &str = "extract";

/// The name prefix of partial downloads in tmp/ (not [`fsutil::TEMP_PREFIX`]: kept across runs).
pub const PARTIAL_PREFIX: &str = "partial-";

/// Putting a stream into the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("reading the data failed: {0}")]
    Read(#[source] std::io::Error),
    #[error("the data is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Refused(String),
}

/// A store object: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub blake3: Blake3,
    pub size: u64,
    pub path: PathBuf,
}

/// The content-addressed store, opened by one process.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    // Held (shared) for the life of the Store so that no other process cleans tmp/ under us.
    // None only for a store opened read-only that has no lock file (or does not exist).
    _guard: Option<File>,
    /// Objects put with [`Store::put_bytes_batched`] since the last [`Store::sync`]: not yet
    /// durable.
    unsynced: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Open (creating if needed) the store at `root`. Leftover temporary files of killed runs are
    /// removed when no other process is using the store.
    pub fn open(root: &Path) -> Result<Self, FsError> {
        Self::open_with(root, &|| {})
    }

    /// [`Store::open`], also running `when_alone` (the owner of the output directory cleaning
    /// its own temp files) if no other process is using the store.
    pub fn open_with(root: &Path, when_alone: &dyn Fn()) -> Result<Self, FsError> {
        let (guard, lock_path) = Self::lock_file(root)?;
        if guard.try_lock().is_ok() {
            // Alone: whatever temp files exist were left by killed runs.
            Self::clean(root);
            when_alone();
            let _ = guard.unlock();
        }
        guard
            .lock_shared()
            .at("cannot lock the store", &lock_path)?;
        Ok(Self {
            root: root.to_path_buf(),
            _guard: Some(guard),
            unsynced: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Open the store for exclusive use (garbage collection): waits until no other process
    /// (fetch, build) has it open.
    pub fn open_exclusive(root: &Path, when_alone: &dyn Fn()) -> Result<Self, FsError> {
        let (guard, lock_path) = Self::lock_file(root)?;
        guard.lock().at("cannot lock the store", &lock_path)?;
        Self::clean(root);
        when_alone();
        Ok(Self {
            root: root.to_path_buf(),
            _guard: Some(guard),
            unsynced: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Open the store for reading only (verify, `gc --dry-run`): creates nothing. A store that
    /// does not exist reads as empty; one that exists is locked (shared, or exclusive with
    /// `exclusive`) through its lock file when it has one, and cleaned as [`Store::open_with`]
    /// when no other process uses it. Whoever opens it so must not write to it.
    pub fn open_read_only(
        root: &Path,
        exclusive: bool,
        when_alone: &dyn Fn(),
    ) -> Result<Self, FsError> {
        let lock_path = root.join(".lock");
        let guard = match File::open(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if root.is_dir() {
                    Self::clean(root);
                    when_alone();
                }
                return Ok(Self {
                    root: root.to_path_buf(),
                    _guard: None,
                    unsynced: std::sync::atomic::AtomicUsize::new(0),
                });
            }
            Err(e) => return Err(FsError::new("cannot open the store lock", &lock_path, e)),
        };
        if exclusive {
            guard.lock().at("cannot lock the store", &lock_path)?;
            Self::clean(root);
            when_alone();
        } else {
            if guard.try_lock().is_ok() {
                Self::clean(root);
                when_alone();
                let _ = guard.unlock();
            }
            guard
                .lock_shared()
                .at("cannot lock the store", &lock_path)?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            _guard: Some(guard),
            unsynced: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Create the store's directories and open (unlocked) its lock file.
    fn lock_file(root: &Path) -> Result<(File, PathBuf), FsError> {
        for sub in ["blake3", "sha256", "tmp", "locks", EXTRACT_RECORDS] {
            fsutil::create_dir_all(&root.join(sub))?;
        }
        let lock_path = root.join(".lock");
        let guard = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at("cannot open the store lock", &lock_path)?;
        Ok((guard, lock_path))
    }

    /// Remove what killed runs left in the store's tmp/. Only while holding the store alone.
    fn clean(root: &Path) {
        fsutil::clean_temp_files(&root.join("tmp"));
    }

    /// Every file under `blake3/`, with the address its path names (None when the path is not
    /// a valid address: something that does not belong in the store).
    pub fn objects(&self) -> Vec<(Option<Blake3>, PathBuf)> {
        let mut out = Vec::new();
        let list = |p: &Path| -> Vec<fs::DirEntry> {
            let mut v: Vec<fs::DirEntry> = crate::fsutil::entries(p).collect();
            v.sort_by_key(fs::DirEntry::file_name);
            v
        };
        for a in list(&self.root.join("blake3")) {
            for b in list(&a.path()) {
                for c in list(&b.path()) {
                    let name = format!(
                        "{}{}{}",
                        a.file_name().to_string_lossy(),
                        b.file_name().to_string_lossy(),
                        c.file_name().to_string_lossy()
                    );
                    out.push((Blake3::parse(&name).ok(), c.path()));
                }
            }
        }
        out
    }

    /// Every sha256 index entry: (upstream sha256, object address, size).
    pub fn index_entries(&self) -> Vec<(Sha256, Blake3, u64, PathBuf)> {
        let mut out = Vec::new();
        for e in crate::fsutil::entries(self.root.join("sha256")) {
            let path = e.path();
            let Some(sha) = e.file_name().to_str().and_then(|n| Sha256::parse(n).ok()) else {
                continue;
            };
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let Some((b, size)) = text.trim().split_once(' ') else {
                continue;
            };
            if let (Ok(b), Ok(size)) = (Blake3::parse(b), size.parse()) {
                out.push((sha, b, size, path));
            }
        }
        out.sort();
        out
    }

    /// Every record of a kind (`extract`), by key, with its path.
    pub fn records(&self, kind: &str) -> Vec<(Blake3, PathBuf)> {
        let mut out: Vec<(Blake3, PathBuf)> = crate::fsutil::entries(self.root.join(kind))
            .filter_map(|e| Some((Blake3::parse(e.file_name().to_str()?).ok()?, e.path())))
            .collect();
        out.sort();
        out
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with this address lives (whether or not it exists).
    pub fn object_path(&self, b: &Blake3) -> PathBuf {
        let hex = b.to_hex();
        self.root
            .join("blake3")
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(&hex[4..])
    }

    fn index_path(&self, s: &Sha256) -> PathBuf {
        self.root.join("sha256").join(s.to_hex())
    }

    /// The object holding the artifact with this upstream sha256, if the store has it. This is a
    /// lookup, not a re-hash (that is `verify`'s job): the index and the object's size must agree.
    pub fn lookup_sha256(&self, s: &Sha256) -> Option<Object> {
        let text = fs::read_to_string(self.index_path(s)).ok()?;
        let (b, size) = text.trim().split_once(' ')?;
        let blake3 = Blake3::parse(b).ok()?;
        let size: u64 = size.parse().ok()?;
        let path = self.object_path(&blake3);
        let meta = fs::metadata(&path).ok()?;
        (meta.is_file() && meta.len() == size).then_some(Object { blake3, size, path })
    }

    /// The object with this address, if present (existence and size; no re-hash).
    pub fn object(&self, b: &Blake3) -> Option<Object> {
        let path = self.object_path(b);
        let meta = fs::metadata(&path).ok()?;
        meta.is_file().then_some(Object {
            blake3: *b,
            size: meta.len(),
            path,
        })
    }

    /// Store bytes held in memory (a rendered file); a no-op when the object exists.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Object, FsError> {
        let b = Blake3::of(data);
        if let Some(o) = self.existing(&b, data.len()) {
            return Ok(o);
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(data).at("cannot write", tmp.path())?;
        self.commit(tmp, &b, data.len() as u64)
    }

    /// [`put_bytes`](Self::put_bytes) without an fsync: the object is renamed into place at
    /// once but durable only after [`sync`](Self::sync) (or any `syncfs` of its filesystem),
    /// which the caller does before it publishes anything made from it (build: one `syncfs` for
    /// its rendered files, layers, images and generations).
    pub fn put_bytes_batched(&self, data: &[u8]) -> Result<Object, FsError> {
        let b = Blake3::of(data);
        if let Some(o) = self.existing(&b, data.len()) {
            return Ok(o);
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(data).at("cannot write", tmp.path())?;
        let path = self.object_path(&b);
        if let Some(dir) = path.parent() {
            fsutil::create_dir_all(dir)?;
        }
        tmp.commit_new_batched(&path, 0o444)?;
        self.unsynced
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Object {
            blake3: b,
            size: data.len() as u64,
            path,
        })
    }

    /// The object `b` of `size` bytes when the store holds it. One of another size (cut short by
    /// a crash before it was synced) is removed, to be written again.
    fn existing(&self, b: &Blake3, size: usize) -> Option<Object> {
        let o = self.object(b)?;
        if o.size == size as u64 {
            return Some(o);
        }
        let _ = fs::remove_file(&o.path);
        None
    }

    /// Objects put with [`put_bytes_batched`](Self::put_bytes_batched) and not yet synced.
    pub fn unsynced(&self) -> usize {
        self.unsynced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Make every object put so far durable (one `syncfs` of the store's filesystem, when any
    /// was put without an fsync).
    pub fn sync(&self) -> Result<(), FsError> {
        if self.unsynced.swap(0, std::sync::atomic::Ordering::Relaxed) > 0 {
            fsutil::sync_fs(&self.root)?;
        }
        Ok(())
    }

    /// After a `syncfs` of the store's filesystem done by the caller: nothing is pending.
    pub fn synced(&self) {
        self.unsynced.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Store a stream, hashing it on the way in. At most `limit` bytes are accepted.
    pub fn put_stream(&self, r: &mut dyn Read, limit: u64) -> Result<Object, StoreError> {
        self.put_stream_checked(r, limit, &mut |_| Ok(()))
    }

    /// Like `put_stream`, but `check` sees the complete temporary file before it becomes an
    /// object; an error leaves nothing in the store.
    pub fn put_stream_checked(
        &self,
        r: &mut dyn Read,
        limit: u64,
        check: &mut dyn FnMut(&Path) -> Result<(), String>,
    ) -> Result<Object, StoreError> {
        let mut tmp = self.temp_file()?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let size = crate::fsutil::read_chunks(r, &mut buf, StoreError::Read, |chunk, size| {
            if size > limit {
                return Err(StoreError::TooLarge { limit });
            }
            hasher.update(chunk);
            tmp.write_all(chunk).at("cannot write", tmp.path())?;
            Ok(())
        })?;
        tmp.as_file().sync_data().at("cannot sync", tmp.path())?;
        check(tmp.path()).map_err(StoreError::Refused)?;
        let b = Blake3::from_bytes(*hasher.finalize().as_bytes());
        Ok(self.commit(tmp, &b, size)?)
    }

    /// A small JSON-ish cache record kept beside the objects (`<root>/<kind>/<key>`).
    pub fn read_record(&self, kind: &str, key: &Blake3) -> Option<Vec<u8>> {
        fs::read(self.root.join(kind).join(key.to_hex())).ok()
    }

    pub fn write_record(&self, kind: &str, key: &Blake3, data: &[u8]) -> Result<(), FsError> {
        fsutil::write_atomic(&self.root.join(kind).join(key.to_hex()), data, 0o644)
    }

    /// A new temporary file in the store's own tmp/ directory.
    pub fn temp_file(&self) -> Result<AtomicFile, FsError> {
        AtomicFile::new_in(&self.root.join("tmp"))
    }

    /// Move a fully written and hashed temp file into the store under its address.
    pub fn commit(&self, tmp: AtomicFile, blake3: &Blake3, size: u64) -> Result<Object, FsError> {
        let path = self.object_path(blake3);
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        fsutil::create_dir_all(&dir)?;
        // Someone stored the same content first: same address, same bytes.
        tmp.commit_new(&path, 0o444)?;
        Ok(Object {
            blake3: *blake3,
            size,
            path,
        })
    }

    /// Record that the artifact with upstream sha256 `s` is the object `o`.
    pub fn index_sha256(&self, s: &Sha256, o: &Object) -> Result<(), FsError> {
        fsutil::write_atomic(
            &self.index_path(s),
            format!("{} {}\n", o.blake3, o.size).as_bytes(),
            0o644,
        )
    }

    /// Where the download of the artifact with upstream sha256 `s` is kept until complete, and
    /// the file holding its server's validator: stable names, so that a run killed midway is
    /// resumed by the next one. Not temp files (the cleaner keeps them); only ever touched under
    /// [`Store::lock_artifact`].
    pub fn partial_paths(&self, s: &Sha256) -> (PathBuf, PathBuf) {
        let tmp = self.root.join("tmp");
        let name = format!("{PARTIAL_PREFIX}{}", s.to_hex());
        (tmp.join(&name), tmp.join(format!("{name}.validator")))
    }

    /// Every partial download in tmp/: (the artifact's sha256, its paths).
    pub fn partials(&self) -> Vec<(Sha256, PathBuf)> {
        let mut out: Vec<(Sha256, PathBuf)> = crate::fsutil::entries(self.root.join("tmp"))
            .filter_map(|e| {
                let name = e.file_name();
                let rest = name.to_str()?.strip_prefix(PARTIAL_PREFIX)?;
                let hex = rest.strip_suffix(".validator").unwrap_or(rest);
                Some((Sha256::parse(hex).ok()?, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Open (creating it if needed) the partial download of artifact `s`, for reading and
    /// appending: what an earlier run wrote is kept.
    pub fn open_partial(&self, s: &Sha256) -> Result<File, FsError> {
        let (path, _) = self.partial_paths(s);
        fsutil::create_dir_all(&self.root.join("tmp"))?;
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at("cannot open the partial download", &path)
    }

    /// Forget the partial download of artifact `s` (it was wrong, or it is stored).
    pub fn discard_partial(&self, s: &Sha256) {
        let (path, validator) = self.partial_paths(s);
        let _ = fs::remove_file(path);
        let _ = fs::remove_file(validator);
    }

    /// Move the complete, verified partial download of artifact `s` into the store.
    pub fn commit_partial(
        &self,
        s: &Sha256,
        blake3: &Blake3,
        size: u64,
    ) -> Result<Object, FsError> {
        let (path, validator) = self.partial_paths(s);
        let dest = self.object_path(blake3);
        if let Some(dir) = dest.parent() {
            fsutil::create_dir_all(dir)?;
        }
        fsutil::commit_path_new(&path, &dest, 0o444)?;
        let _ = fs::remove_file(validator);
        Ok(Object {
            blake3: *blake3,
            size,
            path: dest,
        })
    }

    /// Take the per-artifact lock so that concurrent processes download an artifact once.
    pub fn lock_artifact(&self, s: &Sha256) -> Result<File, FsError> {
        fsutil::lock_exclusive(&self.artifact_lock_path(s))
    }

    /// The file [`Store::lock_artifact`] locks.
    pub fn artifact_lock_path(&self, s: &Sha256) -> PathBuf {
        self.root.join("locks").join(format!("{}.lock", s.to_hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rendered file put without an fsync is in place at once and counted until synced; an
    /// object of the wrong size at its address (cut short by a crash before the sync) is
    /// written again, not taken.
    #[test]
    fn batched_puts_are_counted_and_a_short_object_is_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let data = b"rendered kubelet config\n";
        let o = store.put_bytes_batched(data).expect("put");
        assert_eq!(fs::read(&o.path).expect("read"), data);
        assert_eq!(store.unsynced(), 1);
        store.sync().expect("sync");
        assert_eq!(store.unsynced(), 0);
        // Cut short, as a crash between the rename and the sync may leave it.
        let cut = |to: &[u8]| {
            fs::set_permissions(&o.path, fs::Permissions::from_mode(0o644)).expect("chmod");
            fs::write(&o.path, to).expect("cut");
        };
        cut(b"");
        let again = store.put_bytes_batched(data).expect("put again");
        assert_eq!(again.size, data.len() as u64);
        assert_eq!(fs::read(&again.path).expect("read"), data);
        assert_eq!(store.unsynced(), 1);
        cut(b"short");
        let fsynced = store.put_bytes(data).expect("put fsynced");
        assert_eq!(fs::read(&fsynced.path).expect("read"), data);
    }

    #[test]
    fn commit_lookup_and_duplicate_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let data = b"hello store";
        let (b, s) = (Blake3::of(data), Sha256::of(data));
        assert_eq!(store.lookup_sha256(&s), None);
        for _ in 0..2 {
            let mut t = store.temp_file().expect("tmp");
            t.write_all(data).expect("write");
            let o = store.commit(t, &b, data.len() as u64).expect("commit");
            store.index_sha256(&s, &o).expect("index");
        }
        let o = store.lookup_sha256(&s).expect("present");
        assert_eq!(fs::read(&o.path).expect("read"), data);
        assert_eq!(
            fsutil::read_dir(dir.path().join("tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }
}
