//! What vouches for a node image (its SBOM, signatures, provenance, systemd's signed root
//! hashes) as an OCI 1.1 *referrer* of the image's manifest, and the referrers list it is found
//! by: the registry's referrers API, or, where a registry lacks it (distribution 2.8), the
//! distribution spec's referrers tag schema (`sha256-<hex>`, an image index of the referrers).
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json, artifactType ATTESTATIONS_ARTIFACT_TYPE
//!   config  the empty descriptor (application/vnd.oci.empty.v1+json, `{}`)
//!   layers  one per attestation file, sorted by name, with its media type and
//!           org.opencontainers.image.title = the file's name
//!   subject the image manifest's descriptor
//! ```
//!
//! The manifest lists every attestation file the pushing host has for the image, so a push
//! after a new signature (another key, a rotation) makes a new manifest that carries the old
//! signatures too. Older manifests of ours stay listed (the referrers API lists every manifest
//! whose subject is the image; the fallback index keeps them as well), and a pull merges them all
//! by file name. Pure: bytes in, bytes out; `ops` moves them.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Descriptor, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde_json::Value;

use super::{canonical_json, OciError, ANN_IMAGE_ID, ANN_TITLE, MANIFEST_MEDIA_TYPE};
use crate::hash::Sha256;

/// The `artifactType` of the manifest that carries an image's attestation files.
pub const ATTESTATIONS_ARTIFACT_TYPE: &str = "application/vnd.nodeforge.attestations.v1";
/// An OCI image index (the referrers list).
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// image-spec 1.1's empty descriptor: the config of an artifact that has none.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Media types of the attestation files.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
pub const PKCS7_MEDIA_TYPE: &str = "application/pkcs7-signature";
/// The largest attestation file a registry or layout may hand us (an SBOM lists every file of
/// an image: megabytes at most).
pub const MAX_ATTESTATION_BYTES: u64 = 64 << 20;
/// The most bytes of attestation files one image may bring (every file is held in memory until
/// the trust check has passed): a registry listing more is refused before any is downloaded.
pub const MAX_ATTESTATION_TOTAL: u64 = 256 << 20;
/// The most attestation files one manifest may list.
const MAX_FILES: usize = 1024;

/// What an attestation file holds, as far as its media type tells. The caller says which kind
/// each name is (`oci` knows no file names: `layout::Attestation` spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationKind {
    /// An SPDX JSON SBOM.
    Spdx,
    /// A DSSE envelope (a signature or signed provenance).
    Dsse,
    /// A detached PKCS#7 signature (systemd's signed root hash).
    Pkcs7,
}

impl AttestationKind {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Spdx => SPDX_MEDIA_TYPE,
            Self::Dsse => DSSE_MEDIA_TYPE,
            Self::Pkcs7 => PKCS7_MEDIA_TYPE,
        }
    }
}

/// Which kind the attestation file of a name is, or `None` when nodeforge writes no file of
/// that name. A name from a registry is used as a file name only when this accepts it.
pub type KindOf<'a> = &'a dyn Fn(&str) -> Option<AttestationKind>;

/// One attestation file: its name, digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationFile {
    pub name: String,
    pub digest: Sha256,
    pub size: u64,
}

/// A descriptor (oci-spec's type) of `size` bytes of `media_type` with `digest`.
fn descriptor(media_type: &str, digest: &Sha256, size: u64) -> Result<Descriptor, String> {
    let digest =
        oci_spec::image::Digest::try_from(format!("sha256:{digest}")).map_err(|e| e.to_string())?;
    Ok(Descriptor::new(MediaType::from(media_type), size, digest))
}

/// The sha256 a descriptor names, if that is its algorithm.
fn sha256_of(d: &Descriptor) -> Option<Sha256> {
    d.digest()
        .to_string()
        .strip_prefix("sha256:")
        .and_then(|h| Sha256::parse(h).ok())
}

