//! Node images: the entry list (path, type, mode, size, blake3, symlink target; owners always 0),
//! split into layers, the layer and image ids, the `manifest.json` that records them with each
//! entry's provenance, and the writers of the image formats.
//!
//! A node image (format 2) is an ordered list of layers, each an EROFS file with its own
//! dm-verity tree, in systemd's extension model:
//!
//! ```text
//!   /etc  ── config layer   (confext-style; per node, kilobytes)   from templates
//!   /usr  ┐
//!   /opt  ┴─ payload layer  (sysext-style; one per binary set)     from locked artifacts
//!   /var  ── the VM's own disk (never in an image)
//! ```
//!
//! Which layer an entry goes to follows from where it comes from ([`Role::of`]); each layer may
//! hold only its own top-level directories ([`Role::tops`]). The layer id is the blake3 of the
//! layer's canonical entry list; the image id is the blake3 of the ordered (role, name, layer id)
//! list, so the same content gives the same ids on any machine. Format 1 (one whole-root image)
//! records are still read, to list them and to say why they cannot be rolled back to.

pub mod digests;
pub mod erofs;
pub mod tar;
pub mod verity;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hash::Blake3;

/// The format version of `manifest.json`: 2 is layered; 1 was one whole-root image.
pub const IMAGE_FORMAT: u32 = 2;

/// The format of the whole-root images made before layers.
pub const FLAT_FORMAT: u32 = 1;

/// The format of a layered image's record as `out/` keeps it (`manifest.json` in an image or
/// generation directory): the format-2 record without its entries, which its layers' records
/// (`out/layers/<id>/layer.json`) hold; see [`StoredRecord`]. Registries, signatures and every
/// report see the format-2 record it loads to.
pub const STORED_FORMAT: u32 = 3;

/// A layer's role in the stack, which decides what it may hold and how systemd would merge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// What the locked artifacts install: `/usr` and `/opt` (a system extension). Shared by
    /// every node with the same binary set.
    Payload,
    /// The node's rendered files, units and enable links: `/etc` (a configuration extension).
    Config,
}

/// The layers of an image, bottom to top, and what each one is, as data.
pub const ROLES: [Role; 2] = [Role::Payload, Role::Config];

impl Role {
    /// The layer an entry goes to, from where it comes from.
    pub fn of(p: &Provenance) -> Role {
        match p {
            Provenance::Artifact { .. } => Role::Payload,
            Provenance::Template { .. } | Provenance::Enable { .. } | Provenance::Directory => {
                Role::Config
            }
            Provenance::Release { role } => *role,
        }
    }

