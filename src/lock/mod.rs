//! The lockfile (`lockfiles/<manifest>.lock`): every artifact the manifest implies, pinned to its
//! exact URL and upstream's published sha256. One writer ([`Lockfile::to_text`]) and one reader
//! ([`Lockfile::load`]); a `lock-id` (blake3 of the canonical content) detects any edit, and a
//! `manifest-hash` (blake3 of the artifact inputs the lock was made from) detects staleness.

mod stale;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use stale::{staleness, Change};

use crate::hash::{Blake3, Sha256};
use crate::manifest::{Arch, ArtifactSpec, ComponentName};
use crate::source::{self, Location, SourceFile};

/// The lockfile format version this build reads and writes.
pub const LOCKFILE_VERSION: u32 = 1;

/// What is known of an artifact's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Resolution {
    /// Upstream's published sha256, and the size when the server told it.
    Resolved { sha256: Sha256, size: Option<u64> },
    /// No published sha256 could be had where the lock was made; `reason` says why.
    Unresolved { reason: String },
}

/// One pinned artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockEntry {
    pub component: ComponentName,
    pub version: String,
    pub arch: Arch,
    pub url: String,
    pub checksum_url: String,
    #[serde(flatten)]
    pub resolution: Resolution,
}

impl LockEntry {
    /// `containerd 1.7.20 (amd64)`, for messages.
    pub fn label(&self) -> String {
        format!("{} {} ({})", self.component, self.version, self.arch)
    }

    pub fn sha256(&self) -> Option<Sha256> {
        match self.resolution {
            Resolution::Resolved { sha256, .. } => Some(sha256),
            Resolution::Unresolved { .. } => None,
        }
    }

    pub fn size(&self) -> Option<u64> {
        match self.resolution {
            Resolution::Resolved { size, .. } => size,
            Resolution::Unresolved { .. } => None,
        }
    }

    /// Whether this entry was made from exactly these inputs.
    pub fn matches(&self, spec: &ArtifactSpec) -> bool {
        self.component == spec.component
            && self.arch == spec.arch
            && self.version == spec.version
            && self.url == spec.url
            && self.checksum_url == spec.checksum_url
    }
}

/// A lockfile in memory. Entries are kept sorted by (component, arch, version): one per
/// (component, version, arch) in use, so node groups running other versions add entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    /// The blake3 of the artifact inputs ([`inputs_hash`]) it was made from.
    pub manifest_hash: Blake3,
    /// The control plane's kube-apiserver version the lock was made with (`[control-plane]` of
    /// the manifest); absent from lockfiles of manifests without one (their lock-id unchanged).
    pub kube_apiserver: Option<String>,
    pub artifacts: Vec<LockEntry>,
}

/// A lockfile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("no lockfile at {}", path.display())]
    Missing { path: PathBuf },
    #[error(transparent)]
    Read(#[from] source::ReadError),
    #[error("{loc}: {message}")]
    Syntax { loc: Location, message: String },
    #[error("{loc}: lockfile format version {found} is not supported by this nodeforge (it reads version {LOCKFILE_VERSION})")]
    UnsupportedVersion { loc: Location, found: i64 },
    #[error("{}: the lockfile was edited by hand: its lock-id is {recorded} but its content hashes to {actual}", path.display())]
    Edited {
        path: PathBuf,
        recorded: String,
        actual: String,
    },
}

impl LockError {
    pub fn snippet(&self) -> Option<String> {
        match self {
            LockError::Syntax { loc, .. } => loc.snippet(),
            _ => None,
        }
    }
}