/// The attestation manifest of image `image_id` whose manifest is `subject` (`subject_size`
/// bytes), listing `files` (sorted here by name; `kind_of` gives each name's kind), as canonical
/// JSON: the same files always make the same manifest digest.
pub fn attestation_manifest(
    image_id: &str,
    subject: &Sha256,
    subject_size: u64,
    files: &[AttestationFile],
    kind_of: KindOf,
) -> Result<Vec<u8>, OciError> {
    let unpushable = |reason: String| OciError::Unpushable {
        image: image_id.to_string(),
        reason,
    };
    let mut sorted: Vec<&AttestationFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut layers: Vec<Descriptor> = Vec::new();
    for f in sorted {
        let media_type = kind_of(&f.name)
            .map(AttestationKind::media_type)
            .ok_or_else(|| {
                unpushable(format!(
                    "its attestation directory holds `{}`, which is not a file nodeforge writes",
                    f.name
                ))
            })?;
        let mut d = descriptor(media_type, &f.digest, f.size).map_err(&unpushable)?;
        d.set_annotations(Some(HashMap::from([(
            ANN_TITLE.to_string(),
            f.name.clone(),
        )])));
        layers.push(d);
    }
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(ATTESTATIONS_ARTIFACT_TYPE))
        .config(
            descriptor(
                EMPTY_MEDIA_TYPE,
                &Sha256::of(EMPTY_CONFIG),
                EMPTY_CONFIG.len() as u64,
            )
            .map_err(&unpushable)?,
        )
        .layers(layers)
        .subject(descriptor(MANIFEST_MEDIA_TYPE, subject, subject_size).map_err(&unpushable)?)
        .annotations(HashMap::from([(
            ANN_IMAGE_ID.to_string(),
            image_id.to_string(),
        )]))
        .build()
        .map_err(|e| unpushable(e.to_string()))?;
    // Keys sorted: the same files always make the same bytes (and digest).
    canonical_json(&m).map_err(|e| unpushable(e.to_string()))
}

/// An attestation manifest as read from a registry or layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestations {
    /// The image manifest it refers to.
    pub subject: Sha256,
    pub image_id: Option<String>,
    pub files: Vec<AttestationFile>,
}

/// Read `bytes` as an attestation manifest (`what` names it in errors). Every file must have a
/// name nodeforge writes (`kind_of` says its kind) and the media type of that kind.
pub fn read_attestations(
    what: &str,
    bytes: &[u8],
    kind_of: KindOf,
) -> Result<Attestations, OciError> {
    let wrong = |reason: String| OciError::NotNodeImage {
        what: what.to_string(),
        reason: format!("its attestation manifest {reason}"),
    };
    let m: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| wrong(format!("is not an OCI image manifest: {e}")))?;
    let artifact_type = m.artifact_type().as_ref().map(ToString::to_string);
    if artifact_type.as_deref() != Some(ATTESTATIONS_ARTIFACT_TYPE) {
        return Err(wrong(format!(
            "has artifactType {}, not {ATTESTATIONS_ARTIFACT_TYPE}",
            artifact_type.as_deref().unwrap_or("(none)")
        )));
    }
    let digest_of = |d: &Descriptor| -> Result<Sha256, OciError> {
        sha256_of(d).ok_or_else(|| wrong(format!("names {} by no sha256 digest", d.digest())))
    };
    let subject = m
        .subject()
        .as_ref()
        .ok_or_else(|| wrong("has no subject".into()))
        .and_then(digest_of)?;
    let layers = m.layers();
    if layers.len() > MAX_FILES {
        return Err(wrong(format!("lists {} files", layers.len())));
    }
    let mut files: Vec<AttestationFile> = Vec::new();
    for l in layers {
        let name = l
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANN_TITLE))
            .ok_or_else(|| wrong(format!("lists blob {} without a file name", l.digest())))?;
        let want = kind_of(name)
            .map(AttestationKind::media_type)
            .ok_or_else(|| wrong(format!("lists `{name}`, not a file nodeforge writes")))?;
        if l.media_type().to_string() != want {
            return Err(wrong(format!(
                "lists `{name}` as {}, not {want}",
                l.media_type()
            )));
        }
        let size = Some(l.size())
            .filter(|s| *s <= MAX_ATTESTATION_BYTES)
            .ok_or_else(|| wrong(format!("lists `{name}` with size {}", l.size())))?;
        if files.iter().any(|f| f.name == *name) {
            return Err(wrong(format!("lists `{name}` twice")));
        }
        files.push(AttestationFile {
            name: name.clone(),
            digest: digest_of(l)?,
            size,
        });
    }
    Ok(Attestations {
        subject,
        image_id: m
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANN_IMAGE_ID))
            .cloned(),
        files,
    })
}

/// The referrers tag of manifest `digest` (the distribution spec's referrers tag schema).
pub fn referrers_tag(digest: &Sha256) -> String {
    format!("sha256-{digest}")
}

