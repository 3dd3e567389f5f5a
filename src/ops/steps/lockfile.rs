//! The lock check most commands start with: the manifest and its lockfile, intact and fresh.

use std::path::PathBuf;

use serde::Serialize;

use crate::lock::{staleness, LockEntry, Lockfile};
use crate::manifest::Manifest;
use crate::ops::error::Error;

/// The result of `lock --check` (and of the check `fetch` and `build` start with).
#[derive(Debug, Clone, Serialize)]
pub struct LockCheck {
    pub lockfile: PathBuf,
    pub lock_id: String,
    pub artifacts: usize,
    /// Entries without a published sha256: a lock with them is valid but cannot be fetched.
    pub unresolved: Vec<String>,
    #[serde(skip)]
    pub manifest: Manifest,
    #[serde(skip)]
    pub lock: Lockfile,
}

/// Load the manifest and its lockfile and require the lockfile to be intact and fresh.
pub fn check_lock(
    manifest: &std::path::Path,
    lockfile: &std::path::Path,
) -> Result<LockCheck, Error> {
    let manifest = Manifest::load(manifest)?;
    let lock = Lockfile::load(lockfile)?;
    checked(manifest, lock, lockfile)
}

/// [`check_lock`] of a manifest and lock already read (`lockfile` names the lock in messages):
/// the lock a run completed in memory, before it is written.
pub(crate) fn checked(
    manifest: Manifest,
    lock: Lockfile,
    lockfile: &std::path::Path,
) -> Result<LockCheck, Error> {
    let specs = manifest.artifacts();
    checked_against(manifest, lock, lockfile, &specs)
}

/// [`checked`] with the manifest's artifacts already rendered (`specs`: `manifest.artifacts()`).
pub(crate) fn checked_against(
    manifest: Manifest,
    lock: Lockfile,
    lockfile: &std::path::Path,
    specs: &[crate::manifest::ArtifactSpec],
) -> Result<LockCheck, Error> {
    let changes = staleness(&lock, specs, manifest.kube_apiserver.as_deref());
    if !changes.is_empty() {
        return Err(Error::Stale {
            lockfile: lockfile.to_path_buf(),
            changes,
        });
    }
    Ok(LockCheck {
        lockfile: lockfile.to_path_buf(),
        lock_id: format!("blake3:{}", lock.lock_id()),
        artifacts: lock.artifacts.len(),
        unresolved: lock
            .artifacts
            .iter()
            .filter(|e| e.sha256().is_none())
            .map(LockEntry::label)
            .collect(),
        manifest,
        lock,
    })
}