    /// The top-level directories this layer may hold (systemd-sysext merges `/usr` and `/opt`,
    /// systemd-confext `/etc`).
    pub fn tops(self) -> &'static [&'static str] {
        match self {
            Role::Payload => &["usr", "opt"],
            Role::Config => &["etc"],
        }
    }

    /// The extension name: the file stem of `<NAME>.raw`, and the suffix of its
    /// `extension-release.<NAME>` file, which systemd requires to match.
    pub fn name(self) -> &'static str {
        match self {
            Role::Payload => "nodeforge-payload",
            Role::Config => "nodeforge-config",
        }
    }

    /// Where the layer's `extension-release` file goes (systemd-sysext looks in
    /// `/usr/lib/extension-release.d/`, systemd-confext in `/etc/extension-release.d/`).
    pub fn release_path(self) -> String {
        match self {
            Role::Payload => format!(
                "/usr/lib/extension-release.d/extension-release.{}",
                self.name()
            ),
            Role::Config => format!("/etc/extension-release.d/extension-release.{}", self.name()),
        }
    }

    /// The `extension-release` file: any OS (`ID=_any`), this architecture in systemd's naming.
    pub fn release_file(self, arch: &str) -> String {
        let arch = match arch {
            "amd64" => "x86-64",
            other => other,
        };
        format!("ID=_any\nARCHITECTURE={arch}\n")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Payload => "payload",
            Role::Config => "config",
        }
    }

    /// The role whose layer holds `path`, by its top-level directory.
    pub fn holding(path: &str) -> Option<Role> {
        let top = path.trim_start_matches('/').split('/').next().unwrap_or("");
        ROLES.into_iter().find(|r| r.tops().contains(&top))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// A `systemctl enable` symlink derived from a unit's `[Install]` section.
    Enable {
        unit: String,
    },
    /// The `extension-release` file that makes a layer a systemd extension.
    Release {
        role: Role,
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
    #[error("`{path}` (from {from}) goes into the {role} layer, which may hold only {}: a node image holds /usr and /opt (payload, from artifacts) and /etc (config, from templates); /var is the VM's own", allowed(*role))]
    OutsideLayer {
        path: String,
        from: String,
        role: Role,
    },
}

fn allowed(role: Role) -> String {
    role.tops()
        .iter()
        .map(|t| format!("/{t}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A node image: entries sorted by path (parents first), each with its provenance, and (format
/// 2) the layers they are split into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    pub format: u32,
    pub id: String,
    pub node: String,
    pub arch: String,
    /// The layers, bottom to top (format 2; empty in format 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRef>,
    pub entries: Vec<Entry>,
    pub provenance: BTreeMap<String, Provenance>,
    /// Format 1 only: the dm-verity tree of the whole-root `image.erofs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<VerityInfo>,
}

/// One layer of a node image, as the image record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub role: Role,
    /// The extension name (`<NAME>.raw`, `extension-release.<NAME>`).
    pub name: String,
    /// blake3 of the layer's canonical entry list: its directory under `out/layers/`.
    pub id: String,
    /// How to open the layer's EROFS file through dm-verity: what an operator pins. Not part of
    /// any id (it is derived from the entries); filled in when the layer's files are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<VerityInfo>,
}

/// A layer as `out/layers/<id>/layer.json` records it: enough to check and rewrite its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub format: u32,
    pub id: String,
    pub role: Role,
    pub name: String,
    pub arch: String,
    pub entries: Vec<Entry>,
    pub verity: VerityInfo,
}

/// The format of `layer.json`.
pub const LAYER_FORMAT: u32 = 1;

impl LayerRecord {
    /// The canonical `layer.json` bytes: compact (a config layer's record then fits one 4 KiB
    /// block: every node has one), stable key order, trailing newline. The same schema as the
    /// indented form nodeforge wrote before ([`to_indented_json`](Self::to_indented_json)),
    /// which every reader reads alike.
    pub fn to_json(&self) -> Vec<u8> {
        canonical_json(self)
    }

    /// The indented `layer.json` bytes an older nodeforge wrote for this record.
    pub fn to_indented_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Whether the record is what its id says: its entries hash to its id, and all of them lie
    /// in its role's directories.
    pub fn check(&self) -> Result<(), String> {
        let id = layer_id(&self.entries).to_hex();
        if id != self.id {
            return Err(format!(
                "its entry list hashes to {id}, not to the id it records ({})",
                self.id
            ));
        }
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| Role::holding(&e.path) != Some(self.role))
        {
            return Err(format!(
                "{} does not belong in a {} layer",
                e.path, self.role
            ));
        }
        if self.name != self.role.name() {
            return Err(format!(
                "a {} layer is named {}, not {}",
                self.role,
                self.role.name(),
                self.name
            ));
        }
        Ok(())
    }
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
#[derive(Debug, Default, Clone)]
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
        Provenance::Release { role } => format!("the {role} layer's extension-release file"),
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
        // Each entry goes to the layer of where it comes from, which may hold only its own
        // top-level directories.
        if provenance != Provenance::Directory {
            let role = Role::of(&provenance);
            if Role::holding(&path) != Some(role) {
                return Err(ImageError::OutsideLayer {
                    path,
                    from: describe(&provenance),
                    role,
                });
            }
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

    /// The entries in canonical order (sorted by path components, which puts every parent
    /// first) with the provenance of every non-directory.
    pub fn into_sorted(self) -> (Vec<Entry>, BTreeMap<String, Provenance>) {
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
        (entries, provenance)
    }

    /// The node image: the entries split into layers, with their ids.
    pub fn finish(self, node: &str, arch: &str) -> ImageManifest {
        let (entries, provenance) = self.into_sorted();
        let layers: Vec<LayerRef> = ROLES
            .iter()
            .map(|&role| LayerRef {
                role,
                name: role.name().to_string(),
                id: layer_id(&layer_entries(&entries, role)).to_hex(),
                verity: None,
            })
            .collect();
        ImageManifest {
            format: IMAGE_FORMAT,
            id: node_image_id(&layers).to_hex(),
            node: node.to_string(),
            arch: arch.to_string(),
            layers,
            entries,
            provenance,
            verity: None,
        }
    }
}

fn hash_entries(domain: &[u8], entries: &[Entry]) -> Blake3 {
    let mut h = blake3::Hasher::new();
    h.update(domain);
    for e in entries {
        // A struct of plain fields always serializes.
        h.update(serde_json::to_string(e).unwrap_or_default().as_bytes());
        h.update(b"\n");
    }
    Blake3::from_bytes(*h.finalize().as_bytes())
}

/// The id of a format-1 (whole-root) image: blake3 of the canonical entry list (one JSON object
/// per line, in order).
pub fn image_id(entries: &[Entry]) -> Blake3 {
    hash_entries(b"nodeforge image v1\n", entries)
}

/// A layer's id: blake3 of its canonical entry list.
pub fn layer_id(entries: &[Entry]) -> Blake3 {
    hash_entries(b"nodeforge layer v1\n", entries)
}

/// A layered image's id: blake3 of its layers, bottom to top, by role, name and id.
pub fn node_image_id(layers: &[LayerRef]) -> Blake3 {
    let mut h = blake3::Hasher::new();
    h.update(b"nodeforge image v2\n");
    for l in layers {
        h.update(format!("{} {} {}\n", l.role, l.name, l.id).as_bytes());
    }
    Blake3::from_bytes(*h.finalize().as_bytes())
}

/// The entries of `entries` that the layer of `role` holds, in order.
pub fn layer_entries(entries: &[Entry], role: Role) -> Vec<Entry> {
    entries
        .iter()
        .filter(|e| Role::holding(&e.path) == Some(role))
        .cloned()
        .collect()
}

/// The canonical bytes of a record (an image's, a layer's): compact JSON, fields in their
/// declared order, a trailing newline. A struct of plain fields always serializes.
fn canonical_json(record: &impl Serialize) -> Vec<u8> {
    let mut v = serde_json::to_vec(record).unwrap_or_default();
    v.push(b'\n');
    v
}

/// A layered image's record as `out/` keeps it ([`STORED_FORMAT`]): everything a format-2
/// record says but its entries. A layer id is the hash of the layer's entry list, and
/// `out/layers/<id>/layer.json` holds that list, so the entries need not be written again for
/// every image and generation (a thousand nodes sharing a payload would keep a thousand copies
/// of its entries). [`into_full`](Self::into_full) rebuilds the format-2 record: the entries
/// are the layers' lists merged in canonical order (sorted by path components), which is the
/// order [`EntryList::finish`] gives them, so the rebuilt record is byte for byte the one
/// stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub format: u32,
    pub id: String,
    pub node: String,
    pub arch: String,
    pub layers: Vec<LayerRef>,
    pub provenance: BTreeMap<String, Provenance>,
}

