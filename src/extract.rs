//! What a node takes from an artifact: the artifact itself, or the executable members of its
//! `.tar.gz` that match the component's install rules, each streamed into the store (never
//! unpacked to disk). Done once per artifact: the result is recorded in `store/extract/`.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::hash::Blake3;
use crate::manifest::{url_file_name, InstallRule};
use crate::store::{Object, Store, StoreError};

/// No single binary of ours comes close; a member declaring more is refused.
const MEMBER_LIMIT: u64 = 2 << 30;

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
    #[error("{artifact}: has no install rules, so a node takes nothing from it")]
    NothingToInstall { artifact: String },
}

fn is_archive(url: &str) -> bool {
    let f = url_file_name(url);
    f.ends_with(".tar.gz") || f.ends_with(".tgz")
}

/// The files `rules` take from the artifact stored as `object`, extracted once and remembered.
pub fn installed(
    store: &Store,
    label: &str,
    url: &str,
    object: &Object,
    rules: &[InstallRule],
) -> Result<Vec<Installed>, ExtractError> {
    if rules.is_empty() {
        return Err(ExtractError::NothingToInstall {
            artifact: label.to_string(),
        });
    }
    let mut key = blake3::Hasher::new();
    key.update(b"nodeforge extract v1\n");
    key.update(object.blake3.as_bytes());
    key.update(serde_json::to_string(rules).unwrap_or_default().as_bytes());
    let key = Blake3::from_bytes(*key.finalize().as_bytes());
    if let Some(bytes) = store.read_record("extract", &key) {
        if let Ok(list) = serde_json::from_slice::<Vec<Installed>>(&bytes) {
            if list
                .iter()
                .all(|i| store.object(&i.blake3).is_some_and(|o| o.size == i.size))
            {
                return Ok(list);
            }
        }
    }
    let list = if is_archive(url) {
        extract_archive(store, label, object, rules)?
    } else {
        let name = url_file_name(url);
        rules
            .iter()
            .map(|r| Installed {
                target: r.target(name),
                member: None,
                blake3: object.blake3,
                size: object.size,
            })
            .collect()
    };
    let store_err = |source: crate::fsutil::FsError| ExtractError::Store {
        artifact: label.to_string(),
        source: StoreError::Fs(source),
    };
    store
        .write_record(
            "extract",
            &key,
            &serde_json::to_vec_pretty(&list).unwrap_or_default(),
        )
        .map_err(store_err)?;
    Ok(list)
}

fn extract_archive(
    store: &Store,
    label: &str,
    object: &Object,
    rules: &[InstallRule],
) -> Result<Vec<Installed>, ExtractError> {
    let archive_err = |message: String| ExtractError::Archive {
        artifact: label.to_string(),
        message,
    };
    let file = std::fs::File::open(&object.path).map_err(|e| archive_err(e.to_string()))?;
    let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
        file,
    )));
    let mut out: Vec<Installed> = Vec::new();
    for entry in ar.entries().map_err(|e| archive_err(e.to_string()))? {
        let mut entry = entry.map_err(|e| archive_err(e.to_string()))?;
        let header = entry.header();
        // Regular files only: links, devices and directories are never taken.
        if !matches!(
            header.entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let mode = header.mode().map_err(|e| archive_err(e.to_string()))?;
        if mode & 0o111 == 0 {
            continue; // LICENSE, README.md: not executables
        }
        let Ok(path) = entry.path() else { continue };
        let Some(member) = path.to_str().map(str::to_string) else {
            continue;
        };
        let Some(rule) = rules.iter().find(|r| r.matches(&member)) else {
            continue;
        };
        if entry.size() > MEMBER_LIMIT {
            return Err(archive_err(format!(
                "member `{member}` declares {} bytes",
                entry.size()
            )));
        }
        let target = rule.target(&member);
        let obj = store
            .put_stream(&mut (&mut entry as &mut dyn Read), MEMBER_LIMIT)
            .map_err(|source| ExtractError::Store {
                artifact: label.to_string(),
                source,
            })?;
        if let Some(prev) = out.iter().find(|i| i.target == target) {
            return Err(ExtractError::Conflict {
                artifact: label.to_string(),
                first: prev.member.clone().unwrap_or_default(),
                second: member,
                target,
            });
        }
        out.push(Installed {
            target,
            member: Some(member.trim_start_matches("./").to_string()),
            blake3: obj.blake3,
            size: obj.size,
        });
    }
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
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}
