//! Node images: the entry list (path, type, mode, size, blake3, symlink target; owners always 0),
//! its image id (blake3 of the canonical list), the `manifest.json` that records it with each
//! entry's provenance, and the writers of the image formats.

pub mod erofs;
pub mod tar;
pub mod verity;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hash::Blake3;

/// The format version of `manifest.json`.
pub const IMAGE_FORMAT: u32 = 1;

/// Top-level directories that an overlay must never ship: on usr-merged hosts they are symlinks
/// into /usr, and a real directory in the upper layer would hide the host's.
pub const FORBIDDEN_TOP: [&str; 5] = ["bin", "sbin", "lib", "lib32", "lib64"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

/// One entry of an image. Owners are always root (uid/gid 0) and times are not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Absolute path in the image, `/`-separated, no trailing slash.
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3: Option<Blake3>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
}

impl Entry {
    pub fn dir(path: &str) -> Self {
        Self {
            path: path.to_string(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            blake3: None,
            target: None,
        }
    }

    pub fn file(path: &str, mode: u32, size: u64, blake3: Blake3) -> Self {
        Self {
            path: path.to_string(),
            kind: Kind::File,
            mode,
            uid: 0,
            gid: 0,
            size,
            blake3: Some(blake3),
            target: None,
        }
    }

    pub fn symlink(path: &str, target: &str) -> Self {
        Self {
            path: path.to_string(),
            kind: Kind::Symlink,
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: target.len() as u64,
            blake3: None,
            target: Some(target.to_string()),
        }
    }
}

/// Where an entry came from, for `nodeforge show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum Provenance {
    Artifact {
        component: String,
        version: String,
        arch: String,
        url: String,
        sha256: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        member: Option<String>,
    },
    Template {
        template: String,
    },
    /// A `systemctl enable` symlink derived from a unit's [Install] section.
    Enable {
        unit: String,
    },
    Directory,
}

/// Why an entry list is not a valid image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("`{path}` is put into the image twice ({first} and {second})")]
    Duplicate {
        path: String,
        first: String,
        second: String,
    },
    #[error("`{path}` would make /{top} a real directory in the overlay and hide the host's /{top} (usr-merged hosts): install under /usr instead")]
    ForbiddenTop { path: String, top: String },
    #[error("`{path}` is not a clean absolute path")]
    BadPath { path: String },
}

/// A node image: entries sorted by path (parents first), each with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    pub format: u32,
    pub id: String,
    pub node: String,
    pub arch: String,
    pub entries: Vec<Entry>,
    pub provenance: BTreeMap<String, Provenance>,
    /// The dm-verity tree of `image.erofs`: what an operator pins. Not part of the image id (it is
    /// derived from the entries), filled in when the image files are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<VerityInfo>,
}

/// How to open `image.erofs` through dm-verity with `image.verity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerityInfo {
    pub root_hash: String,
    pub salt: String,
    pub uuid: String,
    pub hash_algorithm: String,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    /// The uuid in the EROFS superblock.
    pub erofs_uuid: String,
}

