//! What a node takes from an artifact: the artifact itself, or the executable members of its
//! `.tar.gz` that match the component's install rules, each streamed into the store (never
//! unpacked to disk). Done once per artifact: the result is recorded in `store/extract/`.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::hash::{Blake3, Sha256};
use crate::manifest::{url_file_name, InstallRule};
use crate::store::{Object, Store, StoreError};

/// No single binary of ours comes close; a member declaring more is refused.
const MEMBER_LIMIT: u64 = 2 << 30;

/// What one artifact may install in all, unless `NODEFORGE_MAX_INSTALL_BYTES` says otherwise:
/// a small archive of many large members (a gzip bomb) must not fill the disk. Upstream's
/// largest (containerd, ~150 MB unpacked) is far below it.
pub const DEFAULT_INSTALL_LIMIT: u64 = 4 << 30;

/// The total install limit per artifact: `NODEFORGE_MAX_INSTALL_BYTES`, else the default.
pub fn install_limit() -> u64 {
    std::env::var("NODEFORGE_MAX_INSTALL_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_INSTALL_LIMIT)
}

/// One file a node takes from an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Absolute path in the image.
    pub target: String,
    /// The archive member it came from (None: the artifact itself).
    pub member: Option<String>,
    pub blake3: Blake3,
    pub size: u64,
}

/// What `store/extract/<key>` records: the artifact and the files taken from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractRecord {
    pub artifact: Blake3,
    pub files: Vec<Installed>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{artifact}: cannot read the archive: {message}")]
    Archive { artifact: String, message: String },
    #[error("{artifact}: cannot read the archive: member `{member}`: {source}")]
    Member {
        artifact: String,
        member: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{artifact}: no executable member matches `{pattern}`")]
    NoMatch { artifact: String, pattern: String },
    #[error("{artifact}: members `{first}` and `{second}` both install to {target}")]
    Conflict {
        artifact: String,
        first: String,
        second: String,
        target: String,
    },
    #[error("{artifact}: {source}")]
    Store {
        artifact: String,
        #[source]
        source: StoreError,
    },
    #[error("{artifact}: {} holds a private key; images never carry private keys", member.as_deref().map_or_else(|| "the artifact".to_string(), |m| format!("member `{m}`")))]
    PrivateKey {
        artifact: String,
        member: Option<String>,
    },
    #[error("{artifact}: what it installs exceeds {limit} bytes in all at member `{member}` (set NODEFORGE_MAX_INSTALL_BYTES to allow more)")]
    TooLarge {
        artifact: String,
        member: String,
        limit: u64,
    },
    #[error("{artifact}: the store's index names object {object}, whose sha256 is {actual}, not the locked {want}: run `nodeforge verify`")]
    NotTheArtifact {
        artifact: String,
        object: Blake3,
        want: Sha256,
        actual: Sha256,
    },
    #[error("{artifact}: has no install rules, so a node takes nothing from it")]
    NothingToInstall { artifact: String },
}

/// One locked artifact as extraction sees it: the object the store holds for it, the sha256 the
/// lockfile pins (checked again as its bytes are read), and its component's install rules.
#[derive(Debug, Clone, Copy)]
pub struct Artifact<'a> {
    /// How errors name it (`kubelet 1.31.0 (amd64)`).
    pub label: &'a str,
    pub url: &'a str,
    pub object: &'a Object,
    pub sha256: &'a Sha256,
    pub rules: &'a [InstallRule],
}

fn is_archive(url: &str) -> bool {
    let f = url_file_name(url);
    f.ends_with(".tar.gz") || f.ends_with(".tgz")
}

/// The key of an artifact's extraction record: the artifact and the rules applied to it.
fn record_key(object: &Object, rules: &[InstallRule]) -> Blake3 {
    let mut key = blake3::Hasher::new();
    key.update(b"nodeforge extract v1\n");
    key.update(object.blake3.as_bytes());
    key.update(serde_json::to_string(rules).unwrap_or_default().as_bytes());
    Blake3::from_bytes(*key.finalize().as_bytes())
}