/// One entry of a referrers list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Sha256,
    pub size: u64,
    pub artifact_type: Option<String>,
}

/// The referrers an image index lists (the referrers API's answer or the referrers tag's
/// index); entries not named by a sha256 digest are passed over.
pub fn read_referrers(what: &str, bytes: &[u8]) -> Result<Vec<Referrer>, OciError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| OciError::NotNodeImage {
        what: what.to_string(),
        reason: format!("its referrers list is not JSON: {e}"),
    })?;
    Ok(v["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            Some(Referrer {
                digest: d["digest"]
                    .as_str()?
                    .strip_prefix("sha256:")
                    .and_then(|h| Sha256::parse(h).ok())?,
                size: d["size"].as_u64()?,
                artifact_type: d["artifactType"].as_str().map(str::to_string),
            })
        })
        .collect())
}

/// The referrers index `old` (the referrers tag's bytes; `None`: there is none yet, or it is
/// not an image index) with the attestation manifest `digest` (`size` bytes, annotated with the
/// image id) added: every other entry, ours and other tools', kept as it was. `None` when it
/// lists that manifest already (nothing to push).
pub fn add_referrer(
    old: Option<&[u8]>,
    image_id: &str,
    digest: &Sha256,
    size: u64,
) -> Result<Option<Vec<u8>>, OciError> {
    let mut index: Value = old
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .filter(|v| v["manifests"].is_array())
        .map_or_else(empty_index, Ok)
        .map_err(|e| OciError::Unpushable {
            image: image_id.to_string(),
            reason: e,
        })?;
    let name = format!("sha256:{digest}");
    let entries = index["manifests"]
        .as_array_mut()
        .ok_or_else(|| OciError::Unpushable {
            image: image_id.to_string(),
            reason: "its referrers index has no manifests list".into(),
        })?;
    if entries.iter().any(|d| d["digest"] == name.as_str()) {
        return Ok(None);
    }
    let unpushable = |reason: String| OciError::Unpushable {
        image: image_id.to_string(),
        reason,
    };
    let mut d = descriptor(MANIFEST_MEDIA_TYPE, digest, size).map_err(unpushable)?;
    d.set_artifact_type(Some(MediaType::from(ATTESTATIONS_ARTIFACT_TYPE)));
    d.set_annotations(Some(HashMap::from([(
        ANN_IMAGE_ID.to_string(),
        image_id.to_string(),
    )])));
    entries.push(serde_json::to_value(&d).map_err(|e| unpushable(e.to_string()))?);
    canonical_json(&index)
        .map(Some)
        .map_err(|e| OciError::Unpushable {
            image: image_id.to_string(),
            reason: e.to_string(),
        })
}

/// A referrers index with no entries (oci-spec's `ImageIndex`), as JSON to add to. An index a
/// registry holds is edited as JSON, not read into that type: other tools' entries stay as they
/// were, fields oci-spec does not know included.
fn empty_index() -> Result<Value, String> {
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .map_err(|e| e.to_string())?;
    serde_json::to_value(&index).map_err(|e| e.to_string())
}

