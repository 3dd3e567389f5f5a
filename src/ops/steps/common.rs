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
    crate::store::Store::open_read_only(&out.store(), exclusive, &|| {
        if exclusive {
            out.clean_temps_everywhere()
        } else {
            out.clean_temps()
        }
    })
}

/// Open the store alone (gc, repair): waits for every other process, then cleans as
/// [`open_store`], and inside every generation and attestation directory too.
pub(crate) fn open_store_exclusive(
    out: &crate::layout::OutDir,
) -> Result<crate::store::Store, crate::fsutil::FsError> {
    crate::store::Store::open_exclusive(&out.store(), &|| out.clean_temps_everywhere())
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

/// Run `f` over `items` on at most `jobs` threads (the calling one and `jobs - 1` scoped
/// helpers, each taking the next item when done with one); results come back in the items'
/// order. With one job (or one item) `f` runs on the calling thread alone. No thread pool: a
/// pool's idle workers spin (`sched_yield`) while the calling thread works, and a build's few
/// milliseconds of rendering and checking do not pay for one; the rayon work `f` starts itself
/// (blake3 hashing a large file) goes to rayon's global pool, started when first needed.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut indexed: Vec<(usize, R)> = std::thread::scope(|scope| {
        let run = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                done.push((i, f(item)));
            }
            done
        };
        // A helper that cannot be started leaves its share to the others.
        let helpers: Vec<_> = (1..jobs)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, run).ok())
            .collect();
        let mut all = run();
        for h in helpers {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, r)| r).collect()
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
