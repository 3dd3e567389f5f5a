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
use crate::ops::steps::lockfile::checked_against;
use crate::ops::steps::parallel_map;
use crate::ops::steps::LockCheck;

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

/// Resolve one artifact: fetch its checksum file and select its line; ask for its size. Also
/// says where the checksum file came from.
fn resolve(
    fetcher: &Fetcher,
    spec: &ArtifactSpec,
) -> Result<(crate::hash::Sha256, Option<u64>, crate::fetch::Source), ResolveError> {
    let (body, from) = fetcher.get_small(&spec.checksum_url, CHECKSUM_LIMIT)?;
    let text = match String::from_utf8(body) {
        Ok(t) => t,
        Err(source) => return Err(ResolveError::NotText { from, source }),
    };
    let sha =
        checksum::select(&text, &spec.checksum_name).map_err(|source| ResolveError::Checksum {
            from: from.clone(),
            source,
        })?;
    Ok((sha, fetcher.size_of(&spec.url), from))
}

/// The fetcher that reads checksum files to pin entries: upstream's own checksum location
/// only (a mirror's copy of a checksum file would pin whatever the mirror serves), unless
/// `--trust-mirror-checksums` says mirrors may pin too. With `--mirrors-only` and no such
/// trust, nothing could be pinned: refused.
fn checksum_fetcher(fetch: &FetchConfig) -> Result<Fetcher, Error> {
    let mut cfg = fetch.clone();
    if !cfg.trust_mirror_checksums {
        if cfg.mirrors_only {
            return Err(Error::Usage(
                "--mirrors-only leaves no upstream checksum file to pin lockfile entries from: pass --trust-mirror-checksums to pin them from the mirrors' copies".into(),
            ));
        }
        cfg.mirrors.clear();
    }
    Ok(Fetcher::new(cfg))
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

    let resolved = if todo.is_empty() {
        Vec::new()
    } else {
        let fetcher = checksum_fetcher(&opts.fetch)?;
        parallel_map(&todo, opts.jobs, |(spec, _)| resolve(&fetcher, spec))
    };

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
            Ok((sha256, size, _)) => (
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
    /// `component version (arch)` of each entry resolved (missing or unresolved before).
    pub resolved: Vec<String>,
    /// Where each of those was pinned from: `component version (arch) <- checksum file`, in
    /// the order of `resolved`.
    pub pinned_from: Vec<String>,
    /// The lockfile, when it was written (only by a run that succeeded).
    pub written: Option<PathBuf>,
    /// The completed lockfile's text and path, to write when the run succeeds.
    #[serde(skip)]
    pending: Option<(PathBuf, String)>,
}

impl LockCompletion {
    /// `resolved kube-proxy 1.31.0 (amd64) from URL and wrote lockfiles/kubenet.lock`, when
    /// anything was; `not written` with what it pinned, when the run failed after completing.
    pub fn message(&self) -> Option<String> {
        let written = self.written.as_ref()?;
        Some(if self.pinned_from.is_empty() {
            format!(
                "recorded the control plane's version and wrote {}",
                written.display()
            )
        } else {
            format!(
                "resolved {} and wrote {}",
                self.pinned_from.join(", "),
                written.display()
            )
        })
    }

    /// Write the completed lockfile: called once the fetch or build that completed it has
    /// succeeded, so a failed run leaves the lockfile as it was.
    pub(crate) fn commit(&mut self) -> Result<(), Error> {
        if let Some((path, text)) = self.pending.take() {
            fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
            self.written = Some(path);
        }
        Ok(())
    }
}

/// Phase 1 of [`complete_lock`]: what it may complete (entries the manifest adds, the lock
/// otherwise fresh, and entries recorded unresolved), and the control plane's version when the
/// lock lacks it. Any other change is the user's to make with `lock`.
struct ToComplete<'s> {
    todo: Vec<&'s ArtifactSpec>,
    control_plane: Vec<String>,
    changed: bool,
}

fn to_complete<'s>(
    lock: &Lockfile,
    specs: &'s [ArtifactSpec],
    kube_apiserver: Option<&str>,
    lockfile: &std::path::Path,
) -> Result<ToComplete<'s>, Error> {
    let changes = staleness(lock, specs, kube_apiserver);
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
    Ok(ToComplete {
        todo: specs
            .iter()
            .filter(|s| lock.entry_for(s).is_none_or(|e| e.sha256().is_none()))
            .collect(),
        control_plane: changes
            .iter()
            .filter(|c| matches!(c, crate::lock::Change::ControlPlane { .. }))
            .map(|c| format!("{c} is not recorded"))
            .collect(),
        changed: !changes.is_empty(),
    })
}

