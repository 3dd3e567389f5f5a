//! `out/`'s tree: the only code that knows where things live under the output directory (like
//! cargo's `Layout`). Everything else asks it for a path.
//!
//! ```text
//! out/store/                                  content-addressed objects (see `store`)
//! out/layers/<layer-id>/layer.json            a layer: role, name, entries, verity parameters
//! out/layers/<layer-id>/<NAME>.raw            its EROFS file (NAME: nodeforge-payload, nodeforge-config)
//! out/layers/<layer-id>/<NAME>.verity         its dm-verity hash tree
//! out/layers/<layer-id>/<NAME>.roothash       its root hash, hex (systemd's sidecar form)
//! out/images/<image-id>/manifest.json         a node image: its layers and every entry's provenance
//! out/images/<image-id>/<NAME>.{raw,verity,roothash}   hard links to its layers' files (no blocks of their own)
//! out/nodes/<node>/generations/<n>/           generation.json, manifest.json, image -> ../../../../images/<id>
//! out/nodes/<node>/current                    -> generations/<n>/image   (switched atomically)
//! out/pulls/<sha256>.partial                  a blob `pull` is downloading (kept to resume)
//! out/pulls/<layer-id>.lock                   held while one process downloads that layer
//! out/attestations/<image-id>/                SBOM, signatures, provenance of an image (see `attestations`)
//! out/verified-v1.json                        files already hashed, by their stat key (see `verified`)
//! ```
//!
//! Directories are written whole in a temp directory beside their final place and renamed in, so
//! a reader sees a complete layer, image or generation or none.

use std::path::{Path, PathBuf};

/// The output directory.
#[derive(Debug, Clone)]
pub struct OutDir {
    root: PathBuf,
}

impl OutDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The record of files already checked (`verified`), versioned in its name.
    pub fn verified(&self) -> PathBuf {
        self.root.join("verified-v1.json")
    }

    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn layer(&self, id: &str) -> PathBuf {
        self.layers().join(id)
    }

    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn image(&self, id: &str) -> PathBuf {
        self.images().join(id)
    }

    pub fn nodes(&self) -> PathBuf {
        self.root.join("nodes")
    }

    /// Blobs `pull` is downloading from a registry, kept across runs to resume.
    pub fn pulls(&self) -> PathBuf {
        self.root.join("pulls")
    }

    /// The partial download of the blob with sha256 `hex`.
    pub fn pull_partial(&self, hex: &str) -> PathBuf {
        self.pulls().join(format!("{hex}.partial"))
    }

    /// The lock held while one process downloads the layer with id `id`.
    pub fn pull_lock(&self, id: &str) -> PathBuf {
        self.pulls().join(format!("{id}.lock"))
    }

    /// Caches of older layouts (the whole-root images' tar prefixes), removed by gc.
    /// The whole-root images' shared tar prefixes, which nothing writes or reads any more
    /// (gc removes them).
    pub fn legacy_tar_prefix(&self) -> PathBuf {
        self.legacy_cache().join("tar-prefix")
    }

    pub fn legacy_cache(&self) -> PathBuf {
        self.root.join("cache")
    }
}

impl OutDir {
    /// The node directories under `nodes/`, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut v: Vec<String> = crate::fsutil::entries(self.nodes())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    pub fn node(&self, node: &str) -> PathBuf {
        self.nodes().join(node)
    }

    pub fn generations(&self, node: &str) -> PathBuf {
        self.node(node).join("generations")
    }

    /// The lock a build, pull or rollback holds while it reads and changes a node's
    /// generations and `current` (a file beside the numbered generations, which `list` skips).
    pub fn generations_lock(&self, node: &str) -> PathBuf {
        self.generations(node).join(".lock")
    }

    pub fn generation(&self, node: &str, number: u32) -> PathBuf {
        self.generations(node).join(number.to_string())
    }

    /// The record kept with a generation (the image's entry list, to rebuild it after gc).
    pub fn generation_record(&self, node: &str, number: u32) -> PathBuf {
        self.generation(node, number).join(IMAGE_RECORD)
    }

    pub fn current(&self, node: &str) -> PathBuf {
        self.node(node).join("current")
    }

    /// The name of the cluster whose nodes `nodes/` holds (node names are only unique within a
    /// cluster, so one output directory serves one cluster).
    pub fn cluster_marker(&self) -> PathBuf {
        self.nodes().join(".cluster")
    }

    /// Remove the temp files and directories that killed runs left in the tree (the store's own
    /// tmp/ is the store's): in every directory where temporaries are made, a fixed set however
    /// long the history (an attestation file's temporary waits in `attestations/`, not beside
    /// it). Call only while no other process uses the output directory (the store's lock held
    /// alone).
    pub fn clean_temps(&self) {
        let mut dirs = vec![
            self.root.clone(),
            self.images(),
            self.layers(),
            self.legacy_tar_prefix(),
        ];
        // A numbered generation directory is a temp directory renamed into place whole, and
        // nothing writes into it after: its temps are the ones in `generations/`.
        for node in self.node_names() {
            dirs.push(self.node(&node));
            dirs.push(self.generations(&node));
        }
        dirs.push(self.attestations());
        for d in dirs {
            crate::fsutil::clean_temp_files(&d);
        }
    }

    /// [`clean_temps`](Self::clean_temps), and also inside every generation and attestation
    /// directory (where earlier versions made temporaries): what gc sweeps, the output directory
    /// held alone.
    pub fn clean_temps_everywhere(&self) {
        self.clean_temps();
        for node in self.node_names() {
            for g in crate::fsutil::entries(self.generations(&node)) {
                crate::fsutil::clean_temp_files(&g.path());
            }
        }
        for a in crate::fsutil::entries(self.attestations()) {
            crate::fsutil::clean_temp_files(&a.path());
        }
    }
}

