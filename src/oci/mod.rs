//! Node images in OCI registries and OCI image layouts: what a node image is as an OCI artifact
//! (one image manifest, image-spec 1.1, with nodeforge's own `artifactType`), references such as
//! `registry.example:5000/fleet/kubenet:worker1`, and the distribution-spec client (`client`) with
//! its authentication (`auth`). It knows nothing of `out/`: the caller says where each file is.
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json, artifactType ARTIFACT_TYPE
//!   config  the image record (out/images/<id>/manifest.json)          CONFIG_MEDIA_TYPE
//!   layers  per layer, bottom to top: its EROFS file, its verity tree EROFS_/VERITY_MEDIA_TYPE
//!           annotated with the layer's role, id, root hash and file name
//! ```
//!
//! [`image_blobs`] is the one list of the blobs an image consists of: push, pull, export and
//! import all go through it. What vouches for an image (signatures, SBOM, provenance) is not
//! part of it (an image's manifest never changes when a key signs it): it travels as a referrer
//! of the image's manifest ([`referrers`]).

pub mod auth;
pub mod client;
pub mod oci_layout;
pub mod referrers;

use std::collections::BTreeMap;

use crate::hash::Sha256;
use crate::image::{layer_files, ImageManifest, Role, IMAGE_FORMAT, IMAGE_RECORD};

/// The `artifactType` of a nodeforge node image's manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.nodeforge.node-image.v1";
/// The config blob: the image record (`manifest.json`, format 2).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.nodeforge.image.v2+json";
/// A layer's EROFS file.
pub const EROFS_MEDIA_TYPE: &str = "application/vnd.nodeforge.layer.erofs";
/// A layer's dm-verity hash tree.
pub const VERITY_MEDIA_TYPE: &str = "application/vnd.nodeforge.layer.verity";
/// An artifact mirror (`nodeforge mirror push`): its manifest, config (the lockfile) and
/// artifacts.
pub const MIRROR_ARTIFACT_TYPE: &str = "application/vnd.nodeforge.mirror.v1";
pub const LOCKFILE_MEDIA_TYPE: &str = "application/vnd.nodeforge.lockfile.v1+toml";
pub const ARTIFACT_MEDIA_TYPE: &str = "application/octet-stream";
/// The manifest itself.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Manifest annotations.
pub const ANN_IMAGE_ID: &str = "dev.nodeforge.image.id";
pub const ANN_NODE: &str = "dev.nodeforge.node";
pub const ANN_ARCH: &str = "dev.nodeforge.arch";
pub const ANN_LOCK_ID: &str = "dev.nodeforge.lock-id";
/// Layer (blob) annotations.
pub const ANN_LAYER_ID: &str = "dev.nodeforge.layer.id";
pub const ANN_ROLE: &str = "dev.nodeforge.layer.role";
pub const ANN_ROOT_HASH: &str = "dev.nodeforge.verity.root-hash";
pub const ANN_TITLE: &str = "org.opencontainers.image.title";

/// The largest image record a registry may hand us (records are kilobytes to a few megabytes).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// The largest manifest a registry may hand us.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("`{reference}` is not an image reference: {reason} (expected REGISTRY[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST], like 127.0.0.1:5000/fleet/kubenet:worker1)")]
    BadReference { reference: String, reason: String },
    #[error("{what} is not a nodeforge node image: {reason}")]
    NotNodeImage { what: String, reason: String },
    #[error("image {image} cannot be pushed: {reason}")]
    Unpushable { image: String, reason: String },
}

/// `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as the user wrote it.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Sha256>,
}

impl Reference {
    /// Parse `[oci://]REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`. The registry is always named:
    /// nodeforge does not guess Docker Hub.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s.strip_prefix("oci://").unwrap_or(s);
        let (registry, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no registry"))?;
        if registry.is_empty()
            || !registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(bad("the registry is not HOST[:PORT]"));
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests are supported"))?;
                let digest = Sha256::parse(hex).map_err(|e| bad(&e.to_string()))?;
                (r, Some(digest))
            }
            None => (rest, None),
        };
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (rest, None),
        };
        if !valid_repository(repository) {
            return Err(bad(&format!(
                "repository `{repository}` must be lowercase path components of letters and digits separated by `.`, `_`, `-`"
            )));
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad(&format!(
                    "tag `{t}` must be at most 128 letters, digits, `_`, `.`, `-`, not starting with `.` or `-`"
                )));
            }
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when given, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("sha256:{d}"),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `REGISTRY/REPOSITORY`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@sha256:{d}")?;
        }
        Ok(())
    }
}

