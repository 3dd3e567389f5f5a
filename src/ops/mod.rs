//! Orchestration of the commands. Every command is one function here taking an options struct
//! and returning a report; only this module combines manifest, lock, fetch and store. It knows
//! nothing of clap or of how reports are printed.

mod boot;
mod build;
mod components;
mod error;
mod fetch;
mod flatten;
mod gc;
mod history;
mod lock;
mod materialize;
mod mirror;
mod nodes;
mod plan;
mod secrets;
mod verify;
// OCI registries and layouts.
mod export;
mod import;
mod login;
mod logout;
mod mirror_push;
mod pull;
mod push;
mod referrers;
// Supply chain (issue 15): attestations beside images, keys, signing, SBOMs.
mod attest;
mod key;
mod provenance;
mod sbom;
mod sign;

use std::path::{Path, PathBuf};

pub use boot::{boot_plan, BootDisk, BootPlan};
pub use build::{build, BuildOptions, BuildReport, LayerBuild, NodeBuild, NodeStatus};
pub use components::{components, demo_mirror};
pub use error::{Error, Problem};
pub use fetch::{
    fetch, ArtifactFailure, ArtifactStatus, FailureCause, FetchOptions, FetchReport,
    FetchedArtifact,
};
pub use flatten::{flatten, FlattenReport};
pub use gc::{gc, GcOptions, GcReport, KeptBy, KeptCount, KeptGeneration, KeptReasons};
pub use history::{
    diff, list, resolve_image, rollback, rollback_all, rollback_group, show, DiffReport,
    NodeHistory, Rollback, RollbackAll, ShowReport, Skipped,
};
pub use lock::{
    check_lock, lock, EntryStatus, LockCheck, LockOptions, LockReport, LockedEntry, ResolveError,
};
pub use materialize::{find_image, FlatFormat};
pub use mirror::{export_mirror, ExportReport};
pub use nodes::suggest;
pub use plan::{plan, NodeChange, PlanOptions, PlanReport, PlanStep, StepKind, VersionMove};
pub use secrets::{
    boot_plan_with_secrets, parse_margin, secrets_check, secrets_user_data, SecretsCheckOptions,
    SecretsCheckReport, SecretsOptions, UserDataOptions, UserDataReport,
};
// OCI registries and layouts.
pub use export::{export, ExportOptions, LayoutExportReport};
pub use import::{import, ImportOptions, ImportReport};
pub use login::{login, LoginOptions, LoginReport};
pub use logout::{logout, LogoutReport};
pub use mirror_push::{mirror_push, MirrorPushOptions, MirrorPushReport};
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, BlobReport, BlobStatus, NodePush, PushOptions, PushReport};
pub use referrers::{AttestationPush, FileStatus, PulledAttestations, PulledFile, ReferrersVia};
pub use verify::{verify, ImageTrust, VerifyOptions, VerifyReport};
// Supply chain (issue 15). `image_signatures` and `attestation_files` are what push/pull need.
pub use attest::{attestation_files, image_signatures, SignatureStatus};
pub use key::{key_generate, KeyGenOptions, KeyReport};
pub use provenance::provenance;
pub use sbom::{sbom, SbomOptions};
pub use sign::{sign, SignOptions, SignReport, SignedImage};

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

/// What a progress bar counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Progress {
    /// Items of a known number (`{pos}/{len}`).
    Count,
    /// Bytes of a known total.
    Bytes,
    /// Items of an unknown number: a spinner and a count.
    Spinner,
}

/// A progress bar on stderr with `prefix`, drawn only when `show` (a terminal, no --json);
/// hidden (and free) otherwise.
pub(crate) fn progress_bar(
    show: bool,
    kind: Progress,
    len: u64,
    prefix: &str,
) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let template = match kind {
        Progress::Count => "{prefix:>12} [{bar:30}] {pos}/{len} {msg}",
        Progress::Bytes => "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        Progress::Spinner => "{prefix:>12} {spinner} {pos} {msg}",
    };
    let len = match kind {
        Progress::Spinner => None,
        _ => Some(len),
    };
    let bar = ProgressBar::with_draw_target(len, target);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    if show {
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
    }
    bar
}
