//! The one place that writes files: atomic replacement (`AtomicFile`: temp file in the same
//! directory, fsync, rename, fsync of the directory), so a reader or a crash never sees half a
//! file. `clippy.toml` disallows renames and temporary files anywhere else.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// An I/O error together with the path it concerns. A full device (ENOSPC) and a link or
/// rename across file systems (EXDEV) are said as such, naming where.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {}", path.display(), io_reason(source, path))]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why an I/O operation on `path` failed, in words: ENOSPC names the device's place, EXDEV the
/// two file systems, anything else is the system's message.
pub fn io_reason(e: &io::Error, path: &Path) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => format!(
            "no space left on the device holding {} (ENOSPC)",
            parent_of(path).display()
        ),
        Some(libc::EXDEV) => format!(
            "{} is on another file system than its source (EXDEV): a hard link or rename cannot cross file systems; keep the output directory on one file system",
            parent_of(path).display()
        ),
        _ => e.to_string(),
    }
}

/// Shorthand for attaching a path to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, FsError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, FsError> {
        self.map_err(|e| FsError::new(action, path, e))
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Hand everything a reader yields to `f`, one `buf`-sized read at a time (an interrupted read
/// is retried); returns the byte count. `read_err` turns a read failure into the caller's error.
pub fn read_chunks<E>(
    r: &mut dyn Read,
    buf: &mut [u8],
    read_err: impl Fn(io::Error) -> E,
    mut f: impl FnMut(&[u8], u64) -> Result<(), E>,
) -> Result<u64, E> {
    let mut size = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        size += n as u64;
        f(&buf[..n], size)?;
    }
}

/// Create `dir` and its parents.
pub fn create_dir_all(dir: &Path) -> Result<(), FsError> {
    fs::create_dir_all(dir).at("cannot create directory", dir)
}

/// fsync a directory so that a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .at("cannot sync directory", dir)
}

/// The prefix of every temporary name nodeforge creates; `clean_temp_files` removes them.
pub const TEMP_PREFIX: &str = ".nodeforge-tmp-";