/// The artifact's extraction record, when the store has one for it in the current shape (a bare
/// list written before `ExtractRecord` counts as absent: extracted again, and rewritten); an
/// artifact without install rules is an error.
fn recorded(
    store: &Store,
    a: &Artifact<'_>,
) -> Result<(Blake3, Option<ExtractRecord>), ExtractError> {
    if a.rules.is_empty() {
        return Err(ExtractError::NothingToInstall {
            artifact: a.label.to_string(),
        });
    }
    let key = record_key(a.object, a.rules);
    let rec = store
        .read_record(crate::store::EXTRACT_RECORDS, &key)
        .and_then(|bytes| serde_json::from_slice::<ExtractRecord>(&bytes).ok())
        .filter(|rec| rec.artifact == a.object.blake3);
    Ok((key, rec))
}

/// The files `rules` take from the artifact stored as `object`, extracted once and remembered.
pub fn installed(store: &Store, a: &Artifact<'_>) -> Result<Vec<Installed>, ExtractError> {
    let (key, rec) = recorded(store, a)?;
    if let Some(rec) = rec.filter(|rec| {
        rec.files
            .iter()
            .all(|i| store.object(&i.blake3).is_some_and(|o| o.size == i.size))
    }) {
        return Ok(rec.files);
    }
    let rec = ExtractRecord {
        artifact: a.object.blake3,
        files: extract_with(store, a, Sink::Store)?,
    };
    store
        .write_record(
            crate::store::EXTRACT_RECORDS,
            &key,
            &serde_json::to_vec_pretty(&rec).unwrap_or_default(),
        )
        .map_err(|source| ExtractError::Store {
            artifact: a.label.to_string(),
            source: StoreError::Fs(source),
        })?;
    Ok(rec.files)
}

/// What [`installed`] would give, writing nothing (for `plan`): the extraction record when the
/// store has one, else the members hashed as they stream by, without storing them.
pub fn installed_read_only(
    store: &Store,
    a: &Artifact<'_>,
) -> Result<Vec<Installed>, ExtractError> {
    match recorded(store, a)? {
        (_, Some(rec)) => Ok(rec.files),
        (_, None) => extract_with(store, a, Sink::HashOnly),
    }
}

/// Where extracted members go: into the store, or only through a hasher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Store,
    HashOnly,
}

/// Extract the artifact again, ignoring its record, and compare: `None` when the record says
/// what the artifact gives (or there is no record), else what differs. For `verify --rebuild`:
/// a record naming another object for a file would put the wrong binary into every image.
pub fn check_record(store: &Store, a: &Artifact<'_>) -> Result<Option<String>, ExtractError> {
    let Artifact {
        label,
        object,
        rules,
        ..
    } = *a;
    let key = record_key(object, rules);
    let Some(bytes) = store.read_record(crate::store::EXTRACT_RECORDS, &key) else {
        return Ok(None);
    };
    let Ok(rec) = serde_json::from_slice::<ExtractRecord>(&bytes) else {
        return Ok(Some(format!(
            "store/extract/{key}: the extraction record of {label} is not readable"
        )));
    };
    let fresh = extract_with(store, a, Sink::Store)?;
    if rec.artifact != object.blake3 {
        return Ok(Some(format!(
            "store/extract/{key}: the extraction record of {label} names artifact object {}, not {}",
            rec.artifact, object.blake3
        )));
    }
    for f in &fresh {
        match rec.files.iter().find(|r| r.target == f.target) {
            Some(r) if r == f => {}
            Some(r) => {
                return Ok(Some(format!(
                    "store/extract/{key}: the extraction record of {label} says {} is object {} ({} bytes); the artifact gives {} ({} bytes)",
                    f.target, r.blake3, r.size, f.blake3, f.size
                )))
            }
            None => {
                return Ok(Some(format!(
                    "store/extract/{key}: the extraction record of {label} lacks {}",
                    f.target
                )))
            }
        }
    }
    if rec.files.len() != fresh.len() {
        return Ok(Some(format!(
            "store/extract/{key}: the extraction record of {label} lists {} files; the artifact gives {}",
            rec.files.len(),
            fresh.len()
        )));
    }
    Ok(None)
}