/// The uuid of an image's EROFS superblock, derived from its id (RFC 4122 version 4 bits).
pub fn erofs_uuid(id: &Blake3) -> [u8; 16] {
    let key = blake3::derive_key("nodeforge erofs uuid v1", id.as_bytes());
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&key[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// Builds an entry list: files and links are added with their provenance, parent directories
/// are derived, and conflicts are refused.
#[derive(Debug, Default)]
pub struct EntryList {
    entries: BTreeMap<String, (Entry, Provenance)>,
}

fn describe(p: &Provenance) -> String {
    match p {
        Provenance::Artifact {
            component, member, ..
        } => match member {
            Some(m) => format!("{component}'s {m}"),
            None => component.clone(),
        },
        Provenance::Template { template } => format!("template {template}"),
        Provenance::Enable { unit } => format!("enabling {unit}"),
        Provenance::Directory => "a directory".into(),
    }
}

impl EntryList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, entry: Entry, provenance: Provenance) -> Result<(), ImageError> {
        let path = entry.path.clone();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        if !path.starts_with('/')
            || segments
                .iter()
                .any(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(ImageError::BadPath { path });
        }
        if let Some(top) = segments.first().filter(|t| FORBIDDEN_TOP.contains(t)) {
            return Err(ImageError::ForbiddenTop {
                top: (*top).to_string(),
                path,
            });
        }
        // Parents, as directories.
        for i in 1..segments.len() {
            let parent = format!("/{}", segments[..i].join("/"));
            match self.entries.get(&parent) {
                Some((e, p)) if e.kind != Kind::Dir => {
                    return Err(ImageError::Duplicate {
                        path: parent.clone(),
                        first: describe(p),
                        second: format!("the parent directory of {path}"),
                    })
                }
                Some(_) => {}
                None => {
                    self.entries
                        .insert(parent.clone(), (Entry::dir(&parent), Provenance::Directory));
                }
            }
        }
        if let Some((old, p)) = self.entries.get(&path) {
            if !(old.kind == Kind::Dir && entry.kind == Kind::Dir) {
                return Err(ImageError::Duplicate {
                    path,
                    first: describe(p),
                    second: describe(&provenance),
                });
            }
            return Ok(());
        }
        self.entries.insert(path, (entry, provenance));
        Ok(())
    }

    /// Entries in canonical order: sorted by path bytes, which puts every parent first.
    pub fn finish(self, node: &str, arch: &str) -> ImageManifest {
        let mut entries = Vec::with_capacity(self.entries.len());
        let mut provenance = BTreeMap::new();
        for (path, (e, p)) in self.entries {
            entries.push(e);
            if p != Provenance::Directory {
                provenance.insert(path, p);
            }
        }
        // Sort by path components so that "/a/b" < "/a-b" never breaks parents-first.
        entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        let id = image_id(&entries);
        ImageManifest {
            format: IMAGE_FORMAT,
            id: id.to_hex(),
            node: node.to_string(),
            arch: arch.to_string(),
            entries,
            provenance,
            verity: None,
        }
    }
}

/// The image id: blake3 of the canonical entry list (one JSON object per line, in order).
pub fn image_id(entries: &[Entry]) -> Blake3 {
    let mut h = blake3::Hasher::new();
    h.update(b"nodeforge image v1\n");
    for e in entries {
        // A struct of plain fields always serializes.
        h.update(serde_json::to_string(e).unwrap_or_default().as_bytes());
        h.update(b"\n");
    }
    Blake3::from_bytes(*h.finalize().as_bytes())
}

impl ImageManifest {
    /// The canonical `manifest.json` bytes (pretty, stable key order, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Paths of the directories among `entries`.
    pub fn dirs(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::Dir)
            .map(|e| e.path.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_derived_and_conflicts_refused() {
        let mut l = EntryList::new();
        let b = Blake3::of(b"x");
        l.add(
            Entry::file("/usr/local/bin/kubelet", 0o755, 1, b),
            Provenance::Directory,
        )
        .expect("add");
        l.add(
            Entry::file("/usr/bin/ctr", 0o755, 1, b),
            Provenance::Directory,
        )
        .expect("add");
        let err = l.add(
            Entry::file("/usr/bin/ctr", 0o755, 1, b),
            Provenance::Directory,
        );
        assert!(matches!(err, Err(ImageError::Duplicate { .. })));
        assert!(matches!(
            l.add(
                Entry::file("/bin/containerd", 0o755, 1, b),
                Provenance::Directory
            ),
            Err(ImageError::ForbiddenTop { .. })
        ));
        assert!(matches!(
            l.add(Entry::file("/etc/../x", 0o644, 1, b), Provenance::Directory),
            Err(ImageError::BadPath { .. })
        ));
        let m = l.finish("n", "amd64");
        let paths: Vec<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/usr",
                "/usr/bin",
                "/usr/bin/ctr",
                "/usr/local",
                "/usr/local/bin",
                "/usr/local/bin/kubelet"
            ]
        );
    }

    #[test]
    fn the_id_depends_on_content_only() {
        let b = Blake3::of(b"x");
        let mk = |mode| {
            let mut l = EntryList::new();
            l.add(
                Entry::file("/etc/a", mode, 1, b),
                Provenance::Template {
                    template: "a".into(),
                },
            )
            .expect("add");
            l.finish("n", "amd64").id
        };
        assert_eq!(mk(0o644), mk(0o644));
        assert_ne!(mk(0o644), mk(0o600));
    }
}
