//! `nodeforge mirror export DIR`: the store's locked artifacts laid out as a `file://` mirror
//! (`DIR/<host>/<path>`), with checksum files, so an air-gapped site can `lock` and `fetch` from
//! a USB stick exactly as it would from upstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fetch::mirror_path;
use crate::fsutil::{self, AtomicFile, FsError, IoContext};
use crate::manifest::url_file_name;
use crate::ops::error::{ArtifactFailure, Error, FailureCause};
use crate::ops::steps::check_lock;

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub dir: PathBuf,
    /// Files written (relative to dir), artifacts and checksum files.
    pub files: Vec<String>,
    pub bytes: u64,
    /// The lockfile's copy, at the directory's root (`<name>.lock`).
    pub lockfile: PathBuf,
}

/// Copy `from` to `to` atomically (temp file beside the target, then rename).
/// Copy a store object to `to` atomically; the copy must have the sha256 the lockfile pins
/// (an index entry re-pointed at another object must not put other bytes under upstream's name).
fn copy_atomic(from: &Path, to: &Path, sha: &crate::hash::Sha256) -> Result<u64, Error> {
    let tmp = AtomicFile::new_in(to.parent().unwrap_or(Path::new(".")))?;
    let n = std::fs::copy(from, tmp.path()).at("cannot copy into", tmp.path())?;
    let (actual, _) = crate::hash::Sha256::of_file(tmp.path()).at("cannot read", tmp.path())?;
    if actual != *sha {
        return Err(Error::Usage(format!(
            "the store gives {} for artifact sha256 {sha}, but its sha256 is {actual}: run `nodeforge verify`",
            from.display()
        )));
    }
    tmp.commit(to, 0o644)?;
    Ok(n)
}

/// Hold the export directory alone, and remove what a killed export left in it.
fn lock_export_dir(dir: &Path) -> Result<std::fs::File, FsError> {
    fsutil::create_dir_all(dir)?;
    let f = fsutil::lock_exclusive(&dir.join(".nodeforge-export.lock"))?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        fsutil::clean_temp_files(&d);
        for e in crate::fsutil::entries(&d) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    Ok(f)
}

pub fn export_mirror(
    manifest: &Path,
    lockfile: &Path,
    out: &Path,
    dir: &Path,
) -> Result<ExportReport, Error> {
    let checked = check_lock(manifest, lockfile)?;
    let store = crate::ops::steps::open_store(&crate::layout::OutDir::new(out))?;
    let _alone = lock_export_dir(dir)?;
    let mut missing = Vec::new();
    let mut files = Vec::new();
    let mut bytes = 0;
    // checksum-url → lines "<sha256>  <file name>", so multi-asset checksum files stay whole.
    let mut sums: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &checked.lock.artifacts {
        let failure = |cause, what: &str| ArtifactFailure {
            label: e.label(),
            component: e.component.to_string(),
            url: e.url.clone(),
            cause,
            message: format!("{} {what}", e.label()),
            hint: None,
        };
        let Some(sha) = e.sha256() else {
            missing.push(failure(
                FailureCause::Unresolved,
                "has no published sha256 in the lockfile",
            ));
            continue;
        };
        let (Some(rel), Some(sum_rel)) = (mirror_path(&e.url), mirror_path(&e.checksum_url)) else {
            continue; // file:// URLs have no place on a mirror
        };
        let Some(obj) = store.lookup_sha256(&sha) else {
            missing.push(failure(FailureCause::NotInStore, "is not in the store"));
            continue;
        };
        bytes += copy_atomic(&obj.path, &dir.join(&rel), &sha)?;
        files.push(rel);
        sums.entry(sum_rel)
            .or_default()
            .push(format!("{sha}  {}", url_file_name(&e.url)));
    }
    for (rel, mut lines) in sums {
        lines.sort();
        lines.dedup();
        let text = lines.join("\n") + "\n";
        fsutil::write_atomic(&dir.join(&rel), text.as_bytes(), 0o644)?;
        files.push(rel);
    }
    if !missing.is_empty() {
        missing.sort_by(|a, b| (a.cause, &a.label).cmp(&(b.cause, &b.label)));
        return Err(Error::NotInStore { missing });
    }
    // The lockfile goes along: the site checks and fetches against exactly this lock.
    let name = lockfile.file_name().map_or_else(
        || "cluster.lock".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let text = std::fs::read(lockfile).at("cannot read", lockfile)?;
    fsutil::write_atomic(&dir.join(&name), &text, 0o644)?;
    bytes += text.len() as u64;
    files.push(name.clone());
    files.sort();
    Ok(ExportReport {
        dir: dir.to_path_buf(),
        files,
        bytes,
        lockfile: dir.join(name),
    })
}