/// Take the files now, from the artifact's bytes, which must have the sha256 the lockfile pins
/// (the store's sha256 index is derived data: an entry pointing at another object must not put
/// its files into images).
fn extract_with(
    store: &Store,
    a: &Artifact<'_>,
    sink: Sink,
) -> Result<Vec<Installed>, ExtractError> {
    let Artifact {
        label,
        url,
        object,
        sha256,
        rules,
    } = *a;
    if is_archive(url) {
        extract_archive(store, a, sink)
    } else {
        let (actual, _) = Sha256::of_file(&object.path).map_err(|e| ExtractError::Archive {
            artifact: label.to_string(),
            message: format!("cannot read {}: {e}", object.path.display()),
        })?;
        same_artifact(label, object, sha256, actual)?;
        refuse_keys(label, None, object)?;
        let name = url_file_name(url);
        Ok(rules
            .iter()
            .map(|r| Installed {
                target: r.target(name),
                member: None,
                blake3: object.blake3,
                size: object.size,
            })
            .collect())
    }
}

/// The check every extracted file passes before it becomes a store object.
fn no_keys(path: &std::path::Path) -> Result<(), String> {
    match crate::secrets::find_private_key_in_file(path).map_err(|e| e.to_string())? {
        Some(at) => Err(format!("a private key at byte {at}")),
        None => Ok(()),
    }
}

/// The object the index named must be the locked artifact.
fn same_artifact(
    label: &str,
    object: &Object,
    want: &Sha256,
    actual: Sha256,
) -> Result<(), ExtractError> {
    if actual == *want {
        return Ok(());
    }
    Err(ExtractError::NotTheArtifact {
        artifact: label.to_string(),
        object: object.blake3,
        want: *want,
        actual,
    })
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}

/// A member's address and size, computed as it streams by: nothing is written (the returned
/// object's path is where the store would keep it).
fn hash_stream(r: &mut dyn Read, store: &Store) -> Result<Object, StoreError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let size = crate::fsutil::read_chunks(r, &mut buf, StoreError::Read, |chunk, size| {
        if size > MEMBER_LIMIT {
            return Err(StoreError::TooLarge {
                limit: MEMBER_LIMIT,
            });
        }
        hasher.update(chunk);
        Ok(())
    })?;
    let blake3 = Blake3::from_bytes(*hasher.finalize().as_bytes());
    Ok(Object {
        blake3,
        size,
        path: store.object_path(&blake3),
    })
}

/// Refuse an installed file whose content holds a private key.
fn refuse_keys(label: &str, member: Option<&str>, obj: &Object) -> Result<(), ExtractError> {
    let found =
        crate::secrets::find_private_key_in_file(&obj.path).map_err(|e| ExtractError::Archive {
            artifact: label.to_string(),
            message: format!("cannot read back {}: {e}", obj.path.display()),
        })?;
    if found.is_some() {
        return Err(ExtractError::PrivateKey {
            artifact: label.to_string(),
            member: member.map(str::to_string),
        });
    }
    Ok(())
}

/// Whether a member a rule matched is installed (`false`: a directory, or a file that is no
/// executable), or why it is refused (special files, setuid bits, oversized members).
fn admit_member(
    member: &str,
    header: &tar::Header,
    size: u64,
    archive_err: impl Fn(String) -> ExtractError,
) -> Result<bool, ExtractError> {
    let kind = header.entry_type();
    let mode = header.mode().map_err(|e| archive_err(e.to_string()))?;
    if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
        if kind.is_dir() {
            return Ok(false);
        }
        return Err(archive_err(format!(
            "member `{member}` is a {}; only regular files are installed",
            match kind {
                tar::EntryType::Symlink => "symbolic link",
                tar::EntryType::Link => "hard link",
                tar::EntryType::Char | tar::EntryType::Block => "device node",
                tar::EntryType::Fifo => "FIFO",
                _ => "special member",
            }
        )));
    }
    if mode & 0o111 == 0 {
        return Ok(false); // LICENSE, README.md: not executables
    }
    if mode & 0o7000 != 0 {
        return Err(archive_err(format!(
            "member `{member}` has setuid, setgid or sticky bits ({mode:o}); refused"
        )));
    }
    if size > MEMBER_LIMIT {
        return Err(archive_err(format!(
            "member `{member}` declares {size} bytes, more than the {MEMBER_LIMIT} allowed"
        )));
    }
    Ok(true)
}

