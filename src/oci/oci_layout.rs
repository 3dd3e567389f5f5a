//! OCI image layouts (image-spec's `oci-layout`, `index.json`, `blobs/sha256/<hex>`): the same
//! artifacts as a registry holds, as a directory for sites without one. Each image is listed in
//! `index.json` once per tag, with the tag as `org.opencontainers.image.ref.name`, so
//! `skopeo copy oci:DIR:worker1 docker://…` finds it.

use std::path::{Path, PathBuf};

use super::{OciError, ANN_IMAGE_ID, ANN_NODE, ARTIFACT_TYPE};
use crate::fsutil::{self, FsError};
use crate::hash::Sha256;

/// The annotation of an `index.json` entry that names it (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest `index.json` read (a few hundred bytes per tag: tens of thousands of tags).
pub const MAX_INDEX_BYTES: u64 = 16 << 20;

/// One manifest listed in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Its tag (`org.opencontainers.image.ref.name`), empty when it has none.
    pub tag: String,
    pub digest: Sha256,
    pub size: u64,
    /// The node and image id it says it holds (nodeforge's entries say so).
    pub node: Option<String>,
    pub image_id: Option<String>,
    /// Its `artifactType`: a node image's, or its attestations' (a referrer of a node image,
    /// listed without a tag).
    pub artifact_type: Option<String>,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub fn blob(&self, digest: &Sha256) -> PathBuf {
        self.blobs().join(digest.to_hex())
    }

    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The manifests `index.json` lists, in its order; none when there is no `index.json`.
    pub fn read_index(&self) -> Result<Vec<IndexEntry>, OciError> {
        let path = self.index_path();
        let bad = |reason: String| OciError::NotNodeImage {
            what: path.display().to_string(),
            reason,
        };
        let file = match fsutil::open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(bad(format!("cannot read it: {e}"))),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_INDEX_BYTES + 1),
            &mut bytes,
        )
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(bad(format!(
                "it is larger than {MAX_INDEX_BYTES} bytes, more than any index nodeforge writes"
            )));
        }
        let index: oci_spec::image::ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not an OCI image index: {e}")))?;
        index
            .manifests()
            .iter()
            .map(|d| {
                let ann = d.annotations().clone().unwrap_or_default();
                Ok(IndexEntry {
                    tag: ann.get(REF_NAME).cloned().unwrap_or_default(),
                    digest: d
                        .as_digest_sha256()
                        .and_then(|h| Sha256::parse(h).ok())
                        .ok_or_else(|| bad(format!("{} is not a sha256 digest", d.digest())))?,
                    size: d.size(),
                    node: ann.get(ANN_NODE).cloned(),
                    image_id: ann.get(ANN_IMAGE_ID).cloned(),
                    artifact_type: d.artifact_type().as_ref().map(ToString::to_string),
                })
            })
            .collect()
    }

    /// Write `oci-layout` and `index.json` listing `entries`, each atomically.
    pub fn write_index(&self, entries: &[IndexEntry]) -> Result<(), OciError> {
        use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
        let unwritable = |reason: String| OciError::Unpushable {
            image: self.root.display().to_string(),
            reason,
        };
        let mut manifests = Vec::new();
        for e in entries {
            let digest = oci_spec::image::Digest::try_from(format!("sha256:{}", e.digest))
                .map_err(|err| unwritable(err.to_string()))?;
            let mut d = Descriptor::new(MediaType::ImageManifest, e.size, digest);
            d.set_artifact_type(Some(MediaType::from(
                e.artifact_type.as_deref().unwrap_or(ARTIFACT_TYPE),
            )));
            let mut ann = std::collections::HashMap::new();
            if !e.tag.is_empty() {
                ann.insert(REF_NAME.to_string(), e.tag.clone());
            }
            if let Some(n) = &e.node {
                ann.insert(ANN_NODE.to_string(), n.clone());
            }
            if let Some(i) = &e.image_id {
                ann.insert(ANN_IMAGE_ID.to_string(), i.clone());
            }
            d.set_annotations(Some(ann));
            manifests.push(d);
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| unwritable(e.to_string()))?;
        let json = super::canonical_json(&index).map_err(|e| unwritable(e.to_string()))?;
        let write = |path: &Path, bytes: &[u8]| -> Result<(), FsError> {
            fsutil::write_atomic(path, bytes, 0o644)
        };
        write(
            &self.root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .map_err(|e| unwritable(e.to_string()))?;
        write(&self.index_path(), &json).map_err(|e| unwritable(e.to_string()))?;
        Ok(())
    }
}