/// The distribution spec's repository grammar: `a-z0-9` runs separated by `.`, `_`, `__`, `-`,
/// in `/`-separated components.
fn valid_repository(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.split('/').all(|c| {
            !c.is_empty()
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        })
}

/// The distribution spec's tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The tags a pushed node image gets: the node's name (moving), the node and its generation, and
/// the image id (64 hex: a tag too), so that a pull by any of them finds it.
pub fn tags_for(node: &str, generation: u32, image_id: &str) -> Vec<String> {
    vec![
        node.to_string(),
        format!("{node}-gen{generation}"),
        image_id.to_string(),
    ]
}

/// What a blob of a node image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobKind {
    /// The image record (the manifest's config).
    Record,
    /// A layer's EROFS file.
    Erofs(Role),
    /// A layer's dm-verity tree.
    Verity(Role),
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobKind::Record => f.write_str("image record"),
            BlobKind::Erofs(role) => write!(f, "{role} EROFS file"),
            BlobKind::Verity(role) => write!(f, "{role} verity tree"),
        }
    }
}

/// One blob of a node image, before its bytes are hashed: what it is, the file that holds it
/// (its name in the layer or image directory) and the annotations it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBlob {
    pub kind: BlobKind,
    pub media_type: &'static str,
    /// The file's name: `manifest.json`, or `<NAME>.raw` / `<NAME>.verity` of its layer.
    pub file_name: String,
    /// The layer it belongs to (none for the record).
    pub layer_id: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// A blob with its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    pub blob: ImageBlob,
    pub digest: Sha256,
    pub size: u64,
}

/// Every blob of the layered image `m`, whose record must pin each layer's verity parameters
/// (as a generation's record does): the record first, then each layer's EROFS file and verity
/// tree, bottom to top. The one list of what an image is outside `out/`.
pub fn image_blobs(m: &ImageManifest) -> Result<Vec<ImageBlob>, OciError> {
    if m.format != IMAGE_FORMAT {
        return Err(OciError::Unpushable {
            image: m.id.clone(),
            reason: format!(
                "it is a format-{} (whole-root) image; only layered images go to a registry",
                m.format
            ),
        });
    }
    let mut blobs = vec![ImageBlob {
        kind: BlobKind::Record,
        media_type: CONFIG_MEDIA_TYPE,
        file_name: IMAGE_RECORD.to_string(),
        layer_id: None,
        annotations: BTreeMap::new(),
    }];
    for l in &m.layers {
        let verity = l.verity.as_ref().ok_or_else(|| OciError::Unpushable {
            image: m.id.clone(),
            reason: format!("its record pins no root hash for its {} layer", l.role),
        })?;
        let [raw, tree, _] = layer_files(&l.name);
        for (kind, media_type, file_name) in [
            (BlobKind::Erofs(l.role), EROFS_MEDIA_TYPE, raw),
            (BlobKind::Verity(l.role), VERITY_MEDIA_TYPE, tree),
        ] {
            let annotations = BTreeMap::from([
                (ANN_LAYER_ID.to_string(), l.id.clone()),
                (ANN_ROLE.to_string(), l.role.as_str().to_string()),
                (ANN_ROOT_HASH.to_string(), verity.root_hash.clone()),
                (ANN_NODE.to_string(), m.node.clone()),
                (ANN_TITLE.to_string(), file_name.clone()),
            ]);
            blobs.push(ImageBlob {
                kind,
                media_type,
                file_name,
                layer_id: Some(l.id.clone()),
                annotations,
            });
        }
    }
    Ok(blobs)
}

/// One descriptor of a manifest being written: media type, digest, size, annotations.
pub struct Part<'a> {
    pub media_type: &'a str,
    pub digest: Sha256,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest (image-spec 1.1) of `artifact_type` as canonical JSON bytes: keys
/// sorted, so the same contents always have the same digest.
pub fn manifest_bytes(
    artifact_type: &str,
    config: &Part<'_>,
    layers: &[Part<'_>],
    annotations: BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};
    let descriptor = |p: &Part<'_>| -> Result<Descriptor, String> {
        let digest = oci_spec::image::Digest::try_from(format!("sha256:{}", p.digest))
            .map_err(|e| e.to_string())?;
        let mut desc = Descriptor::new(MediaType::from(p.media_type), p.size, digest);
        if !p.annotations.is_empty() {
            desc.set_annotations(Some(p.annotations.clone().into_iter().collect()));
        }
        Ok(desc)
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(artifact_type))
        .config(descriptor(config)?)
        .layers(
            layers
                .iter()
                .map(descriptor)
                .collect::<Result<Vec<_>, _>>()?,
        )
        .annotations(
            annotations
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    canonical_json(&manifest).map_err(|e| e.to_string())
}