// The names of an image's parts inside a layer or image directory are the image format's
// (`oci` names its blobs by them too); where those directories are is this module's.
pub use crate::image::{layer_files, IMAGE_RECORD, LAYER_RECORD};

/// What vouches for images (issue 15). `images/<id>/` is content-addressed and written whole
/// once, so signatures (several per image: one per key, for rotation), the SBOM and provenance
/// live beside it:
///
/// ```text
/// out/attestations/<image-id>/sbom.spdx.json                 the SBOM (SPDX 2.3 JSON), derived from the image
/// out/attestations/<image-id>/image.<keyid>.dsse.json        an image signature (DSSE over an in-toto Statement)
/// out/attestations/<image-id>/provenance.<keyid>.dsse.json   signed SLSA provenance
/// out/attestations/<image-id>/<NAME>.roothash.p7s            systemd's signed root hash of layer NAME
/// ```
impl OutDir {
    pub fn attestations(&self) -> PathBuf {
        self.root.join("attestations")
    }

    pub fn attestation_dir(&self, image: &str) -> PathBuf {
        self.attestations().join(image)
    }

    pub fn sbom(&self, image: &str) -> PathBuf {
        self.attestation(image, &Attestation::Sbom)
    }

    pub fn image_signature(&self, image: &str, keyid: &str) -> PathBuf {
        self.attestation(image, &Attestation::ImageSignature(keyid.to_string()))
    }

    pub fn provenance(&self, image: &str, keyid: &str) -> PathBuf {
        self.attestation(image, &Attestation::Provenance(keyid.to_string()))
    }

    /// systemd's PKCS#7 signature of the root hash of the image's layer `name`, to be put beside
    /// `<name>.raw`.
    pub fn roothash_signature(&self, image: &str, name: &str) -> PathBuf {
        self.attestation(image, &Attestation::RoothashSignature(name.to_string()))
    }

    /// Where attestation file `a` of an image lives.
    pub fn attestation(&self, image: &str, a: &Attestation) -> PathBuf {
        self.attestation_dir(image).join(a.file_name())
    }

    /// The attestation file `name` of an image, when `name` is one nodeforge writes (a name
    /// from a registry or layout is used as a path only through this).
    pub fn attestation_file(&self, image: &str, name: &str) -> Option<PathBuf> {
        Attestation::parse(name).map(|a| self.attestation(image, &a))
    }

    /// The image signature files of an image, sorted.
    pub fn image_signatures(&self, image: &str) -> Vec<PathBuf> {
        self.attestation_files(image)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_image_signature)
            })
            .collect()
    }

    /// Every attestation file of an image (signatures, SBOM, provenance), sorted: what a copy of
    /// the image (push, export) carries with it.
    pub fn attestation_files(&self, image: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = crate::fsutil::entries(self.attestation_dir(image))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

/// Whether `name` is an image signature's name in an attestation directory
/// (`image.<keyid>.dsse.json`, any keyid: also one [`Attestation::parse`] would not accept).
pub fn is_image_signature(name: &str) -> bool {
    name.starts_with(IMAGE_SIGNATURE_PREFIX) && name.ends_with(DSSE_SUFFIX)
}

/// The SBOM's name in an image's attestation directory.
pub const SBOM_FILE: &str = "sbom.spdx.json";
const IMAGE_SIGNATURE_PREFIX: &str = "image.";
const PROVENANCE_PREFIX: &str = "provenance.";
const DSSE_SUFFIX: &str = ".dsse.json";
const ROOTHASH_SIGNATURE_SUFFIX: &str = ".roothash.p7s";

/// A file in an image's attestation directory, by what it is: the one place its name is
/// spelled. `oci` maps these kinds to media types (through `ops`), knowing no names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attestation {
    /// `sbom.spdx.json`: the SBOM (SPDX 2.3 JSON).
    Sbom,
    /// `image.<keyid>.dsse.json`: an image signature by key `keyid`.
    ImageSignature(String),
    /// `provenance.<keyid>.dsse.json`: SLSA provenance signed by key `keyid`.
    Provenance(String),
    /// `<NAME>.roothash.p7s`: systemd's signed root hash of layer `NAME`.
    RoothashSignature(String),
}