/// The hash of the manifest inputs a lock is made from: the rendered artifact specs, canonical
/// (sorted, JSON), so comments, key order or CRLF in the manifest do not change it.
pub fn inputs_hash(specs: &[ArtifactSpec]) -> Blake3 {
    let mut sorted: Vec<&ArtifactSpec> = specs.iter().collect();
    sorted.sort();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"nodeforge lock inputs v1\n");
    for s in sorted {
        // Serializing a plain struct of strings cannot fail.
        let line = serde_json::to_string(s).unwrap_or_default();
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    Blake3::from_bytes(*hasher.finalize().as_bytes())
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Lockfile {
    pub fn new(manifest_hash: Blake3, mut artifacts: Vec<LockEntry>) -> Self {
        artifacts.sort_by(|a, b| {
            (&a.component, &a.arch, &a.version).cmp(&(&b.component, &b.arch, &b.version))
        });
        Self {
            manifest_hash,
            kube_apiserver: None,
            artifacts,
        }
    }

    /// The lock with the control plane's version recorded (or none).
    #[must_use]
    pub fn with_kube_apiserver(mut self, version: Option<String>) -> Self {
        self.kube_apiserver = version;
        self
    }

    /// The canonical content: everything but comments and the lock-id itself.
    fn canonical(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "version = {LOCKFILE_VERSION}");
        let _ = writeln!(
            out,
            "manifest-hash = {}",
            quote(&format!("blake3:{}", self.manifest_hash))
        );
        if let Some(v) = &self.kube_apiserver {
            let _ = writeln!(out, "kube-apiserver = {}", quote(v));
        }
        for a in &self.artifacts {
            out.push_str("\n[[artifact]]\n");
            let _ = writeln!(out, "component = {}", quote(a.component.as_str()));
            let _ = writeln!(out, "version = {}", quote(&a.version));
            let _ = writeln!(out, "arch = {}", quote(a.arch.as_str()));
            let _ = writeln!(out, "url = {}", quote(&a.url));
            let _ = writeln!(out, "checksum-url = {}", quote(&a.checksum_url));
            match &a.resolution {
                Resolution::Resolved { sha256, size } => {
                    let _ = writeln!(out, "sha256 = {}", quote(&sha256.to_hex()));
                    if let Some(size) = size {
                        let _ = writeln!(out, "size = {size}");
                    }
                }
                Resolution::Unresolved { reason } => {
                    let _ = writeln!(out, "unresolved = {}", quote(reason));
                }
            }
        }
        out
    }

    /// The lock-id: blake3 of the canonical content.
    pub fn lock_id(&self) -> Blake3 {
        Blake3::of(self.canonical().as_bytes())
    }

    /// The file's text: a header, then the canonical content with the lock-id after `version`.
    pub fn to_text(&self) -> String {
        let canonical = self.canonical();
        let (first, rest) = canonical.split_once('\n').unwrap_or((&canonical, ""));
        format!(
            "# @generated by `nodeforge lock`. Do not edit: `lock-id` is the blake3 of this file's\n\
             # content, so `nodeforge lock --check` and `nodeforge verify` detect any edit.\n\
             # An entry with `unresolved` has no published sha256 yet: `nodeforge lock --update <component>`.\n\
             {first}\nlock-id = {}\n{rest}",
            quote(&format!("blake3:{}", self.lock_id()))
        )
    }

    /// The entry of `component` at `version` for `arch`.
    pub fn entry(
        &self,
        component: &ComponentName,
        version: &str,
        arch: &Arch,
    ) -> Option<&LockEntry> {
        self.artifacts
            .iter()
            .find(|e| &e.component == component && e.version == version && &e.arch == arch)
    }

    /// The entry `spec` is locked as (same component, version, arch), if any.
    pub fn entry_for(&self, spec: &ArtifactSpec) -> Option<&LockEntry> {
        self.entry(&spec.component, &spec.version, &spec.arch)
    }

    /// Read and check a lockfile: format version, syntax, lock-id.
    pub fn load(path: &Path) -> Result<Self, LockError> {
        if !path.exists() {
            return Err(LockError::Missing {
                path: path.to_path_buf(),
            });
        }
        let src = source::read_text(path)?;
        Self::parse(&src)
    }

    pub fn parse(src: &SourceFile) -> Result<Self, LockError> {
        let syntax = |span: std::ops::Range<usize>, message: String| LockError::Syntax {
            loc: src.location(span),
            message,
        };
        // The version first, so that a future format gets a clear "unsupported" error.
        let table: toml::Table = toml::from_str(&src.text).map_err(|e| {
            syntax(
                e.span().unwrap_or(0..0),
                crate::manifest::tidy_serde_message(e.message()),
            )
        })?;
        match table.get("version") {
            Some(toml::Value::Integer(v)) if *v == i64::from(LOCKFILE_VERSION) => {}
            Some(toml::Value::Integer(v)) => {
                let at = src.text.find("version").unwrap_or(0);
                return Err(LockError::UnsupportedVersion {
                    loc: src.location(at..at + 7),
                    found: *v,
                });
            }
            _ => {
                return Err(syntax(
                    0..0,
                    "the lockfile has no `version = 1` line".to_string(),
                ))
            }
        }
        let raw: RawLock = toml::from_str(&src.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let key = src
                .toml_key_at(span.start)
                .map(|k| format!("`{k}`: "))
                .unwrap_or_default();
            syntax(
                span,
                format!("{key}{}", crate::manifest::tidy_serde_message(e.message())),
            )
        })?;
        let blake = |s: &toml::Spanned<String>, key: &str| {
            s.get_ref()
                .strip_prefix("blake3:")
                .and_then(|h| Blake3::parse(h).ok())
                .ok_or_else(|| {
                    syntax(
                        s.span(),
                        format!("`{key}` must be `blake3:` and 64 lowercase hex characters"),
                    )
                })
        };
        let lock_id = blake(&raw.lock_id, "lock-id")?;
        let manifest_hash = blake(&raw.manifest_hash, "manifest-hash")?;
        let mut artifacts = Vec::new();
        let mut seen = BTreeSet::new();
        for e in raw.artifact {
            let span = e.component.span();
            let component =
                ComponentName::new(e.component.get_ref()).map_err(|m| syntax(span.clone(), m))?;
            let arch = Arch::new(&e.arch).map_err(|m| syntax(span.clone(), m))?;
            if !seen.insert((component.clone(), e.version.clone(), arch.clone())) {
                return Err(syntax(
                    span,
                    format!("{component} {} ({arch}) is listed twice", e.version),
                ));
            }
            let resolution = match (e.sha256, e.unresolved) {
                (Some(h), None) => Resolution::Resolved {
                    sha256: Sha256::parse(h.get_ref()).map_err(|m| syntax(h.span(), m.to_string()))?,
                    size: e.size,
                },
                (None, Some(reason)) if e.size.is_none() => Resolution::Unresolved { reason },
                _ => {
                    return Err(syntax(
                        span,
                        format!("{component} ({arch}) must have either `sha256` (and maybe `size`) or `unresolved`"),
                    ))
                }
            };
            artifacts.push(LockEntry {
                component,
                version: e.version,
                arch,
                url: e.url,
                checksum_url: e.checksum_url,
                resolution,
            });
        }
        if let Some(v) = &raw.kube_apiserver {
            crate::manifest::check_version(v.get_ref())
                .map_err(|m| syntax(v.span(), format!("`kube-apiserver`: {m}")))?;
        }
        let lock = Lockfile::new(manifest_hash, artifacts)
            .with_kube_apiserver(raw.kube_apiserver.map(toml::Spanned::into_inner));
        let actual = lock.lock_id();
        if actual != lock_id {
            return Err(LockError::Edited {
                path: src.path.clone(),
                recorded: format!("blake3:{lock_id}"),
                actual: format!("blake3:{actual}"),
            });
        }
        Ok(lock)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLock {
    #[allow(dead_code)]
    version: u32,
    lock_id: toml::Spanned<String>,
    manifest_hash: toml::Spanned<String>,
    kube_apiserver: Option<toml::Spanned<String>>,
    #[serde(default)]
    artifact: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntry {
    component: toml::Spanned<String>,
    version: String,
    arch: String,
    url: String,
    checksum_url: String,
    sha256: Option<toml::Spanned<String>>,
    size: Option<u64>,
    unresolved: Option<String>,
}

#[cfg(test)]
mod tests;