/// An image record as read from `out/`: a whole one (format 1 or 2, as older nodeforge wrote
/// them and as registries carry them) or one whose entries its layers hold (format 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDisk {
    Whole(ImageManifest),
    Stored(StoredRecord),
}

impl OnDisk {
    /// Parse `manifest.json` bytes of any format this nodeforge reads.
    pub fn parse(bytes: &[u8]) -> Result<OnDisk, String> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let f: Format = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if f.format == STORED_FORMAT {
            serde_json::from_slice(bytes)
                .map(OnDisk::Stored)
                .map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(bytes)
                .map(OnDisk::Whole)
                .map_err(|e| e.to_string())
        }
    }

    /// The image id the record gives.
    pub fn id(&self) -> &str {
        match self {
            OnDisk::Whole(m) => &m.id,
            OnDisk::Stored(s) => &s.id,
        }
    }

    /// The format number the record has.
    pub fn format(&self) -> u32 {
        match self {
            OnDisk::Whole(m) => m.format,
            OnDisk::Stored(s) => s.format,
        }
    }
}

impl StoredRecord {
    /// The canonical bytes (compact, stable key order, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        canonical_json(self)
    }

    /// Whether the record is what its id says, as far as it can tell without its entries: its
    /// layers are the payload and config layers, named by their roles, and hash to its id.
    pub fn check(&self) -> Result<(), String> {
        if self.format != STORED_FORMAT {
            return Err(format!(
                "image record format {} is not format {STORED_FORMAT}",
                self.format
            ));
        }
        let roles: Vec<Role> = self.layers.iter().map(|l| l.role).collect();
        if roles != ROLES {
            return Err(format!("its layers are {roles:?}, not {ROLES:?}"));
        }
        if let Some(l) = self.layers.iter().find(|l| l.name != l.role.name()) {
            return Err(format!(
                "a {} layer is named {}, not {}",
                l.role,
                l.role.name(),
                l.name
            ));
        }
        let id = node_image_id(&self.layers).to_hex();
        if id != self.id {
            return Err(format!(
                "its layers hash to {id}, not to the id it records ({})",
                self.id
            ));
        }
        Ok(())
    }

    /// The format-2 record, from each layer's entry list (`entries[i]` for `layers[i]`, as its
    /// `layer.json` holds it): each list must hash to its layer's id and lie in its layer's
    /// directories; the lists are merged in canonical order. The result passes
    /// [`ImageManifest::check`] (which is what is checked here, each list hashed once).
    pub fn into_full(self, entries: Vec<Vec<Entry>>) -> Result<ImageManifest, String> {
        self.check()?;
        if entries.len() != self.layers.len() {
            return Err(format!(
                "{} entry lists for {} layers",
                entries.len(),
                self.layers.len()
            ));
        }
        for (l, list) in self.layers.iter().zip(&entries) {
            if let Some(e) = list.iter().find(|e| Role::holding(&e.path) != Some(l.role)) {
                return Err(format!(
                    "{} does not belong in its {} layer",
                    e.path, l.role
                ));
            }
            let id = layer_id(list).to_hex();
            if id != l.id {
                return Err(format!(
                    "the entries given for its {} layer hash to {id}, not to {}",
                    l.role, l.id
                ));
            }
        }
        Ok(ImageManifest {
            format: IMAGE_FORMAT,
            id: self.id,
            node: self.node,
            arch: self.arch,
            layers: self.layers,
            entries: merge_entries(entries),
            provenance: self.provenance,
            verity: None,
        })
    }
}