/// Merge attestation manifests' files by name, in the order given: a name with other bytes in
/// a later manifest keeps the first's (callers give the newest first), and the names passed
/// over are returned beside the merged files.
pub fn merge(lists: &[Attestations]) -> (Vec<AttestationFile>, Vec<String>) {
    let mut files: BTreeMap<String, AttestationFile> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for l in lists {
        for f in &l.files {
            match files.get(&f.name) {
                Some(have) if have.digest != f.digest => conflicts.push(f.name.clone()),
                Some(_) => {}
                None => {
                    files.insert(f.name.clone(), f.clone());
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    (files.into_values().collect(), conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> AttestationFile {
        AttestationFile {
            name: name.into(),
            digest: Sha256::of(bytes),
            size: bytes.len() as u64,
        }
    }

    /// The kinds of the names these tests use (`layout::Attestation` spells the real ones).
    fn kind(name: &str) -> Option<AttestationKind> {
        if name.ends_with(".dsse.json") {
            Some(AttestationKind::Dsse)
        } else {
            name.ends_with(".spdx.json")
                .then_some(AttestationKind::Spdx)
        }
    }

    #[test]
    fn a_manifest_reads_back_and_is_deterministic() {
        let subject = Sha256::of(b"image manifest");
        let files = [
            file("sbom.spdx.json", b"{}"),
            file("image.k1.dsse.json", b"a"),
        ];
        let a = attestation_manifest("id1", &subject, 10, &files, &kind).expect("manifest");
        let rev: Vec<_> = files.iter().rev().cloned().collect();
        assert_eq!(
            a,
            attestation_manifest("id1", &subject, 10, &rev, &kind).expect("manifest")
        );
        let back = read_attestations("t", &a, &kind).expect("read");
        assert_eq!(back.subject, subject);
        assert_eq!(back.image_id.as_deref(), Some("id1"));
        assert_eq!(back.files[0].name, "image.k1.dsse.json");
        assert!(attestation_manifest("id1", &subject, 10, &[file("x.txt", b"")], &kind).is_err());
    }

    /// The typed manifest is, byte for byte, the one nodeforge pushed before it was typed (a
    /// JSON object of the same fields, keys sorted): the digests of existing pushes hold.
    #[test]
    fn the_typed_manifest_has_the_bytes_of_the_json_one() {
        let subject = Sha256::of(b"image manifest");
        let files = [
            file("sbom.spdx.json", b"{}"),
            file("image.k1.dsse.json", b"a"),
        ];
        let typed = attestation_manifest("id1", &subject, 10, &files, &kind).expect("manifest");
        let d = |t: &str, b: &[u8]| serde_json::json!({"mediaType": t, "digest": format!("sha256:{}", Sha256::of(b)), "size": b.len()});
        let mut layers = vec![d(DSSE_MEDIA_TYPE, b"a"), d(SPDX_MEDIA_TYPE, b"{}")];
        layers[0]["annotations"] = serde_json::json!({ ANN_TITLE: "image.k1.dsse.json" });
        layers[1]["annotations"] = serde_json::json!({ ANN_TITLE: "sbom.spdx.json" });
        let old = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ATTESTATIONS_ARTIFACT_TYPE,
            "config": d(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
            "layers": layers,
            "subject": {"mediaType": MANIFEST_MEDIA_TYPE, "digest": format!("sha256:{subject}"), "size": 10},
            "annotations": { ANN_IMAGE_ID: "id1" },
        });
        assert_eq!(
            String::from_utf8(typed).expect("utf-8"),
            String::from_utf8(canonical_json(&old).expect("json")).expect("utf-8")
        );
        let fresh = add_referrer(None, "id1", &subject, 10)
            .expect("add")
            .expect("changed");
        let mut entry = serde_json::json!({"mediaType": MANIFEST_MEDIA_TYPE, "digest": format!("sha256:{subject}"), "size": 10});
        entry["artifactType"] = ATTESTATIONS_ARTIFACT_TYPE.into();
        entry["annotations"] = serde_json::json!({ ANN_IMAGE_ID: "id1" });
        let old_index = serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]});
        assert_eq!(fresh, canonical_json(&old_index).expect("json"));
    }

    #[test]
    fn the_referrers_index_keeps_other_entries_and_adds_once() {
        let other = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":7,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","annotations":{"x":"y"}}]}"#;
        let ours = Sha256::of(b"ours");
        let new = add_referrer(Some(other), "id1", &ours, 5)
            .expect("add")
            .expect("changed");
        let list = read_referrers("t", &new).expect("read");
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].digest, ours);
        assert!(String::from_utf8_lossy(&new).contains(r#""annotations":{"x":"y"}"#));
        assert_eq!(
            add_referrer(Some(&new), "id1", &ours, 5).expect("add"),
            None
        );
        let fresh = add_referrer(None, "id1", &ours, 5)
            .expect("add")
            .expect("changed");
        assert_eq!(read_referrers("t", &fresh).expect("read").len(), 1);
    }

    #[test]
    fn merging_keeps_the_first_of_conflicting_names() {
        let s = Sha256::of(b"s");
        let a = Attestations {
            subject: s,
            image_id: None,
            files: vec![
                file("image.k1.dsse.json", b"a"),
                file("sbom.spdx.json", b"s"),
            ],
        };
        let b = Attestations {
            subject: s,
            image_id: None,
            files: vec![
                file("image.k2.dsse.json", b"b"),
                file("sbom.spdx.json", b"t"),
            ],
        };
        let (files, conflicts) = merge(&[a, b]);
        assert_eq!(files.len(), 3);
        assert_eq!(conflicts, ["sbom.spdx.json"]);
        assert_eq!(
            files
                .iter()
                .find(|f| f.name == "sbom.spdx.json")
                .map(|f| f.digest),
            Some(Sha256::of(b"s"))
        );
    }
}