/// The OCI image manifest of image `m` built with lockfile `lock_id`, from its blobs (as
/// [`image_blobs`] lists them, digested), as canonical JSON bytes: keys sorted, so the same image
/// always has the same manifest digest.
pub fn image_manifest(
    m: &ImageManifest,
    lock_id: &str,
    blobs: &[Digested],
) -> Result<Vec<u8>, OciError> {
    let unpushable = |reason: String| OciError::Unpushable {
        image: m.id.clone(),
        reason,
    };
    let part = |d: &Digested| Part {
        media_type: d.blob.media_type,
        digest: d.digest,
        size: d.size,
        annotations: d.blob.annotations.clone(),
    };
    let (config, layers) = match blobs.split_first() {
        Some((c, rest)) if c.blob.kind == BlobKind::Record => (c, rest),
        _ => {
            return Err(unpushable(
                "its blob list does not start with its record".into(),
            ))
        }
    };
    let annotations = BTreeMap::from([
        (ANN_IMAGE_ID.to_string(), m.id.clone()),
        (ANN_NODE.to_string(), m.node.clone()),
        (ANN_ARCH.to_string(), m.arch.clone()),
        (ANN_LOCK_ID.to_string(), lock_id.to_string()),
    ]);
    manifest_bytes(
        ARTIFACT_TYPE,
        &part(config),
        &layers.iter().map(part).collect::<Vec<_>>(),
        annotations,
    )
    .map_err(unpushable)
}

/// `value` as JSON with every object's keys sorted (oci-spec keeps annotations in hash maps,
/// whose order changes from run to run).
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut pairs: Vec<(String, serde_json::Value)> = m.into_iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    serde_json::to_vec(&sorted(serde_json::to_value(value)?))
}

/// A node image's manifest as read from a registry or layout: its blobs by what they are.
#[derive(Debug, Clone)]
pub struct NodeArtifact {
    pub config: (Sha256, u64),
    /// Each layer blob: what it is, its layer id, digest and size.
    pub layers: Vec<(BlobKind, String, Sha256, u64)>,
    /// The annotations of the manifest (image id, node, arch, lock id).
    pub annotations: BTreeMap<String, String>,
}

impl NodeArtifact {
    /// The image id the manifest says it holds.
    pub fn image_id(&self) -> Option<&str> {
        self.annotations.get(ANN_IMAGE_ID).map(String::as_str)
    }

    /// The lock id the manifest says the image was built with.
    pub fn lock_id(&self) -> Option<&str> {
        self.annotations.get(ANN_LOCK_ID).map(String::as_str)
    }

    /// Every blob of the image `m` (whose record came in this manifest's config) with the digest
    /// and size this manifest gives it: the manifest must list exactly the blobs [`image_blobs`]
    /// says the image has.
    pub fn blobs_of(&self, what: &str, m: &ImageManifest) -> Result<Vec<Digested>, OciError> {
        let wrong = |reason: String| OciError::NotNodeImage {
            what: what.to_string(),
            reason,
        };
        let expected = image_blobs(m).map_err(|e| wrong(e.to_string()))?;
        let mut out = Vec::new();
        let mut layers = self.layers.iter();
        for blob in expected {
            let (digest, size) = match blob.kind {
                BlobKind::Record => self.config,
                kind => {
                    let Some((k, id, d, s)) = layers.next() else {
                        return Err(wrong(format!(
                            "it lacks the {kind} blob of layer {}",
                            blob.layer_id.unwrap_or_default()
                        )));
                    };
                    if *k != kind || Some(id) != blob.layer_id.as_ref() {
                        return Err(wrong(format!(
                            "it lists the {k} blob of layer {id} where the image record has the {kind} blob of layer {}",
                            blob.layer_id.unwrap_or_default()
                        )));
                    }
                    (*d, *s)
                }
            };
            out.push(Digested { blob, digest, size });
        }
        if let Some((k, id, _, _)) = layers.next() {
            return Err(wrong(format!(
                "it lists the {k} blob of layer {id}, which the image record does not have"
            )));
        }
        Ok(out)
    }
}