/// Entry lists, each in canonical order (sorted by path components), merged into one in that
/// order. Lists of different layers hold different top-level directories, so no path is in two.
pub fn merge_entries(lists: Vec<Vec<Entry>>) -> Vec<Entry> {
    let mut all: Vec<Entry> = lists.into_iter().flatten().collect();
    // A stable sort by the canonical key: each list is sorted already, so this is the merge.
    all.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    all
}

impl ImageManifest {
    /// The record as `out/` keeps it: a layered record in [`STORED_FORMAT`] when its entries
    /// are exactly what its layers' lists merge to (always so for records nodeforge makes; a
    /// record pulled from elsewhere in another order is kept whole, so that it loads to the
    /// very record its signatures cover); a whole-root record as it is.
    pub fn stored(&self) -> Option<StoredRecord> {
        if self.format != IMAGE_FORMAT || self.verity.is_some() {
            return None;
        }
        let lists: Vec<Vec<Entry>> = self
            .layers
            .iter()
            .map(|l| layer_entries(&self.entries, l.role))
            .collect();
        if lists.iter().map(Vec::len).sum::<usize>() != self.entries.len()
            || merge_entries(lists) != self.entries
        {
            return None;
        }
        Some(StoredRecord {
            format: STORED_FORMAT,
            id: self.id.clone(),
            node: self.node.clone(),
            arch: self.arch.clone(),
            layers: self.layers.clone(),
            provenance: self.provenance.clone(),
        })
    }