impl Attestation {
    /// The attestation `name` is, when nodeforge writes files of that name; `None` for any
    /// other name (a keyid or layer name must be 1 to 128 ASCII letters, digits, `-` or `_`,
    /// so no name from a registry can leave the directory).
    pub fn parse(name: &str) -> Option<Self> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        };
        let keyid = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(DSSE_SUFFIX))
                .map(str::to_string)
        };
        let a = if name == SBOM_FILE {
            Self::Sbom
        } else if let Some(k) = keyid(IMAGE_SIGNATURE_PREFIX) {
            Self::ImageSignature(k)
        } else if let Some(k) = keyid(PROVENANCE_PREFIX) {
            Self::Provenance(k)
        } else {
            Self::RoothashSignature(name.strip_suffix(ROOTHASH_SIGNATURE_SUFFIX)?.to_string())
        };
        match &a {
            Self::Sbom => Some(a),
            Self::ImageSignature(s) | Self::Provenance(s) | Self::RoothashSignature(s) => {
                plain(s).then_some(a)
            }
        }
    }

    /// Its name in the attestation directory.
    pub fn file_name(&self) -> String {
        match self {
            Self::Sbom => SBOM_FILE.to_string(),
            Self::ImageSignature(k) => format!("{IMAGE_SIGNATURE_PREFIX}{k}{DSSE_SUFFIX}"),
            Self::Provenance(k) => format!("{PROVENANCE_PREFIX}{k}{DSSE_SUFFIX}"),
            Self::RoothashSignature(n) => format!("{n}{ROOTHASH_SIGNATURE_SUFFIX}"),
        }
    }
}

#[cfg(test)]
mod attestation_tests {
    use super::*;

    #[test]
    fn names_nodeforge_writes_and_no_others() {
        for (name, a) in [
            ("sbom.spdx.json", Attestation::Sbom),
            (
                "image.ab12.dsse.json",
                Attestation::ImageSignature("ab12".into()),
            ),
            (
                "provenance.ab12.dsse.json",
                Attestation::Provenance("ab12".into()),
            ),
            (
                "payload.roothash.p7s",
                Attestation::RoothashSignature("payload".into()),
            ),
        ] {
            assert_eq!(Attestation::parse(name), Some(a.clone()), "{name}");
            assert_eq!(a.file_name(), name);
        }
        for bad in [
            "../x.roothash.p7s",
            "image..dsse.json",
            "image.a/b.dsse.json",
            ".roothash.p7s",
            "notes.txt",
            "image.x.y.dsse.json",
        ] {
            assert_eq!(Attestation::parse(bad), None, "{bad}");
        }
        assert!(is_image_signature("image.x.y.dsse.json"));
        assert!(!is_image_signature("provenance.k.dsse.json"));
    }
}

#[cfg(test)]
mod clean_tests {
    use super::*;

    #[test]
    fn clean_temps_looks_where_temporaries_are_made_and_gc_everywhere() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = OutDir::new(dir.path());
        let tmp = |d: &Path| {
            std::fs::create_dir_all(d).expect("mkdir");
            let p = d.join(format!("{}x", crate::fsutil::TEMP_PREFIX));
            std::fs::write(&p, b"left by a killed run").expect("write");
            p
        };
        let in_attestations = tmp(&out.attestations());
        let in_generations = tmp(&out.generations("w1"));
        let in_image_attestations = tmp(&out.attestation_dir(&"a".repeat(64)));
        let in_generation = tmp(&out.generation("w1", 3));
        out.clean_temps();
        assert!(!in_attestations.exists() && !in_generations.exists());
        // Only earlier versions made temporaries there: gc sweeps them.
        assert!(in_image_attestations.exists() && in_generation.exists());
        out.clean_temps_everywhere();
        assert!(!in_image_attestations.exists() && !in_generation.exists());
    }
}
