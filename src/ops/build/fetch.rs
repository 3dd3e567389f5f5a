//! `nodeforge fetch`: bring every locked artifact the store lacks into it, in parallel, each
//! streamed to a temp file while hashed (sha256 against the lock, blake3 for its address).

use std::path::PathBuf;
use std::time::Instant;

use crate::progress::{Progress, Reporting, Task, Unit};
use serde::Serialize;

use super::lock::{complete_lock, LockCompletion};
use crate::fetch::{Expect, FetchConfig, FetchError, Fetcher};
use crate::lock::LockEntry;
use crate::ops::error::{ArtifactFailure, Error, FailureCause};
use crate::ops::steps::{parallel_map, LockCheck};
use crate::store::Store;

/// No artifact of ours is anywhere near this; a server that claims more is refused early.
const ARTIFACT_LIMIT: u64 = 4 << 30;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    /// The output directory; the store is `<out>/store`.
    pub out: PathBuf,
    pub fetch: FetchConfig,
    pub jobs: usize,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
    /// `--locked`: refuse to complete the lockfile (resolve missing or unresolved entries).
    pub locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactStatus {
    /// Already in the store: nothing done.
    Present,
    Fetched,
    Failed,
    /// The lockfile has no sha256 for it: refused.
    Unresolved,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchedArtifact {
    pub component: String,
    pub version: String,
    pub arch: String,
    pub url: String,
    pub sha256: Option<String>,
    pub blake3: Option<String>,
    pub size: Option<u64>,
    pub status: ArtifactStatus,
    /// Where it came from (a mirror or upstream), when it was fetched.
    pub source: Option<String>,
    pub error: Option<String>,
    /// Why it failed, when it did.
    pub cause: Option<FailureCause>,
    /// What to do about it, when the failure says more than its cause (an OCI mirror's
    /// registry refused it or lacks it).
    pub hint: Option<String>,
    /// Sources (mirrors) that served other bytes than the lockfile pins, even when another
    /// source then gave the right ones.
    pub warnings: Vec<String>,
    /// Bytes an earlier, interrupted run had downloaded that this one continued from.
    pub resumed_from: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    pub store: PathBuf,
    pub lock_id: String,
    pub artifacts: Vec<FetchedArtifact>,
    pub fetched_bytes: u64,
    pub elapsed_ms: u64,
    /// Entries resolved and written to the lockfile before fetching.
    pub lock: LockCompletion,
}

impl FetchReport {
    pub fn failures(&self) -> Vec<&FetchedArtifact> {
        self.artifacts
            .iter()
            .filter(|a| {
                matches!(
                    a.status,
                    ArtifactStatus::Failed | ArtifactStatus::Unresolved
                )
            })
            .collect()
    }

    /// The failures as a typed list, the most actionable first.
    pub fn failure_list(&self) -> Vec<ArtifactFailure> {
        failure_list(self.failures())
    }

    pub fn count(&self, status: ArtifactStatus) -> usize {
        self.artifacts.iter().filter(|a| a.status == status).count()
    }
}

/// Failed artifacts as a typed list, the most actionable first (then by label).
pub(crate) fn failure_list<'a>(
    failed: impl IntoIterator<Item = &'a FetchedArtifact>,
) -> Vec<ArtifactFailure> {
    let mut list: Vec<ArtifactFailure> = failed
        .into_iter()
        .map(|a| {
            let label = format!("{} {} ({})", a.component, a.version, a.arch);
            ArtifactFailure {
                message: a
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("{label}: failed")),
                label,
                component: a.component.clone(),
                url: a.url.clone(),
                cause: a.cause.unwrap_or(FailureCause::Other),
                hint: a.hint.clone(),
            }
        })
        .collect();
    list.sort_by(|a, b| (a.cause, &a.label).cmp(&(b.cause, &b.label)));
    list
}

fn report_of(e: &LockEntry, status: ArtifactStatus) -> FetchedArtifact {
    FetchedArtifact {
        component: e.component.to_string(),
        version: e.version.clone(),
        arch: e.arch.to_string(),
        url: e.url.clone(),
        sha256: e.sha256().map(|s| s.to_hex()),
        blake3: None,
        size: e.size(),
        status,
        source: None,
        error: None,
        cause: None,
        hint: None,
        warnings: Vec::new(),
        resumed_from: 0,
    }
}

/// What a failed download was, for its hint.
fn cause_of(e: &FetchError) -> FailureCause {
    let attempts = || e.attempts.iter().map(|(_, a)| a);
    if attempts().any(|a| matches!(a, crate::fetch::AttemptError::Local(_))) {
        FailureCause::Local
    } else if attempts().any(crate::fetch::AttemptError::is_mismatch) {
        FailureCause::Mismatch
    } else if e.attempts.is_empty() && e.offline {
        FailureCause::Offline
    } else if attempts().any(crate::fetch::AttemptError::is_denied) {
        FailureCause::Login
    } else if attempts().any(crate::fetch::AttemptError::is_unreachable) {
        FailureCause::Unreachable
    } else if e.is_not_found() {
        FailureCause::NotFound
    } else {
        FailureCause::Other
    }
}