/// Read a manifest's bytes as a node image (`what` names it in errors: the registry and
/// repository, or the layout).
pub fn read_manifest(what: &str, bytes: &[u8]) -> Result<NodeArtifact, OciError> {
    let wrong = |reason: String| OciError::NotNodeImage {
        what: what.to_string(),
        reason,
    };
    let m: oci_spec::image::ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| wrong(format!("its manifest is not an OCI image manifest: {e}")))?;
    let artifact_type = m.artifact_type().as_ref().map(ToString::to_string);
    if artifact_type.as_deref() != Some(ARTIFACT_TYPE)
        || m.config().media_type().to_string() != CONFIG_MEDIA_TYPE
    {
        return Err(wrong(format!(
            "its artifactType is {} and its config is {} (a node image has {ARTIFACT_TYPE} and {CONFIG_MEDIA_TYPE}): pull a tag nodeforge pushed",
            artifact_type.unwrap_or_else(|| "not set".into()),
            m.config().media_type()
        )));
    }
    let digest = |d: &oci_spec::image::Descriptor| -> Result<Sha256, OciError> {
        d.as_digest_sha256()
            .and_then(|h| Sha256::parse(h).ok())
            .ok_or_else(|| {
                wrong(format!(
                    "blob {} is not named by a sha256 digest",
                    d.digest()
                ))
            })
    };
    let mut layers = Vec::new();
    for d in m.layers() {
        let ann = d.annotations().clone().unwrap_or_default();
        let role = match ann.get(ANN_ROLE).map(String::as_str) {
            Some("payload") => Role::Payload,
            Some("config") => Role::Config,
            other => {
                return Err(wrong(format!(
                    "blob {} has layer role `{}` (a node image's layers are `payload` or `config`)",
                    d.digest(),
                    other.unwrap_or("(none)")
                )))
            }
        };
        let kind = match d.media_type().to_string().as_str() {
            EROFS_MEDIA_TYPE => BlobKind::Erofs(role),
            VERITY_MEDIA_TYPE => BlobKind::Verity(role),
            other => return Err(wrong(format!("blob {} has media type {other}", d.digest()))),
        };
        let id = ann
            .get(ANN_LAYER_ID)
            .cloned()
            .ok_or_else(|| wrong(format!("blob {} names no layer id", d.digest())))?;
        layers.push((kind, id, digest(d)?, d.size()));
    }
    Ok(NodeArtifact {
        config: (digest(m.config())?, m.config().size()),
        layers,
        annotations: m
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("127.0.0.1:5000/fleet/kubenet:worker1").expect("parse");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "fleet/kubenet");
        assert_eq!(r.tag.as_deref(), Some("worker1"));
        assert_eq!(r.reference(), "worker1");
        let d = "a".repeat(64);
        let r = Reference::parse(&format!("oci://reg.example/k@sha256:{d}")).expect("parse");
        assert_eq!(r.reference(), format!("sha256:{d}"));
        assert_eq!(r.tag, None);
        let r = Reference::parse("reg.example:443/k").expect("parse");
        assert_eq!((r.repository.as_str(), r.tag), ("k", None));
        for bad in [
            "kubenet",
            "reg/Upper",
            "reg/a//b",
            "reg/a:-x",
            "reg/a@sha1:00",
            "/a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn tags() {
        let t = tags_for("worker1", 3, &"f".repeat(64));
        assert_eq!(t[..2], ["worker1".to_string(), "worker1-gen3".to_string()]);
        assert!(t.iter().all(|t| valid_tag(t)));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let m: std::collections::HashMap<String, u32> =
            (0..20).map(|i| (format!("k{i:02}"), i)).collect();
        let s = String::from_utf8(canonical_json(&m).expect("json")).expect("utf8");
        let keys: Vec<usize> = (0..20)
            .map(|i| s.find(&format!("k{i:02}")).unwrap_or(0))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{s}");
    }

    #[test]
    fn a_manifest_error_names_what_it_found_in_words() {
        let d = "b".repeat(64);
        let manifest = |role: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","artifactType":"{ARTIFACT_TYPE}","config":{{"mediaType":"{CONFIG_MEDIA_TYPE}","digest":"sha256:{d}","size":2}},"layers":[{{"mediaType":"{EROFS_MEDIA_TYPE}","digest":"sha256:{d}","size":2,"annotations":{{{role}"{ANN_LAYER_ID}":"x"}}}}]}}"#
            )
        };
        let err = read_manifest(
            "reg/k:worker1",
            manifest(r#""dev.nodeforge.layer.role":"bogus","#).as_bytes(),
        )
        .expect_err("unknown role")
        .to_string();
        assert!(err.contains("layer role `bogus`"), "{err}");
        let err = read_manifest("reg/k:worker1", manifest("").as_bytes())
            .expect_err("no role")
            .to_string();
        assert!(
            err.contains("layer role `(none)`") && !err.contains("None"),
            "{err}"
        );
        assert_eq!(
            BlobKind::Verity(Role::Payload).to_string(),
            "payload verity tree"
        );
    }
}