/// Streams one member into the store (or only hashes it), refusing private keys.
fn store_member(
    store: &Store,
    sink: Sink,
    entry: &mut dyn Read,
    label: &str,
    member: &str,
) -> Result<Object, ExtractError> {
    let stored = match sink {
        Sink::Store => store.put_stream_checked(entry, MEMBER_LIMIT, &mut no_keys),
        Sink::HashOnly => hash_stream(entry, store),
    };
    stored.map_err(|source| match source {
        StoreError::Refused(_) => ExtractError::PrivateKey {
            artifact: label.to_string(),
            member: Some(member.to_string()),
        },
        StoreError::Read(source) => ExtractError::Member {
            artifact: label.to_string(),
            member: member.to_string(),
            source,
        },
        source => ExtractError::Store {
            artifact: label.to_string(),
            source,
        },
    })
}

/// Every rule naming a member (`from`) matched one.
fn every_rule_matched(
    label: &str,
    rules: &[InstallRule],
    out: &[Installed],
) -> Result<(), ExtractError> {
    for r in rules {
        if let Some(pattern) = &r.from {
            if !out
                .iter()
                .any(|i| i.member.as_deref().is_some_and(|m| r.matches(m)))
            {
                return Err(ExtractError::NoMatch {
                    artifact: label.to_string(),
                    pattern: pattern.clone(),
                });
            }
        }
    }
    Ok(())
}

fn extract_archive(
    store: &Store,
    a: &Artifact<'_>,
    sink: Sink,
) -> Result<Vec<Installed>, ExtractError> {
    let Artifact {
        label,
        object,
        sha256,
        rules,
        ..
    } = *a;
    let archive_err = |message: String| ExtractError::Archive {
        artifact: label.to_string(),
        message,
    };
    let file = std::fs::File::open(&object.path).map_err(|e| archive_err(e.to_string()))?;
    // The archive's sha256, computed in the same pass as the extraction.
    let hashing = HashingReader {
        inner: file,
        hasher: <sha2::Sha256 as sha2::Digest>::new(),
    };
    let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
        hashing,
    )));
    let mut out: Vec<Installed> = Vec::new();
    let limit = install_limit();
    let mut total: u64 = 0;
    for entry in ar.entries().map_err(|e| archive_err(e.to_string()))? {
        let mut entry = entry.map_err(|e| archive_err(e.to_string()))?;
        // Names that are not UTF-8, absolute, or climb with `..` never match a rule: ignored.
        let Ok(path) = entry.path() else { continue };
        let Some(member) = path.to_str().map(str::to_string) else {
            continue;
        };
        let Some(rule) = rules.iter().find(|r| r.matches(&member)) else {
            continue;
        };
        if !admit_member(&member, entry.header(), entry.size(), archive_err)? {
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > limit {
            return Err(ExtractError::TooLarge {
                artifact: label.to_string(),
                member,
                limit,
            });
        }
        let target = rule.target(&member);
        if let Some(prev) = out.iter().find(|i| i.target == target) {
            return Err(ExtractError::Conflict {
                artifact: label.to_string(),
                first: prev.member.clone().unwrap_or_default(),
                second: member,
                target,
            });
        }
        let obj = store_member(store, sink, &mut entry, label, &member)?;
        out.push(Installed {
            target,
            member: Some(member.trim_start_matches("./").to_string()),
            blake3: obj.blake3,
            size: obj.size,
        });
    }
    // What follows the archive's end (padding) counts too.
    let mut rest = ar.into_inner().into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| archive_err(e.to_string()))?;
    let actual = Sha256::from_bytes(sha2::Digest::finalize(rest.into_inner().hasher).into());
    same_artifact(label, object, sha256, actual)?;
    every_rule_matched(label, rules, &out)?;
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}
