//! `nodeforge lock`: resolve every artifact of the manifest to its URL and upstream's published
//! sha256, keeping unchanged entries as they are (like `cargo update -p`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::checksum;
use crate::fetch::{FetchConfig, Fetcher};
use crate::fsutil;
use crate::lock::{inputs_hash, staleness, LockEntry, LockError, Lockfile, Resolution};
use crate::manifest::{ArtifactSpec, Manifest};
use crate::ops::error::{Error, ResolveError};
use crate::ops::steps::parallel_map;
use crate::ops::steps::{check_lock, LockCheck};

/// A checksum file larger than this is not a checksum file.
const CHECKSUM_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct LockOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    /// Components to re-resolve even when their entries are unchanged.
    pub update: Vec<String>,
    /// Record entries whose checksum cannot be had as `unresolved` instead of failing.
    pub allow_unresolved: bool,
    pub fetch: FetchConfig,
    pub jobs: usize,
    /// Lock a manifest that breaks the version skew policy (warned about instead).
    pub allow_skew: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryStatus {
    /// Unchanged from the existing lockfile.
    Kept,
    /// New in this lockfile.
    Added,
    /// Re-resolved (changed inputs or --update).
    Updated,
    /// No published sha256 could be had.
    Unresolved,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockedEntry {
    pub component: String,
    pub arch: String,
    pub version: String,
    pub previous_version: Option<String>,
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub status: EntryStatus,
    /// Why it is unresolved, in full (the lockfile keeps a short, stable reason).
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockReport {
    pub lockfile: PathBuf,
    pub lock_id: String,
    /// Whether the file was (re)written; an unchanged lock is not rewritten.
    pub written: bool,
    pub entries: Vec<LockedEntry>,
    pub warnings: Vec<String>,
    /// The control plane's kube-apiserver version the lock records (`[control-plane]`), and the
    /// one it recorded before, when that differs.
    pub kube_apiserver: Option<String>,
    pub previous_kube_apiserver: Option<String>,
}

/// Resolve one artifact: fetch its checksum file and select its line; ask for its size.
fn resolve(
    fetcher: &Fetcher,
    spec: &ArtifactSpec,
) -> Result<(crate::hash::Sha256, Option<u64>), ResolveError> {
    let (body, from) = fetcher.get_small(&spec.checksum_url, CHECKSUM_LIMIT)?;
    let text = match String::from_utf8(body) {
        Ok(t) => t,
        Err(source) => return Err(ResolveError::NotText { from, source }),
    };
    let sha = checksum::select(&text, &spec.checksum_name)
        .map_err(|source| ResolveError::Checksum { from, source })?;
    Ok((sha, fetcher.size_of(&spec.url)))
}

pub fn lock(opts: &LockOptions) -> Result<LockReport, Error> {
    let manifest = Manifest::load(&opts.manifest)?;
    let specs = manifest.artifacts();
    let mut warnings = Vec::new();

    let known: Vec<String> = manifest.component_names().into_iter().collect();
    let update: BTreeSet<&str> = opts.update.iter().map(String::as_str).collect();
    if let Some(bad) = update.iter().find(|u| !known.iter().any(|k| k == *u)) {
        return Err(Error::UnknownComponent {
            name: (*bad).to_string(),
            suggestion: crate::ops::steps::suggest(bad, &known),
            known,
        });
    }

    let existing = match Lockfile::load(&opts.lockfile) {
        Ok(l) => Some(l),
        Err(LockError::Missing { .. }) => None,
        Err(e @ LockError::Edited { .. }) => {
            warnings.push(format!("{e}; every entry is resolved again"));
            None
        }
        Err(e) => return Err(e.into()),
    };
    // The skew policy, the control plane's step measured from the version last locked.
    warnings.extend(crate::ops::steps::skew::check_skew(
        &manifest,
        existing.as_ref(),
        opts.allow_skew,
    )?);

    // Which specs need resolving, and which entries stay as they are.
    let mut kept = Vec::new();
    let mut todo = Vec::new();
    for spec in &specs {
        let exact = existing.as_ref().and_then(|l| l.entry_for(spec));
        match exact {
            Some(e) if e.matches(spec) && !update.contains(spec.component.as_str()) => {
                kept.push(e.clone())
            }
            Some(e) => todo.push((spec.clone(), Some(e.clone()))),
            // A new version: the entry it replaces is the one of its (component, arch) that no
            // spec wants any more (none when a group adds a version beside the cluster's).
            None => {
                let replaced = existing.as_ref().and_then(|l| {
                    l.artifacts.iter().find(|e| {
                        e.component == spec.component
                            && e.arch == spec.arch
                            && !specs.iter().any(|s| {
                                s.component == e.component
                                    && s.arch == e.arch
                                    && s.version == e.version
                            })
                    })
                });
                todo.push((spec.clone(), replaced.cloned()));
            }
        }
    }

    let fetcher = Fetcher::new(opts.fetch.clone())?;
    let resolved = parallel_map(&todo, opts.jobs, |(spec, _)| resolve(&fetcher, spec));

    let mut entries: Vec<LockEntry> = kept.clone();
    let mut report: Vec<LockedEntry> = kept
        .iter()
        .map(|e| LockedEntry {
            component: e.component.to_string(),
            arch: e.arch.to_string(),
            version: e.version.clone(),
            previous_version: None,
            url: e.url.clone(),
            sha256: e.sha256().map(|s| s.to_hex()),
            size: e.size(),
            status: if e.sha256().is_some() {
                EntryStatus::Kept
            } else {
                EntryStatus::Unresolved
            },
            detail: match &e.resolution {
                Resolution::Unresolved { reason } => Some(reason.clone()),
                Resolution::Resolved { .. } => None,
            },
        })
        .collect();
    let mut failures = Vec::new();
    for ((spec, old), result) in todo.iter().zip(resolved) {
        let label = format!("{} {} ({})", spec.component, spec.version, spec.arch);
        let (resolution, status, detail) = match result {
            Ok((sha256, size)) => (
                Resolution::Resolved { sha256, size },
                if old.is_some() {
                    EntryStatus::Updated
                } else {
                    EntryStatus::Added
                },
                None,
            ),
            Err(e) if opts.allow_unresolved => {
                warnings.push(format!("{label}: no published sha256: {e}"));
                (
                    Resolution::Unresolved {
                        reason: format!(
                            "no published sha256 could be read from {} when this lock was made",
                            spec.checksum_url
                        ),
                    },
                    EntryStatus::Unresolved,
                    Some(e.to_string()),
                )
            }
            Err(e) => {
                failures.push((label, e));
                continue;
            }
        };
        report.push(LockedEntry {
            component: spec.component.to_string(),
            arch: spec.arch.to_string(),
            version: spec.version.clone(),
            previous_version: old
                .as_ref()
                .filter(|o| o.version != spec.version)
                .map(|o| o.version.clone()),
            url: spec.url.clone(),
            sha256: match &resolution {
                Resolution::Resolved { sha256, .. } => Some(sha256.to_hex()),
                Resolution::Unresolved { .. } => None,
            },
            size: match &resolution {
                Resolution::Resolved { size, .. } => *size,
                Resolution::Unresolved { .. } => None,
            },
            status,
            detail,
        });
        entries.push(LockEntry {
            component: spec.component.clone(),
            version: spec.version.clone(),
            arch: spec.arch.clone(),
            url: spec.url.clone(),
            checksum_url: spec.checksum_url.clone(),
            resolution,
        });
    }
    if !failures.is_empty() {
        return Err(Error::Resolve { failures });
    }
    for e in &kept {
        if let Resolution::Unresolved { .. } = e.resolution {
            warnings.push(format!(
                "{} stays unresolved: run `nodeforge lock --update {}` where upstream is reachable",
                e.label(),
                e.component
            ));
        }
    }
    report.sort_by(|a, b| {
        (&a.component, &a.arch, &a.version).cmp(&(&b.component, &b.arch, &b.version))
    });

    let lockfile = Lockfile::new(inputs_hash(&specs), entries)
        .with_kube_apiserver(manifest.kube_apiserver.clone());
    let text = lockfile.to_text();
    let current = std::fs::read(&opts.lockfile).ok();
    let written = current.as_deref() != Some(text.as_bytes());
    if written {
        fsutil::write_atomic(&opts.lockfile, text.as_bytes(), 0o644)?;
    }
    Ok(LockReport {
        lockfile: opts.lockfile.clone(),
        lock_id: format!("blake3:{}", lockfile.lock_id()),
        written,
        entries: report,
        warnings,
        previous_kube_apiserver: existing
            .as_ref()
            .and_then(|l| l.kube_apiserver.clone())
            .filter(|prev| Some(prev) != manifest.kube_apiserver.as_ref()),
        kube_apiserver: manifest.kube_apiserver,
    })
}

/// What [`complete_lock`] did to the lockfile before a fetch or build.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockCompletion {
    /// `component version (arch)` of each entry resolved and written (missing or unresolved before).
    pub resolved: Vec<String>,
    /// The lockfile, when it was written.
    pub written: Option<PathBuf>,
}

impl LockCompletion {
    /// `resolved kube-proxy 1.31.0 (amd64) and wrote lockfiles/kubenet.lock`, when anything was.
    pub fn message(&self) -> Option<String> {
        let written = self.written.as_ref()?;
        Some(format!(
            "resolved {} and wrote {}",
            self.resolved.join(", "),
            written.display()
        ))
    }
}

/// The lock check `fetch` and `build` start with, completing the lockfile first: entries the
/// manifest adds (the lock is otherwise fresh) and entries recorded `unresolved` are resolved
/// from upstream or a mirror and written, pinned entries are never touched. An unresolved entry
/// that still cannot be resolved stays as it is (fetching it then fails with its hint); a missing
/// one that cannot be resolved fails. `locked` (`--locked`) refuses any change instead.
pub(crate) fn complete_lock(
    manifest: &std::path::Path,
    lockfile: &std::path::Path,
    fetch: &FetchConfig,
    jobs: usize,
    locked: bool,
) -> Result<(LockCheck, LockCompletion), Error> {
    let m = Manifest::load(manifest)?;
    let lock = Lockfile::load(lockfile)?;
    let specs = m.artifacts();
    let changes = staleness(&lock, &specs, m.kube_apiserver.as_deref());
    // Only additions (and the control plane's version, which pins nothing) can be completed;
    // any other change is the user's to make with `lock`.
    let only_added = changes.iter().all(|c| {
        matches!(
            c,
            crate::lock::Change::Added { .. } | crate::lock::Change::ControlPlane { .. }
        )
    });
    if !only_added {
        return Err(Error::Stale {
            lockfile: lockfile.to_path_buf(),
            changes,
        });
    }
    let todo: Vec<&ArtifactSpec> = specs
        .iter()
        .filter(|s| lock.entry_for(s).is_none_or(|e| e.sha256().is_none()))
        .collect();
    let control_plane: Vec<String> = changes
        .iter()
        .filter(|c| matches!(c, crate::lock::Change::ControlPlane { .. }))
        .map(|c| format!("{c} is not recorded"))
        .collect();
    if todo.is_empty() && control_plane.is_empty() {
        return Ok((check_lock(manifest, lockfile)?, LockCompletion::default()));
    }
    let label = |s: &ArtifactSpec| format!("{} {} ({})", s.component, s.version, s.arch);
    if locked {
        return Err(Error::Locked {
            lockfile: lockfile.to_path_buf(),
            needs: todo
                .iter()
                .map(|s| match lock.entry_for(s) {
                    Some(_) => format!("{} is unresolved", label(s)),
                    None => format!("{} is not locked yet", label(s)),
                })
                .chain(control_plane)
                .collect(),
            components: todo
                .iter()
                .map(|s| s.component.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
    }
    let fetcher = Fetcher::new(fetch.clone())?;
    let results = parallel_map(&todo, jobs, |s| resolve(&fetcher, s));
    let mut entries = lock.artifacts.clone();
    let mut completion = LockCompletion::default();
    let mut failures = Vec::new();
    for (spec, result) in todo.iter().zip(results) {
        let existing = entries.iter().position(|e| {
            e.component == spec.component && e.version == spec.version && e.arch == spec.arch
        });
        match (result, existing) {
            (Ok((sha256, size)), at) => {
                let entry = LockEntry {
                    component: spec.component.clone(),
                    version: spec.version.clone(),
                    arch: spec.arch.clone(),
                    url: spec.url.clone(),
                    checksum_url: spec.checksum_url.clone(),
                    resolution: Resolution::Resolved { sha256, size },
                };
                match at {
                    Some(i) => entries[i] = entry,
                    None => entries.push(entry),
                }
                completion.resolved.push(label(spec));
            }
            // Still unresolved: kept as it is; fetching it says what to do.
            (Err(_), Some(_)) => {}
            (Err(e), None) => failures.push((label(spec), e)),
        }
    }
    if !failures.is_empty() {
        return Err(Error::Resolve { failures });
    }
    if !completion.resolved.is_empty() || !changes.is_empty() {
        let new = Lockfile::new(inputs_hash(&specs), entries)
            .with_kube_apiserver(m.kube_apiserver.clone());
        fsutil::write_atomic(lockfile, new.to_text().as_bytes(), 0o644)?;
        completion.written = Some(lockfile.to_path_buf());
    }
    Ok((check_lock(manifest, lockfile)?, completion))
}
