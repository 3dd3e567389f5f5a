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
    pub fn legacy_cache(&self) -> PathBuf {
        self.root.join("cache")
    }
}

impl OutDir {
    /// The node directories under `nodes/`, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.nodes())
            .into_iter()
            .flatten()
            .flatten()
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

    pub fn generation(&self, node: &str, number: u32) -> PathBuf {
        self.generations(node).join(number.to_string())
    }

    pub fn current(&self, node: &str) -> PathBuf {
        self.node(node).join("current")
    }

    /// The name of the cluster whose nodes `nodes/` holds (node names are only unique within a
    /// cluster, so one output directory serves one cluster).
    pub fn cluster_marker(&self) -> PathBuf {
        self.nodes().join(".cluster")
    }

    /// Remove the temp files and directories that killed runs left anywhere in the tree (the
    /// store's own tmp/ is the store's). Call only while no other process uses the output
    /// directory (the store's lock held alone).
    pub fn clean_temps(&self) {
        let mut dirs = vec![
            self.root.clone(),
            self.images(),
            self.layers(),
            self.legacy_cache().join("tar-prefix"),
        ];
        for node in self.node_names() {
            dirs.push(self.node(&node));
            dirs.push(self.generations(&node));
            for g in std::fs::read_dir(self.generations(&node))
                .into_iter()
                .flatten()
                .flatten()
            {
                dirs.push(g.path());
            }
        }
        dirs.push(self.attestations());
        for a in std::fs::read_dir(self.attestations())
            .into_iter()
            .flatten()
            .flatten()
        {
            dirs.push(a.path());
        }
        for d in dirs {
            crate::fsutil::clean_temp_files(&d);
        }
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
        self.attestation_dir(image).join(SBOM_FILE)
    }

    pub fn image_signature(&self, image: &str, keyid: &str) -> PathBuf {
        self.attestation_dir(image)
            .join(format!("image.{keyid}.dsse.json"))
    }

    pub fn provenance(&self, image: &str, keyid: &str) -> PathBuf {
        self.attestation_dir(image)
            .join(format!("provenance.{keyid}.dsse.json"))
    }

    /// systemd's PKCS#7 signature of the root hash of the image's layer `name`, to be put beside
    /// `<name>.raw`.
    pub fn roothash_signature(&self, image: &str, name: &str) -> PathBuf {
        self.attestation_dir(image)
            .join(format!("{name}.roothash.p7s"))
    }

    /// The attestation file `name` of an image, when `name` is one nodeforge writes (a name
    /// from a registry or layout is used as a path only through this).
    pub fn attestation_file(&self, image: &str, name: &str) -> Option<PathBuf> {
        crate::oci::referrers::media_type_of(name).map(|_| self.attestation_dir(image).join(name))
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
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.attestation_dir(image))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

/// Whether `name` is an image signature's name in an attestation directory
/// (`image.<keyid>.dsse.json`).
pub fn is_image_signature(name: &str) -> bool {
    name.starts_with("image.") && name.ends_with(".dsse.json")
}

/// The SBOM's name in an image's attestation directory.
pub const SBOM_FILE: &str = "sbom.spdx.json";