/// A file being written that appears under its name only when complete (like cacache's `Put`):
/// a temporary file in a directory on the same file system, written, then `commit`ted, which
/// sets its mode, fsyncs it, renames it into place and fsyncs the directory. Dropped without a
/// commit (an error on the way), the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// A new temporary file in `dir` (created with its parents if missing): the destination's
    /// own directory, or a scratch directory on the same file system (the store's `tmp/`).
    pub fn new_in(dir: &Path) -> Result<Self, FsError> {
        create_dir_all(dir)?;
        #[allow(clippy::disallowed_methods)] // the one place temporary files are made
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .at("cannot create a temporary file in", dir)?;
        Ok(Self { tmp })
    }

    /// Where the temporary file is while it is written.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn as_file(&self) -> &fs::File {
        self.tmp.as_file()
    }

    pub fn as_file_mut(&mut self) -> &mut fs::File {
        self.tmp.as_file_mut()
    }

    /// Set the mode and fsync: what both commits do before the rename.
    fn finish(&self, mode: u32) -> Result<(), FsError> {
        set_mode(self.as_file(), mode).at("cannot set the mode of", self.path())?;
        self.as_file().sync_all().at("cannot sync", self.path())
    }

    /// Give the file `mode`, fsync it, rename it onto `path` (replacing what is there) and fsync
    /// `path`'s directory.
    pub fn commit(self, path: &Path, mode: u32) -> Result<(), FsError> {
        self.finish(mode)?;
        #[allow(clippy::disallowed_methods)] // the one place files are renamed into place
        self.tmp
            .persist(path)
            .map_err(|e| FsError::new("cannot rename a temporary file onto", path, e.error))?;
        sync_dir(parent_of(path))
    }

    /// [`commit`](Self::commit) in a batch ([`Durability::Batched`]): give the file `mode` and
    /// rename it onto `path`, no fsync; the caller made it durable before (one [`sync_fs`] for
    /// everything it staged) and syncs the renames after.
    pub fn commit_batched(self, path: &Path, mode: u32) -> Result<(), FsError> {
        set_mode(self.as_file(), mode).at("cannot set the mode of", self.path())?;
        #[allow(clippy::disallowed_methods)] // the one place files are renamed into place
        self.tmp
            .persist(path)
            .map_err(|e| FsError::new("cannot rename a temporary file onto", path, e.error))?;
        Ok(())
    }

    /// [`commit_new`](Self::commit_new) in a batch: mode and rename, no fsync (the caller syncs
    /// the filesystem before anything refers to the file). `Ok(false)` when `path` existed.
    pub fn commit_new_batched(self, path: &Path, mode: u32) -> Result<bool, FsError> {
        set_mode(self.as_file(), mode).at("cannot set the mode of", self.path())?;
        #[allow(clippy::disallowed_methods)] // the one place files are renamed into place
        match self.tmp.persist_noclobber(path) {
            Ok(_) => Ok(true),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(FsError::new(
                "cannot move a temporary file to",
                path,
                e.error,
            )),
        }
    }

    /// Like `commit`, but never replaces anything: when `path` exists the file is dropped and
    /// `Ok(false)` returned (content-addressed targets: same name, same bytes).
    pub fn commit_new(self, path: &Path, mode: u32) -> Result<bool, FsError> {
        self.finish(mode)?;
        #[allow(clippy::disallowed_methods)] // the one place files are renamed into place
        let created = match self.tmp.persist_noclobber(path) {
            Ok(_) => true,
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(FsError::new(
                    "cannot move a temporary file to",
                    path,
                    e.error,
                ))
            }
        };
        sync_dir(parent_of(path))?;
        Ok(created)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// `path` made absolute with symlinks resolved, for as much of it as exists (the rest appended
/// as given): to compare where a file would land with a directory it must stay out of.
pub fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut missing = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(c) = fs::canonicalize(at) {
            return missing.iter().rev().fold(c, |p: PathBuf, m| p.join(m));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                at = parent;
            }
            _ => return abs,
        }
    }
}

/// Write `contents` to `path` atomically with the given mode. The parent directory is created.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let mut tmp = AtomicFile::new_in(parent_of(path))?;
    tmp.write_all(contents).at("cannot write", tmp.path())?;
    tmp.commit(path, mode)
}