/// The report of an artifact that failed for `cause`.
fn failed(entry: &LockEntry, cause: FailureCause, msg: String) -> FetchedArtifact {
    let mut r = report_of(entry, ArtifactStatus::Failed);
    r.error = Some(msg);
    r.cause = Some(cause);
    r
}

/// The report of a local failure (the store, the disk), labelled with the artifact.
fn failed_locally(entry: &LockEntry, msg: &str) -> FetchedArtifact {
    failed(
        entry,
        FailureCause::Local,
        format!("{}: {msg}", entry.label()),
    )
}

/// The report of an artifact the store holds.
fn present(entry: &LockEntry, status: ArtifactStatus, o: &crate::store::Object) -> FetchedArtifact {
    let mut r = report_of(entry, status);
    r.blake3 = Some(o.blake3.to_hex());
    r.size = Some(o.size);
    r
}

/// Fetch one artifact into the store unless it is there; one download per artifact even when
/// several processes run at once (the per-artifact lock, then a second look).
fn fetch_one(store: &Store, fetcher: &Fetcher, entry: &LockEntry, bars: &Bars) -> FetchedArtifact {
    let Some(sha256) = entry.sha256() else {
        let mut r = report_of(entry, ArtifactStatus::Unresolved);
        r.error = Some(format!(
            "{} has no published sha256 in the lockfile",
            entry.label()
        ));
        r.cause = Some(FailureCause::Unresolved);
        return r;
    };
    if let Some(o) = store.lookup_sha256(&sha256) {
        return present(entry, ArtifactStatus::Present, &o);
    }
    let _guard = match store.lock_artifact(&sha256) {
        Ok(g) => g,
        Err(e) => return failed_locally(entry, &e.to_string()),
    };
    if let Some(o) = store.lookup_sha256(&sha256) {
        return present(entry, ArtifactStatus::Present, &o);
    }
    let got = match download(store, fetcher, entry, sha256, bars) {
        Ok(got) => got,
        Err(report) => return *report,
    };
    match store_download(store, entry, sha256, &got) {
        Ok(o) => {
            let mut r = present(entry, ArtifactStatus::Fetched, &o);
            r.source = Some(got.source.to_string());
            r.resumed_from = got.resumed_from;
            r.warnings = fallback_warnings(entry, &got);
            r
        }
        Err(report) => *report,
    }
}

/// Downloads the artifact into its partial file in the store, resuming what a killed run left
/// there; on failure the partial file is discarded and the failure reported.
fn download(
    store: &Store,
    fetcher: &Fetcher,
    entry: &LockEntry,
    sha256: crate::hash::Sha256,
    bars: &Bars,
) -> Result<crate::fetch::Downloaded, Box<FetchedArtifact>> {
    // Kept under a stable name until stored: a run killed midway leaves it for the next one to
    // resume. Whatever fails here discards it.
    let mut partial = store
        .open_partial(&sha256)
        .map_err(|e| Box::new(failed_locally(entry, &e.to_string())))?;
    let (_, validator_path) = store.partial_paths(&sha256);
    let bar = bars.start(entry);
    let expect = Expect {
        sha256: Some(sha256),
        size: entry.size(),
        limit: ARTIFACT_LIMIT,
    };
    let result =
        fetcher.download_resuming(&entry.url, &mut partial, &validator_path, &expect, &bar);
    drop(partial);
    bars.finish(&bar);
    if result.is_err() {
        store.discard_partial(&sha256);
    }
    let full = |e: &FetchError| {
        e.attempts.iter().any(|(_, a)| {
            matches!(a, crate::fetch::AttemptError::Local(io) if io.raw_os_error() == Some(libc::ENOSPC))
        })
    };
    result.map_err(|e| {
        Box::new(if full(&e) {
            failed(
                entry,
                FailureCause::NoSpace,
                format!(
                    "{}: no space left on the device holding {} (ENOSPC) while downloading it",
                    entry.label(),
                    store.root().display()
                ),
            )
        } else {
            let mut r = failed(entry, cause_of(&e), format!("{}: {e}", entry.label()));
            // An OCI mirror's registry says best what to do (log in, fill the mirror).
            r.hint = e
                .attempts
                .iter()
                .filter_map(|(_, a)| a.registry_error())
                .flat_map(crate::ops::error::registry_hints)
                .next();
            r
        })
    })
}