    /// The bytes of `manifest.json` in `out/`: [`stored`](Self::stored)'s when there is one,
    /// else the whole record's.
    pub fn to_stored_json(&self) -> Vec<u8> {
        self.stored()
            .map_or_else(|| self.to_json(), |s| s.to_json())
    }

    /// The canonical bytes of the whole record: what registries carry as the image's config
    /// and what an older nodeforge kept in `out/` (which now keeps
    /// [`to_stored_json`](Self::to_stored_json)); compact, stable key order, trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        canonical_json(self)
    }

    /// Whether the record is what its id says (format 1: the entry list hashes to the id; format
    /// 2: every entry lies in a layer, each layer's entries hash to its id, and the layers hash to
    /// the image id). A damaged or edited record must not be trusted, nor its id used as a path.
    pub fn check(&self) -> Result<(), String> {
        match self.format {
            FLAT_FORMAT => {
                let id = image_id(&self.entries).to_hex();
                if id != self.id {
                    return Err(format!(
                        "its entry list hashes to {id}, not to the id it records ({})",
                        self.id
                    ));
                }
            }
            IMAGE_FORMAT => {
                if let Some(e) = self
                    .entries
                    .iter()
                    .find(|e| Role::holding(&e.path).is_none())
                {
                    return Err(format!("{} lies in no layer", e.path));
                }
                let roles: Vec<Role> = self.layers.iter().map(|l| l.role).collect();
                if roles != ROLES {
                    return Err(format!("its layers are {roles:?}, not {ROLES:?}"));
                }
                for l in &self.layers {
                    let id = layer_id(&layer_entries(&self.entries, l.role)).to_hex();
                    if id != l.id || l.name != l.role.name() {
                        return Err(format!(
                            "its {} layer's entries hash to {id}, not to the id it records ({})",
                            l.role, l.id
                        ));
                    }
                }
                let id = node_image_id(&self.layers).to_hex();
                if id != self.id {
                    return Err(format!(
                        "its layers hash to {id}, not to the id it records ({})",
                        self.id
                    ));
                }
            }
            other => {
                return Err(format!(
                    "image record format {other} is not known to this nodeforge"
                ))
            }
        }
        Ok(())
    }

    /// The layer of `role`, if the image has one.
    pub fn layer(&self, role: Role) -> Option<&LayerRef> {
        self.layers.iter().find(|l| l.role == role)
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

/// The files of a layer named `name`, in its directory.
pub fn layer_files(name: &str) -> [String; 3] {
    [
        format!("{name}.raw"),
        format!("{name}.verity"),
        format!("{name}.roothash"),
    ]
}

/// The record in a layer directory.
pub const LAYER_RECORD: &str = "layer.json";

/// The record in an image directory.
pub const IMAGE_RECORD: &str = "manifest.json";

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

    /// A layered image with entries in both layers, interleaved in canonical order (/etc of the
    /// config layer between /opt and /usr of the payload), its layers' verity pinned.
    fn layered() -> ImageManifest {
        let b = Blake3::of(b"x");
        let mut l = EntryList::new();
        let art = |member: &str| Provenance::Artifact {
            component: "c".into(),
            version: "1".into(),
            arch: "amd64".into(),
            url: "https://example.invalid/c.tgz".into(),
            sha256: "0".repeat(64),
            member: Some(member.into()),
        };
        for (path, p) in [
            ("/usr/bin/a", art("a")),
            ("/opt/cni/bin/b", art("b")),
            ("/usr/local/bin/c", art("c")),
            ("/usr/bin/a-b", art("a-b")),
        ] {
            l.add(Entry::file(path, 0o755, 1, b), p).expect("add");
        }
        for t in ["/etc/a0", "/etc/a-b/c", "/etc/a/b"] {
            l.add(
                Entry::file(t, 0o644, 1, b),
                Provenance::Template {
                    template: t[1..].into(),
                },
            )
            .expect("add");
        }
        l.add(
            Entry::symlink("/etc/x.wants/y", "/etc/y"),
            Provenance::Enable { unit: "y".into() },
        )
        .expect("add");
        let mut m = l.finish("n", "amd64");
        for layer in &mut m.layers {
            layer.verity = Some(VerityInfo {
                root_hash: "1".repeat(64),
                salt: "2".repeat(64),
                uuid: "u".into(),
                hash_algorithm: "sha256".into(),
                data_block_size: 4096,
                hash_block_size: 4096,
                data_blocks: 3,
                erofs_uuid: "e".into(),
            });
        }
        m
    }

    /// What each layer's `layer.json` would hold: its entries, in order.
    fn lists(m: &ImageManifest) -> Vec<Vec<Entry>> {
        m.layers
            .iter()
            .map(|l| layer_entries(&m.entries, l.role))
            .collect()
    }

    #[test]
    fn a_record_kept_without_entries_loads_to_the_same_bytes() {
        let m = layered();
        let stored = m.to_stored_json();
        assert!(stored.len() < m.to_json().len(), "no shorter");
        assert!(
            !String::from_utf8_lossy(&stored).contains("\"entries\""),
            "{}",
            String::from_utf8_lossy(&stored)
        );
        let OnDisk::Stored(s) = OnDisk::parse(&stored).expect("parse") else {
            panic!("not kept in format 3");
        };
        assert_eq!(
            (s.format, OnDisk::Stored(s.clone()).id()),
            (3, m.id.as_str())
        );
        let back = s.into_full(lists(&m)).expect("full");
        back.check().expect("a whole record as any other");
        assert_eq!(back.to_json(), m.to_json());
        assert_eq!(back, m);
        // The canonical order interleaves the layers: the merge is what puts /etc between
        // /opt and /usr.
        let paths: Vec<&str> = back.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(paths
            .windows(2)
            .any(|w| w[0].starts_with("/etc") && w[1].starts_with("/opt")));
        // A whole record still reads as one.
        assert!(matches!(OnDisk::parse(&m.to_json()), Ok(OnDisk::Whole(w)) if w == m));
    }

    #[test]
    fn a_layer_list_that_is_not_the_layers_own_is_refused_by_name() {
        let m = layered();
        let Some(s) = m.stored() else {
            panic!("not kept in format 3");
        };
        let mut l = lists(&m);
        l[1].pop();
        let e = s.clone().into_full(l).expect_err("wrong list");
        assert!(e.contains("config layer"), "{e}");
        assert!(s.clone().into_full(vec![]).is_err());
        let mut edited = s;
        edited.layers.swap(0, 1);
        assert!(edited.check().is_err());
    }

    #[test]
    fn a_record_in_another_order_is_kept_whole() {
        let mut m = layered();
        // Valid by its ids (each layer's own order kept), but not the canonical interleaving.
        m.entries.sort_by_key(|e| Role::holding(&e.path));
        m.check().expect("still checks");
        assert!(m.stored().is_none());
        assert_eq!(m.to_stored_json(), m.to_json());
    }
}