/// [`write_atomic`] with the temporary file in `scratch` (a directory on the same file system)
/// rather than in `path`'s directory: where the leftovers of a killed run are looked for
/// ([`crate::layout::OutDir::clean_temps`]).
pub fn write_atomic_via(
    scratch: &Path,
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<(), FsError> {
    create_dir_all(parent_of(path))?;
    let mut tmp = AtomicFile::new_in(scratch)?;
    tmp.write_all(contents).at("cannot write", tmp.path())?;
    tmp.commit(path, mode)
}

/// Write `contents` to `path` atomically (a reader sees the old or the new file, whole), without
/// fsync: for a cache whose loss or emptiness after a crash only costs work again (the verified
/// record: a file it cannot parse counts as empty).
pub fn write_atomic_unsynced(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let mut tmp = AtomicFile::new_in(parent_of(path))?;
    tmp.write_all(contents).at("cannot write", tmp.path())?;
    tmp.commit_batched(path, mode)
}

/// Set a file's permission bits exactly (not filtered through the umask).
pub fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// The entries of directory `dir`, in the order the file system gives them: none when it is
/// missing or cannot be read, and without the entries that cannot be read. For listings where
/// an unreadable directory means "nothing there" (out/'s trees, the store's indexes).
pub fn entries(dir: impl AsRef<Path>) -> impl Iterator<Item = fs::DirEntry> {
    read_dir(dir).into_iter().flatten().flatten()
}

/// The entries of directory `dir`, for a caller that reports a directory it cannot read.
/// (The one place `std::fs::read_dir` is called: clippy.toml.)
#[allow(clippy::disallowed_methods)]
pub fn read_dir(dir: impl AsRef<Path>) -> io::Result<fs::ReadDir> {
    fs::read_dir(dir)
}

/// Remove leftover temporary files and directories (from a killed run) in `dir`. Only names with
/// our temp prefix are touched. Call only when no other nodeforge process can be writing there.
pub fn clean_temp_files(dir: &Path) {
    for entry in entries(dir) {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX) || n.starts_with(".nodeforge-verify-"))
        {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// A temporary directory in `dir` (same filesystem), to be filled and renamed into place whole
/// with [`commit_dir`]; removed if dropped.
pub fn temp_dir_in(dir: &Path) -> Result<tempfile::TempDir, FsError> {
    tempfile::Builder::new()
        .prefix(".nodeforge-tmp-")
        .tempdir_in(dir)
        .at("cannot create a temporary directory in", dir)
}

/// Write a new file inside a temporary directory that [`commit_dir`] (or [`sync_fs`] before a
/// rename) makes durable as a whole: create, write, set the mode. No fsync of its own: one
/// `syncfs` for the directory replaces one fsync per file (a node's layer, image and generation
/// were 13 fsyncs one after another).
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let mut f = fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .at("cannot create", path)?;
    f.write_all(contents).at("cannot write", path)?;
    set_mode(&f, mode).at("cannot set the mode of", path)
}

/// Flush everything written to the filesystem holding `path` (data and metadata): what was
/// written into a temporary directory is on disk before the rename that publishes it.
pub fn sync_fs(path: &Path) -> Result<(), FsError> {
    let dir = fs::File::open(path).at("cannot open", path)?;
    rustix::fs::syncfs(&dir)
        .map_err(io::Error::from)
        .at("cannot sync the filesystem of", path)
}

/// How a publishing call makes what it publishes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On its own: a `syncfs` of the contents before the rename, an fsync of the parent after.
    Each,
    /// In a batch: the caller made the contents durable before (one [`sync_fs`] for everything
    /// it staged) and makes the renames durable after all of them (a second [`sync_fs`]), so a
    /// build that publishes a node's layer, image, SBOM and generation syncs twice, not once per
    /// directory and file.
    Batched,
}

/// Move a filled temporary directory to `dest` in one rename, unless `complete(dest)` says an
/// equal one is already there (content-addressed: another process put the same bytes in place,
/// which may already be in use; it is kept). A `dest` that exists but is not complete (an older
/// layout) is moved aside and removed first. Returns whether `dest` was put in place now.
pub fn commit_dir(
    tmp: tempfile::TempDir,
    dest: &Path,
    complete: impl Fn(&Path) -> bool,
) -> Result<bool, FsError> {
    commit_dir_with(tmp, dest, complete, Durability::Each)
}

/// [`commit_dir`], durable as `durability` says.
#[allow(clippy::disallowed_methods)] // fsutil is where renames live
pub fn commit_dir_with(
    tmp: tempfile::TempDir,
    dest: &Path,
    complete: impl Fn(&Path) -> bool,
    durability: Durability,
) -> Result<bool, FsError> {
    // Every file of the directory and its entries, durable before the rename publishes them.
    seal_dir(&tmp, durability)?;
    if complete(dest) {
        return Ok(false);
    }
    let tmp_path = tmp.keep();
    if fs::symlink_metadata(dest).is_ok() {
        // Moved aside under a name of this process's own temp directory (cleaned up by the next
        // run if we die here), then removed.
        let mut old = tmp_path.clone().into_os_string();
        old.push("-old");
        fs::rename(dest, &old).at("cannot move aside", dest)?;
        let _ = fs::remove_dir_all(&old);
    }
    rename_dir_into(&tmp_path, dest, complete, durability)
}