/// Moves a completed download from its partial file into the store, unless it holds a private
/// key; on failure the partial file is discarded and the failure reported.
fn store_download(
    store: &Store,
    entry: &LockEntry,
    sha256: crate::hash::Sha256,
    got: &crate::fetch::Downloaded,
) -> Result<crate::store::Object, Box<FetchedArtifact>> {
    let (partial_path, _) = store.partial_paths(&sha256);
    // The shared store never holds a private key, whatever a server sends.
    if matches!(
        crate::secrets::find_private_key_in_file(&partial_path),
        Ok(Some(_))
    ) {
        store.discard_partial(&sha256);
        return Err(Box::new(failed(
            entry,
            FailureCause::Other,
            format!(
                "{}: {} holds a private key; refused, nothing stored",
                entry.label(),
                got.source
            ),
        )));
    }
    store
        .commit_partial(&sha256, &got.blake3, got.size)
        .and_then(|o| store.index_sha256(&sha256, &o).map(|()| o))
        .map_err(|e| {
            store.discard_partial(&sha256);
            Box::new(failed_locally(entry, &e.to_string()))
        })
}

/// Warnings for the sources a download passed over before `got.source` gave it.
fn fallback_warnings(entry: &LockEntry, got: &crate::fetch::Downloaded) -> Vec<String> {
    got.mismatches
        .iter()
        .map(|m| {
            format!(
                "{}: {} served other bytes than the lockfile pins ({}: {}); fetched from {} instead",
                entry.label(),
                m.mirror.as_ref().map_or_else(|| "a source".to_string(), |mi| format!("mirror {mi}")),
                m.source,
                m.what,
                got.source
            )
        })
        .chain(got.registry_misses.iter().map(|m| {
            format!(
                "{}: {} could not give it ({}); fetched from {} instead",
                entry.label(),
                m.mirror.as_ref().map_or_else(|| "a mirror".to_string(), |mi| format!("mirror {mi}")),
                m.what,
                got.source
            )
        }))
        .collect()
}

/// Progress: a task per download, within a total that counts the artifacts.
struct Bars {
    reporting: Reporting,
    total: Progress,
}

impl Bars {
    fn new(reporting: &Reporting, count: u64) -> Self {
        let total = reporting.start_task(
            Task {
                prefix: "fetch".into(),
                unit: Unit::Items,
                len: count,
                message: "artifacts".into(),
            },
            None,
        );
        Self {
            reporting: reporting.clone(),
            total,
        }
    }

    fn start(&self, e: &LockEntry) -> Progress {
        self.reporting.start_task(
            Task {
                prefix: e.component.to_string(),
                unit: Unit::Bytes,
                len: e.size().unwrap_or(0),
                message: String::new(),
            },
            Some(&self.total),
        )
    }

    fn finish(&self, bar: &Progress) {
        bar.finish();
        self.total.inc(1);
    }
}

pub fn fetch(opts: &FetchOptions) -> Result<FetchReport, Error> {
    let (checked, completion) = complete_lock(
        &opts.manifest,
        &opts.lockfile,
        &opts.fetch,
        opts.jobs,
        opts.locked,
    )?;
    let store = crate::ops::steps::open_store(&crate::layout::OutDir::new(&opts.out))?;
    let mut report = fetch_checked(&checked, &store, opts)?;
    report.lock = completion;
    // The completed lockfile is written only by a fetch that got every artifact.
    if report.failures().is_empty() {
        report.lock.commit()?;
    }
    Ok(report)
}

/// Fetch the entries of an already checked lock into an open store.
pub(crate) fn fetch_checked(
    checked: &LockCheck,
    store: &Store,
    opts: &FetchOptions,
) -> Result<FetchReport, Error> {
    let started = Instant::now();
    let fetcher = Fetcher::new(opts.fetch.clone());
    let entries = &checked.lock.artifacts;
    let bars = Bars::new(&opts.progress, entries.len() as u64);
    // What the store holds is found on this thread (a lookup each); only the downloads get
    // threads.
    let mut artifacts: Vec<Option<FetchedArtifact>> = entries
        .iter()
        .map(|e| {
            let o = store.lookup_sha256(&e.sha256()?)?;
            Some(present(e, ArtifactStatus::Present, &o))
        })
        .collect();
    let todo: Vec<usize> = (0..entries.len())
        .filter(|&i| artifacts[i].is_none())
        .collect();
    let fetched = parallel_map(&todo, opts.jobs, |&i| {
        fetch_one(store, &fetcher, &entries[i], &bars)
    });
    for (i, a) in todo.into_iter().zip(fetched) {
        artifacts[i] = Some(a);
    }
    let artifacts: Vec<FetchedArtifact> = artifacts.into_iter().flatten().collect();
    bars.total.finish();
    let fetched_bytes = artifacts
        .iter()
        .filter(|a| a.status == ArtifactStatus::Fetched)
        .filter_map(|a| a.size)
        .sum();
    Ok(FetchReport {
        store: store.root().to_path_buf(),
        lock_id: checked.lock_id.clone(),
        artifacts,
        fetched_bytes,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        lock: LockCompletion::default(),
    })
}
