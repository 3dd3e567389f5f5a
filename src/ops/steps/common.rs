//! What every command needs: opening the store, the default lockfile, running work on a few
//! threads.

use std::path::{Path, PathBuf};

/// Open the store of an output directory, cleaning what killed runs left in the whole tree when
/// no other process is using it.
/// On a read-only `out/` (a mounted copy, a CI cache) the store is opened to read only: what
/// needs no writing (a no-op build, `diff`, `show`) still works, and a write that is needed fails
/// then, naming its file.
pub(crate) fn open_store(
    out: &crate::layout::OutDir,
) -> Result<crate::store::Store, crate::fsutil::FsError> {
    match crate::store::Store::open_with(&out.store(), &|| out.clean_temps()) {
        Err(e)
            if matches!(
                e.source.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) && out.store().is_dir() =>
        {
            open_store_read_only(out, false)
        }
        other => other,
    }
}

/// Open the store to read it only (verify, `gc --dry-run`), creating nothing: a missing store
/// reads as empty.
pub(crate) fn open_store_read_only(
    out: &crate::layout::OutDir,
    exclusive: bool,
) -> Result<crate::store::Store, crate::fsutil::FsError> {
    crate::store::Store::open_read_only(&out.store(), exclusive, &|| out.clean_temps())
}

/// Open the store alone (gc): waits for every other process, then cleans as [`open_store`].
pub(crate) fn open_store_exclusive(
    out: &crate::layout::OutDir,
) -> Result<crate::store::Store, crate::fsutil::FsError> {
    crate::store::Store::open_exclusive(&out.store(), &|| out.clean_temps())
}

/// Where a manifest's lockfile lives by default: `lockfiles/<stem>.lock` beside the manifest's
/// `manifests/` directory, else `<stem>.lock` next to the manifest.
pub fn default_lockfile(manifest: &Path) -> PathBuf {
    let stem = manifest
        .file_stem()
        .map_or_else(|| "cluster".into(), |s| s.to_string_lossy().into_owned());
    let dir = manifest.parent().unwrap_or(Path::new(""));
    match (dir.file_name(), dir.parent()) {
        (Some(name), Some(root)) if name == "manifests" => {
            root.join("lockfiles").join(format!("{stem}.lock"))
        }
        _ => dir.join(format!("{stem}.lock")),
    }
}

/// Run `f` over `items` on at most `jobs` threads (a rayon pool of that many); results come
/// back in the items' order. With one job (or one item) `f` runs on the calling thread, so the
/// rayon work it starts itself (blake3 hashing a large file) still spreads over every core.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use rayon::prelude::*;
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        return items.iter().map(f).collect();
    }
    match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
        // One item per task: items are few and uneven (downloads, node images).
        Ok(pool) => pool.install(|| items.par_iter().with_max_len(1).map(&f).collect()),
        // No thread could be started: the same work, one item after another.
        Err(_) => items.iter().map(f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lockfile_location() {
        assert_eq!(
            default_lockfile(Path::new("manifests/kubenet.toml")),
            PathBuf::from("lockfiles/kubenet.lock")
        );
        assert_eq!(
            default_lockfile(Path::new("/x/manifests/a.toml")),
            PathBuf::from("/x/lockfiles/a.lock")
        );
        assert_eq!(
            default_lockfile(Path::new("/x/y/a.toml")),
            PathBuf::from("/x/y/a.lock")
        );
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            parallel_map(&items, 4, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}