/// Remove a directory in one visible step: renamed out of sight (a temp name the next run
/// cleans), then deleted, so nobody ever sees half of it under its real name.
#[allow(clippy::disallowed_methods)] // fsutil is where renames live
pub fn remove_dir_aside(dir: &Path) -> Result<(), FsError> {
    let gone = dir.with_file_name(format!(
        ".nodeforge-tmp-gone-{}-{}",
        std::process::id(),
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    fs::rename(dir, &gone).at("cannot move aside", dir)?;
    let _ = fs::remove_dir_all(&gone);
    Ok(())
}

/// Publish a filled temporary directory at `dest` unless something is there already (a
/// concurrent process took that name): `Ok(false)` then, and the temporary directory is removed.
/// The directory's contents are flushed (syncfs) before the rename, the parent after it.
pub fn publish_dir_new(tmp: tempfile::TempDir, dest: &Path) -> Result<bool, FsError> {
    publish_dir_new_with(tmp, dest, Durability::Each)
}

/// [`publish_dir_new`], durable as `durability` says.
pub fn publish_dir_new_with(
    tmp: tempfile::TempDir,
    dest: &Path,
    durability: Durability,
) -> Result<bool, FsError> {
    seal_dir(&tmp, durability)?;
    let taken = |d: &Path| fs::symlink_metadata(d).is_ok();
    if taken(dest) {
        return Ok(false);
    }
    rename_dir_into(&tmp.keep(), dest, taken, durability)
}

/// A filled temporary directory made ready to publish: mode 0755, and everything in it durable
/// (now, or already: [`Durability::Batched`]).
fn seal_dir(tmp: &tempfile::TempDir, durability: Durability) -> Result<(), FsError> {
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
            .at("cannot set the mode of", tmp.path())?;
    }
    match durability {
        Durability::Each => sync_fs(tmp.path()),
        Durability::Batched => Ok(()),
    }
}

/// Rename `tmp_path` to `dest` and fsync the parent; a rename that fails because another
/// process got there first (`lost_race(dest)`) removes ours and returns `Ok(false)`.
#[allow(clippy::disallowed_methods)] // fsutil is where renames live
fn rename_dir_into(
    tmp_path: &Path,
    dest: &Path,
    lost_race: impl Fn(&Path) -> bool,
    durability: Durability,
) -> Result<bool, FsError> {
    match fs::rename(tmp_path, dest) {
        Ok(()) => {}
        Err(_) if lost_race(dest) => {
            let _ = fs::remove_dir_all(tmp_path);
            return Ok(false);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(tmp_path);
            return Err(FsError::new("cannot move into place", dest, e));
        }
    }
    if durability == Durability::Each {
        sync_dir(parent_of(dest))?;
    }
    Ok(true)
}

/// Open a file from outside (an OCI layout's `index.json` or blob) for reading, only if it is a
/// regular file: never through a symlink at its name (a blob linked to `/dev/zero` or to a
/// file of the user's), and without blocking (a FIFO would wait forever for a writer).
pub fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("a symlink: refused (only regular files are read)")
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, socket, device or directory): refused",
        ));
    }
    Ok(f)
}

/// Open (creating) a download's partial file, never through a symlink (a link planted at its
/// name must not send a registry's bytes into another file): to append to what it holds (a
/// resumed download), or emptied (`fresh`).
pub fn open_partial(path: &Path, fresh: bool) -> Result<fs::File, FsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = fs::File::options();
    o.create(true).read(true).custom_flags(libc::O_NOFOLLOW);
    if fresh {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path).at("cannot open", path)
}

/// Open (creating) a lock file and hold it exclusively until the returned file is dropped.
pub fn lock_exclusive(path: &Path) -> Result<fs::File, FsError> {
    let f = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at("cannot open", path)?;
    f.lock().at("cannot lock", path)?;
    Ok(f)
}