/// The lock check `fetch` and `build` start with, completing the lockfile first (in memory):
/// entries the manifest adds (the lock is otherwise fresh) and entries recorded `unresolved`
/// are resolved from upstream's own checksum files (a mirror's copies only with
/// `--trust-mirror-checksums`); pinned entries are never touched. An unresolved entry that
/// still cannot be resolved stays as it is (fetching it then fails with its hint); a missing one
/// that cannot be resolved fails. `locked` (`--locked`) refuses any change instead. The
/// completed lockfile is written by [`LockCompletion::commit`], once the run has succeeded.
pub(crate) fn complete_lock(
    manifest: &std::path::Path,
    lockfile: &std::path::Path,
    fetch: &FetchConfig,
    jobs: usize,
    locked: bool,
) -> Result<(LockCheck, LockCompletion), Error> {
    let m = Manifest::load(manifest)?;
    let lock = Lockfile::load(lockfile)?;
    complete_loaded(m, lock, lockfile, fetch, jobs, locked)
}

/// [`complete_lock`] of a manifest and lockfile the caller has read already (each is parsed
/// once per command).
pub(crate) fn complete_loaded(
    m: Manifest,
    lock: Lockfile,
    lockfile: &std::path::Path,
    fetch: &FetchConfig,
    jobs: usize,
    locked: bool,
) -> Result<(LockCheck, LockCompletion), Error> {
    let specs = m.artifacts();
    let plan = to_complete(&lock, &specs, m.kube_apiserver.as_deref(), lockfile)?;
    if plan.todo.is_empty() && plan.control_plane.is_empty() {
        return Ok((
            checked_against(m, lock, lockfile, &specs)?,
            LockCompletion::default(),
        ));
    }
    let label = |s: &ArtifactSpec| format!("{} {} ({})", s.component, s.version, s.arch);
    if locked {
        return Err(Error::Locked {
            lockfile: lockfile.to_path_buf(),
            needs: plan
                .todo
                .iter()
                .map(|s| match lock.entry_for(s) {
                    Some(_) => format!("{} is unresolved", label(s)),
                    None => format!("{} is not locked yet", label(s)),
                })
                .chain(plan.control_plane.iter().cloned())
                .collect(),
            components: plan
                .todo
                .iter()
                .map(|s| s.component.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
    }

    // Phase 2: resolving.
    let results = match checksum_fetcher(fetch) {
        _ if plan.todo.is_empty() => Vec::new(),
        Ok(fetcher) => parallel_map(&plan.todo, jobs, |s| resolve(&fetcher, s)),
        // No checksum file may pin here (--mirrors-only without --trust-mirror-checksums): an
        // unresolved entry stays as it is (fetching it says what to do), a missing one fails.
        Err(e) if plan.todo.iter().any(|s| lock.entry_for(s).is_none()) => return Err(e),
        Err(_) => {
            return Ok((
                checked_against(m, lock, lockfile, &specs)?,
                LockCompletion::default(),
            ));
        }
    };
    let mut entries = lock.artifacts.clone();
    let mut completion = LockCompletion::default();
    let mut failures = Vec::new();
    for (spec, result) in plan.todo.iter().zip(results) {
        let existing = entries.iter().position(|e| {
            e.component == spec.component && e.version == spec.version && e.arch == spec.arch
        });
        match (result, existing) {
            (Ok((sha256, size, from)), at) => {
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
                completion
                    .pinned_from
                    .push(format!("{} from {from}", label(spec)));
            }
            // Still unresolved: kept as it is; fetching it says what to do.
            (Err(_), Some(_)) => {}
            (Err(e), None) => failures.push((label(spec), e)),
        }
    }
    if !failures.is_empty() {
        return Err(Error::Resolve { failures });
    }
    if completion.resolved.is_empty() && !plan.changed {
        return Ok((checked_against(m, lock, lockfile, &specs)?, completion));
    }
    let new =
        Lockfile::new(inputs_hash(&specs), entries).with_kube_apiserver(m.kube_apiserver.clone());
    // Checked as it will be written (its lock-id is what the run records).
    let text = new.to_text();
    let reread = Lockfile::parse(&crate::source::SourceFile::new(lockfile, text.clone()))?;
    completion.pending = Some((lockfile.to_path_buf(), text));
    Ok((checked_against(m, reread, lockfile, &specs)?, completion))
}