/// Point the symlink `link` at `target` in one atomic step (a new link under a temp name, renamed
/// over the old one), so that a reader sees the old or the new target, never none.
pub fn replace_symlink(link: &Path, target: &Path) -> Result<(), FsError> {
    replace_symlink_with(link, target, Durability::Each)
}

/// [`replace_symlink`]; with [`Durability::Batched`] the directory is not fsynced (the caller
/// syncs once after all its renames).
#[allow(clippy::disallowed_methods)] // fsutil is where renames live
pub fn replace_symlink_with(
    link: &Path,
    target: &Path,
    durability: Durability,
) -> Result<(), FsError> {
    let dir = parent_of(link);
    let tmp = dir.join(format!("{TEMP_PREFIX}link-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).at("cannot create a symlink at", &tmp)?;
    fs::rename(&tmp, link).at("cannot switch", link)?;
    match durability {
        Durability::Each => sync_dir(dir),
        Durability::Batched => Ok(()),
    }
}

/// Rename a finished file to `dest` (same filesystem) and fsync the directory.
#[allow(clippy::disallowed_methods)] // fsutil is where renames live
pub fn rename_into(from: &Path, dest: &Path) -> Result<(), FsError> {
    fs::rename(from, dest).at("cannot move into place", dest)?;
    sync_dir(parent_of(dest))
}

/// Move a finished file (not made by [`AtomicFile`]: a download kept under a stable name across
/// runs) to `dest` without replacing anything: give it `mode`, fsync it, link it into place and
/// remove its old name. `Ok(false)` when `dest` existed (content-addressed: same bytes); the file
/// is removed either way.
pub fn commit_path_new(from: &Path, dest: &Path, mode: u32) -> Result<bool, FsError> {
    let f = fs::File::open(from).at("cannot open", from)?;
    set_mode(&f, mode).at("cannot set the mode of", from)?;
    f.sync_all().at("cannot sync", from)?;
    let created = match fs::hard_link(from, dest) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(FsError::new("cannot move a finished download to", dest, e)),
    };
    fs::remove_file(from).at("cannot remove", from)?;
    sync_dir(parent_of(dest))?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_is_never_opened_through_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("elsewhere");
        fs::write(&target, b"keep").expect("write");
        let link = dir.path().join("blob.partial");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(open_partial(&link, false).is_err());
        assert!(open_partial(&link, true).is_err());
        assert_eq!(fs::read(&target).expect("read"), b"keep");
        let plain = dir.path().join("other.partial");
        let mut f = open_partial(&plain, false).expect("open");
        f.write_all(b"ab").expect("write");
        let mut f = open_partial(&plain, false).expect("open");
        f.write_all(b"c").expect("write");
        assert_eq!(fs::read(&plain).expect("read"), b"abc");
        drop(open_partial(&plain, true).expect("open"));
        assert_eq!(fs::read(&plain).expect("read"), b"");
    }

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a/b/file");
        write_atomic(&p, b"one", 0o644).expect("write");
        write_atomic(&p, b"two", 0o600).expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = read_dir(p.parent().expect("parent"))
            .expect("readdir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left behind: {names:?}");
    }

    #[test]
    fn atomic_file_dropped_uncommitted_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = AtomicFile::new_in(dir.path()).expect("new");
        f.write_all(b"half").expect("write");
        assert!(f.path().exists());
        drop(f);
        assert_eq!(read_dir(dir.path()).expect("readdir").count(), 0);
    }

    #[test]
    fn atomic_file_commit_new_never_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("object");
        let mut f = AtomicFile::new_in(dir.path()).expect("new");
        f.write_all(b"first").expect("write");
        assert!(f.commit_new(&p, 0o444).expect("commit"));
        let mut f = AtomicFile::new_in(dir.path()).expect("new");
        f.write_all(b"second").expect("write");
        assert!(!f.commit_new(&p, 0o444).expect("commit"));
        assert_eq!(fs::read(&p).expect("read"), b"first");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
        assert_eq!(read_dir(dir.path()).expect("readdir").count(), 1);
    }
}
